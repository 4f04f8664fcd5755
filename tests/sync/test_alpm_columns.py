"""An Arch database's entries made column by column (`alpm_db._entries`): the same as entry by entry.

`_within_limits` checks the field limits of every row at once; when it says yes, every row's
`BinaryEntry.problem()` must be None (else a bad entry would be kept), and on the usual
database it must say yes (else the fast path is never taken).
"""

from __future__ import annotations

import random

from jobs.core.model.limits import NAME_MAX, REASON_MAX, URL_MAX, VERSION_MAX
from jobs.sync.alpm_db import _within_limits, parse_db
from jobs.sync.records import BinaryEntry
from tests.sync import alpm_builders as alpm

_ODD = ["", " ", "a b", "\t", "\x1b[31m", "\u202e", "é", "\u00a0", "x" * NAME_MAX, "x" * (NAME_MAX + 1),
        "v" * (VERSION_MAX + 1), "p" * (REASON_MAX + 1), "%2B", "1:2.0-1"]


def _rows(rnd: random.Random, n: int) -> list[list[str]]:
    rows = []
    for i in range(n):
        row = [f"pkg{i}", "1.0-1", "x86_64", f"base{i}", f"https://mirror.example/extra/pkg{i}-1.0-1.pkg.tar.zst",
               f"pkg{i}-1.0-1.pkg.tar.zst", "Jane <jane@example.org>"]
        if rnd.random() < 0.3:
            field = rnd.randrange(len(row))
            row[field] = rnd.choice(_ODD) if field != 4 else rnd.choice(["", "https://x/é", "https://x/ a",
                                                                        "https://" + "u" * URL_MAX])
        rows.append(row)
    return rows


def test_within_limits_only_when_every_row_has_no_problem():
    rnd = random.Random(7)
    answers = set()
    for _ in range(3000):
        rows = _rows(rnd, rnd.randint(1, 4))
        repo = rnd.choice(["extra", "extra", "a b", "x" * (NAME_MAX + 1)])
        name, version, arch, base, urls, filename, packager = (list(c) for c in zip(*rows))
        within = _within_limits(name, version, arch, base, urls, filename, packager, repo)
        problems = [BinaryEntry(r[0], r[1], r[2], r[3], r[1], r[4], r[5], None, None, repo, (r[6],)).problem()
                    for r in rows]
        assert not within or problems == [None] * len(rows), (rows, repo, problems)
        answers.add(within)
    assert answers == {True, False}


def test_the_usual_database_takes_the_column_path(monkeypatch):
    calls = []
    monkeypatch.setattr(BinaryEntry, "problem", lambda self: calls.append(self) or None)
    data = alpm.db([m for i in range(50) for m in alpm.package(f"p{i}", filename=f"p{i}+1.pkg.tar.zst")])
    entries, skipped = parse_db(data, repo="core", base_url="https://m/core/os/x86_64", location="core.db")
    assert len(entries) == 50 and skipped == [] and calls == []
    assert all(type(e) is BinaryEntry for e in entries)
    assert entries[0].url == "https://m/core/os/x86_64/p0%2B1.pkg.tar.zst"


def test_a_bad_or_duplicate_entry_is_reported_as_before():
    members = (alpm.package("b", "1.0-1") + alpm.package("a", "1.0-1", packager="x" * (REASON_MAX + 1))
               + alpm.package("b", "2.0-1") + alpm.package("c", "1.0-1"))
    entries, skipped = parse_db(alpm.db(members), repo="core", base_url="file:///m", location="core.db")
    assert [e.name for e in entries] == ["b", "c"] and [e.version for e in entries] == ["1.0-1", "1.0-1"]
    assert [(s.location, s.reason) for s in skipped] == [
        ("core.db: a-1.0-1/desc", f"maintainer is longer than {REASON_MAX} characters ({REASON_MAX + 1})"),
        ("core.db: b-2.0-1/desc", "another desc already lists package 'b'")]
