"""Object keys have one owner: jobs/core/layout.py builds and parses them, nothing else in jobs/ spells one.

A key literal is a string constant (or the literal start of an f-string) that begins with one
of `layout.PREFIXES`, e.g. "results/" or f"state/{profile}". Docstrings are prose and do not
count. The checker also runs on a synthetic module, to show that it finds such a literal.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from jobs.core.layout import (
    CLAIM_KEY,
    CLAIM_NOTICE_KEY,
    PREFIXES,
    RESULT_KEY,
    claim_key,
    claim_notice_key,
    result_key,
    state_head_profile,
    state_prefix,
)

ROOT = Path(__file__).resolve().parents[1]
OWNER = ROOT / "jobs" / "core" / "layout.py"


def key_literals(source: str, name: str = "<string>") -> list[str]:
    """`line: literal` for every key literal in `source`."""
    tree = ast.parse(source, name)
    prose = {id(node.value) for node in ast.walk(tree)
             if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            prose.update(id(v) for v in node.values)  # judged as the f-string, below
            first = node.values[0] if node.values else None
            if isinstance(first, ast.Constant) and str(first.value).startswith(tuple(PREFIXES)):
                found.append(f"{node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in prose:
            if node.value.startswith(tuple(PREFIXES)):
                found.append(f"{node.lineno}: {node.value!r}")
    return found


def test_no_key_literal_outside_layout() -> None:
    found = [f"{path.relative_to(ROOT)}:{hit}" for path in sorted((ROOT / "jobs").rglob("*.py")) if path != OWNER
             for hit in key_literals(path.read_text(encoding="utf-8"), str(path))]
    assert found == [], "object keys are built and parsed in jobs/core/layout.py only:\n" + "\n".join(found)


@pytest.mark.parametrize(("source", "expected"), [
    ('KEY = "history/site-facts.parquet"\n', ["1: 'history/site-facts.parquet'"]),
    ('def f(p):\n    return f"state/{p}"\n', ["2: f'state/{p}'"]),
    ('import re\nR = re.compile(r"claims/([0-9a-f]{32})/")\n', ["2: 'claims/([0-9a-f]{32})/'"]),
    ('def f(store):\n    return store.list("results/")\n', ["2: 'results/'"]),
    ('"""Reads results/<job>/<attempt>.json."""\nX = "a results/ key"\nY = f"{1}claims/"\n', []),
])
def test_checker_finds_key_literals(source: str, expected: list[str]) -> None:
    assert key_literals(source) == expected


def test_layout_parses_the_keys_it_builds() -> None:
    job = "0123456789abcdef" * 2
    assert CLAIM_KEY.fullmatch(claim_key(job, 7)).groups() == (job, "7")
    assert RESULT_KEY.fullmatch(result_key(job, 999_999_999)).groups() == (job, "999999999")
    assert CLAIM_NOTICE_KEY.fullmatch(claim_notice_key(job, 3, "lost", "Kid9")).groups() == (job, "3", "lost", "Kid9")
    assert state_head_profile(state_prefix("arch-core") + "/HEAD.json") == "arch-core"
    # one claim-key shape: the attempt is 1 to 999,999,999, written without leading zeros
    for bad in (f"claims/{job}/0.json", f"claims/{job}/01.json", f"claims/{job}/1000000000.json"):
        assert CLAIM_KEY.fullmatch(bad) is None
    assert state_head_profile("state/a/b/HEAD.json") is None
