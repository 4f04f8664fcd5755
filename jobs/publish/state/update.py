"""`rebuilder publish`, the trust-and-state half: verify results, compact, update the queue.

Order of writes, so that the job can be killed at any instant and rerun safely:
1. take the publish lease (`locks/publish.json`); a second publisher returns at once with
   a summary naming the holder (the command exits 0);
2. verify every result not compacted yet (`verify.collect`);
   keep the accepted GOOD results' attestations in one object of the run,
   `history/attestations/run-<name>.json` (`keep_accepted_attestations`): countersigned, and those
   a result carried inside it whatever the signing setting, with the history rows naming
   that object, so an attestation no longer depends on its result once compacted (the
   result may be pruned from then on);
3. append the accepted ones to the history (`compact` below, planned by `compact.prepare`: part, manifest, pointer);
4. update the queue in one compare-and-swap: results (`schedule`), then admin requests
   (`requests`). The results applied are read back from the *history*, not from step 2,
   so a run killed between steps 3 and 4 is finished by the next one, which finds those
   results compacted already;
5. record the nonces of the requests step 4 applied (`history/applied-requests.json`), then
   delete them, and the result and claim objects of builds the history holds (`prune`);
   release the lease.

This is the one module of the state half that writes or deletes (docs/design.md#rooms-and-imports):
`verify`, `matches`, `enrolment`, `requests` and `compact` are handed the read side of the store
(`jobs.core.store.Reads`) and return what to write.

It also countersigns the accepted GOOD results' attestations with the rebuilder key (when
`[http] transparently_sign_attestations`), and hands them, the object it kept them in and the
public-keys feed to the site writer, which publishes them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from jobs.core import progress
from jobs.core.bounded import OverLimit, cap, read_object
from jobs.core.config import RebuilderConfig
from jobs.core.history import PREFIX as HISTORY_PREFIX
from jobs.core.history import build_summaries
from jobs.core.layout import (
    ATTESTATION_BATCH_KEY,
    CLAIM_KEY,
    CLAIM_NOTICE_KEY,
    CLAIMS,
    PUBLISH_LOCK,
    REBUILDER_KEYS,
    attestation_batch_key,
)
from jobs.core.lease import Held, LeaseHeld, LeaseKeeper, Leases
from jobs.core.model import HistoryRow, JobRow, ResultRow, Status, build_id, from_table
from jobs.core.pointer import Pointer, unique_name
from jobs.core.queue import QueueState, read_queue, update_queue
from jobs.core.signing import (
    SignatureError,
    ensure_key,
    key_id,
    load_configured_key,
    public_key_pem,
    verify_and_countersign,
    verify_link,
)
from jobs.core.store import NotFound, ObjectInfo, PreconditionFailed, Reads, Store, put_new
from jobs.publish.state.compact import (
    PARQUET,
    Compacted,
    HistoryBusy,
    HistoryState,
    orphans,
    prepare,
    read_history_state,
)
from jobs.publish.state.enrolment import ENROLLED, Enrolled, enrolled_document
from jobs.publish.state.requests import APPLIED as APPLIED_REQUESTS
from jobs.publish.state.requests import (
    AppliedNonces,
    Refusal,
    Request,
    RequestChanges,
    applied_after,
    apply_loaded,
    current_state_rows,
    load_requests,
    read_applied,
)
from jobs.publish.state.schedule import ResultChanges, apply_results
from jobs.publish.state.verify import Accepted, Collected, Rejected, collect, trusted_workers

log = logging.getLogger(__name__)

MAX_ATTESTATION_BYTES = cap("attestation")
# A run's kept attestations, as the site reads them (jobs.publish.site.sitewriter.BATCH_SCHEMA;
# a test checks they are the same string)
ATTESTATION_BATCH_SCHEMA = "rebuilder.countersigned/1"


@dataclass
class PublishState:
    """What one publish did to the state; `line()` is its one summary line."""

    busy: bool = False
    detail: str = ""
    accepted: list[Accepted] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    settling: list[str] = field(default_factory=list)  # result keys judged again by a later publish
    deferred: list[str] = field(default_factory=list)  # result keys left for a later publish (`run_attestations`)
    untrusted_workers: list[Rejected] = field(default_factory=list)
    trust_note: str | None = None
    history_rows_added: int = 0
    queue_changes: ResultChanges = field(default_factory=ResultChanges)
    request_changes: RequestChanges = field(default_factory=RequestChanges)
    requests_applied: list[str] = field(default_factory=list)
    requests_rejected: list[Rejected] = field(default_factory=list)
    # build id -> the in-toto link publish keeps and publishes: countersigned (with
    # `transparently_sign_attestations = false`, only those results carried, as their worker signed them)
    countersigned: dict[str, dict[str, Any]] = field(default_factory=dict)
    attestation_problems: dict[str, str] = field(default_factory=dict)  # build id -> why not countersigned
    # The object this run kept `countersigned` in (`history/attestations/run-<name>.json`; None: none)
    attestation_batch: str | None = None
    public_keys: dict[str, list[str]] = field(default_factory=dict)  # the api/v0/public-keys document
    history: pa.Table | None = None  # the history this run left, as read and compacted
    queue: QueueState | None = None  # the queue this run left
    pruned: int = 0  # result and claim objects of compacted builds deleted

    def line(self) -> str:
        """One human-readable line."""
        if self.busy:
            return f"publish: skipped, {self.detail}"
        q = self.queue_changes
        text = (f"publish: {len(self.accepted)} results accepted, {len(self.rejected)} rejected, "
                f"{self.history_rows_added} added to the history; queue -{len(q.done)} good, "
                f"{len(q.retried)} retries, -{len(q.exhausted)} out of retries; "
                f"{len(self.requests_applied)} requests applied, {len(self.requests_rejected)} rejected"
                + (f"; {len(self.settling)} results settling (judged by a later publish)" if self.settling else "")
                + (f"; {len(self.deferred)} results left for the next publish (this run's attestations reached "
                   "their cap)" if self.deferred else "")
                + (f"; {self.pruned} compacted result and claim objects pruned" if self.pruned else ""))
        return text + (f" ({self.trust_note})" if self.trust_note else "")


def publish_state(store: Store, config: RebuilderConfig, *, now: datetime | None = None,
                  holder: str | None = None, clock: Callable[[], float] = time.time) -> PublishState:
    """Verify, compact, schedule and apply requests (see the module docstring for the order)."""
    now = now or datetime.now(timezone.utc)
    # Load the key before taking the lock: a key problem is the operator's, and fails early.
    key = rebuilder_signing_key(config)
    leases = Leases(store, ttl=config.lease.ttl, clock_skew=config.lease.clock_skew)
    holder = holder or f"publish@{socket.gethostname()}:{os.getpid()}"
    try:
        lock = Held(leases, PUBLISH_LOCK, holder, meta={"job": "publish"})
    except LeaseHeld as exc:
        return PublishState(busy=True, detail=f"another publish ({exc.holder}) holds the lock")
    # Released however it ends: nothing half-done is visible (every step is a pointer or queue CAS).
    with lock as keeper:
        return _publish_locked(store, config, now, key, keeper, clock)


def _check(keeper: LeaseKeeper) -> None:
    keeper.check()


def _publish_locked(store: Store, config: RebuilderConfig, now: datetime, key: Ed25519PrivateKey,
                    keeper: LeaseKeeper, clock: Callable[[], float]) -> PublishState:
    history = read_history_state(store)
    queue = read_queue(store)  # results are checked against the jobs as queued (jobs/publish/state/matches.py)
    with progress.step("verify", "publish: verify", total=0, unit="results"):
        collected = verify_results(store, config, already=history.holding, queue=queue.jobs, clock=clock)
    state = PublishState(accepted=collected.accepted, rejected=collected.rejected, settling=collected.settling,
                         deferred=collected.deferred,
                         untrusted_workers=collected.trust.refused, trust_note=collected.trust.note,
                         public_keys=rebuilder_keys(store, key))
    for r in collected.rejected:
        log.warning("rejected %s: %s %s", r.key, r.reason, r.detail)
    _check(keeper)
    # Before compacting: once compacted a result may be pruned, and an attestation it carried
    # is then only where this keeps it (the history row names the object).
    state.countersigned, state.attestation_problems, state.attestation_batch, rows = keep_accepted_attestations(
        store, config, key, collected.accepted, collected.trust.keys)
    _check(keeper)
    compacted = compact(store, rows, current=history)
    state.history_rows_added = len(compacted.added)
    state.history = compacted.history.table

    applied_nonces = read_applied(store)
    requests, state.requests_rejected = load_requests(store, config, now=now, applied=applied_nonces)
    for r in state.requests_rejected:
        log.warning("rejected request %s: %s %s", r.key, r.reason, r.detail)
    summaries = build_summaries(store) if requests else {}
    state_rows = current_state_rows(store) if any(r.verb != "drop" for r in requests) else []
    rows = _unapplied(compacted.history.table, queue.jobs)
    outcome: list[tuple[ResultChanges, RequestChanges]] = []

    def change(jobs: dict[str, JobRow]) -> dict[str, JobRow]:
        jobs, results = apply_results(jobs, rows, config.schedule, now)
        jobs, applied = apply_loaded(jobs, requests, state_rows=state_rows, history=summaries,
                                     latest_attempts=collected.latest_attempts, now=now)
        outcome.append((results, applied))
        return jobs

    _check(keeper)
    state.queue, _ = update_queue(store, change, meta={"by": "publish"}, current=queue)
    if outcome:
        state.queue_changes, state.request_changes = outcome[-1]
    # Remember the nonces before deleting: a request must never act twice, and one left by a
    # kill between the two is recognised as applied (and deleted) by the next run.
    _check(keeper)
    record_applied(store, config, requests, now=now, applied=applied_nonces)
    for req in requests:
        _check(keeper)
        store.delete(req.key)  # only now: the queue update that applied it has landed
    for left in state.requests_rejected:
        if left.reason == Refusal.ALREADY_APPLIED:
            store.delete(left.key)
    state.requests_applied = [r.key for r in requests]
    _check(keeper)
    # Claims of builds compacted before this run only: a worker that read the queue just
    # before this run's update still finds the claims of what this run compacted.
    state.pruned = prune(store, collected.compacted, history.holding, now=now,
                         settle=config.lease.ttl + config.lease.clock_skew, claims=collected.claims)
    collect_orphans(store)
    return state


def verify_results(store: Store, config: RebuilderConfig, *,
                   already: AbstractSet[str] | Callable[[list[str]], AbstractSet[str]],
                   queue: Mapping[str, JobRow] | None = None, clock: Callable[[], float] = time.time) -> Collected:
    """`verify.collect`, after saving the enrolment records publish accepted for the first time."""
    trust = trusted_workers(store, config)
    if trust.enrolled is not None and trust.enrolled.changed:
        write_enrolled(store, trust.enrolled)
    return collect(store, config, already=already, queue=queue, clock=clock, trust=trust)


def write_enrolled(store: Store, enrolled: Enrolled) -> None:
    """Save publish's copy of the enrolment records (one object, replaced whole: a kill leaves the old or the new one)."""
    store.put(ENROLLED, enrolled_document(enrolled), content_type="application/json")


def record_applied(store: Store, config: RebuilderConfig, requests: Sequence[Request], *, now: datetime,
                   applied: AppliedNonces | None = None) -> AppliedNonces:
    """Save the nonces of `requests` as applied (`requests.applied_after`), before they are deleted."""
    applied, document = applied_after(config, requests, now=now,
                                      applied=read_applied(store) if applied is None else applied)
    if document is not None:
        store.put(APPLIED_REQUESTS, document, content_type="application/json")
    return applied


def compact(store: Store, rows: Iterable[ResultRow], *, current: HistoryState | None = None,
            attempts: int = 10) -> Compacted:
    """Append the rows whose build id the history lacks (`compact.prepare`); write nothing if there are none.

    Order: the new part, then the manifest, both create-only; the pointer last, by
    compare-and-swap (jobs/publish/state/compact.py).
    """
    rows = list(rows)
    pointer = Pointer(store, HISTORY_PREFIX)
    state = current
    for _ in range(attempts):
        state = state or read_history_state(store)
        plan = prepare(state, rows)
        if plan is None:
            return Compacted((), None, None, False, state)
        # put_new: a retried write whose first answer was lost finds its own bytes (a success)
        put_new(store, plan.part, plan.part_body, content_type=PARQUET)
        put_new(store, plan.manifest, plan.manifest_body, content_type="application/json")
        try:
            value = pointer.advance(plan.manifest, plan.pointer_meta, state.pointer, state.etag)
        except PreconditionFailed:
            # Another publisher moved the history (the lock should prevent it): never
            # referenced, so ours can go; start over from the newer history.
            store.delete(plan.manifest)
            store.delete(plan.part)
            state = None
            continue
        return Compacted(plan.added, plan.part, plan.manifest, plan.merged,
                         HistoryState(plan.table, plan.parts, value, None, plan.build_ids))
    raise HistoryBusy(f"history changed {attempts} times while this compaction was prepared", key=pointer.key)


def collect_orphans(store: Store, *, min_age_seconds: float = 86400.0) -> list[str]:
    """Delete the history objects `compact.orphans` finds; returns their keys."""
    removed = orphans(store, min_age_seconds=min_age_seconds)
    for key in removed:
        store.delete(key)
    return removed


def rebuilder_signing_key(config: RebuilderConfig) -> Ed25519PrivateKey:
    """The rebuilder's own key (`[publish] signing_key`).

    A configured path must exist (a typo would otherwise silently start a second rebuilder
    identity, published next to the real one); only the unset default path is created on
    first use, and that is said on stderr.
    """
    if config.publish.signing_key is not None:
        return load_configured_key(config.publish.signing_key, setting="[publish] signing_key")
    path = Path(config.publish.signing_key_path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
    key, created = ensure_key(path)
    if created:
        print(f"publish: created the rebuilder signing key {path} (key id {key_id(key.public_key())}); "
              "back it up, its public key is published", file=sys.stderr)
    return key


def rebuilder_keys(store: Store, key: Ed25519PrivateKey) -> dict[str, list[str]]:
    """The public-keys feed: the current key first, then every earlier one publish signed with.

    Attestations countersigned before a key rotation keep their old signature, so the old
    key stays published; `REBUILDER_KEYS` is the list (remove a compromised key from it).
    """
    current = public_key_pem(key.public_key())
    try:
        known = json.loads(store.get(REBUILDER_KEYS).data).get("keys", [])
        known = [k for k in known if isinstance(k, str)]
    except NotFound:
        known = []
    except (ValueError, AttributeError) as exc:
        raise ValueError(f"{REBUILDER_KEYS} is unreadable ({exc}); fix or delete it") from None
    if current not in known:
        known.append(current)
        store.put(REBUILDER_KEYS, json.dumps({"keys": known}, indent=1).encode(), content_type="application/json")
    return {"current": [current] + [k for k in known if k != current]}


def prune(store: Store, compacted_results: list[str],
          history_ids: AbstractSet[str] | Callable[[list[str]], AbstractSet[str]], *, now: datetime,
          settle: float, claims: Iterable[ObjectInfo] | None = None) -> int:
    """Delete the result and claim objects of builds the history holds; returns how many.

    Runs after the queue update landed, so nothing needs them any more: a result found
    again (a worker that read a queue older than the update) has a build id the history
    holds and is skipped unread. A claim goes only once untouched for `settle` seconds
    (the lease TTL and skew), so its holder has long released it or lost it. Results and
    claims of builds compacted in this very run go in the next one (the caller passes the
    history as it was before this run's compaction): a worker that read the queue just
    before this run's update would otherwise find no claim and build the job again.
    Without this every publish would list every result and claim ever written. `claims`:
    verification's listing of `claims/` in this run (listed here when not given; what was
    written since belongs to no build the history held before this run).
    """
    removed = 0
    for key in compacted_results:
        store.delete(key)
        removed += 1
    listed = [(info, CLAIM_KEY.fullmatch(info.key) or CLAIM_NOTICE_KEY.fullmatch(info.key))
              for info in (store.list(CLAIMS) if claims is None else claims)]
    if callable(history_ids):  # HistoryState.holding: asked for the claimed builds only
        history_ids = history_ids([build_id(m.group(1), int(m.group(2))) for _, m in listed if m is not None])
    for info, match in listed:
        if match is None or build_id(match.group(1), int(match.group(2))) not in history_ids:
            continue
        if info.last_modified is not None and (now - info.last_modified).total_seconds() < settle:
            continue
        store.delete(info.key)
        removed += 1
    return removed


def _unapplied(table: pa.Table, jobs: dict[str, JobRow]) -> list[ResultRow]:
    """History rows that may still change the queue: for queued jobs, at or after the queued attempt."""
    if not jobs or table.num_rows == 0:
        return []
    # Select in Arrow: the history rows of queued jobs run to hundreds of thousands, and
    # turning each into a record costs ~30 µs; only those at or after the queued attempt matter.
    ids = pa.array(list(jobs), pa.string())
    attempts = pa.array([j.attempt for j in jobs.values()], pa.int64())
    position = pc.index_in(table.column("job_id"), value_set=ids)  # null: not queued
    queued_attempt = pc.take(attempts, pc.fill_null(position, 0))
    keep = pc.and_(pc.is_valid(position),
                   pc.greater_equal(pc.cast(table.column("attempt"), pa.int64()), queued_attempt))
    rows = from_table(table.filter(pc.fill_null(keep, False)), HistoryRow)
    return [r for r in rows if isinstance(r, ResultRow) and r.attempt >= jobs[r.job_id].attempt]


def keep_accepted_attestations(store: Store, config: RebuilderConfig, key: Ed25519PrivateKey,
                               accepted: Sequence[Accepted], workers: Mapping[str, Ed25519PublicKey]
                               ) -> tuple[dict[str, dict[str, Any]], dict[str, str], str | None, list[ResultRow]]:
    """Keep the accepted GOOD results' attestations in one object of this run, before they are compacted.

    Every one is countersigned when `[http] transparently_sign_attestations` (else only those
    a result carried inside it are kept, as their worker signed them: a worker's file in
    builds/ stays where the site copies it from). The object is
    `history/attestations/run-<name>.json`, `{"schema": "rebuilder.countersigned/1", "links":
    {build id: link}}` (the form the site reads), written once, create-only. Returns the links,
    why the others were not kept (build id -> reason), the object's key (None: nothing kept)
    and the rows to compact: those whose attestation the result carried name the object as
    their `attestation_key`, so the site, and a run that must countersign again after a kill,
    find it there once the result is pruned. A run killed after this write and before its
    compaction leaves the object unreferenced; the next run keeps the same links again.
    """
    sign = config.http.transparently_sign_attestations
    checked = {a.row.build_id: a.attestation for a in accepted if a.attestation is not None}
    links, problems = countersign(store, key if sign else None, [a.row for a in accepted if sign or a.carried],
                                  workers, checked=checked)
    rows = [a.row for a in accepted]
    if not links:
        return links, problems, None, rows
    batch = attestation_batch_key(unique_name(""))
    body = {"schema": ATTESTATION_BATCH_SCHEMA, "links": {k: links[k] for k in sorted(links)}}
    put_new(store, batch, json.dumps(body, sort_keys=True).encode(), content_type="application/json")
    rows = [replace(a.row, attestation_key=batch) if a.carried and a.row.build_id in links else a.row
            for a in accepted]
    return links, problems, batch, rows


def countersign(store: Reads, key: Ed25519PrivateKey | None, rows: Iterable[ResultRow],
                workers: Mapping[str, Ed25519PublicKey], *, checked: Mapping[str, bytes] | None = None
                ) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """The attestations of GOOD results, verified against their worker's key and countersigned.

    Returns (build id -> countersigned in-toto link, build id -> why it was not countersigned).
    `workers` is `verify.trusted_workers(...).keys`; the site writer may call this for any
    history row whose attestation it has not published yet. `checked`: build id -> the
    attestation's bytes as verification read them (not read again; a worker's file is still
    checked against the signed digest and the worker's signature here); a row without
    `attestation_key` has its attestation only there (the result carried it). A row whose
    `attestation_key` is a run's kept attestations (`keep_accepted_attestations`) has its link read from
    that object (publish's own, one read per object). `key` None: the links are kept as their
    worker signed them, not countersigned.
    """
    signed: dict[str, dict[str, Any]] = {}
    problems: dict[str, str] = {}
    batches: dict[str, dict[str, Any]] = {}
    for row in rows:
        data = (checked or {}).get(row.build_id)
        if row.status is not Status.GOOD or (row.attestation_key is None and data is None):
            continue
        where = row.attestation_key or f"the result of {row.build_id}"
        try:
            if row.attestation_key is not None and ATTESTATION_BATCH_KEY.fullmatch(row.attestation_key):
                link = _kept_link(store, row.attestation_key, row.build_id, batches)
            else:
                if data is None:
                    assert row.attestation_key is not None
                    try:
                        data, _info = read_object(store, row.attestation_key, MAX_ATTESTATION_BYTES)
                    except OverLimit as exc:
                        raise ValueError(exc.message) from None
                if row.attestation_key is not None:  # a worker's file in builds/: bound by its signed digest
                    bound = {f.key: f.sha256 for f in row.files}.get(row.attestation_key)
                    if bound != hashlib.sha256(data).hexdigest():  # swapped in builds/ after it was accepted
                        raise ValueError("the stored attestation is not the one its result signed")
                link = json.loads(data)
            if row.worker_key_id not in workers:
                raise SignatureError("the worker is not trusted", reason=SignatureError.UNKNOWN_KEY)
            trusted = {row.worker_key_id: workers[row.worker_key_id]}
            if key is None:
                verify_link(link, trusted)
                signed[row.build_id] = link
            else:  # verified, then countersigned (the link checked and encoded once for both)
                signed[row.build_id] = verify_and_countersign(link, trusted, key)
        except NotFound:
            problems[row.build_id] = f"{where} does not exist"
        except SignatureError as exc:
            problems[row.build_id] = f"worker signature does not verify: {exc.reason}"
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: nested too deeply
            problems[row.build_id] = f"unreadable attestation: {str(exc)[:200] or 'nested too deeply'}"
    return signed, problems


def _kept_link(store: Reads, key: str, build_id: str, batches: dict[str, dict[str, Any]]) -> Any:
    """One build's link from a run's kept attestations (read once per object; NotFound: no such object)."""
    links = batches.get(key)
    if links is None:
        try:
            data, _info = read_object(store, key, MAX_ATTESTATION_BYTES * 1000)
        except OverLimit as exc:
            raise ValueError(exc.message) from None
        doc = json.loads(data)
        links = doc.get("links") if isinstance(doc, dict) and doc.get("schema") == ATTESTATION_BATCH_SCHEMA else None
        if not isinstance(links, dict):
            raise ValueError(f"{key} is not a {ATTESTATION_BATCH_SCHEMA} object")
        batches[key] = links
    if build_id not in links:
        raise ValueError(f"{key} holds no attestation of {build_id}")
    return links[build_id]
