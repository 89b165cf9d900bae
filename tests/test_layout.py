"""The house rules a newcomer relies on: imports point one way, one module owns what is stored on trials,
one owns Optuna's private API, and no function is too long to read at once."""

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "nas"
LONGEST = 60  # lines; parser() is exempt while it stays a flat list of declarations


def modules() -> dict[str, ast.Module]:
    return {path.stem: ast.parse(path.read_text()) for path in sorted(PACKAGE.glob("*.py"))}


def imports_of(tree: ast.Module) -> set[str]:
    """The nas modules a module imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "nas":
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("nas."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {alias.name.split(".")[1] for alias in node.names if alias.name.startswith("nas.")}
    return found


def a_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    done, path = set(), []

    def visit(name):
        if name in path:
            return path[path.index(name):] + [name]
        if name in done:
            return None
        path.append(name)
        found = next((c for c in map(visit, sorted(graph.get(name, ()))) if c), None)
        path.pop()
        done.add(name)
        return found

    return next((c for c in map(visit, sorted(graph)) if c), None)


def test_imports_point_one_way():
    graph = {name: imports_of(tree) - {name} for name, tree in modules().items()}
    assert a_cycle(graph) is None, " -> ".join(a_cycle(graph))
    assert "data" not in graph["models"]  # a model needs its input description, not the data loader


def test_the_cycle_finder_finds_one():
    assert a_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert a_cycle({"a": {"b"}, "b": set()}) is None


def test_trial_attributes_and_private_optuna_have_one_owner_each():
    stored = re.compile(r"\.user_attrs\b|\.set_user_attr\(|\.system_attrs\b")
    private = re.compile(r"\._(storage|study_id|trial_id|backend|pop_waiting_trial_id)\b|optuna\._")
    for path in PACKAGE.glob("*.py"):
        text = path.read_text()
        if path.name != "records.py" and path.name != "optuna_adapter.py":
            assert not stored.search(text), f"{path.name} reads or writes trial attributes itself"
        if path.name != "optuna_adapter.py":
            assert not private.search(text), f"{path.name} calls Optuna's private API"


def test_no_function_is_too_long_to_read_at_once():
    long = [f"{name}.{node.name}: {node.end_lineno - node.lineno + 1} lines" for name, tree in modules().items()
            for node in ast.walk(tree) if isinstance(node, ast.FunctionDef) and node.name != "parser"
            and node.end_lineno - node.lineno + 1 > LONGEST]
    assert not long, long
