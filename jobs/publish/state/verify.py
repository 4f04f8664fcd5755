"""Which results publish trusts (docs/design.md#invariants, invariant 5): everything in the bucket is untrusted input.

Trusted worker keys are every key in `[worker] authorized_workers`, plus every enrolled
worker (`workers/<key-id>.json`) whose record is signed by the key it names and whose
`signup` HMAC verifies with `[worker] signup_secret`, judged from publish's own copy of the
records it accepted (`jobs.publish.state.enrolment`), so overwriting a record de-trusts nobody.
With neither configured no result is accepted at all (there is no "trust on first use").

A result is stored as its worker's done receipt, `claims/<job-id>/<attempt>.done/<key-id>.json`
(workers before this version stored it as `results/<job-id>/<attempt>.json`, beside a
separate receipt; both are judged alike). It is accepted only if, in this order:
size ≤ 1 MiB (checked before reading) → JSON → signed by a trusted key → payload is
`rebuilder.result/3` (or `/2`) with a strict `ResultRow` → the row's `worker_key_id` is the signer →
it is stored under its own key: its job, its attempt and, as a receipt, its signer's key id
(a copy under another job's, attempt's or worker's key is a replay) →
a FAIL lists no artifacts → it matches the queued job (`matches.check_job`: queued, at this
attempt, same distro, source, version and artifacts) and, for GOOD artifacts, the index's
digests → the claim `claims/<job-id>/<attempt>.json` exists, carries the result's claim
token and is held by the signer → no trusted worker signed that it held the attempt with
another claim (`claims/<job-id>/<attempt>.{lost,done}/<key-id>.json`: a takeover notice, or
another result or receipt) → every file it names is
signed, under the claim's `build_prefix`, and stored with the signed size and SHA-256 →
a GOOD result's attestation (inside the signed result, `rebuilder.result/3`, or a file the
result names and signs the digest of, from workers before that: `rebuilder.result/2`) is the
signer's and names the index's digests. Rejections
are listed with a reason code (`Reason`) for operators (the rejected-results feed); they
are never published and never stop publish. Nothing is deleted: a result rejected
because its worker was not yet trusted is accepted by the first publish after the
operator trusts the key. Two different results for one attempt that both pass (only their
own signer could sign both) are both refused. Every object a worker wrote is read and parsed
at most once per run (`jobs.publish.state.workerobjects`: the capped reads, the JSON and the
strict parse of a result's payload; this module judges). docs/trust.md explains what each
check prevents.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from jobs.core import progress
from jobs.core.bounded import cap
from jobs.core.config import RebuilderConfig
from jobs.core.errors import ConfigError
from jobs.core.layout import (
    CLAIM_NOTICE_KEY,
    CLAIMS,
    RESULT_KEY,
    RESULTS,
    WORKER_KEY,
    WORKERS,
    build_prefix,
    claim_key,
    claim_notice_key,
    result_key,
    worker_key,
)
from jobs.core.lease import Leases
from jobs.core.model import JobRow, ResultRow, Status, build_id, format_timestamp
from jobs.core.queue import read_queue
from jobs.core.signing import (
    KeyFormatError,
    SignatureError,
    key_id,
    public_key_from_b64,
    verify_document,
)
from jobs.core.store import NotFound, ObjectInfo, Reads
from jobs.publish.state.enrolment import WORKER_SCHEMA as WORKER_SCHEMA  # the worker writes it (jobs/work/identity.py)
from jobs.publish.state.enrolment import (
    Enrolled,
    Enrolment,
    RecordError,
    check_record,
    read_enrolled,
    read_record,
)
from jobs.publish.state.matches import Mismatch, check_attestation, check_digests, check_files, check_job
from jobs.publish.state.workerobjects import MAX_NOTICE_BYTES as MAX_NOTICE_BYTES
from jobs.publish.state.workerobjects import MAX_RESULT_BYTES as MAX_RESULT_BYTES
from jobs.publish.state.workerobjects import NOTICE_SCHEMAS as NOTICE_SCHEMAS
from jobs.publish.state.workerobjects import PREVIOUS_RESULT_SCHEMA as PREVIOUS_RESULT_SCHEMA
from jobs.publish.state.workerobjects import RESULT_SCHEMA as RESULT_SCHEMA
from jobs.publish.state.workerobjects import Reason as Reason
from jobs.publish.state.workerobjects import (
    Reject,
    WorkerObjects,
    notices_by_attempt,
    parse_result,
)

NO_TRUST = ("no worker is trusted: set [worker] authorized_workers or [worker] signup_secret "
            "in rebuilderd.conf; until then no result is accepted")


MAX_RUN_ATTESTATION_BYTES = cap("run_attestations")  # what one run accepts (`_defer_past_budget`)

@dataclass(frozen=True)
class Rejected:
    """An object publish did not trust, and why (`reason` is stable, `detail` is for people)."""

    key: str
    reason: str  # a `Reason` for results and enrolments, a `requests.Refusal` for admin requests
    detail: str = ""
    worker: str | None = None  # the key id that signed it, once the signature verified
    at: datetime | None = None  # when the object was last written (the store's clock)


@dataclass(frozen=True)
class Accepted:
    """A verified result: its row, where it is stored, the signed document and its claim token."""

    row: ResultRow
    key: str
    doc: dict[str, Any]
    claim_token: str
    attestation: bytes | None = None  # a GOOD build's attestation, as checked (countersigned from these bytes)
    # The attestation came inside the signed result (`rebuilder.result/3`), not as a file in
    # builds/: publish keeps it itself (history/attestations/) before the result can be pruned.
    carried: bool = False


@dataclass(frozen=True)
class Trust:
    """The worker keys publish trusts, where each came from, and enrolments it refused."""

    keys: dict[str, Ed25519PublicKey]
    sources: dict[str, str]  # key id -> "authorized_workers" or "enrolled as <name>"
    refused: list[Rejected] = field(default_factory=list)
    note: str | None = None  # set when nothing can be trusted
    names: dict[str, str] = field(default_factory=dict)  # key id -> name, of every accepted enrolment record
    # publish's copy of the records it accepted, with the new ones (`changed`): the state
    # writer (`jobs.publish.state.update`) saves it
    enrolled: Enrolled | None = None


@dataclass
class Collected:
    """What `collect` found under results/."""

    accepted: list[Accepted]
    rejected: list[Rejected]
    trust: Trust
    # Highest attempt with a result object per job (accepted, rejected or compacted): a
    # requeue must use a later attempt, since a claim whose result exists is never rebuilt.
    latest_attempts: dict[str, int] = field(default_factory=dict)
    compacted: list[str] = field(default_factory=list)  # result keys of builds already in the history
    # Results that passed every check but stand beside another trusted worker's start
    # marker and are younger than the settling time: judged again by a later publish.
    settling: list[str] = field(default_factory=list)
    # Results that passed every check after this run's attestations reached `run_attestations`:
    # left for a later publish, so one run's kept-attestations object stays readable.
    deferred: list[str] = field(default_factory=list)
    claims: list[ObjectInfo] = field(default_factory=list)  # the listing of claims/ it judged from (`prune` reuses it)


class _Settling(Exception):
    """Not judged yet: another trusted worker announced this attempt, and the result is too recent."""


@dataclass(frozen=True, slots=True)
class RejectedResult:
    """A result publish refused (never published, never changing a verdict), for operators."""

    key: str  # the object refused, e.g. results/<job-id>/<attempt>.json
    job_id: str | None
    attempt: int | None
    worker_key_id: str | None  # the signer, when the signature verified
    reason: str  # a stable reason code (jobs.publish.state.verify.Reason)
    detail: str
    at: datetime | None  # when the object was last written (the store's clock)


def _result_match(key: str) -> re.Match[str] | None:
    """The key of a result, as a result (`results/…`) or as its worker's done receipt: groups job id, attempt."""
    match = CLAIM_NOTICE_KEY.fullmatch(key)
    return match if match is not None and match.group(3) == "done" else RESULT_KEY.fullmatch(key)


def rejected_row(rejected: Rejected) -> RejectedResult:
    """A refused result as the rejected-results list shows it."""
    match = _result_match(rejected.key)
    return RejectedResult(key=rejected.key, job_id=match.group(1) if match else None,
                          attempt=int(match.group(2)) if match else None, worker_key_id=rejected.worker,
                          reason=str(rejected.reason), detail=rejected.detail, at=rejected.at)


def trusted_workers(store: Reads, config: RebuilderConfig) -> Trust:
    """The keys of `authorized_workers` and of workers enrolled with the signup secret.

    Enrolments are judged from publish's own copy of the records it accepted
    (`jobs.publish.state.enrolment`), so a record overwritten or deleted in `workers/` de-trusts
    nobody; new valid records join the copy (`Trust.enrolled`), which `jobs.publish.state.update` saves.
    """
    keys: dict[str, Ed25519PublicKey] = {}
    sources: dict[str, str] = {}
    for i, text in enumerate(config.worker.authorized_workers):
        try:
            pub = public_key_from_b64(text)
        except KeyFormatError as exc:
            raise ConfigError(f"entry {i} is not a base64 Ed25519 public key: {exc}",
                              key="worker.authorized_workers", expected="base64 of a raw 32-byte key") from None
        keys[key_id(pub)] = pub
        sources[key_id(pub)] = "authorized_workers"
    authorized = dict(keys)
    refused: list[Rejected] = []
    secret = config.worker.signup_secret
    names: dict[str, str] = {}
    enrolled = None
    if secret or authorized:
        enrolled = read_enrolled(store)
        accepted: dict[str, Enrolment] = {}
        for kid, doc in enrolled.docs.items():
            try:
                found = check_record(doc, stored_as=worker_key(kid), secret=secret, authorized=authorized)
            except (RecordError, ValueError):
                continue  # made with a secret rotated since, or a key no longer authorized
            accepted[kid] = found
        for info in store.list(WORKERS):
            match = WORKER_KEY.fullmatch(info.key)
            if not secret and (match is None or match.group(1) not in authorized):
                continue  # without a secret only authorized keys' records can verify
            try:
                found = check_record(read_record(store, info.key, info.size), stored_as=info.key, secret=secret,
                                     authorized=authorized)
            except RecordError as exc:
                kept = match is not None and match.group(1) in accepted
                reason = Reason(exc.reason) if exc.reason in Reason._value2member_map_ else Reason.MALFORMED
                refused.append(Rejected(info.key, reason, exc.detail + (
                    "; publish keeps trusting the record it accepted earlier" if kept else "")))
                continue
            except NotFound:
                continue
            if found.key_id not in accepted:
                accepted[found.key_id] = found
                enrolled.docs[found.key_id] = found.doc
                enrolled.changed = True
        for kid, found in sorted(accepted.items()):
            names[kid] = found.name
            if found.signup:
                keys.setdefault(kid, found.public_key)
                sources.setdefault(kid, f"enrolled as {found.name}")
    return Trust(keys, sources, refused, None if keys or secret else NO_TRUST, names, enrolled)


def _verify(doc: Any, trusted: dict[str, Ed25519PublicKey]) -> tuple[dict[str, Any], str]:
    try:
        return verify_document(doc, trusted)
    except SignatureError as exc:
        reason = Reason(exc.reason) if exc.reason in Reason._value2member_map_ else Reason.MALFORMED
        raise Reject(reason, exc.message) from None


def collect(store: Reads, config: RebuilderConfig, *,
            already: AbstractSet[str] | Callable[[list[str]], AbstractSet[str]],
            queue: Mapping[str, JobRow] | None = None, clock: Callable[[], float] = time.time,
            trust: Trust | None = None) -> Collected:
    """Verify every result not compacted yet (build ids in `already` are skipped unread).

    `already` is a set of build ids, or a function returning those of the given ids that
    are compacted (`HistoryState.holding`). `queue` is the current queue's jobs (read here
    when not given): a result is checked against the job as queued. `clock` is wall time,
    compared with the store's modification times for the settling rule (docs/trust.md).
    `trust` is `trusted_workers(store, config)` (computed here when not given). Only reads:
    `jobs.publish.state.update.verify_results` also saves the enrolments learnt.

    Lists `results/` (results of earlier workers) and `claims/` (results stored as done
    receipts, and the notices they are judged against) once each.
    """
    trust = trust or trusted_workers(store, config)
    leases = Leases(store, ttl=config.lease.ttl, clock_skew=config.lease.clock_skew)
    jobs = read_queue(store).jobs if queue is None else queue
    out = Collected([], [], trust)
    out.claims = list(store.list(CLAIMS))
    listed = [(info, RESULT_KEY.fullmatch(info.key)) for info in store.list(RESULTS)]
    receipts = [(info, m) for info in out.claims
                if (m := CLAIM_NOTICE_KEY.fullmatch(info.key)) is not None and m.group(3) == "done"]
    if callable(already):
        already = already([build_id(m.group(1), int(m.group(2))) for _, m in [*listed, *receipts] if m is not None])
    progress.grow("verify", len(listed) + len(receipts))
    docs = WorkerObjects(store)
    notices = notices_by_attempt(out.claims)
    for info, match in [*listed, *receipts]:
        progress.advance("verify")
        if match is None:
            out.rejected.append(Rejected(info.key, Reason.BAD_KEY, "not results/<job-id>/<attempt>.json",
                                         at=info.last_modified))
            continue
        jid, attempt = match.group(1), int(match.group(2))
        receipt = match.re is CLAIM_NOTICE_KEY
        out.latest_attempts[jid] = max(attempt, out.latest_attempts.get(jid, 0))
        if receipt and build_id(jid, attempt) in already:
            continue  # pruned with the claims of its build (`update.prune`), a TTL after compaction
        if build_id(jid, attempt) in already:
            out.compacted.append(info.key)
            continue
        try:
            if receipt and docs.is_receipt(info):
                continue  # an earlier worker's receipt beside its result in results/: evidence only
            if trust.note is not None:
                raise Reject(Reason.NO_TRUSTED_KEYS, trust.note)
            settled = _settled(info.last_modified, clock(), config.lease.settle_seconds)
            out.accepted.append(_check_result(docs, leases, trust, jobs, notices, info, settled))
        except _Settling:
            out.settling.append(info.key)
        except Reject as exc:
            out.rejected.append(Rejected(info.key, exc.reason, exc.detail, exc.worker, info.last_modified))
        except NotFound:
            continue  # deleted since the listing (by an operator): nothing to judge
    _refuse_doubles(out)
    _defer_past_budget(out, MAX_RUN_ATTESTATION_BYTES)
    return out


def _defer_past_budget(out: Collected, budget: int) -> None:
    """Leave for a later publish the results whose attestations would take this run's past `budget` bytes.

    A run keeps every accepted attestation in one object, which is read back capped (a rerun
    after a kill, the site): a hostile worker reporting a thousand GOOD builds with 1 MiB links
    must not make it unreadable, honest workers' links with it. In listing order; the first
    attestation always fits (one is at most `attestation`, far below the budget).
    """
    total, kept = 0, []
    for a in out.accepted:
        if a.attestation is not None:
            total += len(a.attestation)
            if total > budget:
                out.deferred.append(a.key)
                continue
        kept.append(a)
    out.accepted = kept


def _refuse_doubles(out: Collected) -> None:
    """Refuse every result of an attempt with two different accepted results; keep one of identical copies.

    Only the claim holder's signature passes, so two different ones are that worker's (a key
    used twice, or a compromised worker): neither is believed. An identical copy (the same
    signed result in `results/` and at its receipt key) is the same report.
    """
    by_build: dict[str, list[Accepted]] = {}
    for a in out.accepted:
        by_build.setdefault(a.row.build_id, []).append(a)
    for found in by_build.values():
        if len(found) < 2:
            continue
        drop = {id(a) for a in (found[1:] if all(a.doc == found[0].doc for a in found) else found)}
        out.accepted = [a for a in out.accepted if id(a) not in drop]
        if len(drop) < len(found):
            continue
        keys = sorted(a.key for a in found)
        for a in found:
            out.rejected.append(Rejected(a.key, Reason.REPLAYED, "two different signed results for this attempt: "
                                         + ", ".join(keys), a.row.worker_key_id))


def _settled(modified: datetime | None, now: float, settle: float) -> bool:
    """Whether a result stored at `modified` (the store's clock) is older than the settling time."""
    return modified is not None and now - modified.timestamp() >= settle


EARLIEST_BUILD = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _check_times(row: ResultRow, stored: datetime | None, leases: Leases) -> None:
    """Reject (`timestamp`) a build that started before 1970 or started or finished after its result was stored.

    "After" is by the store's clock (publish's when the store gives none), give or take the lease
    clock skew workers are held to. A far-future `built_at` would make the result its package's
    newest build for good (no honest rebuild could replace its verdict), and a date at either end
    of the calendar overflows the schedule's and the charts' arithmetic, every publish after.
    """
    now = stored if stored is not None else datetime.fromtimestamp(leases.clock(), timezone.utc)
    latest = now + timedelta(seconds=leases.clock_skew + 1)  # + 1: S3 gives Last-Modified in whole seconds
    for name in ("started_at", "built_at"):
        value = getattr(row, name)
        if not EARLIEST_BUILD <= value <= latest:
            raise Reject(Reason.TIMESTAMP, f"{name} {format_timestamp(value)} is before 1970 or after the result "
                                           f"was stored ({format_timestamp(latest)} with the clock skew)")


def _check_result(docs: WorkerObjects, leases: Leases, trust: Trust, jobs: Mapping[str, JobRow],
                  notices: Mapping[tuple[str, int], list[ObjectInfo]], info: ObjectInfo, settled: bool) -> Accepted:
    """Verify one result object (see the module docstring)."""
    doc = docs.get(info, MAX_RESULT_BYTES)
    payload, signer = _verify(doc, trust.keys)
    try:
        row, token, attestation, carried = _check_signed(docs, leases, trust, jobs, notices, info.key, payload,
                                                         signer, settled, stored=info.last_modified)
    except Reject as exc:
        exc.worker = signer
        raise
    except Mismatch as exc:
        raise Reject(Reason(exc.reason), exc.detail, signer) from None
    return Accepted(row, info.key, doc, token, attestation, carried)


def _check_signed(docs: WorkerObjects, leases: Leases, trust: Trust, jobs: Mapping[str, JobRow],
                  notices: Mapping[tuple[str, int], list[ObjectInfo]], key: str, payload: dict[str, Any],
                  signer: str, settled: bool, *, stored: datetime | None = None
                  ) -> tuple[ResultRow, str, bytes | None, bool]:
    parsed = parse_result(payload)
    row, token = parsed.row, parsed.token
    signed_claim = payload["claim"]
    if row.worker_key_id != signer:
        raise Reject(Reason.WRONG_SIGNER, f"signed by {signer[:16]}, claims worker {row.worker_key_id[:16]}")
    if key not in (result_key(row.job_id, row.attempt), claim_notice_key(row.job_id, row.attempt, "done", signer)):
        raise Reject(Reason.REPLAYED, f"the result of {row.build_id} by {signer[:16]} stored under another key")
    _check_times(row, stored, leases)
    if row.status is Status.FAIL and row.artifacts:
        raise Reject(Reason.FAIL_WITH_ARTIFACTS, f"{len(row.artifacts)} artifacts")
    job = check_job(row, jobs)
    index = check_digests(row, job)
    claim = leases.read(claim_key(row.job_id, row.attempt))
    if claim is None or claim[0] is None:
        raise Reject(Reason.NO_CLAIM, "no readable claim for this attempt")
    state = claim[0]
    # A claim taken over after its holder died between writing the result and releasing it
    # is released as done with the finished claim's token and holder (jobs/work/claim.py).
    if state.meta.get("result_token") == token and state.meta.get("result_holder") == signer:
        pass
    elif state.token != token or state.holder != signer:
        raise Reject(Reason.NOT_CLAIM_HOLDER, f"claim held by {state.holder[:16]} with another token"
                      if state.holder != signer else "claim token differs from the result's")
    elif (state.generation, state.meta.get("queue")) != (signed_claim["generation"], signed_claim["queue"]):
        raise Reject(Reason.NOT_CLAIM_HOLDER, "the claim's generation or queue version is not the one signed")
    contested = _check_notices(docs, trust, notices.get((row.job_id, row.attempt), []), row, token, key)
    attestation = check_files(docs.store, row, build_prefix(row.job_id, row.attempt, token) + "/")
    if parsed.carries:
        attestation = parsed.attestation
    attestation = check_attestation(docs.store, row, index, trust.keys[signer], attestation, carried=parsed.carries)
    if contested and not settled:
        raise _Settling()
    return row, token, attestation, parsed.carries


def _check_notices(docs: WorkerObjects, trust: Trust, found: list[ObjectInfo], row: ResultRow, token: str,
                   own: str) -> bool:
    """Refuse the result if a trusted worker signed that it held this attempt with another claim.

    Notices are `claims/<job-id>/<attempt>.lost/<key-id>.json` (the claim was replaced while
    live) and `.done/<key-id>.json` (the worker reported the attempt: its result, or an
    earlier worker's receipt beside its result in `results/`). Either says "this attempt was
    mine, with token T": only that worker's result with T may be accepted. Only notices
    under a trusted key id count. One that does not verify as that key's notice (or result)
    was overwritten by somebody else: that counts too (fail closed), since whoever can write
    there could otherwise erase the evidence with a plain PUT. `own` is the result's own key
    (judged as the result itself).

    Returns whether another trusted worker's start marker (`.start/<key-id>.json`, not
    withdrawn) stands for the attempt: that worker may hold, or have held, the claim, and
    may not have noticed a takeover yet, so the result must settle first.
    """
    contested = False
    for info in found:
        key = info.key
        match = CLAIM_NOTICE_KEY.fullmatch(key)
        if key == own or match is None or match.group(4) not in trust.keys:
            continue  # the result itself, or not a trusted worker's: anyone can write noise here
        kind, named = match.group(3), match.group(4)
        if kind == "start" and named == row.worker_key_id:
            continue  # the result's own worker announcing its claim: nothing to read
        try:
            said = _notice(docs, trust, info, kind, named)
        except NotFound:
            continue
        if said is None:
            raise Reject(Reason.CLAIM_TAKEN_OVER, f"the claim notice {key} of worker {named[:16]} was "
                                                   "overwritten by another writer")
        if said.get("job_id") != row.job_id or said.get("attempt") != row.attempt:
            continue
        if kind == "start":
            contested = contested or said.get("withdrawn") is not True
            continue
        if said.get("token") == token and named == row.worker_key_id:
            continue  # its own claim
        what = "its live claim on this attempt was replaced" if kind == "lost" else "it reported this attempt"
        raise Reject(Reason.CLAIM_TAKEN_OVER, f"worker {named[:16]} signed that {what} with another claim "
                                               f"({key})")
    return contested


def _notice(docs: WorkerObjects, trust: Trust, info: ObjectInfo, kind: str, named: str) -> dict[str, Any] | None:
    """What a trusted worker's marker, notice, receipt or result says (job_id, attempt, token...); None if it is not
    that worker's valid document. A result at a done receipt's key says its job, attempt and claim token."""
    try:
        doc = docs.get(info, MAX_RESULT_BYTES if kind == "done" else MAX_NOTICE_BYTES)
        notice, _ = verify_document(doc, {named: trust.keys[named]})
    except (Reject, SignatureError):
        return None
    if not isinstance(notice, dict):
        return None
    if kind == "done" and notice.get("schema") in (RESULT_SCHEMA, PREVIOUS_RESULT_SCHEMA):
        try:
            parsed = parse_result(notice)
        except Reject:
            return None
        reported, token = parsed.row, parsed.token
        if reported.worker_key_id != named:
            return None
        return {"job_id": reported.job_id, "attempt": reported.attempt, "token": token}
    return notice if notice.get("schema") == NOTICE_SCHEMAS[kind] else None
