"""The package's import graph: no cycle, and no stage importing a later stage.

Built from the source with ``ast`` (module-level imports; ``if TYPE_CHECKING:`` blocks excluded), so
a cycle hidden behind a late import inside a function is still reported by the stage-order check.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

# Pipeline order of the stage packages (DESIGN.md): a stage may import an earlier one, never a later one.
STAGES = ("data", "embed", "gap", "align", "mllm", "evaluation", "report", "workflow")


def modules(src: Path = SRC) -> dict[str, Path]:
    found = {}
    for path in src.rglob("*.py"):
        parts = path.relative_to(src).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _targets(module: str, path: Path, node: ast.Import | ast.ImportFrom, known: dict[str, Path]) -> list[str]:
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
            package = package[: len(package) - node.level + 1]
            base = ".".join([*package, base] if base else package)
        names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
    out = []
    for name in names:
        while name and name not in known:  # `from modgap.x import function` -> modgap.x
            name = name.rpartition(".")[0]
        if name and name != module:
            out.append(name)
    return out


def _is_type_checking(node: ast.stmt) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _walk_runtime(node: ast.AST):
    """Every node except those under ``if TYPE_CHECKING:`` (never run)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.stmt) and _is_type_checking(child):
            continue
        yield child
        yield from _walk_runtime(child)


def import_graph(src: Path = SRC, *, module_level: bool = True) -> dict[str, set[str]]:
    """Module -> modules it imports; importing ``a.b.c`` also runs ``a`` and ``a.b`` (their __init__)."""
    known = modules(src)
    graph: dict[str, set[str]] = {}
    for module, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if module_level:
            stmts = []
            for node in tree.body:
                if _is_type_checking(node):
                    continue
                stmts += node.body if isinstance(node, ast.Try) else [node]
        else:
            stmts = list(_walk_runtime(tree))
        deps: set[str] = set()
        for node in stmts:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in _targets(module, path, node, known):
                    parts = target.split(".")
                    deps.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
        deps.discard(module)
        # A package's own __init__ runs before its submodules, so submodule -> its parents is no edge.
        graph[module] = {d for d in deps if d in known and not module.startswith(d + ".")}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def stage_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in STAGES else None


def backward_imports(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """(importer, imported) where the imported module belongs to a later stage than its importer."""
    bad = []
    for module, deps in graph.items():
        own = stage_of(module)
        for dep in deps:
            other = stage_of(dep)
            if own and other and STAGES.index(other) > STAGES.index(own):
                bad.append((module, dep))
    return sorted(bad)


def test_no_import_cycle():
    # Late imports count: a cycle deferred into a function still ties the two modules together.
    assert cycles(import_graph(module_level=False)) == []


def test_no_stage_imports_a_later_stage():
    # Late imports inside functions count too: a deferred import is still a dependency.
    assert backward_imports(import_graph(module_level=False)) == []


def core_imports_of_stages(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """(core module, stage module) pairs: the modules below the stages (config, io, output, stats, ...)
    must not depend on any stage; config reaches the stages' checks through STAGE_SPECS by name."""
    return sorted((m, d) for m, deps in graph.items() if stage_of(m) is None for d in deps if stage_of(d))


def test_no_core_module_imports_a_stage():
    assert core_imports_of_stages(import_graph(module_level=False)) == []


def test_the_checks_catch_a_planted_cycle_and_a_backward_import(tmp_path):
    pkg = tmp_path / "modgap"
    for sub in ("", "gap", "align"):
        (pkg / sub).mkdir(parents=True, exist_ok=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "config.py").write_text("from modgap.gap import stage\n")
    (pkg / "gap" / "stage.py").write_text("from modgap.config import merge\n")
    (pkg / "gap" / "uses_align.py").write_text("def f():\n    from modgap.align import base\n")
    (pkg / "align" / "base.py").write_text("import numpy\n")
    graph = import_graph(tmp_path)
    assert cycles(graph) == [["modgap.config", "modgap.gap.stage"]]
    assert core_imports_of_stages(graph) == [("modgap.config", "modgap.gap"), ("modgap.config", "modgap.gap.stage")]
    assert backward_imports(graph) == []  # module level only: the late import is not seen
    late = import_graph(tmp_path, module_level=False)
    assert backward_imports(late) == [
        ("modgap.gap.uses_align", "modgap.align"),
        ("modgap.gap.uses_align", "modgap.align.base"),
    ]


@pytest.mark.parametrize("module", ["modgap.gap.dynamics", "modgap.align.base", "modgap.config"])
def test_graph_sees_real_modules(module):
    assert module in import_graph()


# Functions longer than this read as several steps; name the steps instead. `register` functions of the
# stage `commands` modules are exempt: they are declarative option tables (one add_argument per option).
MAX_FUNCTION_LINES = 80


def long_functions(src: Path = SRC, limit: int = MAX_FUNCTION_LINES) -> list[tuple[str, str, int]]:
    found = []
    for module, path in modules(src).items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                declarative = node.name == "register" and module.endswith("commands")
                if lines > limit and not declarative:
                    found.append((module, node.name, lines))
    return sorted(found)


def test_no_function_is_longer_than_the_limit():
    assert long_functions() == []


def test_the_length_check_sees_a_long_function(tmp_path):
    pkg = tmp_path / "modgap"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES))
    (pkg / "long.py").write_text(f"def f():\n{body}")
    (pkg / "commands.py").write_text(f"def register():\n{body}")
    assert long_functions(tmp_path) == [("modgap.long", "f", MAX_FUNCTION_LINES + 1)]
