"""The Arch sync's snapshot and queue written from columns (`jobs.sync.columns`) = the object path's bytes.

Each scenario runs the whole sync job twice on twin stores, once as the job runs (columns) and
once with the parser giving a `BuildInput` per pkgbase (the object path, as before), and
compares every Parquet object byte for byte; the plan, the queue merge and the job-id check
are compared and broken directly.
"""

from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone
from itertools import count
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs.core.config import RebuilderConfig, ScheduleConfig, SyncProfile
from jobs.core.history import BuildSummary
from jobs.core.model import JobRow, Status, job_id, parquet_bytes, to_table
from jobs.core.queue import _merged, check_job_ids
from jobs.core.store.local import LocalStore
from jobs.sync import archlinux, run
from jobs.sync.columns import not_before_of
from jobs.sync.fetch import Fetcher
from jobs.sync.plan import job_rows, plan_columns, plan_queue
from jobs.sync.snapshot import snapshot_parquet
from tests.sync import alpm_builders as alpm

NOW = datetime(2026, 12, 6, 12, tzinfo=timezone.utc)
SCHEDULE = ScheduleConfig(retry_delay_base=24, max_retries=3, initial_delay=600)


def _repo(names: list[tuple]) -> bytes:
    members = []
    for name, version, fields in names:
        members += alpm.package(name, version, **fields)
    return alpm.db(members)


def _mirror(root: Path, repos: dict[tuple[str, str], list[tuple]]) -> None:
    for (repo, arch), names in repos.items():
        directory = root / repo / "os" / arch
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"{repo}.db").write_bytes(_repo(names))


def _repos(extra: bool = False) -> dict[tuple[str, str], list[tuple]]:
    core = [("zlib", "1:1.3-2", {}), ("gcc", "14.1-1", {}), ("gcc-libs", "14.1-1", {"base": "gcc"}),
            ("gcc-ada", "14.0-1", {"base": "gcc"}),  # a pkgbase listing two versions
            ("libstdc++", "2.3+b1-1", {"arch": "any"}), ("bash", "5.2-1", {})]
    extra_repo = [("python", "3.12-1", {}), ("python-docs", "3.12-1", {"base": "python", "arch": "any"}),
                  ("vim", "9.1-1", {"packager": "Bram <b@example.org>"})]
    repos = {("core", "x86_64"): core, ("extra", "x86_64"): extra_repo,
             ("core", "aarch64"): core[:3], ("extra", "aarch64"): []}
    if extra:  # the next sync: zlib gone, coreutils new, bash updated
        repos[("core", "x86_64")] = [*core[1:5], ("coreutils", "9.5-1", {}), ("bash", "5.3-1", {})]
    return repos


def _profile(root: Path, components=("core", "extra"), **extra) -> SyncProfile:
    return SyncProfile(name="p", distro="archlinux", source=root.as_uri() + "/$repo/os/$arch", components=components,
                       architectures=("x86_64", "aarch64"), **extra)


def _objects(store_root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(store_root)): p.read_bytes() for p in sorted(store_root.rglob("*.parquet"))}


def _sync_both(monkeypatch, profile: SyncProfile, stores: tuple[Path, Path], start: int) -> tuple:
    """One sync into each store: columns into the first, objects into the second (the same object names)."""
    summaries = []
    for store_root, columns in zip(stores, (True, False), strict=True):
        names = count(start)
        name = lambda suffix="", names=names: f"n{next(names):03d}{suffix}"  # noqa: E731
        monkeypatch.setattr(run, "unique_name", name)
        monkeypatch.setattr("jobs.core.queue.unique_name", name)
        monkeypatch.setitem(run.PARSERS, "archlinux",
                            lambda prof, fetcher, c=columns: archlinux.read_index(prof, fetcher, columns=c))
        summaries.append(run.sync_profile(LocalStore(store_root), RebuilderConfig(), profile, fetcher=Fetcher(),
                                          now=NOW))
    return tuple(summaries)


@pytest.mark.parametrize("profile_extra", [{}, {"components": ("core", "extra", "core")}])
def test_the_job_writes_the_object_paths_bytes(monkeypatch, tmp_path, profile_extra):
    mirror = tmp_path / "mirror"
    _mirror(mirror, _repos())
    profile = _profile(mirror, **profile_extra)
    stores = (tmp_path / "columns", tmp_path / "objects")
    first = _sync_both(monkeypatch, profile, stores, 0)
    assert first[0].line() == first[1].line() and first[0].outcome == "updated"
    assert first[0].inputs == 8 + (6 if profile_extra else 0) and first[0].plan.added == first[1].plan.added
    a, b = _objects(stores[0]), _objects(stores[1])
    assert len(a) == 2 and a == b
    # The next sync: the queue read back, merged with new jobs, one dropped.
    _mirror(mirror, _repos(extra=True))
    second = _sync_both(monkeypatch, profile, stores, 100)
    assert second[0].line() == second[1].line() and second[0].plan.dropped and second[0].plan.added
    assert _objects(stores[0]) == _objects(stores[1])


def test_the_same_repository_twice_takes_the_object_path(tmp_path):
    mirror = tmp_path / "mirror"
    _mirror(mirror, _repos())
    result = archlinux.read_index(_profile(mirror, components=("core", "core")), Fetcher(), columns=True)
    assert not result.columns.plain and not result.inputs
    with pytest.raises(ValueError, match="object path"):
        result.columns.snapshot_parquet("s", NOW)


def _listing(tmp_path: Path):
    mirror = tmp_path / "mirror"
    _mirror(mirror, _repos())
    profile = _profile(mirror)
    columns = archlinux.read_index(profile, Fetcher(), columns=True).columns
    inputs = archlinux.read_index(profile, Fetcher()).inputs
    return columns, inputs


def test_snapshot_bytes_with_small_row_groups(tmp_path):
    columns, inputs = _listing(tmp_path)
    assert columns.build_inputs() == inputs and columns.plain
    for rows in (1, 4, 7, 1000):
        ours = columns.snapshot_parquet("sync1", NOW, rows_per_group=rows)
        assert ours == snapshot_parquet(inputs, "sync1", NOW, rows_per_group=rows)
        assert pq.ParquetFile(io.BytesIO(ours)).metadata.num_row_groups == -(-columns.rows // rows)


def test_plan_and_queue_table_match_the_object_path(tmp_path):
    columns, inputs = _listing(tmp_path)
    listed = job_rows(inputs, now=NOW, schedule=SCHEDULE)
    ids = list(listed)
    assert ids == columns.job_ids
    gone = job_id("archlinux", "x86_64", "https://x/y")
    other = JobRow(job_id=gone, backend="archlinux", architecture="x86_64", input_url="https://x/y", distro="a",
                   releases=(None,), source_name="y", source_version="1", artifacts=(), priority=1, queued_at=NOW,
                   not_before=None, attempt=1, retries=0)
    queued = {ids[0]: listed[ids[0]], ids[1]: JobRow(**{**_fields(listed[ids[1]]), "releases": ("r",)})}
    built = {ids[2]: BuildSummary(ids[2], Status.BAD, 2, 1, NOW - timedelta(hours=3)),
             ids[3]: BuildSummary(ids[3], Status.GOOD, 1, 0, NOW)}
    args = dict(previous={gone, ids[4]}, elsewhere=set(), built=built, running=lambda row: False, schedule=SCHEDULE)
    jobs_a, plan_a = plan_queue({**queued, gone: other}, listed=listed, **args)
    jobs_b, added, plan_b = plan_columns({**queued, gone: other}, listed=columns, now=NOW, **args)
    assert plan_a == plan_b and plan_a.retried == [ids[2]] and plan_a.dropped == [gone]
    assert plan_a.refreshed == [ids[1]] and len(plan_a.added) == len(ids) - 4
    added.sort(key=columns.job_ids.__getitem__)
    table = columns.queue_table(added, NOW, not_before_of(NOW, SCHEDULE.initial_delay))
    check_job_ids(table, source="t")
    merged = _merged(to_table(sorted(jobs_b.values(), key=lambda j: j.job_id), JobRow), table)
    assert parquet_bytes(merged) == parquet_bytes(to_table(sorted(jobs_a.values(), key=lambda j: j.job_id), JobRow))


def _fields(row: JobRow) -> dict:
    return {f: getattr(row, f) for f in row.__dataclass_fields__}


def test_a_wrong_job_id_is_refused(tmp_path):
    columns, _ = _listing(tmp_path)
    table = columns.queue_table([0, 1, 2], NOW, None)
    check_job_ids(table, source="new rows")
    ids = table.column("job_id").to_pylist()
    ids[1] = "0" * 32
    bad = table.set_column(0, "job_id", pa.array(ids, pa.string()))
    with pytest.raises(ValueError, match=r"new rows: row 1: job_id '0{32}' does not match its build input"):
        check_job_ids(bad, source="new rows")


def test_merging_refuses_unsorted_or_repeated_rows(tmp_path):
    columns, _ = _listing(tmp_path)
    order = sorted(range(4), key=columns.job_ids.__getitem__)
    rows = columns.queue_table(order[:2], NOW, None)
    with pytest.raises(ValueError, match="not sorted"):
        _merged(rows, columns.queue_table(order[2:][::-1], NOW, None))
    with pytest.raises(ValueError, match="repeat a queued job"):
        _merged(rows, columns.queue_table(order[1:], NOW, None))
