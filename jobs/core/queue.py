"""The queue of due jobs: `queue/<name>.parquet` behind `queue/HEAD.json`.

Sync adds and drops jobs, publish applies results, retries and admin requests; workers
only read it (they claim with leases under `claims/`). Every writer reads the current
queue, computes the next one, writes it as a new immutable object and advances the
pointer by compare-and-swap; if another writer got there first it starts over from the
newer queue, so concurrent syncs and publishes never lose each other's changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa

from jobs.core.errors import TransientError
from jobs.core.layout import QUEUE
from jobs.core.model import JobRow, from_table, job_id, parquet_bytes, read_table, to_table
from jobs.core.pointer import Pointer, PointerValue, unique_name
from jobs.core.store import NotFound, PreconditionFailed, Store, put_new

PREFIX = QUEUE

Jobs = dict[str, JobRow]


class QueueBusy(TransientError):
    """Other writers kept changing the queue; try again later."""


@dataclass(frozen=True)
class QueueState:
    """One version of the queue: jobs by id, and the pointer it was read through."""

    jobs: Jobs
    pointer: PointerValue | None
    etag: str | None
    table: pa.Table | None = field(default=None, repr=False, compare=False)  # the jobs as stored

    def as_table(self) -> pa.Table:
        """The jobs as a JobRow table (the one read, when this state was read)."""
        return self.table if self.table is not None else to_table(list(self.jobs.values()), JobRow)


def read_queue(store: Store, *, cached: QueueState | None = None) -> QueueState:
    """The current queue (empty before anything was queued).

    `cached`, a state read before: when the pointer still names its object (queue objects are
    immutable, each version has a new name), its jobs are reused and only the pointer is read.
    """
    pointer = Pointer(store, PREFIX)
    for _ in range(5):
        value, etag = pointer.read()
        if value is None:
            return QueueState({}, None, None)
        if cached is not None and cached.pointer is not None and cached.pointer.target == value.target:
            return QueueState(cached.jobs, value, etag, cached.table)
        try:
            table = read_table(store.get(value.target).data)
        except NotFound:
            continue  # collected after the pointer moved on: read the newer one
        return QueueState({r.job_id: r for r in from_table(table, JobRow, source=value.target)}, value, etag, table)
    raise QueueBusy("the queue kept moving while it was read", key=pointer.key)


def update_queue(store: Store, change: Callable[[Jobs], Jobs | None], *, meta: dict | None = None,
                 attempts: int = 30, current: QueueState | None = None) -> tuple[QueueState, bool]:
    """Apply `change` (a pure function of the current jobs) and publish the result.

    `change` returns the new jobs, or None when nothing changes (then nothing is written).
    `current`, a state the caller has just read, saves reading it again (if it is stale,
    the compare-and-swap fails and the next round reads the newer queue).
    Returns the queue as written (or as read, if unchanged) and whether it was written.
    """
    pointer = Pointer(store, PREFIX)
    for _ in range(attempts):
        state, current = current or read_queue(store), None
        new = change(dict(state.jobs))
        if new is None or new == state.jobs:
            return state, False
        key = f"{PREFIX}/{unique_name('.parquet')}"
        table = to_table(sorted(new.values(), key=lambda j: j.job_id), JobRow)
        put_new(store, key, parquet_bytes(table), content_type="application/vnd.apache.parquet")
        try:
            value = pointer.advance(key, {"jobs": len(new), **(meta or {})}, state.pointer, state.etag)
        except PreconditionFailed:
            store.delete(key)  # never referenced; the next round rebuilds from the newer queue
            continue
        return QueueState(new, value, None, table), True
    raise QueueBusy(f"queue changed {attempts} times while this update was prepared", key=pointer.key)


def check_job_ids(table: pa.Table, *, source: str) -> None:
    """Every row's job id is the id of its build input (what `JobRow` checks row by row), column-wise."""
    ids = table.column("job_id").to_pylist()
    expected = list(map(job_id, table.column("backend").to_pylist(), table.column("architecture").to_pylist(),
                        table.column("input_url").to_pylist()))
    if ids != expected:
        at = next(i for i, (a, b) in enumerate(zip(ids, expected, strict=True)) if a != b)
        raise ValueError(f"{source}: row {at}: job_id {ids[at]!r} does not match its build input "
                         f"(expected {expected[at]!r})")


def update_queue_columns(store: Store, change: Callable[[Jobs], tuple[Jobs, pa.Table] | None], *,
                         meta: dict | None = None, attempts: int = 30) -> bool:
    """`update_queue` for a writer whose new jobs are a JobRow table rather than `JobRow`s (a sync).

    `change` returns the jobs kept or changed as rows and the new jobs as a table sorted by job
    id (none of them already in the rows), or None when nothing changes. The queue written is the same as
    `update_queue` writes for all of them as rows: one table sorted by job id. The new jobs'
    ids are checked against their build inputs. Returns whether the queue was written.
    """
    pointer = Pointer(store, PREFIX)
    for _ in range(attempts):
        state = read_queue(store)
        answer = change(dict(state.jobs))
        if answer is None:
            return False
        new, added = answer
        if not added.num_rows and new == state.jobs:
            return False
        check_job_ids(added, source="new queue rows")
        table = _merged(to_table(sorted(new.values(), key=lambda j: j.job_id), JobRow), added)
        key = f"{PREFIX}/{unique_name('.parquet')}"
        put_new(store, key, parquet_bytes(table), content_type="application/vnd.apache.parquet")
        try:
            pointer.advance(key, {"jobs": table.num_rows, **(meta or {})}, state.pointer, state.etag)
        except PreconditionFailed:
            store.delete(key)  # never referenced; the next round rebuilds from the newer queue
            continue
        return True
    raise QueueBusy(f"queue changed {attempts} times while this update was prepared", key=pointer.key)


def _merged(rows: pa.Table, added: pa.Table) -> pa.Table:
    """Two JobRow tables sorted by job id as one, sorted by job id (their slices in turn, no compute kernels)."""
    a, b = rows.column("job_id").to_pylist(), added.column("job_id").to_pylist()
    if b != sorted(b) or len(set(b)) != len(b):
        raise ValueError("new queue rows are not sorted by job id, or repeat one")
    if not set(a).isdisjoint(b):
        raise ValueError("new queue rows repeat a queued job")
    if not a or not b:
        return added if not a else rows
    parts, i, j = [], 0, 0
    while i < len(a) or j < len(b):
        if j == len(b) or (i < len(a) and a[i] < b[j]):
            start = i
            while i < len(a) and (j == len(b) or a[i] < b[j]):
                i += 1
            parts.append(rows.slice(start, i - start))
        else:
            start = j
            while j < len(b) and (i == len(a) or b[j] < a[i]):
                j += 1
            parts.append(added.slice(start, j - start))
    return pa.concat_tables(parts).combine_chunks()
