"""The sync's snapshot, built column by column (`state_table`), is the table of its rows (`rows_of`)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from jobs.core.config import Release, SyncProfile
from jobs.core.model import PackageStateRow, to_table
from jobs.sync import archlinux, debian
from jobs.sync.fetch import Fetcher
from jobs.sync.records import rows_of, state_table
from tests.sync import alpm_builders as alpm
from tests.sync.debian_mirror import copy_mirror
from tests.sync.test_debian import profile as debian_profile

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))  # not UTC: stored as UTC by both


def _same(inputs) -> None:
    columnar, rows = state_table(inputs, "sync-1", NOW), to_table(rows_of(inputs, "sync-1", NOW), PackageStateRow)
    assert columnar.num_rows == rows.num_rows > 0
    assert columnar.equals(rows, check_metadata=True)


def test_arch_snapshot_columns_match_the_rows(tmp_path):
    packages = [("zeta", "1.0-1", {}), ("epochy", "2:1.0-3", {}), ("grp-any", "1-1", {"base": "grp", "arch": "any"}),
                ("grp-bin", "1-1", {"base": "grp"}), ("plus", "1.0+git-1", {"packager": "Ünï Côdé <u@example.org>"}),
                ("alone", "3-1", {"arch": "any"})]
    directory = tmp_path / "core" / "os" / "x86_64"
    directory.mkdir(parents=True)
    (directory / "core.db").write_bytes(alpm.db([m for n, v, kw in sorted(packages)
                                                 for m in alpm.package(n, v, **kw)]))
    prof = SyncProfile(name="arch", distro="archlinux", source=tmp_path.as_uri() + "/$repo/os/$arch",
                       components=("core",), architectures=("x86_64",))
    _same(archlinux.read_index(prof, Fetcher(retries=0)).inputs)


def test_debian_snapshot_columns_match_the_rows(tmp_path):
    mirror = copy_mirror(tmp_path / "mirror")
    result = debian.read_index(debian_profile(mirror, architectures=("amd64", "all"),
                                              releases=(Release("sid"), Release("forky"))), Fetcher(retries=0))
    _same(result.inputs)


def test_naive_time_is_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        state_table([], "sync-1", datetime(2026, 1, 1))
