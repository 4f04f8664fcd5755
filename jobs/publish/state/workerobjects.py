"""The objects workers write, as publish reads them: each read once, capped, and parsed.

`verify` judges results; this module only reads and parses what it judges from. A worker's
object in `claims/` or `results/` is read with one capped GET (a result at most 1 MiB, a
start marker or takeover notice at most 64 KiB; never past the cap, even if it grew after
the listing) and parsed once per publish run (`WorkerObjects`), whether it is judged as a
result or read as another result's evidence. A result's signed payload is parsed strictly
(`parse_result`), in the current format (the attestation inside the signed result) or the
previous one (the attestation a separate object). What cannot be read or parsed raises `Reject` with a stable `Reason`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from jobs.core.bounded import OverLimit, cap, read_capped
from jobs.core.layout import CLAIM_NOTICE_KEY
from jobs.core.model import ResultRow, SchemaError, check_result_fields, record_from_json
from jobs.core.store import ObjectInfo, Reads

# Payload schemas the worker writes (jobs/work/report.py, jobs/work/identity.py); the tests
# check they are the same strings, so the two sides cannot drift apart silently.
RESULT_SCHEMA = "rebuilder.result/3"  # a GOOD build's attestation carried inside the signed result
# Workers before this version: the attestation a separate object under the claim's builds/
# prefix, named by `attestation_key` and bound by its digest in `files` (still accepted).
PREVIOUS_RESULT_SCHEMA = "rebuilder.result/2"
_PAYLOAD_FIELDS = {RESULT_SCHEMA: {"schema", "result", "claim", "attestation"},
                   PREVIOUS_RESULT_SCHEMA: {"schema", "result", "claim"}}
NOTICE_SCHEMAS = {"start": "rebuilder.claim-start/1", "lost": "rebuilder.claim-lost/1",
                  "done": "rebuilder.claim-done/1"}
MAX_NOTICE_BYTES = cap("notice")
MAX_RESULT_BYTES = cap("result")  # a result is a few KiB; anything near this is an attack or a bug


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
    TIMESTAMP = "timestamp"  # started or built before 1970, or after the result was stored
    REPLAYED = "replayed"  # a valid result copied to another job's or attempt's key
    FAIL_WITH_ARTIFACTS = "fail-with-artifacts"
    NO_CLAIM = "no-claim"
    NOT_CLAIM_HOLDER = "not-claim-holder"  # claim token or holder differ from the result's
    FILES_OUTSIDE_CLAIM = "files-outside-claim"
    MISSING_LOG = "missing-log"
    SIGNUP = "signup"  # enrolment without a valid signup HMAC (nor an authorized key)
    # Checks against the state the result was built from (jobs/publish/state/matches.py)
    NOT_QUEUED = "not-queued"  # the job is not in the queue
    WRONG_ATTEMPT = "wrong-attempt"  # the queue is at another attempt of the job
    JOB_MISMATCH = "job-mismatch"  # distro, architecture, source, version or artifacts differ from the job's
    DIGEST_MISMATCH = "digest-mismatch"  # a GOOD artifact whose sha256 is not the index's
    ATTESTATION_MISMATCH = "attestation-mismatch"  # a GOOD result's attestation missing, foreign or other digests
    FILE_MISMATCH = "file-mismatch"  # a named file unsigned, or stored bytes differ from the signed digest
    CLAIM_TAKEN_OVER = "claim-taken-over"  # a trusted worker reports the claim was taken from it while live


class Reject(Exception):
    """A worker object refused, with its stable reason and a detail for people."""

    def __init__(self, reason: Reason, detail: str = "", worker: str | None = None) -> None:
        super().__init__(detail)
        self.reason, self.detail, self.worker = reason, detail, worker


def parse_json(data: bytes, limit: int) -> Any:
    """The JSON of an object's bytes (Reject: more than `limit` bytes, or not JSON)."""
    if len(data) > limit:  # grew between the listing and the read
        raise Reject(Reason.OVERSIZED, f"{len(data)} bytes")
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: nested too deeply
        raise Reject(Reason.NOT_JSON, str(exc)[:200] or "nested too deeply") from None


def notices_by_attempt(claims: list[ObjectInfo]) -> dict[tuple[str, int], list[ObjectInfo]]:
    """The workers' markers, notices, receipts and results in `claims/`, by (job id, attempt)."""
    found: dict[tuple[str, int], list[ObjectInfo]] = {}
    for info in claims:
        match = CLAIM_NOTICE_KEY.fullmatch(info.key)
        if match is not None and info.size <= (MAX_RESULT_BYTES if match.group(3) == "done" else MAX_NOTICE_BYTES):
            found.setdefault((match.group(1), int(match.group(2))), []).append(info)
    return found


_UNREAD = object()


class WorkerObjects:
    """Each object a worker wrote, read (one capped GET) and parsed at most once per `verify.collect`."""

    def __init__(self, store: Reads) -> None:
        self.store = store
        self.seen: dict[str, Any] = {}  # key -> the parsed JSON, or the Reject it earned

    def get(self, info: ObjectInfo, limit: int) -> Any:
        """The parsed JSON of `info.key` (NotFound: deleted since the listing; Reject: oversized, not JSON)."""
        found = self.seen.get(info.key, _UNREAD)
        if found is _UNREAD:
            try:
                found = parse_json(self._read(info.key, info.size, limit), limit)
            except Reject as exc:
                found = exc
            self.seen[info.key] = found
        if isinstance(found, Reject):
            raise found
        return found

    def _read(self, key: str, size: int, limit: int) -> bytes:
        if size > limit:
            raise Reject(Reason.OVERSIZED, f"{size} bytes (limit {limit})")
        body = self.store.open(key)  # replaced since the listing: still never read past the cap
        try:
            return read_capped(body, limit, key)
        except OverLimit:
            raise Reject(Reason.OVERSIZED, f"more than {limit} bytes") from None
        finally:
            body.close()

    def is_receipt(self, info: ObjectInfo) -> bool:
        """Whether the object at a done receipt's key claims to be a receipt (`rebuilder.claim-done/1`), not a result.

        Unverified: a receipt is only ever believed after its signature is checked (`verify._check_notices`),
        and anything else there is judged as a result."""
        try:
            doc = self.get(info, MAX_RESULT_BYTES)
        except Reject:
            return False
        signed = doc.get("signed") if isinstance(doc, dict) else None
        return isinstance(signed, dict) and signed.get("schema") == NOTICE_SCHEMAS["done"]


@dataclass(frozen=True, slots=True)
class ParsedResult:
    """A result's signed payload, parsed: its row, its claim token and what it says of its attestation."""

    row: ResultRow
    token: str
    # Whether the payload carries the attestation (`rebuilder.result/3`) rather than naming a
    # file under builds/ (`rebuilder.result/2`), and the carried attestation's bytes (None:
    # none), as publish checks, keeps and countersigns them.
    carries: bool = False
    attestation: bytes | None = None


def parse_result(payload: dict[str, Any]) -> ParsedResult:
    """A result's signed payload, strictly (Reject: `schema`).

    `rebuilder.result/3` carries a GOOD build's in-toto attestation as `attestation` (null for
    other builds) and names no attestation file; `rebuilder.result/2` (workers before this
    version) names the file it uploaded (`attestation_key`, bound by its digest in `files`).
    """
    schema = payload.get("schema")
    fields = _PAYLOAD_FIELDS.get(schema) if isinstance(schema, str) else None  # anything may be there, a list too
    if fields is None or set(payload) != fields:
        if schema == "rebuilder.result/1":
            raise Reject(Reason.SCHEMA, "rebuilder.result/1 does not bind its uploaded files; "
                                        "results of workers older than this version are refused")
        if fields is None:
            raise Reject(Reason.SCHEMA, f"payload is not {RESULT_SCHEMA} (nor {PREVIOUS_RESULT_SCHEMA})")
        raise Reject(Reason.SCHEMA, f"payload is not {schema}: its fields are exactly {', '.join(sorted(fields))}")
    claim = payload["claim"]
    if not isinstance(claim, dict) or set(claim) != {"token", "generation", "queue"}:
        raise Reject(Reason.SCHEMA, "claim must have exactly 'token', 'generation' and 'queue'")
    if claim["queue"] is not None and not (isinstance(claim["queue"], str) and len(claim["queue"]) <= 300):
        raise Reject(Reason.SCHEMA, "claim queue must be a queue object key or null")
    if isinstance(claim["generation"], bool) or not isinstance(claim["generation"], int):
        raise Reject(Reason.SCHEMA, "claim generation must be an integer")
    token = claim["token"]
    if not isinstance(token, str) or not token.isascii() or not token.isalnum() or len(token) > 128:
        raise Reject(Reason.SCHEMA, "claim token is not alphanumeric")
    try:
        row = record_from_json(ResultRow, payload["result"])
        check_result_fields(row)  # lengths and characters (jobs.core.model.limits)
    except SchemaError as exc:
        raise Reject(Reason.SCHEMA, exc.message[:300]) from None
    assert isinstance(row, ResultRow)
    if payload["schema"] == PREVIOUS_RESULT_SCHEMA:
        return ParsedResult(row, token)
    link = payload["attestation"]
    if link is not None and not isinstance(link, dict):
        raise Reject(Reason.SCHEMA, "attestation must be an in-toto link (a JSON object) or null")
    if row.attestation_key is not None:
        raise Reject(Reason.SCHEMA, f"a {RESULT_SCHEMA} result carries its attestation and names no attestation file")
    try:  # the bytes a worker of the previous version uploaded for the same link
        data = None if link is None else json.dumps(link, sort_keys=True).encode()
    except (ValueError, RecursionError):
        raise Reject(Reason.SCHEMA, "attestation is not serialisable JSON") from None
    return ParsedResult(row, token, True, data)
