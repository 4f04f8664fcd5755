"""Which modules of publish talk to the store (docs/design.md#rooms-and-imports).

Each half of publish has one writer: `state/update.py` (like `sync/run.py`) and
`site/sitewriter.py`, with `site/streaming.py`, its part that writes package pages a batch at a
time as they are rendered (it uses the writer's own steps and manifest entries). The state half's other modules judge and plan; they may be handed the
read side of a store (`jobs.core.store.Reads`), never a `Store`. The site half reads in
`site/inputs.py` only; the rest renders from what it is handed. Checked over the AST: a call of
a store write method (`.put`, `.put_if_absent`, `.put_if_match`, `.delete`) or of a core write
helper (`put_new`, `update_queue`), and any mention of `Store` / `Reads` (an import or an
annotation), outside the modules allowed.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

WRITE_METHODS = frozenset({"put", "put_if_absent", "put_if_match", "delete"})
WRITE_HELPERS = frozenset({"put_new", "update_queue"})

# half -> (the modules that may write, the modules that may be handed a Store, a Reads or both)
HALVES: dict[str, tuple[frozenset[str], dict[str, frozenset[str]]]] = {
    "state": (frozenset({"update.py"}), {
        "update.py": frozenset({"Store", "Reads"}),
        "verify.py": frozenset({"Reads"}),
        "compact.py": frozenset({"Reads"}),
        "requests.py": frozenset({"Reads"}),
        "enrolment.py": frozenset({"Reads"}),
        "matches.py": frozenset({"Reads"}),
        "workerobjects.py": frozenset({"Reads"}),
    }),
    # writepool.py's `queue.put` reads as a write to this checker: the pool runs the writers' puts
    "site": (frozenset({"sitewriter.py", "streaming.py", "writepool.py"}), {
        "sitewriter.py": frozenset({"Store", "Reads"}),
        "streaming.py": frozenset({"Store"}),
        "writepool.py": frozenset({"Store"}),
        "inputs.py": frozenset({"Store", "Reads"}),
        # passes the store it is given on to inputs.load_inputs and to the writer (files copied
        # from builds/); calls no store method itself
        "build.py": frozenset({"Reads"}),
    }),
}


def store_writes(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, call) for every call that writes to a store."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
        if isinstance(func, ast.Attribute) and name in WRITE_METHODS:
            yield node.lineno, f".{name}()"
        elif name in WRITE_HELPERS:
            yield node.lineno, f"{name}()"


def store_mentions(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, name) for every mention of the store types (an import or an annotation)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in {"Store", "Reads"}:
            yield node.lineno, node.id
        elif isinstance(node, ast.Attribute) and node.attr in {"Store", "Reads"}:
            yield node.lineno, node.attr
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if alias.name in {"Store", "Reads"}:
                    yield node.lineno, alias.name


def store_violations(root: Path) -> list[str]:
    """Every store write or store type outside the modules of `HALVES` allowed to have it."""
    out = []
    for half, (writers, handed) in HALVES.items():
        for path in sorted((root / "jobs/publish" / half).glob("*.py")):
            rel = path.relative_to(root).as_posix()
            tree = ast.parse(path.read_text(encoding="utf-8"), rel)
            if path.name not in writers:
                out.extend(f"{rel}:{line}: calls {call} (only {', '.join(sorted(writers))} may write in the {half} half)"
                           for line, call in store_writes(tree))
            allowed = handed.get(path.name, frozenset())
            out.extend(f"{rel}:{line}: uses {name} (not handed a {name} in the {half} half)"
                       for line, name in store_mentions(tree) if name not in allowed)
    return sorted(set(out))


def test_each_half_of_publish_talks_to_the_store_in_its_own_modules() -> None:
    assert store_violations(ROOT) == []


def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    return root


CLEAN = {
    "jobs/publish/state/update.py": "from jobs.core.store import Store\ndef f(store: Store):\n    store.delete('x')\n",
    "jobs/publish/state/verify.py": "from jobs.core.store import Reads\ndef f(store: Reads):\n    return store.get('x')\n",
    "jobs/publish/site/sitewriter.py": "def w(store):\n    store.put('k', b'')\n",
    "jobs/publish/site/pages.py": "def render(rows):\n    return {}.get('x')\n",
}


def test_checker_passes_a_clean_tree(tmp_path: Path) -> None:
    assert store_violations(_tree(tmp_path, CLEAN)) == []


@pytest.mark.parametrize(("path", "text", "expected"), [
    ("jobs/publish/state/compact.py", "def f(store):\n    store.delete('x')\n",
     "jobs/publish/state/compact.py:2: calls .delete() (only update.py may write in the state half)"),
    ("jobs/publish/state/requests.py", "def f(store, body):\n    store.put_if_match('x', body, 'e')\n",
     "jobs/publish/state/requests.py:2: calls .put_if_match() (only update.py may write in the state half)"),
    ("jobs/publish/state/compact.py", "from jobs.core.store import put_new\ndef f(s):\n    put_new(s, 'k', b'')\n",
     "jobs/publish/state/compact.py:3: calls put_new() (only update.py may write in the state half)"),
    ("jobs/publish/state/verify.py", "from jobs.core.store import Store\n",
     "jobs/publish/state/verify.py:1: uses Store (not handed a Store in the state half)"),
    ("jobs/publish/site/facts.py", "def learn(store):\n    store.put('facts', b'')\n",
     "jobs/publish/site/facts.py:2: calls .put() (only sitewriter.py, streaming.py, writepool.py may write in the site half)"),
    ("jobs/publish/site/pages.py", "def render(source: 'store.Reads'):\n    pass\n", None),
    ("jobs/publish/site/pages.py", "import jobs.core.store\ndef render(source: jobs.core.store.Reads):\n    pass\n",
     "jobs/publish/site/pages.py:2: uses Reads (not handed a Reads in the site half)"),
])
def test_checker_reports_a_store_call_out_of_place(tmp_path: Path, path: str, text: str, expected: str | None) -> None:
    found = store_violations(_tree(tmp_path, {**CLEAN, path: text}))
    assert found == ([expected] if expected else [])
