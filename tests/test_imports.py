"""Which room of `jobs/` may import which, checked over the real imports (docs/design.md#rooms-and-imports).

Every `import` and `from … import` in jobs/**.py counts, also those inside functions and under
`if TYPE_CHECKING:`: a lazy import is still a dependency. A room is a package directly under
`jobs/` (`jobs.core`, `jobs.sync`, ...); the modules directly in `jobs/` are the edge (the
`rebuilder` command line and the tools that span every job). The tests below also run the checker
on small synthetic trees, to show that it reports a forbidden import and a cycle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# What each room may import besides itself. A room not listed here fails the test.
ALLOWED: dict[str, frozenset[str]] = {
    "core": frozenset(),
    "sync": frozenset({"core"}),
    "work": frozenset({"core"}),
    "publish": frozenset({"core"}),
    "serve": frozenset({"core"}),
    "ctl": frozenset({"core"}),
    "cycle": frozenset({"core", "sync", "work", "publish"}),
    "demo": frozenset({"core", "work", "cycle"}),
    # A one-off migration: it writes the history the way publish does (its compaction).
    "importer": frozenset({"core", "publish"}),
    "edge": frozenset({"core", "sync", "work", "publish", "serve", "ctl", "cycle", "demo", "importer"}),
}
# Modules directly in jobs/ that are rooms of their own rather than edge tools.
TOP_LEVEL_ROOMS = {"cycle"}
# Within publish: the state half decides what is true, the site half renders it. The site half
# may read what the state half decided; the state half never depends on rendering.
PUBLISH_HALVES: dict[str, frozenset[str]] = {
    "state": frozenset(),
    "site": frozenset({"state"}),
}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, package: str, *, skip_type_checking: bool) -> Iterator[tuple[int, str, list[str]]]:
    """(line, imported module, names imported from it) for every import in `tree`."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if skip_type_checking and isinstance(node, ast.If) and _type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, []
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield node.lineno, target, [a.name for a in node.names]
        stack.extend(ast.iter_child_nodes(node))


def import_edges(root: Path, *, skip_type_checking: bool = False) -> Iterator[tuple[str, int, str]]:
    """(importing module, line, imported `jobs` module) over every .py file under root/jobs.

    `from jobs.x import y` counts as an import of `jobs.x.y` when `y` is a module of the tree.
    """
    for path in sorted((root / "jobs").rglob("*.py")):
        name = module_name(path, root)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for line, target, names in _imports(tree, package, skip_type_checking=skip_type_checking):
            if target != "jobs" and not target.startswith("jobs."):
                continue
            subs = [f"{target}.{n}" for n in names if _is_module(root, f"{target}.{n}")]
            for module in subs or [target]:
                yield name, line, module


def _is_module(root: Path, module: str) -> bool:
    base = root.joinpath(*module.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def room(module: str) -> str:
    """The room of a `jobs` module: its package under jobs/, or "edge" for a module directly in jobs/."""
    parts = module.split(".")
    if len(parts) == 1:
        return "edge"
    if len(parts) == 2 and parts[1] not in ALLOWED and parts[1] not in TOP_LEVEL_ROOMS:
        return "edge"
    return parts[1]


def violations(root: Path) -> list[str]:
    """Every import that crosses from one room into a room it may not use, one line each."""
    out = []
    for importer, line, imported in import_edges(root):
        source, target = room(importer), room(imported)
        if source == target:
            continue
        if source not in ALLOWED:
            out.append(f"{importer}:{line}: room {source!r} has no import rule (add it to ALLOWED)")
        elif target not in ALLOWED[source]:
            out.append(f"{importer}:{line}: imports {imported} ({source} may not import {target})")
    return out


def half(module: str) -> str | None:
    """The half of publish a module is in ("state" or "site"), None outside them (e.g. jobs.publish.run)."""
    parts = module.split(".")
    return parts[2] if parts[:2] == ["jobs", "publish"] and len(parts) > 3 else None


def publish_violations(root: Path) -> list[str]:
    """Imports from one half of publish into the other that the halves' rule forbids."""
    out = []
    for importer, line, imported in import_edges(root):
        source, target = half(importer), half(imported)
        if source is None or target is None or source == target:
            continue
        if target not in PUBLISH_HALVES.get(source, frozenset()):
            out.append(f"{importer}:{line}: imports {imported} (publish's {source} half may not import its {target} half)")
    return out


def cycles(root: Path) -> list[list[str]]:
    """The import cycles between modules (strongly connected components of more than one module).

    Imports under `if TYPE_CHECKING:` do not run, so they cannot make a cycle and are left out.
    """
    graph: dict[str, set[str]] = {}
    for importer, _, imported in import_edges(root, skip_type_checking=True):
        graph.setdefault(importer, set())
        if imported != importer:
            graph[importer].add(imported)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
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

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_rooms_import_only_what_they_may() -> None:
    assert violations(ROOT) == []


def test_publish_halves_import_only_what_they_may() -> None:
    assert publish_violations(ROOT) == []


def test_no_import_cycles() -> None:
    assert cycles(ROOT) == []


def test_every_room_has_a_rule() -> None:
    rooms = {room(module_name(p, ROOT)) for p in (ROOT / "jobs").rglob("*.py")}
    assert rooms <= set(ALLOWED), f"rooms without an import rule: {sorted(rooms - set(ALLOWED))}"


def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    for directory in {p.parent for p in root.rglob("*.py")}:
        (directory / "__init__.py").touch()
    return root


CLEAN = {
    "jobs/core/layout.py": "X = 1\n",
    "jobs/sync/job.py": "from jobs.core import layout\n",
    "jobs/ctl/cli.py": "from jobs.core.layout import X\n",
    "jobs/cli.py": "from jobs.sync import job\nfrom jobs.ctl import cli\n",
}


def test_checker_passes_a_clean_tree(tmp_path: Path) -> None:
    root = _tree(tmp_path, CLEAN)
    assert violations(root) == [] and cycles(root) == []


@pytest.mark.parametrize(("path", "text", "expected"), [
    # rebuildctl reaching into a server job, at module level and lazily inside a function
    ("jobs/ctl/extra.py", "from jobs.sync.job import x\n", "jobs.ctl.extra:1: imports jobs.sync.job (ctl may not import sync)"),
    ("jobs/ctl/extra.py", "def f():\n    import jobs.cli\n", "jobs.ctl.extra:2: imports jobs.cli (ctl may not import edge)"),
    ("jobs/core/extra.py", "from jobs.sync import job\n", "jobs.core.extra:1: imports jobs.sync.job (core may not import sync)"),
    ("jobs/work/extra.py", "from ..sync import job\n", "jobs.work.extra:1: imports jobs.sync.job (work may not import sync)"),
    ("jobs/work/extra.py", "from jobs.demo import run\n", "jobs.work.extra:1: imports jobs.demo.run (work may not import demo)"),
    ("jobs/sync/extra.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import jobs.publish\n",
     "jobs.sync.extra:3: imports jobs.publish (sync may not import publish)"),
    ("jobs/newroom/x.py", "import jobs.core.layout\n", "jobs.newroom.x:1: room 'newroom' has no import rule (add it to ALLOWED)"),
])
def test_checker_reports_a_forbidden_import(tmp_path: Path, path: str, text: str, expected: str) -> None:
    (tmp_path / "jobs/sync").mkdir(parents=True)
    (tmp_path / "jobs/demo").mkdir(parents=True)
    (tmp_path / "jobs/sync/job.py").write_text("")
    (tmp_path / "jobs/demo/run.py").write_text("")
    root = _tree(tmp_path, {**CLEAN, path: text})
    assert violations(root) == [expected]


def test_checker_reports_publish_state_reaching_into_the_site_half(tmp_path: Path) -> None:
    root = _tree(tmp_path, {**CLEAN, "jobs/publish/site/rows.py": "X = 1\n",
                            "jobs/publish/state/verify.py": "from jobs.core import layout\n",
                            "jobs/publish/site/inputs.py": "from jobs.publish.state import verify\n"})
    assert publish_violations(root) == [] and violations(root) == []
    (root / "jobs/publish/state/verify.py").write_text("from jobs.publish.site.rows import X\n")
    assert publish_violations(root) == ["jobs.publish.state.verify:1: imports jobs.publish.site.rows "
                                        "(publish's state half may not import its site half)"]


def test_checker_reports_a_cycle(tmp_path: Path) -> None:
    root = _tree(tmp_path, {**CLEAN, "jobs/core/a.py": "def f():\n    from jobs.core import b\n",
                            "jobs/core/b.py": "from jobs.core.a import f\n"})
    assert cycles(root) == [["jobs.core.a", "jobs.core.b"]]
    # the same pair is no cycle when one side imports only for type checking
    root = _tree(tmp_path, {"jobs/core/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                              "    from jobs.core.a import f\n"})
    assert cycles(root) == []
