"""What the site is computed from, read from the store into Arrow tables for DuckDB.

Current package state (every profile's `state/<profile>/HEAD.json` snapshot), the build
history (in manifest order, which defines the v0 integer build ids), the queue, the live
claims of queued attempts (the builds running now), the enrolled workers, and the failure
class of every non-GOOD build. Everything here is untrusted bucket content: unreadable
claims and worker records are skipped, never guessed at.
"""

from __future__ import annotations

import json
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import datetime, timezone

import duckdb
import pyarrow as pa

from jobs.core import layout
from jobs.core.bounded import OverLimit, cap, read_object
from jobs.core.errors import TerminalError
from jobs.core.history import read_history
from jobs.core.lease import LeaseState
from jobs.core.model import JobRow, PackageStateRow, field_problem, read_table, to_table
from jobs.core.model.limits import WORKER_NAME_MAX
from jobs.core.pointer import Pointer
from jobs.core.queue import QueueState, read_queue
from jobs.core.store import NotFound, Store
from jobs.publish.site.classify import TAIL_BYTES, log_tail
from jobs.publish.site.facts import FACTS_KEY, Facts, facts_table, learn, unlearned
from jobs.publish.site.facts import SCHEMA as FACTS_SCHEMA
from jobs.publish.state.enrolment import read_enrolled

_TS = pa.timestamp("us", tz="UTC")

CLAIMS_SCHEMA = pa.schema([("job_id", pa.string()), ("attempt", pa.int64()), ("holder", pa.string()),
                           ("worker", pa.string()), ("acquired_at", _TS), ("renewed_at", _TS),
                           ("expires_at", _TS)])
WORKERS_SCHEMA = pa.schema([("key_id", pa.string()), ("name", pa.string()), ("worker_id", pa.int32())])


@dataclass(frozen=True)
class Inputs:
    """Every table the site queries read."""

    state: pa.Table  # PackageStateRow columns: the union of all current snapshots
    history: pa.Table  # HistoryRow columns plus `_row`, the row's position in history order
    queue: pa.Table  # JobRow columns
    claims: pa.Table  # CLAIMS_SCHEMA: live leases on queued attempts
    workers: pa.Table  # WORKERS_SCHEMA
    facts: pa.Table  # jobs.publish.site.facts.SCHEMA: failure class, HTML report, countersigned, per build


def load_inputs(store: Store, *, now: datetime, max_log_reads: int = 2000, history: pa.Table | None = None,
                facts: pa.Table | None = None, queue: QueueState | None = None) -> Inputs:
    """Read everything the site needs from the store.

    A caller that has some of it already may give it: `history` as read and confined
    (`confine_build_keys`), `facts`, the `queue`. Facts not given are learned for every
    build and not kept.
    """
    history = confine_build_keys(read_history(store)) if history is None else history
    if facts is None:
        facts = learn_facts(store, history, max_log_reads=max_log_reads, kept=FACTS_SCHEMA.empty_table()).table
    history = history.append_column("_row", pa.array(range(history.num_rows), pa.int64()))
    queue = queue if queue is not None else read_queue(store)
    return Inputs(state=read_state(store), history=history, queue=queue.as_table(),
                  claims=read_claims(store, queue.jobs, now=now), workers=read_workers(store), facts=facts)


def read_facts(store: Store) -> pa.Table:
    """The kept facts (`jobs.publish.site.facts`; empty if there are none yet or the object is unreadable)."""
    try:
        return facts_table(store.get(FACTS_KEY).data)
    except NotFound:
        return FACTS_SCHEMA.empty_table()


def learn_facts(store: Store, history: pa.Table, *, kept: pa.Table | None = None, new: pa.Table | None = None,
                countersigned: set[str] | None = None, problems: dict[str, str] | None = None,
                max_log_reads: int = 2000, batch: tuple[str, AbstractSet[str]] | None = None) -> Facts:
    """`facts.learn` reading the log tails and attestations it asks for from `store` (saved by
    `sitewriter.write_facts`). `kept`: `read_facts(store)` when not given."""
    kept = read_facts(store) if kept is None else kept
    return learn(history, kept=kept, new=unlearned(history, kept) if new is None else new,
                 log_tail=lambda key: read_log_tail(store, key), exists=lambda key: _exists(store, key),
                 countersigned=countersigned, problems=problems, max_log_reads=max_log_reads, batch=batch)


def kept_attestation(store: Store, build_id: str) -> bool:
    """Whether publish keeps a countersigned attestation of the build (`history/attestations/`)."""
    return _exists(store, layout.attestation_key(build_id))


def _exists(store: Store, key: str) -> bool:
    try:
        store.head(key)
        return True
    except NotFound:
        return False


def read_log_tail(store: Store, key: str, *, limit: int = TAIL_BYTES) -> str | None:
    """The last `limit` bytes of a stored (gzip or plain) build log as text; None if it is missing."""
    try:
        data, _info = read_object(store, key, cap("upload"))
    except NotFound:
        return None
    except OverLimit:
        return None  # larger than any upload publish copies: not read, classified by its reason
    return log_tail(data, key, limit=limit)


def read_state(store: Store) -> pa.Table:
    """The rows of every profile's current snapshot, as one table."""
    tables = []
    for info in store.list(layout.STATE):
        profile = layout.state_head_profile(info.key)
        if profile is None:
            continue
        for _ in range(3):  # the snapshot may be collected just after a newer pointer was read
            value, _etag = Pointer(store, layout.state_prefix(profile)).read()
            if value is None:
                break
            try:
                tables.append(read_table(store.get(value.target).data))
                break
            except NotFound:
                continue
    return pa.concat_tables(tables) if tables else to_table([], PackageStateRow)


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, timezone.utc)


def read_claims(store: Store, jobs: dict[str, JobRow], *, now: datetime) -> pa.Table:
    """Live, unreleased leases on the current attempt of queued jobs: the builds running now.

    A worker leaves its claim to expire once it has reported (docs/trust.md): an attempt with
    a done receipt in the same listing has finished and is not shown as running.
    """
    rows = []
    claims, done = [], set()
    for info in store.list(layout.CLAIMS):
        notice = layout.CLAIM_NOTICE_KEY.fullmatch(info.key)
        if notice is not None and notice.group(3) == "done":
            done.add((notice.group(1), int(notice.group(2))))
        else:
            claims.append(info)
    for info in claims:
        match = layout.CLAIM_KEY.fullmatch(info.key)
        job = jobs.get(match.group(1)) if match else None
        if job is None or job.attempt != int(match.group(2)) or (job.job_id, job.attempt) in done:
            continue  # a finished attempt, or a job no longer queued
        try:
            state = LeaseState.from_bytes(read_object(store, info.key, cap("record"))[0])
        except (NotFound, OverLimit):
            continue
        if state is None or state.released or state.expires_at <= now.timestamp():
            continue
        worker = state.meta.get("worker")  # unverified, as a worker record's name
        plain = field_problem("worker name", worker, WORKER_NAME_MAX, spaces=True) is None
        rows.append({"job_id": job.job_id, "attempt": job.attempt, "holder": state.holder,
                     "worker": worker if plain else state.holder,
                     "acquired_at": _utc(state.acquired_at), "renewed_at": _utc(state.renewed_at),
                     "expires_at": _utc(state.expires_at)})
    return pa.Table.from_pylist(rows, schema=CLAIMS_SCHEMA)


def read_workers(store: Store) -> pa.Table:
    """Enrolled workers by key id, numbered from 1 in key-id order (v0's integer worker ids).

    Names come from the records publish accepted first (`enrolment.ENROLLED`): overwriting
    or deleting a worker's `workers/` record changes neither its name nor its number.
    """
    found: dict[str, str] = {}
    try:
        accepted = read_enrolled(store).docs
    except TerminalError:  # publish itself stops on it, naming the file
        accepted = {}
    for kid, doc in accepted.items():
        signed = doc.get("signed")
        name = signed.get("name") if isinstance(signed, dict) else None
        if layout.is_key_id(kid) and isinstance(name, str):
            found[kid] = name
    for info in store.list(layout.WORKERS):
        match = layout.WORKER_KEY.fullmatch(info.key)
        if match is None or match.group(1) in found:
            continue
        try:
            signed = json.loads(read_object(store, info.key, cap("record"))[0])["signed"]
            name = signed["name"]
        except (NotFound, OverLimit, ValueError, KeyError, TypeError, RecursionError):
            continue
        # Nobody verified this record: its name is shown only if it is one a result could carry
        # (printable, bounded; a lone surrogate from a "\ud800" escape fits no Arrow string).
        plain = field_problem("worker name", name, WORKER_NAME_MAX, spaces=True) is None
        found[match.group(1)] = name if plain else match.group(1)
    rows = [{"key_id": k, "name": found[k], "worker_id": i} for i, k in enumerate(sorted(found), 1)]
    return pa.Table.from_pylist(rows, schema=WORKERS_SCHEMA)


_KEYS = ("log_key", "diffoscope_key", "attestation_key")
_CONFINED = ", ".join(
    f"""CASE WHEN build_id <> '' AND starts_with({k}, 'builds/' || build_id || '/')
             AND NOT regexp_matches({k}, '(^|/)\\.\\.(/|$)') THEN {k} END AS {k}""" for k in _KEYS)


def confine_build_keys(history: pa.Table) -> pa.Table:
    """The history with file keys outside the build's own `builds/<build id>/` prefix dropped.

    The site copies these objects into the public site; a result naming any other object
    (a profile's snapshot, another build's log) must not get it published. DuckDB computes
    the kept keys (in row order): a million rows as Python strings took a second.
    """
    if history.num_rows == 0:
        return history
    con = duckdb.connect()
    try:
        con.register("h", history.select(["build_id", *_KEYS]))
        kept = con.sql(f"SELECT {_CONFINED} FROM h").to_arrow_table()
    finally:
        con.close()
    for name in _KEYS:
        column = kept.column(name).cast(pa.string())
        if not column.equals(history.column(name).cast(pa.string())):
            index = history.column_names.index(name)
            history = history.set_column(index, history.schema.field(index), column)
    return history
