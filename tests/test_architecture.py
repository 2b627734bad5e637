"""The import rules of ARCHITECTURE.md, checked by parsing every module's imports with ``ast`` (nothing is imported).

Three kinds of import are told apart: module level (runs on ``import``), lazy (inside a function: runs when the
function is called) and type-only (under ``if TYPE_CHECKING:``: never runs). Type-only imports are exempt from
every rule; lazy imports count for the stage rules and for cycles, not for the torch rule.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "virtualfocus"

# What each stage may import of the others at run time (module level or lazily); itself is always allowed.
# "models" is the shipped-model data package, not a stage.
ALLOWED: dict[str, set[str]] = {
    "edge": {"models"},
    "zstacks": {"edge"},
    "simulation": {"edge", "zstacks"},
    "evaluation": {"edge", "zstacks", "simulation"},
    "training": {"edge", "zstacks", "simulation"},
    "export": {"edge", "zstacks", "simulation", "training"},
    "compression": {"edge", "zstacks", "simulation", "training", "export"},
    "cli": {"edge", "zstacks", "simulation", "evaluation", "training", "compression", "export"},
    "benchmarks": {"edge", "zstacks", "simulation", "evaluation", "training", "compression", "export", "models"},
}
STAGES = tuple(ALLOWED)
# Stages whose modules never import torch at module level, directly or through another module of ours
# (torch is an optional extra: a core install must import them).
TORCH_FREE_AT_IMPORT = ("edge", "simulation", "zstacks", "evaluation", "cli", "export", "compression")


@dataclass(frozen=True)
class Import:
    target: str  # dotted module (or module.name for ``from m import name``)
    module_level: bool
    type_only: bool
    line: int


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts) if parts[0] == "benchmarks" else ".".join([PACKAGE, *parts])


def _stage_files(stage: str) -> list[Path]:
    return sorted(p for p in (ROOT / stage).rglob("*.py") if ".venv" not in p.parts)


@cache
def _imports(path: Path) -> tuple[Import, ...]:
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: list[Import] = []

    def walk(node: ast.AST, *, module_level: bool, type_only: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for stmt in child.body:
                    visit(stmt, module_level=module_level, type_only=True)
                for stmt in child.orelse:
                    visit(stmt, module_level=module_level, type_only=type_only)
            else:
                visit(child, module_level=module_level, type_only=type_only)

    def visit(node: ast.AST, *, module_level: bool, type_only: bool) -> None:
        if isinstance(node, ast.Import):
            found.extend(Import(a.name, module_level, type_only, node.lineno) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.append(Import(module, module_level, type_only, node.lineno))
            found.extend(Import(f"{module}.{a.name}", module_level, type_only, node.lineno) for a in node.names)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            walk(node, module_level=False, type_only=type_only)
        else:
            walk(node, module_level=module_level, type_only=type_only)

    walk(ast.parse(path.read_text(encoding="utf-8")), module_level=True, type_only=False)
    return tuple(found)


@cache
def _modules() -> dict[str, Path]:
    return {_module_name(p): p for stage in STAGES for p in _stage_files(stage)}


def _resolve(target: str) -> str | None:
    """The module of ours that ``target`` names (``pkg.mod.name`` → ``pkg.mod``), or None if not ours."""
    mods = _modules()
    while target:
        if target in mods:
            return target
        target = target.rpartition(".")[0]
    return None


def _stage_of(target: str) -> str | None:
    parts = target.split(".")
    if parts[0] == PACKAGE and len(parts) > 1:
        return parts[1]
    return "benchmarks" if parts[0] == "benchmarks" else None


@pytest.mark.parametrize("stage", STAGES)
def test_stage_imports_only_what_it_may(stage: str) -> None:
    bad = []
    for path in _stage_files(stage):
        for imp in _imports(path):
            other = _stage_of(imp.target)
            if imp.type_only or other is None or other == stage:
                continue
            if other not in ALLOWED[stage]:
                bad.append(f"{path.relative_to(ROOT)}:{imp.line} imports {imp.target}")
    assert not bad, f"{stage} may import only {sorted(ALLOWED[stage])}:\n" + "\n".join(sorted(set(bad)))


def test_edge_never_imports_torch() -> None:
    bad = [f"{p.relative_to(ROOT)}:{i.line}" for p in _stage_files("edge") for i in _imports(p)
           if not i.type_only and i.target.split(".")[0] == "torch"]
    assert not bad, "edge is the torch-free runtime:\n" + "\n".join(bad)


def _imports_torch_at_module_level(module: str, seen: set[str] | None = None) -> list[str]:
    """The chain of module-level imports from ``module`` that ends in torch ([] when there is none)."""
    seen = set() if seen is None else seen
    if module in seen:
        return []
    seen.add(module)
    for imp in _imports(_modules()[module]):
        if not imp.module_level or imp.type_only:
            continue
        if imp.target.split(".")[0] == "torch":
            return [module, "torch"]
        ours = _resolve(imp.target)
        if ours is not None and ours != module:
            chain = _imports_torch_at_module_level(ours, seen)
            if chain:
                return [module, *chain]
    return []


@pytest.mark.parametrize("stage", TORCH_FREE_AT_IMPORT)
def test_core_stages_do_not_import_torch_at_module_level(stage: str) -> None:
    chains = []
    for path in _stage_files(stage):
        chain = _imports_torch_at_module_level(_module_name(path))
        if chain:
            chains.append(" → ".join(chain))
    assert not chains, f"{stage} must import without torch (import it inside the function):\n" + "\n".join(chains)


def _edge_cycles() -> list[list[str]]:
    """Import cycles among edge modules, counting module-level and lazy imports, not type-only ones."""
    edge = {m for m in _modules() if m == f"{PACKAGE}.edge" or m.startswith(f"{PACKAGE}.edge.")}
    graph: dict[str, set[str]] = {m: set() for m in edge}
    for m in edge:
        for imp in _imports(_modules()[m]):
            target = _resolve(imp.target)
            if not imp.type_only and target in edge and target != m and not m.startswith(f"{target}."):
                graph[m].add(target)
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycles.append([*stack[stack.index(n):], n])
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    return cycles


def test_no_import_cycle_among_edge_modules() -> None:
    cycles = _edge_cycles()
    assert not cycles, "import cycles among edge modules:\n" + "\n".join(" → ".join(c) for c in cycles)


MAX_MODULE_LINES = 700
MAX_FUNCTION_LINES = 120


@pytest.mark.parametrize("stage", [s for s in STAGES if s != "benchmarks"])
def test_no_module_over_700_lines_and_no_function_over_120(stage: str) -> None:
    # the installed packages stay readable: split a module by what its parts do, a function into named steps
    too_long: list[str] = []
    for path in _stage_files(stage):
        text = path.read_text(encoding="utf-8")
        lines = text.count("\n")
        if lines > MAX_MODULE_LINES:
            too_long.append(f"{path.relative_to(ROOT)}: {lines} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = (node.end_lineno or node.lineno) - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    too_long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}() {n} lines")
    assert not too_long, "over the size limits:\n" + "\n".join(too_long)


def test_the_checker_sees_imports_of_every_kind(tmp_path: Path) -> None:
    # guard against a checker that passes because it finds nothing
    imps = _imports(ROOT / "edge" / "integrations" / "telemetry.py")
    assert any(i.type_only and i.target.startswith(f"{PACKAGE}.zstacks") for i in imps)
    assert any(i.module_level and not i.type_only and i.target == f"{PACKAGE}.edge.errors" for i in imps)
    lazy = _imports(ROOT / "export" / "runs.py")
    assert any(not i.module_level and i.target == f"{PACKAGE}.training.checkpoint" for i in lazy)
    assert _imports_torch_at_module_level(f"{PACKAGE}.training.checkpoint")[-1] == "torch"
    assert _resolve(f"{PACKAGE}.edge.errors.InputError") == f"{PACKAGE}.edge.errors"
