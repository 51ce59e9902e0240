"""Package direction: no import cycle between segbench's parts, segbench_plugins and segbench_jobs, and the
recipe layer, the pure core and job emission never import the training engine.

The graph is read from the source of the installed packages with ``ast`` (nothing is imported, so no torch).
Imports inside functions count: they run too, and a cycle hidden in a function is still a cycle. Imports
under ``if TYPE_CHECKING:`` do not (they never run).
"""
import ast
import importlib.util
from pathlib import Path

import networkx as nx
import pytest

PACKAGES = ("segbench", "segbench_plugins", "segbench_jobs")
# Parts that must stay usable without the training engine.
NO_ENGINE = ("segbench.recipe", "segbench.functional", "segbench_jobs")


def _modules(package: str) -> dict[str, Path]:
    """Every module of an installed package: dotted name -> source file."""
    spec = importlib.util.find_spec(package)
    modules = {}
    for root in spec.submodule_search_locations:
        for path in sorted(Path(root).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join((package, *parts))] = path
    return modules


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return isinstance(test, ast.Name) and test.id == "TYPE_CHECKING" or \
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def imported_names(module: str, path: Path) -> set[str]:
    """The dotted names ``module`` imports (``from a import b`` yields ``a`` and ``a.b``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and _is_type_checking(node)
               for child in node.body for n in ast.walk(child)}
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def unit(name: str) -> str | None:
    """The part a module belongs to: ``segbench.<subpackage or module>``, ``segbench_plugins``, ``segbench_jobs``."""
    parts = name.split(".")
    if parts[0] in ("segbench_plugins", "segbench_jobs"):
        return parts[0]
    if parts[0] == "segbench":
        return ".".join(parts[:2])
    return None


@pytest.fixture(scope="module")
def graph() -> nx.DiGraph:
    modules = {name: path for package in PACKAGES for name, path in _modules(package).items()}
    graph = nx.DiGraph()
    for name, path in modules.items():
        source = unit(name)
        graph.add_node(source)
        for imported in imported_names(name, path):
            target = unit(imported)
            if target is not None and target != source and (imported in modules or target in modules):
                graph.add_edge(source, target, via=graph.get_edge_data(source, target, {}).get("via", name))
    return graph


def _describe(graph: nx.DiGraph, cycle: list[str]) -> str:
    steps = zip(cycle, [*cycle[1:], cycle[0]])
    return " -> ".join(f"{a} ({graph.edges[a, b]['via']})" for a, b in steps) + f" -> {cycle[0]}"


def test_the_graph_sees_the_packages(graph):
    assert {"segbench.engine", "segbench.recipe", "segbench.report", "segbench_plugins", "segbench_jobs"} <= set(graph)
    assert graph.has_edge("segbench.engine", "segbench.recipe")  # the runner trains resolved recipes


def test_no_cycle_between_parts(graph):
    cycles = sorted(nx.simple_cycles(graph), key=len)
    assert not cycles, "import cycles:\n" + "\n".join(_describe(graph, c) for c in cycles[:10])


@pytest.mark.parametrize("part", NO_ENGINE)
def test_no_engine_import(graph, part):
    assert not graph.has_edge(part, "segbench.engine"), \
        f"{part} imports segbench.engine (in {graph.edges[part, 'segbench.engine']['via']})"


def test_the_checker_finds_a_cycle_and_a_lazy_import(tmp_path):
    (tmp_path / "a.py").write_text("def f():\n    from pkg.b import g\n")
    (tmp_path / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.c\n"
                                   "from . import a\n")
    assert imported_names("pkg.a", tmp_path / "a.py") == {"pkg.b", "pkg.b.g"}
    assert imported_names("pkg.b", tmp_path / "b.py") == {"typing", "typing.TYPE_CHECKING", "pkg", "pkg.a"}
