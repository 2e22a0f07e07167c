"""The house rules of zoo/ (docs/architecture.md): no import cycle, imports
going one way down the layers, every environment setting read in one module.

Backend-free: these read the source with `ast`, import nothing of the zoo and
run once, in the fast tier.
"""

import ast
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.backend_free

PACKAGE = Path(__file__).resolve().parent.parent / "zoo"

# Top to bottom. A module may import modules of its own layer and of the layers
# below it, never above: the CLI uses everything, nothing uses the CLI.
LAYERS = [
    ("zoo", "zoo.__main__", "zoo.cli"),  # the public API facade and the command line
    ("zoo.eval", "zoo.train", "zoo.deploy"),
    ("zoo.hub",),
    ("zoo.architectures",),
    ("zoo.layers",),
    ("zoo.kernels",),
    ("zoo.data",),
    ("zoo.runtime",),
    ("zoo.registry", "zoo.settings", "zoo.version", "zoo.errors"),
]
# Side by side in one layer, but independent of each other.
STRANGERS = [("zoo.eval", "zoo.train"), ("zoo.deploy", "zoo.train")]  # docs/architecture.md


def module_files(package=PACKAGE):
    """`{module name: path}` of every module under zoo/."""
    modules = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(package.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def imported_modules(name, path, modules):
    """The zoo modules `name` imports anywhere in its file (function-level
    imports included: a lazy import is a dependency all the same)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([node.module] if node.module else []))
            for alias in node.names:  # `from zoo.hub import cache` imports the module zoo.hub.cache
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return {module for module in found if module in modules and module != name}


def import_graph():
    modules = module_files()
    return {name: imported_modules(name, path, modules) for name, path in modules.items()}


def cycles(graph):
    """Every strongly connected group of more than one module (Tarjan), plus
    modules importing themselves."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1 or node in graph[node]:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def layer_of(module):
    """The index in LAYERS of `module`'s package (the longest matching prefix)."""
    best = None
    for number, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > len(best[1]):
                    best = (number, prefix)
    return best


def test_the_import_graph_is_read():
    graph = import_graph()
    assert "zoo.hub.loader" in graph["zoo"] and "zoo.architectures.base" in graph["zoo.architectures.dense"]
    assert len(graph) > 40


def test_there_is_no_import_cycle():
    assert cycles(import_graph()) == []


def test_the_cycle_check_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_every_module_has_a_layer():
    assert [module for module in import_graph() if layer_of(module) is None] == []


def test_imports_go_down_the_layers():
    upward = [
        f"{module} imports {target}"
        for module, targets in import_graph().items()
        for target in targets
        if layer_of(target)[0] < layer_of(module)[0]
    ]
    assert upward == []


def test_side_by_side_packages_do_not_import_each_other():
    graph = import_graph()
    crossing = [
        f"{module} imports {target}"
        for first, second in STRANGERS
        for module, targets in graph.items()
        for target in targets
        for here, there in ((first, second), (second, first))
        if module.startswith(here + ".") and target.startswith(there + ".")
    ]
    assert crossing == []


def test_token_ids_import_no_keras():
    tree = ast.parse((PACKAGE / "data" / "special_tokens.py").read_text())
    assert not [node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))]


def test_only_settings_reads_the_zoo_environment_variables():
    readers = sorted(
        str(path.relative_to(PACKAGE.parent))
        for path in PACKAGE.rglob("*.py")
        if re.search(r"""["'](ZOO_[A-Z_]+|HF_HUB_OFFLINE)["']""", path.read_text())
    )
    assert readers == ["zoo/settings.py"]
