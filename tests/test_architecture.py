"""The rooms import downwards only: no module of the runtime or the converter imports one that
imports it back, even lazily inside a function (docs/architecture.md draws them as layers)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _imports(package: Path) -> dict[str, set[str]]:
    """Each module of `package` (dotted, relative to it) -> the modules of it that it imports."""
    modules = {".".join(f.relative_to(package).with_suffix("").parts): f for f in package.rglob("*.py")}
    modules = {name.removesuffix(".__init__").removesuffix("__init__"): f for name, f in modules.items()}
    graph = {}
    for name, file in modules.items():
        here = name.split(".") if file.name == "__init__.py" else name.split(".")[:-1]
        here = [p for p in here if p]
        deps = set()
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level == 0:  # `from pocketfit.runtime.x import y` is as much an import of x
                prefix = f"pocketfit.{package.name}"
                if not node.module or not (node.module == prefix or node.module.startswith(prefix + ".")):
                    continue
                node = ast.ImportFrom(node.module[len(prefix) + 1 :] or None, node.names, 1)
                base = []
            else:
                base = here[: len(here) - (node.level - 1)]
            targets = [base + node.module.split(".")] if node.module else [base + [a.name] for a in node.names]
            if node.module:  # `from .x import y` may name a submodule y
                targets += [base + node.module.split(".") + [a.name] for a in node.names]
            deps |= {".".join(t) for t in targets if ".".join(t) in modules and ".".join(t) != name}
        graph[name] = deps
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}

    def visit(node, path):
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                return path + [node, dep]
            if dep not in state and (found := visit(dep, path + [node])):
                return found
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node, [])):
            return found
    return None


@pytest.mark.parametrize("room", ["runtime", "converter"])
def test_no_import_cycles(room):
    graph = _imports(ROOT / room)
    assert graph, room
    # A package's __init__ re-exporting its modules is not a cycle with them: only module -> module.
    graph = {m: {d for d in deps if d and not (m.startswith(d + ".") )} for m, deps in graph.items() if m}
    cycle = _cycle(graph)
    assert cycle is None, f"{room}: import cycle {' -> '.join(cycle)}"


def test_the_cycle_finder_finds_one():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_every_package_folder_is_in_the_distribution():
    """`pip install .` (not -e) ships only the packages pyproject.toml lists: a folder missing there
    works in the editable install every test uses and is absent from a wheel."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    listed = {config["package-dir"][name] for name in config["packages"]}
    assert set(config["packages"]) == set(config["package-dir"])
    folders = {str(f.parent.relative_to(ROOT)) for room in ("pocketfit", "converter", "runtime")
               for f in (ROOT / room).rglob("__init__.py")}
    assert folders <= listed, f"not in pyproject.toml's packages: {sorted(folders - listed)}"
