"""The cut of the package: which modules may reach which, read from their import statements.

Every import counts, at the top of a module or inside a function: an import placed in a function
runs later, but the dependency is the same, and a circle closed through one is still a circle.
Importing ``a.b.c`` also runs the packages ``a`` and ``a.b`` (their ``__init__``), so an edge
reaches those as well, unless the importer is inside them already.

The layers, from the bottom: the light modules (errors, choices, config, files), the mathematics
and the parts built on it (schedules ... samplers, models, data, metrics, tuning, viz, builders),
the run folder (runs/), training (training/), and the faces (cli, serve/).  An import from a
layer into a higher one is an upward reach.  Run this file as a script to print the counts:

    python tests/test_layout.py
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "denoiselab"

# Lowest first; a module belongs to the first layer with a matching prefix, else to "core".
LAYERS = (
    ("light", ("denoiselab.errors", "denoiselab.choices", "denoiselab.config", "denoiselab.files")),
    ("runs", ("denoiselab.runs",)),
    ("training", ("denoiselab.training", "denoiselab.latent_training", "denoiselab.classifier_training", "denoiselab.ema")),
    ("faces", ("denoiselab.cli", "denoiselab.__main__", "denoiselab.serve")),
)
ORDER = ("light", "core", "runs", "training", "faces")

# Every file a run folder holds; only its owner names them.
RUN_FILE_NAMES = re.compile(
    r"(?<![\w.-])(run\.json|config\.toml|data\.npy|labels\.npy|held_out(_labels)?\.npy|latents\.npy|tuned_grids\.json|"
    r"checkpoint\.safetensors|model\.safetensors|classifier(-checkpoint)?\.safetensors|classifier\.json|\.train\.lock|metrics\.json)(?![\w-])"
)
RUN_FOLDER_OWNER = "denoiselab.runs.folder"


def module_name(path: Path) -> str:
    parts = ["denoiselab", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported_modules(path: Path) -> set[str]:
    """Absolute names (denoiselab.x.y) of every module a file imports, at any depth of the code."""
    parts = module_name(path).split(".")
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


@cache
def graph() -> dict[str, frozenset[str]]:
    """module -> the package's modules its imports run (the packages on the way included)."""
    known = modules()
    edges = {}
    for name, path in known.items():
        own_packages = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)} | {name}
        targets = set()
        for target in imported_modules(path):
            if target not in known:
                continue
            pieces = target.split(".")
            targets |= {".".join(pieces[:i]) for i in range(2, len(pieces) + 1)} - own_packages
        edges[name] = frozenset(t for t in targets if t in known and t != name)
    return edges


def reach(start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph()[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def circles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph()[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph()):
        if v not in index:
            visit(v)
    return found


def layer(name: str) -> str:
    for label, prefixes in LAYERS:
        if any(name == p or name.startswith(p + ".") for p in prefixes):
            return label
    return "core"


def upward_reaches() -> list[tuple[str, str]]:
    """Direct imports from a layer into a higher one."""
    return sorted(
        (a, b) for a, targets in graph().items() for b in targets
        if b != "denoiselab" and ORDER.index(layer(b)) > ORDER.index(layer(a))
    )  # fmt: skip


def run_file_literals() -> list[tuple[str, int, str]]:
    """(module, line, text) of every string literal in the code (docstrings aside) that names a
    run-folder file, outside the folder's owner."""
    found = []
    for name, path in modules().items():
        if name == RUN_FOLDER_OWNER:
            continue
        tree = ast.parse(path.read_text())
        docstrings = {
            id(node.body[0].value) for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)
        }  # fmt: skip
        for node in ast.walk(tree):
            if id(node) in docstrings:
                continue  # prose about the files; the code's names are what must have one owner
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and RUN_FILE_NAMES.search(node.value):
                found.append((name, node.lineno, node.value))
    return found


def test_no_import_circles_with_function_level_imports_followed():
    assert circles() == []


def test_nothing_imports_upward():
    assert upward_reaches() == []


@pytest.mark.parametrize("start", sorted(m for m in modules() if layer(m) == "runs"))
def test_using_a_run_never_reaches_the_training_loop(start):
    assert not {m for m in reach(start) if layer(m) == "training"}


@pytest.mark.parametrize("start", sorted(m for m in modules() if m.startswith("denoiselab.serve.routes_")))
def test_the_playground_routes_never_reach_the_training_loop_but_through_the_job_manager(start):
    assert not {m for m in reach(start) if layer(m) == "training"} - {m for m in reach("denoiselab.serve.jobs")} or start.endswith("routes_training")


@pytest.mark.parametrize("start", sorted(m for m in modules() if m.startswith("denoiselab.samplers")))
def test_samplers_never_reach_runs(start):
    assert not {m for m in reach(start) if layer(m) in ("runs", "training", "faces")}


def test_only_the_run_folder_names_its_files():
    assert run_file_literals() == []


def test_the_builders_sit_below_training_and_sampling():
    builders = [m for m in modules() if m.endswith((".builders", ".build"))]
    assert builders
    for name in builders:
        assert not {m for m in reach(name) if layer(m) in ("training", "faces")}


def test_data_modules_do_not_import_each_other_in_a_circle():
    labels = imported_modules(PACKAGE / "data" / "labels.py")
    point_files = imported_modules(PACKAGE / "data" / "point_files.py")
    assert "denoiselab.data.sources" not in labels
    assert not {m for m in point_files if m.startswith("denoiselab.data.")}


def test_the_graph_sees_function_level_imports():
    """The analysis itself: an import inside a function is an edge (the circle of the past hid there)."""
    tree_has_inner_import = any(
        isinstance(inner, (ast.Import, ast.ImportFrom))
        for path in modules().values()
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef)
        for inner in ast.walk(node)
    )
    assert tree_has_inner_import
    cli_targets = graph()["denoiselab.cli"]
    assert any(layer(t) == "training" for t in cli_targets), "cli imports training inside cmd_train"


if __name__ == "__main__":
    found = circles()
    print(f"import circles: {len(found)}" + "".join(f"\n  {len(c)} modules: {', '.join(c)}" for c in found))
    up = upward_reaches()
    print(f"upward reaches: {len(up)}" + "".join(f"\n  {a} -> {b}" for a, b in up))
    lits = run_file_literals()
    print(f"run-file literals outside {RUN_FOLDER_OWNER}: {len(lits)} in {len({m for m, _, _ in lits})} modules")
    for m, line, text in lits:
        print(f"  {m}:{line} {text!r}")
