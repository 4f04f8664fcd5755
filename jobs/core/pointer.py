"""Immutable data objects behind a small pointer object (docs/storage.md#pointers, invariant 1).

New state is written as a new object under a unique key; then `<prefix>/HEAD.json` is
advanced with compare-and-swap. Readers follow the pointer, so they see the old state or
the new one, never half of one. The pointer remembers the last few targets so a reader
that just followed an older pointer still finds its object; older ones are deleted.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from jobs.core.errors import TerminalError
from jobs.core.store import NotFound, PreconditionFailed, Store

SCHEMA = "rebuilder.pointer/1"
RETAIN = 3


class PointerCorrupt(TerminalError):
    """A pointer object that does not parse: refuse to guess."""


@dataclass(frozen=True)
class PointerValue:
    """What a pointer says: its target, generation, and metadata about the target."""

    target: str
    generation: int
    updated_at: str
    meta: dict[str, Any] = field(default_factory=dict)
    retained: tuple[str, ...] = ()

    def to_bytes(self) -> bytes:
        """The JSON object stored at HEAD.json."""
        return json.dumps({"schema": SCHEMA, "target": self.target, "generation": self.generation,
                           "updated_at": self.updated_at, "meta": self.meta, "retained": list(self.retained)},
                          sort_keys=True, indent=1).encode()


def unique_name(suffix: str) -> str:
    """A sortable, unique object name: UTC time plus randomness."""
    return f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S%fZ}-{secrets.token_hex(4)}{suffix}"


class Pointer:
    """The HEAD.json of one prefix."""

    def __init__(self, store: Store, prefix: str) -> None:
        self.store, self.prefix = store, prefix.rstrip("/")
        self.key = f"{self.prefix}/HEAD.json"

    def read(self) -> tuple[PointerValue | None, str | None]:
        """The current value and its ETag; (None, None) if nothing was ever written."""
        try:
            blob = self.store.get(self.key)
        except NotFound:
            return None, None
        try:
            raw = json.loads(blob.data)
            if raw.get("schema") != SCHEMA:
                raise ValueError(f"schema {raw.get('schema')!r}")
            value = PointerValue(target=str(raw["target"]), generation=int(raw["generation"]),
                                 updated_at=str(raw["updated_at"]), meta=dict(raw.get("meta") or {}),
                                 retained=tuple(raw.get("retained") or ()))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise PointerCorrupt(f"unreadable pointer: {exc}", key=self.key) from None
        if not value.target.startswith(self.prefix + "/"):
            raise PointerCorrupt("pointer target outside its prefix", key=self.key, target=value.target)
        return value, blob.etag

    def advance(self, target: str, meta: dict[str, Any], current: PointerValue | None,
                etag: str | None) -> PointerValue:
        """Point at `target` if the pointer is still at `etag`; PreconditionFailed if it moved."""
        retained = ((current.target,) + current.retained)[: RETAIN - 1] if current else ()
        value = PointerValue(target=target, generation=(current.generation + 1) if current else 1,
                             updated_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                             meta=meta, retained=retained)
        try:
            if etag is None:
                self.store.put_if_absent(self.key, value.to_bytes(), content_type="application/json")
            else:
                self.store.put_if_match(self.key, value.to_bytes(), etag, content_type="application/json")
        except PreconditionFailed:
            # A retried request whose first answer was lost is refused although it landed, and
            # the caller would then delete the target the pointer names. Targets are unique
            # names: a pointer that names ours (or retains it, having moved on from it) is
            # our own write.
            now, _ = self.read()
            if now is None or (target != now.target and target not in now.retained):
                raise
        if current:
            for old in (current.target,) + current.retained:
                if old not in retained and old != target:
                    self.store.delete(old)  # only after the pointer moved past it
        return value

    def annotate(self, meta: dict[str, Any], current: PointerValue, etag: str) -> PointerValue:
        """New metadata for the same target if the pointer is still at `etag`; PreconditionFailed if it moved."""
        value = PointerValue(target=current.target, generation=current.generation + 1,
                             updated_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                             meta=meta, retained=current.retained)
        try:
            self.store.put_if_match(self.key, value.to_bytes(), etag, content_type="application/json")
        except PreconditionFailed:
            now, _ = self.read()  # a retried request whose first answer was lost (see `advance`)
            if now is None or (now.target, now.generation, now.meta) != (value.target, value.generation, meta):
                raise
        return value

    def collect_orphans(self, *, min_age_seconds: float = 86400.0) -> list[str]:
        """Delete objects under the prefix that no pointer names (left by killed jobs) once old."""
        current, _ = self.read()
        keep = {self.key} | ({current.target, *current.retained} if current else set())
        now = datetime.now(timezone.utc)
        removed = []
        for info in self.store.list(self.prefix + "/"):
            if info.key in keep or "/" in info.key[len(self.prefix) + 1:]:
                continue
            if info.last_modified and (now - info.last_modified).total_seconds() >= min_age_seconds:
                self.store.delete(info.key)
                removed.append(info.key)
        return removed


__all__ = ["Pointer", "PointerCorrupt", "PointerValue", "PreconditionFailed", "unique_name"]
