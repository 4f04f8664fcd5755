"""A worker's identity: its ed25519 key, its own directory, and its enrolment record.

The key is created on first start (`key_path`, relative to the worker's directory, as
rebuilderd-worker's `rebuilder.v2.key`). `--name` gives each worker on a machine its own
directory, so several never share a key or scratch space. The enrolment record
`workers/<key-id>.json` (create-only) is signed by the key and carries an HMAC over (name,
public key) keyed by scrypt of the worker's `signup_secret`; publish accepts results of keys
that are listed in `authorized_workers` or whose HMAC verifies with the rebuilder's secret,
and keeps its own copy of each record it accepted (`jobs.publish.state.enrolment`). A worker never
holds the rebuilder's own signing key.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from jobs.core.config import WorkerConfig
from jobs.core.errors import ConfigError
from jobs.core.layout import worker_key
from jobs.core.signing import (
    SignatureError,
    ensure_key,
    hmac_tag,
    hmac_verify,
    key_id,
    public_key_b64,
    sign_document,
    verify_document,
)
from jobs.core.store import NotFound, PreconditionFailed, Store, StoreUnavailable

SCHEMA = "rebuilder.worker/2"  # /2: the signup HMAC is keyed by scrypt of the secret
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class WorkerIdentity:
    """Who this worker is and where it keeps its files."""

    name: str
    directory: Path
    key: Ed25519PrivateKey
    key_id: str
    public_key: str  # base64 of the raw key, rebuilderd's X-Worker-Key form


def load_identity(config: WorkerConfig, name: str | None, *, cwd: Path | None = None) -> WorkerIdentity:
    """The worker's identity, creating its directory and key on first start."""
    if name is not None and not _NAME.fullmatch(name):
        raise ConfigError(f"worker name {name!r} is not usable as a directory name", key="--name",
                          expected="letters, digits, '.', '_' or '-' (at most 64)")
    base = Path(config.work_dir) if config.work_dir else (cwd or Path.cwd())
    directory = base / name if name else base
    directory.mkdir(parents=True, exist_ok=True, mode=0o750)
    key_path = directory / config.key_path
    # rebuilderd-worker writes rebuilder.v2.key as DER; keep the file interchangeable.
    key, created = ensure_key(key_path, encoding="der" if key_path.suffix != ".pem" else "pem")
    pub = key.public_key()
    if created:  # by design (as rebuilderd-worker), but never silently
        print(f"worker: created the worker key {key_path} (key id {key_id(pub)})", file=sys.stderr)
    return WorkerIdentity(name=name or "worker", directory=directory, key=key, key_id=key_id(pub),
                          public_key=public_key_b64(pub))


def enrolment_payload(identity: WorkerIdentity, signup_secret: str | None) -> dict:
    """The signed part of the enrolment record."""
    claim = {"name": identity.name, "public_key": identity.public_key}
    return {"schema": SCHEMA, **claim, "key_id": identity.key_id,
            "enrolled_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "signup": hmac_tag(signup_secret, claim) if signup_secret else None}


def enrol(store: Store, identity: WorkerIdentity, signup_secret: str | None) -> str:
    """Make sure this worker's enrolment record is there and proves its key; returns its key.

    Written once (create-only) and then only read: a record already there is kept if it is
    this key's own and verifies with the current secret. Anything else there (junk, another
    writer's, one made with a secret rotated since) proves nothing to publish and is
    replaced, with a line on stderr. The worker checks again after every build, so a record
    overwritten before publish saw it delays that worker's results by one build at most;
    publish keeps its own copy of a record it accepted, so later overwrites change nothing.
    """
    key = worker_key(identity.key_id)
    body = json.dumps(sign_document(enrolment_payload(identity, signup_secret), identity.key),
                      sort_keys=True).encode()
    for _ in range(3):
        try:
            existing = store.get(key)
        except NotFound:
            try:
                store.put_if_absent(key, body, content_type="application/json")
                return key
            except PreconditionFailed:
                continue  # written in between: judge that one
        problem = record_problem(existing.data, identity, signup_secret)
        if problem is None:
            return key
        try:
            store.put_if_match(key, body, existing.etag, content_type="application/json")
        except (PreconditionFailed, NotFound):
            continue
        print(f"worker: {key} held {problem}; replaced it with this worker's signed record", file=sys.stderr)
        return key
    raise StoreUnavailable("enrolment record keeps changing under this worker", op="enrol", key=key)


def record_problem(data: bytes, identity: WorkerIdentity, signup_secret: str | None) -> str | None:
    """Why `data` is not this worker's valid enrolment record for `signup_secret` (None: it is)."""
    try:
        payload, _ = verify_document(json.loads(data), {identity.key_id: identity.key.public_key()})
    except (ValueError, UnicodeDecodeError, RecursionError):
        return "something that is not JSON"
    except SignatureError as exc:
        return f"a record not signed by this worker's key ({exc.reason})"
    if payload.get("schema") != SCHEMA or payload.get("public_key") != identity.public_key:
        return "a record of another schema or key"
    tag, claim = payload.get("signup"), {"name": payload.get("name"), "public_key": identity.public_key}
    if signup_secret is None:
        return None if tag is None else "a record made with a signup secret this worker no longer has"
    if tag is None or not hmac_verify(signup_secret, claim, tag):
        return "a record made without this worker's current signup_secret"
    return None
