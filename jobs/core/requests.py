"""Admin requests (requeue, queue push, queue drop): the record rebuildctl and `rebuilder serve` write.

Format: `requests/<unique-name>.json` (unique: UTC time + randomness, so names sort by age),
create-only, holding

    {"payload": {"schema": "rebuilder.request/1",
                 "verb": "requeue" | "push" | "drop",
                 "distro": str|null, "release": str|null,
                 "component": str|null,     # rebuilderd's --suite
                 "architecture": str|null,  # build or package architecture
                 "name": str|null,          # glob (fnmatch) over binary and source names; push needs it
                 "version": str|null,       # binary or source version; push: unset = the latest
                 "status": "GOOD"|"BAD"|"FAIL"|"UNKWN"|null,  # latest result; UNKWN = never built
                 "priority": int,           # default 0 (manual)
                 "reset": bool,             # also restart the retry count at 0
                 "created_at": RFC 3339 UTC, "nonce": hex},
     "hmac": HMAC-SHA256 hex of the payload's canonical JSON, keyed by [auth] cookie}

Publish verifies and applies them (`jobs.publish.state.requests`: semantics, refusals, replay
protection); this module is the format both sides share.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone

from jobs.core.bounded import cap
from jobs.core.layout import request_key
from jobs.core.model import Status, format_timestamp, parse_timestamp
from jobs.core.pointer import unique_name
from jobs.core.signing import hmac_tag
from jobs.core.store import Store

SCHEMA = "rebuilder.request/1"
VERBS = ("requeue", "push", "drop")
FILTERS = ("distro", "release", "component", "architecture", "name", "version")
FIELDS = {"schema", "verb", *FILTERS, "status", "priority", "reset", "created_at", "nonce"}
MAX_REQUEST_BYTES = cap("admin_request")


@dataclass(frozen=True)
class Request:
    """One verified admin request."""

    key: str
    verb: str
    distro: str | None
    release: str | None
    component: str | None
    architecture: str | None
    name: str | None
    version: str | None
    status: Status | None
    priority: int
    reset: bool
    created_at: datetime
    nonce: str


def _text(payload: dict, name: str) -> str | None:
    value = payload[name]
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > 256:
        raise ValueError(f"{name} must be null or a non-empty string (at most 256 characters)")
    return value


def parse_payload(payload: object, key: str = "") -> Request:
    """The request a payload describes; ValueError naming the field if it is not one."""
    if not isinstance(payload, dict) or set(payload) != FIELDS:
        raise ValueError(f"payload must have exactly the fields {sorted(FIELDS)}")
    if payload["schema"] != SCHEMA or payload["verb"] not in VERBS:
        raise ValueError(f"not a {SCHEMA} request with a verb in {VERBS}")
    filters = {name: _text(payload, name) for name in FILTERS}
    if payload["verb"] == "push" and filters["name"] is None:
        raise ValueError("push needs a package name")
    status, priority, reset = payload["status"], payload["priority"], payload["reset"]
    if status is not None and status not in Status.choices():
        raise ValueError(f"status must be null or one of {Status.choices()}")
    if isinstance(priority, bool) or not isinstance(priority, int) or not -2**31 <= priority < 2**31:
        raise ValueError("priority must be a 32-bit integer")
    if not isinstance(reset, bool):
        raise ValueError("reset must be true or false")
    nonce = payload["nonce"]
    if not isinstance(nonce, str) or not re.fullmatch(r"[0-9a-f]{8,64}", nonce):
        raise ValueError("nonce must be 8 to 64 lowercase hex digits")
    if not isinstance(payload["created_at"], str):
        raise ValueError("created_at must be an RFC 3339 timestamp with a zone")
    created_at = parse_timestamp(payload["created_at"])
    return Request(key, payload["verb"], **filters, status=None if status is None else Status(status),
                   priority=priority, reset=reset, created_at=created_at, nonce=nonce)


def request_payload(verb: str, *, distro: str | None = None, release: str | None = None,
                    component: str | None = None, architecture: str | None = None, name: str | None = None,
                    version: str | None = None, status: str | None = None, priority: int = 0,
                    reset: bool = False) -> dict:
    """A checked request payload, stamped now with a fresh nonce."""
    payload = {"schema": SCHEMA, "verb": verb, "distro": distro, "release": release, "component": component,
               "architecture": architecture, "name": name, "version": version,
               "status": None if status is None else Status.parse(status).value, "priority": priority,
               "reset": reset, "created_at": format_timestamp(datetime.now(timezone.utc)),
               "nonce": secrets.token_hex(16)}
    parse_payload(payload)
    return payload


def write_request(store: Store, cookie: str, verb: str, **fields: object) -> str:
    """Store one authenticated request for the next publish (rebuildctl's side); returns its key."""
    payload = request_payload(verb, **fields)  # type: ignore[arg-type]
    key = request_key(unique_name(".json"))
    body = json.dumps({"payload": payload, "hmac": hmac_tag(cookie, payload)}, sort_keys=True).encode()
    store.put_if_absent(key, body, content_type="application/json")
    return key
