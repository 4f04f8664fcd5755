"""Conditional GETs (issue #8): an unchanged profile costs one small request per root index, and no writes.

Real loopback mirrors (`tests.sync.mirror_http`) that honour ETag, Last-Modified, both, or
neither; both stores. A 304 may only skip work when the stored snapshot is the one the
validator was stored with: killed syncs, changed settings, old states and expired
InReleases must all fall back to reading the index.
"""

from __future__ import annotations

import json
import lzma
import os
import time
from datetime import datetime, timedelta, timezone
from email.utils import formatdate
from pathlib import Path

import pytest

from jobs.core.config import RebuilderConfig, Release, SyncProfile
from jobs.core.model import read_parquet
from jobs.core.pointer import Pointer
from jobs.core.queue import read_queue
from jobs.sync.fetch import Fetcher, Validator, validator_of
from jobs.sync.run import sync_profile
from tests.faults import FaultyStore, Killed
from tests.sync import alpm_builders as alpm
from tests.sync.debian_mirror import compress, copy_mirror, write_inrelease
from tests.sync.mirror_http import Tally, mirror, write

CONFIG = RebuilderConfig()
NAME = "cond"


def arch_profile(base: str, repos: tuple[str, ...] = ("core",), **kw) -> SyncProfile:
    return SyncProfile(name=NAME, distro="archlinux", source=base + "/$repo/os/$arch", components=repos,
                       architectures=("x86_64",), **kw)


def debian_profile(base: str, **kw) -> SyncProfile:
    return SyncProfile(name=NAME, distro="debian", source=base, components=("main",), architectures=("amd64",),
                       releases=(Release("sid"),), **kw)


def arch_db(root: Path, repo: str, *names: str, version: str = "1.0-1", age: float = 60.0) -> None:
    members = [m for name in names for m in alpm.package(name, version)]
    write(root / repo / "os" / "x86_64" / f"{repo}.db", alpm.db(members), age=age)


def settle(path: Path, age: float = 60.0) -> None:
    """Date a just-written mirror file `age` seconds back, as a mirror's files are when a sync reads them."""
    when = time.time() - age
    os.utime(path, (when, when))


def artifacts(store) -> set[tuple[str, str]]:
    value, _ = Pointer(store, f"state/{NAME}").read()
    return {(r.artifact_name, r.artifact_version) for r in read_parquet(store.get(value.target).data)}


def sync(store, profile, **kw):
    """One sync; also the store writes it made other than its lock."""
    counting = FaultyStore(store)
    summary = sync_profile(counting, CONFIG, profile, fetcher=Fetcher(retries=0, timeout=10), **kw)
    return summary, [w for w in counting.log if not w[1].startswith("locks/")]


def delta(tally: Tally, before: dict[str, int]) -> dict[str, int]:
    return {k: v - before[k] for k, v in tally.snapshot().items()}


# --- Arch: every kind of server ---------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["etag", "last-modified", "both"])
def test_arch_unchanged_is_one_conditional_request_and_no_write(store, tmp_path, mode):
    arch_db(tmp_path, "core", "foo", "bar")
    with mirror(tmp_path, mode) as (base, tally):
        profile = arch_profile(base)
        first, _ = sync(store, profile)
        assert first.outcome == "updated" and first.artifacts == 2
        before = tally.snapshot()
        again, writes = sync(store, profile)
        assert again.outcome == "unchanged" and again.not_modified and writes == []
        assert (again.inputs, again.artifacts, again.skipped) == (first.inputs, first.artifacts, 0)
        assert delta(tally, before) == {"requests": 1, "conditional": 1, "not_modified": 1, "bytes": 0}

        # A new database, an older-looking mtime than now but newer than the last: read and written.
        arch_db(tmp_path, "core", "foo", "qux", version="2.0-1", age=30)
        changed, writes = sync(store, profile)
        assert changed.outcome == "updated" and writes
        assert artifacts(store) == {("foo", "2.0-1"), ("qux", "2.0-1")}
        assert sync(store, profile)[0].not_modified


@pytest.mark.parametrize("mode", ["ignore", "none"])
def test_a_mirror_without_working_validators_still_syncs(store, tmp_path, mode):
    arch_db(tmp_path, "core", "foo")
    with mirror(tmp_path, mode) as (base, tally):
        profile = arch_profile(base)
        assert sync(store, profile)[0].outcome == "updated"
        before = tally.snapshot()
        again, writes = sync(store, profile)
        # The bytes come again, but their SHA-256 says they are the same: not parsed, not written.
        assert again.outcome == "unchanged" and again.not_modified and writes == []
        seen = delta(tally, before)
        assert seen["requests"] == 1 and seen["not_modified"] == 0 and seen["bytes"] > 0
        assert seen["conditional"] == (1 if mode == "ignore" else 0)
        arch_db(tmp_path, "core", "foo", version="2.0-1", age=30)
        assert sync(store, profile)[0].outcome == "updated"
        assert artifacts(store) == {("foo", "2.0-1")}


def test_one_changed_repository_of_several_rebuilds_the_whole_snapshot(store, tmp_path):
    arch_db(tmp_path, "core", "foo")
    arch_db(tmp_path, "extra", "bar")
    with mirror(tmp_path, "etag") as (base, tally):
        profile = arch_profile(base, ("core", "extra"))
        sync(store, profile)
        before = tally.snapshot()
        assert sync(store, profile)[0].not_modified
        assert delta(tally, before) == {"requests": 2, "conditional": 2, "not_modified": 2, "bytes": 0}
        arch_db(tmp_path, "extra", "bar", "baz", version="2.0-1")
        before = tally.snapshot()
        summary, _ = sync(store, profile)
        assert summary.outcome == "updated"
        assert artifacts(store) == {("foo", "1.0-1"), ("bar", "2.0-1"), ("baz", "2.0-1")}
        # core answered 304 (so the probe went on) and is read again in full; extra's bytes are not fetched twice.
        seen = delta(tally, before)
        assert seen["requests"] == 3 and seen["not_modified"] == 1
        assert sorted(tally.paths[-3:]) == sorted(["/core/os/x86_64/core.db", "/extra/os/x86_64/extra.db",
                                                   "/core/os/x86_64/core.db"])


def test_a_just_written_file_leaves_no_validator_then_one_is_remembered(store, tmp_path):
    # Last-Modified no earlier than Date: may change again within the second. Dated 30 s ahead so
    # that a loaded machine, taking over a second to serve it, still reads it as just written.
    arch_db(tmp_path, "core", "foo", age=-30)
    with mirror(tmp_path, "both") as (base, tally):
        profile = arch_profile(base)
        sync(store, profile)
        value, _ = Pointer(store, f"state/{NAME}").read()
        assert list(value.meta["validators"].values()) == [{}]
        arch_db(tmp_path, "core", "foo", age=60)  # the same bytes, now settled
        before = tally.snapshot()
        again, writes = sync(store, profile)
        assert again.outcome == "unchanged" and delta(tally, before)["conditional"] == 0
        assert writes == [("put_if_match", f"state/{NAME}/HEAD.json")]  # the validator, for next time
        after, _ = Pointer(store, f"state/{NAME}").read()
        assert after.target == value.target and after.retained == value.retained
        assert list(after.meta["validators"].values())[0]["etag"].startswith('"')
        before = tally.snapshot()
        assert sync(store, profile)[1] == []
        assert delta(tally, before)["not_modified"] == 1


# --- Debian: InRelease is the root ------------------------------------------------------------------------------

def test_debian_unchanged_asks_only_for_inrelease(store, tmp_path):
    root = copy_mirror(tmp_path / "mirror")
    dist = root / "dists" / "sid"
    compress(dist, ("xz",), keep_plain=False)
    settle(write_inrelease(dist))
    with mirror(root, "both") as (base, tally):
        profile = debian_profile(base)
        first, _ = sync(store, profile)
        assert first.outcome == "updated" and first.skipped >= 1
        before = tally.snapshot()
        again, writes = sync(store, profile)
        assert again.outcome == "unchanged" and writes == [] and again.skipped == first.skipped
        assert delta(tally, before) == {"requests": 1, "conditional": 1, "not_modified": 1, "bytes": 0}
        assert tally.paths[-1] == "/dists/sid/InRelease"

        # A new Packages file and its InRelease: read again.
        packages = dist / "main" / "binary-amd64" / "Packages.xz"
        text = lzma.decompress(packages.read_bytes()).replace(b"Version: 2.10-3\n", b"Version: 2.10-4\n", 1)
        write(packages, lzma.compress(text), age=30)
        settle(write_inrelease(dist), age=30)
        before = tally.snapshot()
        assert sync(store, profile)[0].outcome == "updated"
        assert delta(tally, before)["requests"] == 3  # InRelease (changed), Sources, Packages
        assert sync(store, profile)[0].not_modified


def test_an_inrelease_past_its_valid_until_is_read_again(store, tmp_path):
    root = copy_mirror(tmp_path / "mirror")
    dist = root / "dists" / "sid"
    until = datetime.now(timezone.utc) + timedelta(hours=1)
    settle(write_inrelease(dist, extra={"Valid-Until": formatdate(until.timestamp(), usegmt=True)}))
    with mirror(root, "etag") as (base, tally):
        profile = debian_profile(base)
        assert sync(store, profile)[0].outcome == "updated"
        value, _ = Pointer(store, f"state/{NAME}").read()
        assert datetime.fromisoformat(value.meta["valid_until"]) == until.replace(microsecond=0)
        assert sync(store, profile)[0].not_modified
        # Past Valid-Until a 304 proves nothing: everything is read again, and the parser
        # (which checks Valid-Until against the clock; see test_debian for the refusal) decides.
        before = tally.snapshot()
        later, writes = sync(store, profile, now=until + timedelta(seconds=1))
        assert later.outcome == "unchanged" and not later.not_modified and writes == []
        seen = delta(tally, before)
        assert (seen["requests"], seen["conditional"], seen["not_modified"]) == (3, 0, 0)


# --- only when the stored snapshot is the one the validator names ------------------------------------------------

def test_killed_at_every_write_a_validator_never_names_unwritten_data(store_factory, tmp_path):
    arch_db(tmp_path, "core", "foo", "bar")
    with mirror(tmp_path, "both") as (base, _):
        profile = arch_profile(base)
        reference = store_factory.make()
        sync(reference, profile)
        arch_db(tmp_path, "core", "foo", "baz", version="2.0-1", age=30)
        counting = FaultyStore(reference)
        sync_profile(counting, CONFIG, profile)
        expected = artifacts(reference)
        advanced = 1 + [key for _, key in counting.log].index(f"state/{NAME}/HEAD.json")
        for kill_at in range(1, counting.writes + 1):
            for after in (False, True):
                arch_db(tmp_path, "core", "foo", "bar", age=60)
                store = store_factory.make()
                sync(store, profile)
                arch_db(tmp_path, "core", "foo", "baz", version="2.0-1", age=30)
                with pytest.raises(Killed):
                    sync_profile(FaultyStore(store, kill_at=kill_at, after=after), CONFIG, profile)
                store.delete(f"locks/sync/{NAME}.json")  # stands for the killed holder's lease expiring
                summary, _ = sync(store, profile)
                assert artifacts(store) == expected, (kill_at, after)
                landed = kill_at > advanced or (kill_at == advanced and after)
                assert summary.not_modified == landed, (kill_at, after)


def test_changed_settings_read_the_index_again(store, tmp_path):
    arch_db(tmp_path, "core", "foo", "bar")
    with mirror(tmp_path, "etag") as (base, tally):
        sync(store, arch_profile(base))
        before = tally.snapshot()
        summary, _ = sync(store, arch_profile(base, excludes=("bar",)))
        assert summary.outcome == "updated" and delta(tally, before)["conditional"] == 0
        assert artifacts(store) == {("foo", "1.0-1")}
        assert {j.source_name for j in read_queue(store).jobs.values()} == {"foo"}


def test_a_state_from_before_validators_still_works(store, tmp_path):
    arch_db(tmp_path, "core", "foo")
    with mirror(tmp_path, "etag") as (base, tally):
        profile = arch_profile(base)
        sync(store, profile)
        pointer = Pointer(store, f"state/{NAME}")
        value, etag = pointer.read()
        old = {k: v for k, v in value.meta.items() if k not in ("validators", "profile_digest", "valid_until")}
        pointer.annotate(old, value, etag)
        before = tally.snapshot()
        summary, writes = sync(store, profile)  # read in full, written once more in the new form
        assert summary.outcome == "updated" and delta(tally, before)["conditional"] == 0
        assert summary.plan is not None and not summary.plan.added and not summary.plan.dropped
        assert artifacts(store) == {("foo", "1.0-1")}
        assert sync(store, profile)[0].not_modified


# --- which validators are kept ----------------------------------------------------------------------------------

def test_only_validators_that_name_one_version_are_kept():
    now = datetime.now(timezone.utc).timestamp()
    date = formatdate(now, usegmt=True)
    old = formatdate(now - 3600, usegmt=True)
    assert validator_of({"ETag": '"abc"', "Date": date}) == Validator('"abc"')
    assert validator_of({"ETag": 'W/"abc"', "Date": date}) is None  # weak: equivalent, not identical
    assert validator_of({"Last-Modified": old, "Date": date}) == Validator(None, old)
    assert validator_of({"ETag": '"abc"', "Last-Modified": date, "Date": date}) is None  # just modified
    assert validator_of({"Last-Modified": old}) is None  # no Date: cannot tell how fresh
    assert validator_of({"Last-Modified": "yesterday", "Date": date}) is None
    assert Validator.from_json(json.loads(json.dumps(Validator('"x"', old).to_json()))) == Validator('"x"', old)
    assert Validator.from_json({}) is None and Validator.from_json("junk") is None
