"""The Debian sync's snapshot and queue written from columns (`jobs.sync.debian_columns`) = the object path's bytes.

Each scenario runs the whole sync job twice on twin stores, once as the job runs (columns) and
once with the parser giving a `BuildInput` per source version (the object path), and compares
every Parquet object byte for byte, the summary lines and the skipped entries included.
"""

from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone
from itertools import count
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from jobs.core.config import RebuilderConfig, Release, ScheduleConfig, SyncProfile
from jobs.core.history import BuildSummary
from jobs.core.model import JobRow, Status, parquet_bytes, to_table
from jobs.core.queue import _merged, check_job_ids
from jobs.core.store.local import LocalStore
from jobs.sync import debian, run
from jobs.sync.columns import not_before_of
from jobs.sync.fetch import Fetcher
from jobs.sync.plan import job_rows, plan_columns, plan_queue
from jobs.sync.snapshot import snapshot_parquet
from tests.sync.debian_mirror import copy_mirror, write_inrelease

NOW = datetime(2026, 12, 6, 12, tzinfo=timezone.utc)
SCHEDULE = ScheduleConfig(retry_delay_base=24, max_retries=3, initial_delay=600)


def _profile(mirror: Path, **kw) -> SyncProfile:
    kw.setdefault("components", ("main",))
    kw.setdefault("architectures", ("amd64", "all"))
    kw.setdefault("releases", (Release("sid"),))
    return SyncProfile(name="deb", distro="debian", source=mirror.as_uri(), **kw)


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
        monkeypatch.setitem(run.PARSERS, "debian",
                            lambda prof, fetcher, c=columns: debian.read_index(prof, fetcher, columns=c))
        summaries.append(run.sync_profile(LocalStore(store_root), RebuilderConfig(), profile, fetcher=Fetcher(),
                                          now=NOW))
    return tuple(summaries)


def _change(mirror: Path, dist: str) -> None:
    """The next sync's index: a new source with two binaries (one arch:all), hello gone."""
    sid = mirror / "dists" / dist
    sources = (sid / "main" / "source" / "Sources").read_text()
    packages = (sid / "main" / "binary-amd64" / "Packages").read_text()
    sources += ("\nPackage: newsrc\nBinary: newsrc, newsrc-data\nVersion: 3.0-1\n"
                "Maintainer: New <new@example.org>\nUploaders: A <a@example.org>, B <b@example.org>\n")
    for name, arch in (("newsrc", "amd64"), ("newsrc-data", "all")):
        packages += (f"\nPackage: {name}\nSource: newsrc\nVersion: 3.0-1\nArchitecture: {arch}\n"
                     f"Maintainer: New <new@example.org>\nDescription: the {name}\n more text\n"
                     f"Filename: pool/main/n/newsrc/{name}_3.0-1_{arch}.deb\nSize: 12\nSHA256: {'a' * 64}\n")
    packages = packages.replace("Package: hello\n", "Package: hello-gone\n")
    (sid / "main" / "source" / "Sources").write_text(sources)
    (sid / "main" / "binary-amd64" / "Packages").write_text(packages)
    write_inrelease(sid)


@pytest.mark.parametrize("extra", [{}, {"architectures": ("amd64",)}, {"releases": (Release("forky"),)}])
def test_the_job_writes_the_object_paths_bytes(monkeypatch, tmp_path, extra):
    mirror = copy_mirror(tmp_path / "mirror")
    profile = _profile(mirror, **extra)
    stores = (tmp_path / "columns", tmp_path / "objects")
    first = _sync_both(monkeypatch, profile, stores, 0)
    assert first[0].line() == first[1].line() and first[0].outcome == "updated"
    assert first[0].inputs >= 2 and first[0].plan.added == first[1].plan.added
    a, b = _objects(stores[0]), _objects(stores[1])
    assert len(a) == 2 and a == b
    _change(mirror, profile.releases[0].name)
    second = _sync_both(monkeypatch, profile, stores, 100)
    assert second[0].line() == second[1].line() and second[0].outcome == "updated"
    assert second[0].plan.added and (second[0].plan.dropped or "releases" in extra)
    assert _objects(stores[0]) == _objects(stores[1])


def test_friends_in_two_releases_take_the_object_path(monkeypatch, tmp_path):
    mirror = copy_mirror(tmp_path / "mirror")
    profile = _profile(mirror, releases=(Release("sid"), Release("forky")))
    result = debian.read_index(profile, Fetcher(), columns=True)
    assert not result.columns.plain and not result.inputs
    with pytest.raises(ValueError, match="object path"):
        result.columns.snapshot_parquet("s", NOW)
    assert result.columns.build_inputs() == debian.read_index(profile, Fetcher()).inputs
    stores = (tmp_path / "columns", tmp_path / "objects")
    first = _sync_both(monkeypatch, profile, stores, 0)
    assert first[0].line() == first[1].line()
    assert _objects(stores[0]) == _objects(stores[1])


def _listing(tmp_path: Path):
    mirror = copy_mirror(tmp_path / "mirror")
    profile = _profile(mirror)
    result = debian.read_index(profile, Fetcher(), columns=True)
    objects = debian.read_index(profile, Fetcher())
    assert result.skipped == objects.skipped and result.sources == objects.sources
    return result.columns, objects.inputs


def test_snapshot_bytes_with_small_row_groups(tmp_path):
    columns, inputs = _listing(tmp_path)
    assert columns.build_inputs() == inputs and columns.plain
    assert columns.rows == sum(len(bi.artifacts) for bi in inputs) and columns.inputs == len(inputs)
    for rows in (1, 3, 1000):
        ours = columns.snapshot_parquet("sync1", NOW, rows_per_group=rows)
        assert ours == snapshot_parquet(inputs, "sync1", NOW, rows_per_group=rows)
        assert pq.ParquetFile(io.BytesIO(ours)).metadata.num_row_groups == -(-columns.rows // rows)


def test_plan_and_queue_table_match_the_object_path(tmp_path):
    columns, inputs = _listing(tmp_path)
    listed = job_rows(inputs, now=NOW, schedule=SCHEDULE)
    ids = list(listed)
    assert ids == columns.job_ids and len(ids) >= 5
    queued = {ids[0]: listed[ids[0]], ids[1]: JobRow(**{**_fields(listed[ids[1]]), "releases": ("forky",)})}
    built = {ids[2]: BuildSummary(ids[2], Status.BAD, 2, 1, NOW - timedelta(hours=3)),
             ids[3]: BuildSummary(ids[3], Status.GOOD, 1, 0, NOW)}
    args = dict(previous={ids[4]}, elsewhere=set(), built=built, running=lambda row: False, schedule=SCHEDULE)
    jobs_a, plan_a = plan_queue(dict(queued), listed=listed, **args)
    jobs_b, added, plan_b = plan_columns(dict(queued), listed=columns, now=NOW, **args)
    assert plan_a == plan_b and plan_a.retried == [ids[2]] and plan_a.refreshed == [ids[1]]
    assert jobs_b[ids[1]].releases == ("forky", "sid")
    added.sort(key=columns.job_ids.__getitem__)
    table = columns.queue_table(added, NOW, not_before_of(NOW, SCHEDULE.initial_delay))
    check_job_ids(table, source="t")
    merged = _merged(to_table(sorted(jobs_b.values(), key=lambda j: j.job_id), JobRow), table)
    assert parquet_bytes(merged) == parquet_bytes(to_table(sorted(jobs_a.values(), key=lambda j: j.job_id), JobRow))


def _fields(row: JobRow) -> dict:
    return {f: getattr(row, f) for f in row.__dataclass_fields__}


def _over_the_limits(mirror: Path) -> None:
    """Stanzas that pass the stanza checks but not `BinaryEntry.problem()`, and some just within it."""
    sid = mirror / "dists" / "sid"
    sources = (sid / "main" / "source" / "Sources").read_text()
    packages = (sid / "main" / "binary-amd64" / "Packages").read_text()
    long_name, long_version = "s" * 256, "1." + "0" * 253  # a source name over the limit, a version at it
    sources += f"\nPackage: edge\nVersion: {long_version}\nMaintainer: {'M' * 4096}\n"
    stanzas = [
        ("long-src", f"Source: {long_name} (1.0-1)\n", "1.0-1+b1", "Maintainer: A <a@example.org>\n", "x.deb"),
        ("binnmu-over", f"Source: edge ({long_version})\n", f"{long_version}+b1"[-255:], "", "y.deb"),
        ("edge-at", "Source: edge\n", long_version, "", "z.deb"),
        ("maint-long", "Source: hello (2.10-3)\n", "2.10-3", f"Maintainer: {'m' * 4097}\n", "m.deb"),
        ("maint-esc", "Source: hello (2.10-3)\n", "2.10-3", "Maintainer: A \x1b[31m <a@example.org>\n", "e.deb"),
        ("url-long", "Source: hello (2.10-3)\n", "2.10-3", "", "d/" * 1030 + "u.deb"),
        ("url-at", "Source: hello (2.10-3)\n", "2.10-3", "", "d/" * 900 + "v.deb"),
    ]
    for name, source, version, maintainer, filename in stanzas:
        packages += (f"\nPackage: {name}\n{source}Version: {version}\nArchitecture: amd64\n{maintainer}"
                     f"Filename: pool/{filename}\nSize: 1\nSHA256: {'0' * 64}\n")
    (sid / "main" / "source" / "Sources").write_text(sources)
    (sid / "main" / "binary-amd64" / "Packages").write_text(packages)
    write_inrelease(sid)


def test_the_plain_stanzas_shortcut_skips_what_entry_problem_skips(monkeypatch, tmp_path):
    mirror = copy_mirror(tmp_path / "mirror")
    _over_the_limits(mirror)
    profile = _profile(mirror)
    ours = debian.read_index(profile, Fetcher())
    monkeypatch.setattr(debian, "_fits", lambda *a: False)  # every entry through `BinaryEntry.problem()`
    theirs = debian.read_index(profile, Fetcher())
    assert ours.inputs == theirs.inputs and ours.skipped == theirs.skipped
    reasons = {s.location.rsplit(": ", 1)[-1]: s.reason for s in ours.skipped}
    kept = {a.name for bi in ours.inputs for a in bi.artifacts}
    assert {"edge-at", "url-at"} <= kept and not {"long-src", "binnmu-over", "maint-long", "maint-esc", "url-long"} & kept
    assert any("source name is longer" in r for r in reasons.values())
    assert any("maintainer" in r for r in reasons.values()) and any("URL is longer" in r for r in reasons.values())


def test_a_size_past_int64_is_skipped_not_the_sync(monkeypatch, tmp_path):
    # "Size: 99…9" (30 digits) passed the Size check ([0-9]+): int() took it and the snapshot's int64 column
    # raised OverflowError, stopping the profile's sync on both paths. One just within is kept.
    mirror = copy_mirror(tmp_path / "mirror")
    sid = mirror / "dists" / "sid"
    packages = (sid / "main" / "binary-amd64" / "Packages").read_text()
    for name, size in (("huge", "9" * 30), ("past", str(2**63)), ("big", "9" * 18)):
        packages += (f"\nPackage: {name}\nSource: hello (2.10-3)\nVersion: 2.10-3\nArchitecture: amd64\n"
                     f"Filename: pool/{name}.deb\nSize: {size}\nSHA256: {'0' * 64}\n")
    (sid / "main" / "binary-amd64" / "Packages").write_text(packages)
    write_inrelease(sid)
    stores = (tmp_path / "columns", tmp_path / "objects")
    summaries = _sync_both(monkeypatch, _profile(mirror), stores, 0)
    assert summaries[0].line() == summaries[1].line() and summaries[0].outcome == "updated"
    assert _objects(stores[0]) == _objects(stores[1])
    result = debian.read_index(_profile(mirror), Fetcher())
    reasons = {s.location.rsplit(": ", 1)[-1]: s.reason for s in result.skipped}
    assert sum(r.startswith("invalid Size '999") for r in reasons.values()) == 1
    assert sum(r == f"invalid Size '{2**63}'" for r in reasons.values()) == 1
    kept = {a.name: a.size for bi in result.inputs for a in bi.artifacts}
    assert kept["big"] == int("9" * 18) and "huge" not in kept and "past" not in kept


def test_a_source_naming_thousands_of_uploaders_keeps_the_first_few(monkeypatch, tmp_path):
    # Every binary of a source carries its maintainers: 5,000 uploaders (100 kB of Sources) and 50 binaries
    # were 250,000 snapshot strings (20,000 and 200: 4 million, 200 MB more memory for a 400 kB index).
    from jobs.core.bounded import cap

    mirror = copy_mirror(tmp_path / "mirror")
    sid = mirror / "dists" / "sid"
    uploaders = [f"U{i} <u{i}@example.org>" for i in range(5000)]
    sources = (sid / "main" / "source" / "Sources").read_text()
    sources += f"\nPackage: bomb\nVersion: 1\nMaintainer: M <m@example.org>\nUploaders: {', '.join(uploaders)}\n"
    packages = (sid / "main" / "binary-amd64" / "Packages").read_text()
    packages += "".join(f"\nPackage: bomb{i}\nSource: bomb\nVersion: 1\nArchitecture: amd64\n"
                        f"Filename: pool/b{i}.deb\nSize: 1\nSHA256: {'0' * 64}\n" for i in range(50))
    (sid / "main" / "source" / "Sources").write_text(sources)
    (sid / "main" / "binary-amd64" / "Packages").write_text(packages)
    write_inrelease(sid)
    result = debian.read_index(_profile(mirror), Fetcher())
    bombs = [a for bi in result.inputs for a in bi.artifacts if a.name.startswith("bomb")]
    assert len(bombs) == 50 and cap("maintainers") == 64
    assert all(a.maintainers == ("M <m@example.org>", *uploaders[:63]) for a in bombs)
    stores = (tmp_path / "columns", tmp_path / "objects")
    summaries = _sync_both(monkeypatch, _profile(mirror), stores, 0)
    assert summaries[0].line() == summaries[1].line() and _objects(stores[0]) == _objects(stores[1])


def test_a_long_uploaders_field_with_no_address_is_read_in_linear_time(tmp_path):
    # The address expression ([^,\s][^<>]*?<[^<>]*>) tried every start and scanned to the end from each: a
    # 60 kB Uploaders line with no "<" took 12 s of CPU, 1 MB about an hour, per stanza.
    import time

    mirror = copy_mirror(tmp_path / "mirror")
    sid = mirror / "dists" / "sid"
    sources = (sid / "main" / "source" / "Sources").read_text()
    for i, field in enumerate(("a" * 60_000, "a" * 30_000 + "<" + "b" * 30_000, "x <" * 20_000)):
        sources += f"\nPackage: slow{i}\nVersion: 1\nMaintainer: M <m@example.org>\nUploaders: {field}\n"
    (sid / "main" / "source" / "Sources").write_text(sources)
    write_inrelease(sid)
    started = time.process_time()
    result = debian.read_index(_profile(mirror), Fetcher())
    assert time.process_time() - started < 2 and result.inputs


def test_the_uploaders_are_the_addresses_the_expression_finds():
    import random
    import re

    expression = re.compile(r"[^,\s][^<>]*?<[^<>]*>")
    rng = random.Random(7)
    samples = ["A <a@x>, B <b@x>", "Smith, John <j@x>", "<a@x>", " , <a@x> >b<c> <d", "a\u00a0<b>\u2003, c <d>"]
    samples += ["".join(rng.choice("a ,<>\t\n\u00a0") for _ in range(rng.randint(0, 30))) for _ in range(20_000)]
    for text in samples:
        assert debian._addresses(text) == expression.findall(text), repr(text)
