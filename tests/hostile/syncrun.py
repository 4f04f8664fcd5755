"""Running an index case through the real sync job, on top of a store that already holds a good snapshot.

The baseline sync lists `good` and `old`; the hostile index lists `good` and its hostile part.
So after an error the store must still hold exactly the baseline (nothing half-written), and
after a successful sync `old` is gone, which proves the hostile index was really read.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from jobs.core.config import RebuilderConfig, Release, SyncProfile
from jobs.core.layout import sync_lock
from jobs.core.lease import Leases
from jobs.core.model import PackageStateRow, read_parquet
from jobs.core.pointer import Pointer
from jobs.core.queue import read_queue
from jobs.core.store import LocalStore, Store
from jobs.sync import run as sync_job
from jobs.sync.records import IndexResult, Skipped
from jobs.sync.run import SyncSummary, sync_profile
from tests.hostile.generate import GOOD, SOURCES, stanza, write_mirror
from tests.sync import alpm_builders as alpm

PROFILE = "hostile"
CONFIG = RebuilderConfig()


def arch_profile(directory: Path, name: str = PROFILE) -> SyncProfile:
    """An Arch profile whose only repository is `<directory>/core.db`."""
    return SyncProfile(name=name, distro="archlinux", source=str(directory), components=("core",),
                       architectures=("x86_64",))


def debian_profile(root: Path, name: str = PROFILE) -> SyncProfile:
    """A Debian profile of the mirror at `root` (sid, main, amd64)."""
    return SyncProfile(name=name, distro="debian", source=root.as_uri(), components=("main",),
                       architectures=("amd64",), releases=(Release("sid"),))


def baseline_store(kind: str, where: Path) -> Path:
    """A store after a good sync of `good` and `old` (made once, copied for every case)."""
    mirror, store_dir = where / "mirror", where / "store"
    if kind == "arch-db":
        mirror.mkdir(parents=True)
        (mirror / "core.db").write_bytes(alpm.db([*GOOD, *alpm.package("old", "1-1")]))
        profile = arch_profile(mirror)
    else:
        write_mirror(mirror, stanza() + "\n" + stanza("old", "1-1"),
                     sources=SOURCES + "\nPackage: old\nVersion: 1-1\n")
        profile = debian_profile(mirror)
    summary = sync_profile(LocalStore(store_dir, fsync=False), CONFIG, profile)
    assert summary.outcome == "updated" and summary.skipped == 0, summary.line()
    return store_dir


def contents(store: Store) -> dict[str, str]:
    """Every key of the store and a digest of its bytes."""
    return {info.key: hashlib.sha256(store.get(info.key).data).hexdigest() for info in store.list()}


@dataclass
class SyncRun:
    """What one sync of a case did."""

    store: Store
    before: dict[str, str]
    after: dict[str, str]
    summary: SyncSummary | None = None
    error: Exception | None = None
    skipped: list[Skipped] = field(default_factory=list)

    def snapshot(self) -> list[PackageStateRow]:
        value, _ = Pointer(self.store, f"state/{PROFILE}").read()
        return read_parquet(self.store.get(value.target).data)

    def queued_artifacts(self) -> set[str]:
        return {a.name for job in read_queue(self.store).jobs.values() for a in job.artifacts}

    def lock_released(self) -> bool:
        state = Leases(self.store).read(sync_lock(PROFILE))
        return state is not None and state[0] is not None and state[0].released


@contextmanager
def recording(distro: str) -> Iterator[list[IndexResult]]:
    """The real parser of `distro`, wrapped to keep what it returned (the skipped entries' reasons)."""
    real = sync_job.PARSERS[distro]
    seen: list[IndexResult] = []

    def parser(profile, fetcher):
        result = real(profile, fetcher)
        seen.append(result)
        return result

    sync_job.PARSERS[distro] = parser
    try:
        yield seen
    finally:
        sync_job.PARSERS[distro] = real


def run(kind: str, baseline: Path, store_dir: Path, index: Path) -> SyncRun:
    """Sync the index at `index` (an Arch repo directory or a Debian mirror) into a copy of `baseline`."""
    shutil.copytree(baseline, store_dir)
    store = LocalStore(store_dir, fsync=False)
    profile: SyncProfile
    distro, profile = (("archlinux", arch_profile(index)) if kind == "arch-db" else ("debian", debian_profile(index)))
    before = contents(store)
    outcome = SyncRun(store, before, before)
    with recording(distro) as seen:
        try:
            outcome.summary = sync_profile(store, CONFIG, profile)
        except Exception as exc:  # noqa: BLE001 - the test judges which errors are clear
            outcome.error = exc
    outcome.after = contents(store)
    if seen:
        outcome.skipped = seen[-1].skipped
    return outcome


