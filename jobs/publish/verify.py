"""Which results publish trusts (docs/design.md#invariants, invariant 5): everything in the bucket is untrusted input.

Trusted worker keys are every key in `[worker] authorized_workers`, plus every enrolled
worker (`workers/<key-id>.json`) whose record is signed by the key it names and whose
`signup` HMAC verifies with `[worker] signup_secret`, judged from publish's own copy of the
records it accepted (`jobs.publish.enrolment`), so overwriting a record de-trusts nobody.
With neither configured no result is accepted at all (there is no "trust on first use").

A result `results/<job-id>/<attempt>.json` is accepted only if, in this order:
size ≤ 1 MiB (checked before reading) → JSON → signed by a trusted key → payload is
`rebuilder.result/1` with a strict `ResultRow` → the row's `worker_key_id` is the signer →
it is stored under its own key (a copy under another job's or attempt's key is a replay) →
a FAIL lists no artifacts → the claim `claims/<job-id>/<attempt>.json` exists, carries the
result's claim token and is held by the signer → its files lie under the claim's
`build_prefix` and its log exists. Rejections are listed with a reason code (`Reason`) for
operators; they are never published and never stop publish. Nothing is deleted: a result
rejected because its worker was not yet trusted is accepted by the first publish after the
operator trusts the key.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from jobs.core import progress
from jobs.core.config import RebuilderConfig
from jobs.core.errors import ConfigError
from jobs.core.layout import build_prefix, claim_key, result_key, worker_key
from jobs.core.lease import Leases
from jobs.core.model import ResultRow, SchemaError, Status, build_id, check_result_fields, record_from_json
from jobs.core.signing import (
    KeyFormatError,
    SignatureError,
    key_id,
    public_key_from_b64,
    verify_document,
)
from jobs.core.store import NotFound, Store
from jobs.publish.enrolment import WORKER_SCHEMA as WORKER_SCHEMA  # the worker writes it (jobs/work/identity.py)
from jobs.publish.enrolment import (
    Enrolment,
    RecordError,
    check_record,
    read_enrolled,
    read_record,
    write_enrolled,
)

# Payload schemas the worker writes (jobs/work/report.py, jobs/work/identity.py); the tests
# check they are the same strings, so the two sides cannot drift apart silently.
RESULT_SCHEMA = "rebuilder.result/1"
MAX_RESULT_BYTES = 1 << 20  # a result is a few KiB; anything near this is an attack or a bug
_WORKER_KEY = re.compile(r"workers/([A-Za-z0-9]+)\.json")
_RESULT_KEY = re.compile(r"results/([0-9a-f]{32})/([1-9][0-9]{0,8})\.json")
NO_TRUST = ("no worker is trusted: set [worker] authorized_workers or [worker] signup_secret "
            "in rebuilderd.conf; until then no result is accepted")


class Reason(StrEnum):
    """Why a result (or an enrolment record) was not trusted."""

    NO_TRUSTED_KEYS = "no-trusted-keys"
    BAD_KEY = "bad-key"  # the object key is not results/<job-id>/<attempt>.json
    OVERSIZED = "oversized"
    NOT_JSON = "not-json"
    MALFORMED = "malformed"  # envelope shape, bad hex (SignatureError.MALFORMED)
    UNSIGNED = "unsigned"
    UNKNOWN_KEY = "unknown-key"
    BAD_SIGNATURE = "bad-signature"  # tampered, or forged under a trusted key id
    SCHEMA = "schema"  # payload or ResultRow does not parse
    WRONG_SIGNER = "wrong-signer"  # worker_key_id names another key than the signer's
    REPLAYED = "replayed"  # a valid result copied to another job's or attempt's key
    FAIL_WITH_ARTIFACTS = "fail-with-artifacts"
    NO_CLAIM = "no-claim"
    NOT_CLAIM_HOLDER = "not-claim-holder"  # claim token or holder differ from the result's
    FILES_OUTSIDE_CLAIM = "files-outside-claim"
    MISSING_LOG = "missing-log"
    SIGNUP = "signup"  # enrolment without a valid signup HMAC (nor an authorized key)


@dataclass(frozen=True)
class Rejected:
    """An object publish did not trust, and why (`reason` is stable, `detail` is for people)."""

    key: str
    reason: str  # a `Reason` for results and enrolments, a `requests.Refusal` for admin requests
    detail: str = ""


@dataclass(frozen=True)
class Accepted:
    """A verified result: its row, where it is stored, the signed document and its claim token."""

    row: ResultRow
    key: str
    doc: dict[str, Any]
    claim_token: str


@dataclass(frozen=True)
class Trust:
    """The worker keys publish trusts, where each came from, and enrolments it refused."""

    keys: dict[str, Ed25519PublicKey]
    sources: dict[str, str]  # key id -> "authorized_workers" or "enrolled as <name>"
    refused: list[Rejected] = field(default_factory=list)
    note: str | None = None  # set when nothing can be trusted
    names: dict[str, str] = field(default_factory=dict)  # key id -> name, of every accepted enrolment record


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


class _Reject(Exception):
    def __init__(self, reason: Reason, detail: str = "") -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def trusted_workers(store: Store, config: RebuilderConfig, *, remember: bool = False) -> Trust:
    """The keys of `authorized_workers` and of workers enrolled with the signup secret.

    Enrolments are judged from publish's own copy of the records it accepted
    (`jobs.publish.enrolment`), so a record overwritten or deleted in `workers/` de-trusts
    nobody; new valid records join the copy, which is saved when `remember` (publish).
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
    if secret or authorized:
        enrolled = read_enrolled(store)
        accepted: dict[str, Enrolment] = {}
        for kid, doc in enrolled.docs.items():
            try:
                found = check_record(doc, stored_as=worker_key(kid), secret=secret, authorized=authorized)
            except (RecordError, ValueError):
                continue  # made with a secret rotated since, or a key no longer authorized
            accepted[kid] = found
        for info in store.list("workers/"):
            match = _WORKER_KEY.fullmatch(info.key)
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
        if remember and enrolled.changed:
            write_enrolled(store, enrolled)
        for kid, found in sorted(accepted.items()):
            names[kid] = found.name
            if found.signup:
                keys.setdefault(kid, found.public_key)
                sources.setdefault(kid, f"enrolled as {found.name}")
    return Trust(keys, sources, refused, None if keys or secret else NO_TRUST, names)


def _json(data: bytes, limit: int) -> Any:
    if len(data) > limit:  # grew between the listing and the read
        raise _Reject(Reason.OVERSIZED, f"{len(data)} bytes")
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: nested too deeply
        raise _Reject(Reason.NOT_JSON, str(exc)[:200] or "nested too deeply") from None


def _verify(doc: Any, trusted: dict[str, Ed25519PublicKey]) -> tuple[dict[str, Any], str]:
    try:
        return verify_document(doc, trusted)
    except SignatureError as exc:
        reason = Reason(exc.reason) if exc.reason in Reason._value2member_map_ else Reason.MALFORMED
        raise _Reject(reason, exc.message) from None


def collect(store: Store, config: RebuilderConfig, *,
            already: AbstractSet[str] | Callable[[list[str]], AbstractSet[str]]) -> Collected:
    """Verify every result not compacted yet (build ids in `already` are skipped unread).

    `already` is a set of build ids, or a function returning those of the given ids that
    are compacted (`HistoryState.holding`).
    """
    trust = trusted_workers(store, config, remember=True)
    leases = Leases(store, ttl=config.lease.ttl, clock_skew=config.lease.clock_skew)
    out = Collected([], [], trust)
    listed = [(info, _RESULT_KEY.fullmatch(info.key)) for info in store.list("results/")]
    if callable(already):
        already = already([build_id(m.group(1), int(m.group(2))) for _, m in listed if m is not None])
    progress.grow("verify", len(listed))
    for info, match in listed:
        progress.advance("verify")
        if match is None:
            out.rejected.append(Rejected(info.key, Reason.BAD_KEY, "not results/<job-id>/<attempt>.json"))
            continue
        jid, attempt = match.group(1), int(match.group(2))
        out.latest_attempts[jid] = max(attempt, out.latest_attempts.get(jid, 0))
        if build_id(jid, attempt) in already:
            out.compacted.append(info.key)
            continue
        if trust.note is not None:
            out.rejected.append(Rejected(info.key, Reason.NO_TRUSTED_KEYS, trust.note))
            continue
        try:
            out.accepted.append(_check_result(store, leases, trust, info.key, info.size))
        except _Reject as exc:
            out.rejected.append(Rejected(info.key, exc.reason, exc.detail))
        except NotFound:
            continue  # deleted since the listing (by an operator): nothing to judge
    return out


def _check_result(store: Store, leases: Leases, trust: Trust, key: str, size: int) -> Accepted:
    """Verify one result object (see the module docstring)."""
    if size > MAX_RESULT_BYTES:
        raise _Reject(Reason.OVERSIZED, f"{size} bytes (limit {MAX_RESULT_BYTES})")
    doc = _json(store.get(key).data, MAX_RESULT_BYTES)
    payload, signer = _verify(doc, trust.keys)
    row, token = _parse(payload)
    if row.worker_key_id != signer:
        raise _Reject(Reason.WRONG_SIGNER, f"signed by {signer[:16]}, claims worker {row.worker_key_id[:16]}")
    if key != result_key(row.job_id, row.attempt):
        raise _Reject(Reason.REPLAYED, f"the result of {row.build_id} stored under another key")
    if row.status is Status.FAIL and row.artifacts:
        raise _Reject(Reason.FAIL_WITH_ARTIFACTS, f"{len(row.artifacts)} artifacts")
    claim = leases.read(claim_key(row.job_id, row.attempt))
    if claim is None or claim[0] is None:
        raise _Reject(Reason.NO_CLAIM, "no readable claim for this attempt")
    state = claim[0]
    # A claim taken over after its holder died between writing the result and releasing it
    # is released as done with the finished claim's token and holder (jobs/work/claim.py).
    if state.meta.get("result_token") == token and state.meta.get("result_holder") == signer:
        pass
    elif state.token != token or state.holder != signer:
        raise _Reject(Reason.NOT_CLAIM_HOLDER, f"claim held by {state.holder[:16]} with another token"
                      if state.holder != signer else "claim token differs from the result's")
    prefix = build_prefix(row.job_id, row.attempt, token) + "/"
    for name in ("log_key", "diffoscope_key", "attestation_key"):
        value = getattr(row, name)
        if value is not None and not value.startswith(prefix):
            raise _Reject(Reason.FILES_OUTSIDE_CLAIM, f"{name} {value!r} is not under {prefix}")
    if row.log_key is None:
        raise _Reject(Reason.MISSING_LOG, "the result names no log")
    try:
        store.head(row.log_key)
    except NotFound:
        raise _Reject(Reason.MISSING_LOG, f"{row.log_key} does not exist") from None
    return Accepted(row, key, doc, token)


def _parse(payload: dict[str, Any]) -> tuple[ResultRow, str]:
    if set(payload) != {"schema", "result", "claim"} or payload["schema"] != RESULT_SCHEMA:
        raise _Reject(Reason.SCHEMA, f"payload is not {RESULT_SCHEMA}")
    claim = payload["claim"]
    if not isinstance(claim, dict) or set(claim) != {"token", "generation"}:
        raise _Reject(Reason.SCHEMA, "claim must have exactly 'token' and 'generation'")
    token = claim["token"]
    if not isinstance(token, str) or not token.isascii() or not token.isalnum() or len(token) > 128:
        raise _Reject(Reason.SCHEMA, "claim token is not alphanumeric")
    try:
        row = record_from_json(ResultRow, payload["result"])
        check_result_fields(row)  # lengths and characters (jobs.core.model.limits)
    except SchemaError as exc:
        raise _Reject(Reason.SCHEMA, exc.message[:300]) from None
    assert isinstance(row, ResultRow)
    return row, token
