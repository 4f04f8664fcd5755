"""pacman's vercmp: committed vectors from the real tool, and random strings against the real tool."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobs.core.vercmp import parse_evr, vercmp
from tests.tools import require_tool

VECTORS = Path(__file__).parent.parent / "fixtures" / "sync" / "vercmp-vectors.txt"


def _vectors() -> list[tuple[str, str, int]]:
    out = []
    for line in VECTORS.read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or not line.strip():
            continue
        a, b, result = ("" if word == '""' else word for word in line.split())
        out.append((a, b, int(result)))
    return out


VECTOR_CASES = _vectors()


def test_vector_file_is_substantial():
    assert len(VECTOR_CASES) >= 300
    assert ("1.0rc", "1.0", -1) in VECTOR_CASES  # pacman's own vercmptest.sh is in it


@pytest.mark.parametrize(("a", "b", "expected"), VECTOR_CASES, ids=lambda v: repr(v) if isinstance(v, str) else None)
def test_matches_real_vercmp_vectors(a: str, b: str, expected: int):
    assert vercmp(a, b) == expected


@pytest.mark.parametrize(("version", "expected"), [
    ("1:2.0-3", (b"1", b"2.0", b"3")),
    ("2.0-3", (b"0", b"2.0", b"3")),
    ("2.0", (b"0", b"2.0", None)),
    (":2.0", (b"0", b"2.0", None)),
    ("1-2-3", (b"0", b"1-2", b"3")),
    ("a:1", (b"0", b"a:1", None)),
    ("1:2:3-4", (b"1", b"2:3", b"4")),
])
def test_parse_evr(version: str, expected: tuple):
    assert parse_evr(version.encode()) == expected


def test_documented_orderings():
    chain = ["1.0a", "1.0", "1.0.a", "1.0.1"]
    for older, newer in zip(chain, chain[1:]):
        assert vercmp(older, newer) == -1 and vercmp(newer, older) == 1
    assert vercmp("1.5-1", "1.5") == 0  # pkgrel only compared when both have one
    assert vercmp("1.0~rc1", "1.0") == 1  # '~' is a separator, not dpkg's "before"
    assert vercmp("1:0.1", "99.0") == 1  # the epoch wins


# Version-like strings most of the time, anything the C code can receive the rest.
_version_chars = st.sampled_from(list("0123456789" "0123456789" "abzAZ" ".-:_+~" "é"))
_versions = st.one_of(
    st.text(_version_chars, max_size=12),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=8),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_versions, _versions)
def test_agrees_with_real_vercmp(a: str, b: str):
    tool = require_tool("vercmp", "makepkg")
    if a in ("-h", "--help"):
        a = "x" + a  # vercmp(8) prints its usage for these
    out = subprocess.run([tool, a, b], capture_output=True, text=True, check=True,
                         env=dict(os.environ, LC_ALL="C"), errors="surrogateescape")
    assert vercmp(a, b) == int(out.stdout), (a, b)


@given(_versions, _versions)
def test_antisymmetric(a: str, b: str):
    assert vercmp(a, b) == -vercmp(b, a)


@given(_versions)
def test_reflexive(a: str):
    assert vercmp(a, a) == 0


@given(st.text(st.sampled_from(list("0123456789.")), min_size=1, max_size=10))
def test_more_numeric_segments_or_a_higher_pkgrel_is_newer(a: str):
    assert vercmp(a, a + ".1") == -1
    assert vercmp(a + "-1", a + "-2") == -1
