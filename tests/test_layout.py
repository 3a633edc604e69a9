"""The cut of the package: which modules may import which (by reading their import statements)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "denoiselab"


def imported_modules(path: Path) -> set[str]:
    """Absolute names (denoiselab.x.y) of every module a file imports, at any depth of the code."""
    parts = ["denoiselab", *path.relative_to(PACKAGE).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    package = parts if path.name == "__init__.py" else parts[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            found.add(module)
            found |= {f"{module}.{alias.name}" for alias in node.names}
    return found


@pytest.mark.parametrize("path", sorted((PACKAGE / "runs").glob("*.py")) + sorted((PACKAGE / "serve").glob("routes_*.py")), ids=str)
def test_using_a_run_imports_nothing_of_the_training_loop(path):
    assert "denoiselab.training" not in imported_modules(path)


def test_the_builders_sit_below_training_and_sampling():
    assert not {m for m in imported_modules(PACKAGE / "builders.py") if m.startswith(("denoiselab.training", "denoiselab.runs"))}


def test_data_modules_do_not_import_each_other_in_a_circle():
    labels = imported_modules(PACKAGE / "data" / "labels.py")
    point_files = imported_modules(PACKAGE / "data" / "point_files.py")
    assert "denoiselab.data.sources" not in labels
    assert not {m for m in point_files if m.startswith("denoiselab.data.")}
