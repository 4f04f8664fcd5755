"""Worker enrolment records, and publish's own copy of those it accepted.

A worker writes `workers/<key-id>.json` once (create-only): `{"signed": {"schema":
"rebuilder.worker/2", "name", "public_key", "key_id", "enrolled_at", "signup"}, "signatures"}`,
signed by the key it names (proof of possession), with `signup` = HMAC of (name, public key)
keyed by scrypt of `signup_secret` (`jobs.core.signing.strength`), or null for a worker that
relies on `authorized_workers`.

The `workers/` prefix is writable by every worker, so a record there proves nothing by being
there: anybody with a worker credential can overwrite or delete another worker's record.
Publish therefore keeps the records it accepted in `history/enrolled-workers.json` (only
publish writes `history/`) and judges trust from that copy:

* a record in `workers/` that verifies (self-signed, stored under its own key id, and
  either carrying a signup HMAC that verifies or naming a key of `authorized_workers`) is
  added to the copy the first time publish sees it; a later, different valid record of the
  same key (the worker re-enrolled after a secret rotation) replaces the copy only if the
  copy itself no longer verifies;
* a record that does not verify is listed for operators (`Trust.refused`) and changes
  nothing: the worker keeps the trust its copy gives it;
* a copy is trusted on every run only while it still verifies with the current
  `signup_secret`: rotating the secret revokes enrolments made with the old one, as before.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from jobs.core.bounded import OverLimit, cap, read_object
from jobs.core.errors import TerminalError
from jobs.core.layout import ENROLLED_WORKERS, worker_key
from jobs.core.signing import KeyFormatError, SignatureError, hmac_verify, key_id, public_key_from_b64, verify_document
from jobs.core.store import NotFound, Reads

WORKER_SCHEMA = "rebuilder.worker/2"
ENROLLED = ENROLLED_WORKERS
ENROLLED_SCHEMA = "rebuilder.enrolled-workers/1"
MAX_ENROLMENT_BYTES = cap("enrolment")


class RecordError(Exception):
    """A record publish does not accept; `reason` is a `verify.Reason` value."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


@dataclass(frozen=True)
class Enrolment:
    """One verified record: the key it proves, the worker's name, the document itself."""

    key_id: str
    name: str
    public_key: Ed25519PublicKey
    doc: dict[str, Any]
    signup: bool  # carries a signup HMAC that verified (else: trusted by authorized_workers)


@dataclass
class Enrolled:
    """The records publish has accepted (`ENROLLED`), by key id."""

    docs: dict[str, dict[str, Any]] = field(default_factory=dict)
    changed: bool = False


def check_record(doc: Any, *, stored_as: str | None, secret: str | None,
                 authorized: Mapping[str, Ed25519PublicKey]) -> Enrolment:
    """The enrolment `doc` proves, or RecordError saying why it proves nothing."""
    signed = doc.get("signed") if isinstance(doc, dict) else None
    if not isinstance(signed, dict) or signed.get("schema") != WORKER_SCHEMA:
        raise RecordError("schema", f"not a {WORKER_SCHEMA} record")
    name, b64, kid, signup = (signed.get(k) for k in ("name", "public_key", "key_id", "signup"))
    try:
        pub = public_key_from_b64(b64) if isinstance(b64, str) else None
    except KeyFormatError:
        pub = None
    if pub is None or not isinstance(name, str) or not name or len(name) > 64:
        raise RecordError("schema", "name or public_key missing or malformed")
    if kid != key_id(pub) or (stored_as is not None and stored_as != worker_key(key_id(pub))):
        raise RecordError("schema", "key_id or object key does not match the public key")
    try:
        verify_document(doc, {kid: pub})  # self-signed: proves possession of the key it names
    except SignatureError as exc:
        raise RecordError(exc.reason, exc.message) from None
    if secret and signup is not None and hmac_verify(secret, {"name": name, "public_key": b64}, signup):
        return Enrolment(kid, name, pub, doc, True)
    if kid in authorized:
        return Enrolment(kid, name, pub, doc, False)
    raise RecordError("signup", "signup HMAC missing or not made with this rebuilder's signup_secret")


def read_enrolled(store: Reads) -> Enrolled:
    """Publish's copy of the records it accepted (empty before the first)."""
    try:
        doc = json.loads(store.get(ENROLLED).data)
    except NotFound:
        return Enrolled()
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise TerminalError(f"{ENROLLED} is unreadable ({str(exc)[:200]}); fix or delete it") from None
    if not isinstance(doc, dict) or doc.get("schema") != ENROLLED_SCHEMA or not isinstance(doc.get("records"), dict):
        raise TerminalError(f"{ENROLLED} is not a {ENROLLED_SCHEMA} document; fix or delete it")
    return Enrolled({k: v for k, v in doc["records"].items() if isinstance(k, str) and isinstance(v, dict)})


def enrolled_document(enrolled: Enrolled) -> bytes:
    """The copy as saved (`jobs.publish.state.update.write_enrolled`: one object, replaced whole)."""
    body = {"schema": ENROLLED_SCHEMA, "records": dict(sorted(enrolled.docs.items()))}
    return json.dumps(body, sort_keys=True, indent=1).encode()


def read_record(store: Reads, key: str, size: int) -> Any:
    """The JSON of one `workers/` object, or RecordError if it is too big or not JSON."""
    if size > MAX_ENROLMENT_BYTES:
        raise RecordError("oversized", f"{size} bytes")
    try:
        data = read_object(store, key, MAX_ENROLMENT_BYTES)[0]
    except OverLimit:  # grew between the listing and the read: never read whole
        raise RecordError("oversized", f"more than {MAX_ENROLMENT_BYTES} bytes") from None
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: nested too deeply
        raise RecordError("not-json", str(exc)[:200] or "nested too deeply") from None
