"""`rebuilder sync`: one distro index → a package-state snapshot → the queue.

Order of writes, so that the job can be killed at any instant and rerun safely:
1. take the profile's lease (`locks/sync/<profile>.json`): a second sync of the same
   profile exits cleanly saying who holds it;
2. ask the mirror, with conditional GETs, whether the root indexes the current snapshot was
   made from changed (`jobs.sync.revalidate`); if none did, stop: nothing is downloaded,
   parsed or written;
3. read and parse the index completely; any error stops here, nothing was written. An index
   whose files all have the SHA-256 the current snapshot recorded is unchanged: stop;
4. write the snapshot under a new, unique key (invisible until the pointer names it);
5. apply the queue plan (idempotent: a rerun computes the same plan and changes nothing);
6. advance `state/<profile>/HEAD.json` by compare-and-swap: only now does the new
   snapshot become current, together with the validators of the indexes it was made from.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from io import BytesIO

import pyarrow.parquet as pq

from jobs.core import progress
from jobs.core.bounded import configured
from jobs.core.config import RebuilderConfig, SyncProfile
from jobs.core.errors import ConfigError
from jobs.core.gcpause import cyclic_gc_paused
from jobs.core.history import build_summaries
from jobs.core.layout import STATE, claim_key, state_head_profile, state_prefix, sync_lock
from jobs.core.lease import Held, LeaseHeld, LeaseKeeper, Leases
from jobs.core.pointer import Pointer, PointerValue, unique_name
from jobs.core.queue import update_queue, update_queue_columns
from jobs.core.store import Store, put_new
from jobs.sync.columns import InputColumns, not_before_of
from jobs.sync.fetch import Fetcher
from jobs.sync.plan import QueuePlan, job_rows, plan_columns, plan_queue
from jobs.sync.records import IndexResult
from jobs.sync.revalidate import probe, profile_digest, state_meta, validators_json
from jobs.sync.snapshot import snapshot_parquet

log = logging.getLogger(__name__)



def _archlinux(profile: SyncProfile, fetcher: Fetcher) -> IndexResult:
    from jobs.sync import archlinux

    return archlinux.read_index(profile, fetcher, columns=True)


def _debian(profile: SyncProfile, fetcher: Fetcher) -> IndexResult:
    from jobs.sync import debian

    return debian.read_index(profile, fetcher, columns=True)


# The explicit registry of index parsers: adding a distro = one module + one line here. Each
# parser's module is imported when a profile uses it (python-debian only for a Debian sync).
PARSERS: dict[str, Callable[[SyncProfile, Fetcher], IndexResult]] = {
    "archlinux": _archlinux,
    "debian": _debian,
}


def backend_of(profile: SyncProfile) -> str:
    """The backend the jobs of ``profile`` name (a worker needs a ``[backend]`` of that name)."""
    if profile.sync_method == "debian":
        from jobs.sync.debian import BACKEND

        return BACKEND
    return profile.distro


@dataclass
class SyncSummary:
    """What one profile's sync did; `line()` is the one summary line the job always prints."""

    profile: str
    outcome: str  # "updated", "unchanged", "busy"
    inputs: int = 0
    artifacts: int = 0
    skipped: int = 0
    snapshot: str | None = None
    plan: QueuePlan | None = None
    detail: str = ""
    not_modified: bool = False  # unchanged as the root indexes alone showed: nothing else was read or parsed

    def line(self) -> str:
        """One human-readable line."""
        if self.outcome == "busy":
            return f"sync {self.profile}: skipped, {self.detail}"
        head = (f"sync {self.profile}: {self.outcome}, {self.artifacts} packages in {self.inputs} build inputs"
                f", {self.skipped} malformed entries skipped")
        if self.plan is not None:
            p = self.plan
            head += (f"; queue +{len(p.added)} new, +{len(p.retried)} retries, -{len(p.dropped)} dropped"
                     f", {len(p.kept_running)} running kept")
        return head


def sync_profile(store: Store, config: RebuilderConfig, profile: SyncProfile, *, fetcher: Fetcher | None = None,
                 now: datetime | None = None) -> SyncSummary:
    """Sync one profile (see the module docstring for the order of writes)."""
    parser = PARSERS.get(profile.sync_method or profile.distro)
    if parser is None:
        raise ConfigError(f"no sync method {profile.sync_method or profile.distro!r} (known: {sorted(PARSERS)})",
                          key=f'profile."{profile.name}".sync_method')
    leases = Leases(store, ttl=config.lease.ttl, clock_skew=config.lease.clock_skew)
    holder = f"sync@{socket.gethostname()}:{os.getpid()}"
    try:
        held = Held(leases, sync_lock(profile.name), holder, meta={"profile": profile.name})
    except LeaseHeld as exc:
        return SyncSummary(profile.name, "busy", detail=f"another sync ({exc.holder}) holds its lock")
    # Leaving the block releases the lock however it ends (a clean failure advanced nothing, so
    # the next run may start at once); a killed process releases nothing: its lease expires.
    with held as keeper, cyclic_gc_paused(), configured(config.limits()):
        return _sync_locked(store, config, profile, parser, fetcher or Fetcher(), now, keeper)


def _sync_locked(store: Store, config: RebuilderConfig, profile: SyncProfile, parser, fetcher: Fetcher,
                 now: datetime | None, keeper: LeaseKeeper) -> SyncSummary:
    now = now or datetime.now(timezone.utc)
    pointer = Pointer(store, state_prefix(profile.name))
    current, etag = pointer.read()
    digest = profile_digest(profile)
    # Steps for the operator: download and parse interleave (one index file after the other).
    progress.begin("download", f"sync {profile.name}: download", unit="B")
    ok = False
    try:
        probed = probe(fetcher, current.meta, digest=digest, now=now) if current is not None else None
        if current is not None and etag is not None and probed is not None and probed.unchanged:
            meta = current.meta
            summary = SyncSummary(profile.name, "unchanged", inputs=_int(meta, "inputs"), artifacts=_int(meta, "rows"),
                                  skipped=_int(meta, "skipped"), snapshot=current.target, not_modified=True)
            ok = True
            progress.end("download")
            _remember(pointer, current, etag, {**meta, "validators": validators_json(probed.validators)}, keeper)
            return summary
        progress.begin("parse", f"sync {profile.name}: parse", unit="packages")
        with fetcher.answering(probed.kept if probed is not None else ()):
            result = parser(profile, fetcher)
        ok = True
    finally:
        progress.end("download", ok=ok)
        progress.end("parse", ok=ok)
    for skip in result.skipped[:20]:
        log.warning("%s: skipped %s: %s", profile.name, skip.location, skip.reason)
    columns = result.columns
    if columns is not None and not columns.plain:
        result.inputs, result.columns = columns.build_inputs(), None  # the object path
    if result.columns is not None:
        artifacts, inputs = result.columns.rows, result.columns.inputs
    else:
        artifacts, inputs = sum(len(bi.artifacts) for bi in result.inputs), len(result.inputs)
    summary = SyncSummary(profile.name, "unchanged", inputs=inputs, artifacts=artifacts,
                          skipped=len(result.skipped))
    remembered = state_meta(result, digest)
    if current is not None and etag is not None and current.meta.get("sources") == result.sources \
            and current.meta.get("profile_digest") == digest:
        summary.snapshot = current.target
        _remember(pointer, current, etag, {**current.meta, **remembered}, keeper)
        return summary

    with progress.step("write", f"sync {profile.name}: write", total=3, unit="objects"):
        return _write(store, config, profile, result, pointer, current, etag, remembered, summary, now, keeper)


def _write(store: Store, config: RebuilderConfig, profile: SyncProfile, result: IndexResult, pointer: Pointer,
           current: PointerValue | None, etag: str | None, remembered: dict, summary: SyncSummary, now: datetime,
           keeper: LeaseKeeper) -> SyncSummary:
    """Steps 4 to 6: the snapshot, the queue, the pointer."""
    sync_id = unique_name("")
    columns: InputColumns | None = result.columns
    if columns is not None:
        snapshot = columns.snapshot_parquet(sync_id, now)
    else:
        snapshot = snapshot_parquet(result.inputs, sync_id, now)
    key = f"{pointer.prefix}/{sync_id}.parquet"
    _check(keeper)
    put_new(store, key, snapshot, content_type="application/vnd.apache.parquet")
    del snapshot
    progress.advance("write")

    listed = job_rows(result.inputs, now=now, schedule=config.schedule) if columns is None else {}
    rows, inputs = summary.artifacts, summary.inputs
    result.inputs = []  # the queue rows have what they need: the parsed entries go before the queue is written
    previous = _job_ids(store, current.target) if current else set()
    elsewhere = _job_ids_elsewhere(store, profile.name)
    built = build_summaries(store)
    leases = Leases(store, ttl=config.lease.ttl, clock_skew=config.lease.clock_skew)

    def running(row) -> bool:
        state = leases.read(claim_key(row.job_id, row.attempt))
        return state is not None and not leases.is_expired(state[0])

    plans: list[QueuePlan] = []

    def change(jobs):
        new, plan = plan_queue(jobs, listed=listed, previous=previous, elsewhere=elsewhere, built=built,
                               running=running, schedule=config.schedule)
        plans.append(plan)
        return new

    def change_columns(jobs):
        new, added, plan = plan_columns(jobs, listed=columns, now=now, previous=previous, elsewhere=elsewhere,
                                        built=built, running=running, schedule=config.schedule)
        plans.append(plan)
        added.sort(key=columns.job_ids.__getitem__)
        return new, columns.queue_table(added, now, not_before_of(now, config.schedule.initial_delay))

    _check(keeper)
    if columns is None:
        update_queue(store, change, meta={"by": f"sync {profile.name}"})
    else:
        update_queue_columns(store, change_columns, meta={"by": f"sync {profile.name}"})
    progress.advance("write")
    _check(keeper)
    meta = {"profile": profile.name, "distro": profile.distro, "rows": rows,
            "inputs": inputs, "skipped": len(result.skipped), **remembered}
    pointer.advance(key, meta, current, etag)
    progress.advance("write")
    summary.outcome, summary.snapshot, summary.plan = "updated", key, plans[-1]
    return summary


def _remember(pointer: Pointer, current: PointerValue, etag: str, meta: dict, keeper: LeaseKeeper) -> None:
    """Store validators that changed while the snapshot did not (one PUT; none when nothing changed).

    E.g. a mirror that rewrote a file with the same bytes, or a first answer whose validator
    was too fresh to keep: without this every later sync would download that root again.
    """
    if meta == current.meta:
        return
    _check(keeper)
    pointer.annotate(meta, current, etag)


def _int(meta: dict, key: str) -> int:
    value = meta.get(key)
    return value if isinstance(value, int) else 0


def _check(keeper: LeaseKeeper) -> None:
    keeper.check()


def _job_ids(store: Store, key: str) -> set[str]:
    """The job ids a snapshot lists (reads one column)."""
    table = pq.read_table(BytesIO(store.get(key).data), columns=["job_id"])
    return set(table.column("job_id").to_pylist())


def _job_ids_elsewhere(store: Store, profile: str) -> set[str]:
    """Job ids listed by the current snapshots of every other profile (friends stay queued)."""
    ids: set[str] = set()
    for info in store.list(STATE):
        other = state_head_profile(info.key)
        if other is not None and other != profile:
            value, _ = Pointer(store, state_prefix(other)).read()
            if value is not None:
                ids |= _job_ids(store, value.target)
    return ids

