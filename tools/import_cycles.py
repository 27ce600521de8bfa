"""Find import cycles among the modules of a package (standard library only).

    python tools/import_cycles.py [PACKAGE_DIR]      # default: src/ncf next to this folder

Every ``import`` counts, also those inside functions (a cycle hidden in a function is still a
cycle: it only moves the failure to run time). Not counted: imports under ``if TYPE_CHECKING:``,
and the implicit import of a parent package (``import ncf.data.io`` runs ``ncf/__init__`` and
``ncf/data/__init__`` first, but that is how packages work, not a dependency the code chose).
``import ncf`` and ``from ncf import X`` with X not a submodule do count, as an edge to ``ncf``.
``importlib.import_module("literal")`` and ``__import__("literal")`` count; names computed at
run time cannot be seen.

Prints each cycle (a strongly connected component of two or more modules) with the import lines that form it, and exits 1 if there is any.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path


def module_files(package_dir: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` under ``package_dir`` (itself a package)."""
    root = package_dir.name
    mods: dict[str, Path] = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = [root, *path.relative_to(package_dir).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        mods[".".join(parts)] = path
    return mods


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Import statements and ``import_module``/``__import__`` calls with a literal name, skipping ``if TYPE_CHECKING:`` bodies."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)  # the else branch runs
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id)
            in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _deepest_module(name: str, mods: dict[str, Path]) -> str | None:
    """``a.b.c`` if it is one of ours, else ``a.b``, ... (``import a.b.c`` binds at most that)."""
    parts = name.split(".")
    while parts:
        cand = ".".join(parts)
        if cand in mods:
            return cand
        parts.pop()
    return None


def imports_of(module: str, path: Path, mods: dict[str, Path]) -> list[tuple[str, int]]:
    """(imported module of ours, line) for every import in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_pkg = path.name == "__init__.py"
    out: list[tuple[str, int]] = []
    for node in _import_nodes(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.Call):
            targets = [node.args[0].value]  # type: ignore[attr-defined]
        else:
            assert isinstance(node, ast.ImportFrom)
            base = node.module or ""
            if node.level:
                here = module.split(".") if is_pkg else module.split(".")[:-1]
                here = here[: len(here) - (node.level - 1)]
                base = ".".join([*here, base] if base else here)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                # `from pkg import sub` imports the submodule; `from pkg import name` needs pkg itself.
                targets.append(sub if sub in mods else base)
        for t in targets:
            found = _deepest_module(t, mods)
            if found is not None and found != module:  # a module naming itself is no cycle
                out.append((found, node.lineno))  # type: ignore[arg-type]
    return out


def import_graph(package_dir: Path) -> tuple[dict[str, set[str]], dict[tuple[str, str], int]]:
    """Edges module -> imported modules, and the first line of each edge."""
    mods = module_files(package_dir)
    graph: dict[str, set[str]] = {m: set() for m in mods}
    lines: dict[tuple[str, str], int] = {}
    for mod, path in mods.items():
        for target, line in imports_of(mod, path, mods):
            graph[mod].add(target)
            lines.setdefault((mod, target), line)
    return graph, lines


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm (iterative); components in no particular order, members sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    comps: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    comp.append(m)
                    if m == node:
                        break
                comps.append(sorted(comp))
    return comps


def find_cycles(package_dir: Path) -> list[list[str]]:
    """Every import cycle as the sorted modules of its strongly connected component."""
    graph, _ = import_graph(package_dir)
    return sorted(c for c in strongly_connected(graph) if len(c) > 1)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    package_dir = Path(args[0]) if args else Path(__file__).resolve().parent.parent / "src" / "ncf"
    if not (package_dir / "__init__.py").is_file():
        print(f"import_cycles: {package_dir} is not a package folder (no __init__.py)", file=sys.stderr)
        return 2
    graph, lines = import_graph(package_dir)
    files = module_files(package_dir)
    cycles = find_cycles(package_dir)
    for comp in cycles:
        print(f"cycle: {', '.join(comp)}")
        members = set(comp)
        for a in comp:
            for b in sorted(graph[a] & members):
                print(f"    {a} -> {b}  ({files[a].relative_to(package_dir.parent)}:{lines[(a, b)]})")
    n = sum(len(graph[m]) for m in graph)
    print(f"{len(graph)} modules, {n} import edges, {len(cycles)} cycle(s)")
    return 1 if cycles else 0


if __name__ == "__main__":
    sys.exit(main())
