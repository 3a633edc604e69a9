"""The playground's ES modules (serve/static/*.js): no import cycle, and every imported name exists.

Read from the import and export statements, without a browser: a cycle between two views is
legal JavaScript (the bindings are live), but it hides which view depends on which, and it makes
the order in which modules run a trap."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

STATIC = Path(__file__).resolve().parent.parent / "src" / "denoiselab" / "serve" / "static"

# import { a, b as c } from "./x.js";   import * as m from "./x.js";   import "./x.js";   import("./x.js")
IMPORT = re.compile(r"""\bimport\s*(?:(?P<what>[\w*{}\s,$]+?)\s*from\s*)?\(?\s*["'](?P<path>\./[\w./-]+\.js)["']""")
EXPORT = re.compile(r"^export\s+(?:async\s+)?(?:const|let|var|function\*?|class)\s+(?P<name>[\w$]+)", re.MULTILINE)


def _without_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.DOTALL)
    return re.sub(r"(?m)^\s*//.*$", "", text)


def imports(path: Path) -> dict[str, set[str]]:
    """{imported module's file name: the names imported from it} of one module."""
    found: dict[str, set[str]] = {}
    for m in IMPORT.finditer(_without_comments(path.read_text())):
        names = found.setdefault(Path(m["path"]).name, set())
        what = m["what"] or ""
        if "{" in what:
            inside = what[what.index("{") + 1 : what.index("}")]
            names |= {part.split(" as ")[0].strip() for part in inside.split(",") if part.strip()}
    return found


def module_graph() -> dict[str, dict[str, set[str]]]:
    return {path.name: imports(path) for path in sorted(STATIC.glob("*.js"))}


def find_cycle(graph: dict[str, dict[str, set[str]]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None (depth-first search, three colours)."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, {})):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_parser_reads_every_import_form(tmp_path):
    js = tmp_path / "m.js"
    js.write_text(
        '/* import { Old } from "./gone.js"; */\n'
        'import { $, api as call } from "./api.js";\n'
        "import {\n  Jobs,\n  Runs,\n} from './runs.js';\n"
        'import * as plot from "./plot.js";\n'
        'import "./side.js";\n'
        'const later = () => import("./lazy.js");\n'
    )
    assert imports(js) == {"api.js": {"$", "api"}, "runs.js": {"Jobs", "Runs"}, "plot.js": set(), "side.js": set(), "lazy.js": set()}


def test_the_cycle_finder():
    graph = {"a.js": {"b.js": set()}, "b.js": {"c.js": set()}, "c.js": {"a.js": set()}}
    assert find_cycle(graph) == ["a.js", "b.js", "c.js", "a.js"]
    assert find_cycle({"a.js": {"b.js": set()}, "b.js": {}}) is None


def test_the_modules_are_all_read():
    graph = module_graph()
    assert {"app.js", "runs.js", "view-reverse.js", "view-playground.js"} <= set(graph)
    assert graph["app.js"]["view-reverse.js"] == {"Reverse"}
    assert '<script type="module" src="/static/app.js">' in (STATIC / "index.html").read_text()


def test_no_import_cycle():
    cycle = find_cycle(module_graph())
    assert cycle is None, "serve/static modules import each other in a circle: " + " -> ".join(cycle or [])


@pytest.mark.parametrize("module", sorted(p.name for p in STATIC.glob("*.js")))
def test_every_imported_module_and_name_exists(module):
    for target, names in module_graph()[module].items():
        assert (STATIC / target).is_file(), f"{module} imports {target}, which does not exist"
        exported = set(EXPORT.findall((STATIC / target).read_text()))
        missing = names - exported
        assert not missing, f"{module} imports {sorted(missing)} from {target}, which does not export them"
