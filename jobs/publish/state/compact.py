"""Appending accepted results to the build history (docs/design.md#invariants, invariants 1 and 2).

Layout (read by `jobs.core.history`):

    history/HEAD.json                    pointer (rebuilder.pointer/1) to the current manifest
    history/manifest-<name>.json         {"schema": "rebuilder.history-manifest/1",
                                          "parts": ["history/part-<name>.parquet", ...],
                                          "rows": <total rows>}
    history/part-<name>.parquet          `history/2` Parquet, HistoryRow (= ResultRow) rows

Order of writes: the new part, then a new manifest listing every part, both create-only
and immutable; the pointer last, by compare-and-swap. A kill before the pointer moves
leaves unreferenced objects and no visible change; the rerun finds the rows missing from
the history and appends them again. `build_id` is unique in the history: rows already
present are never appended twice. Once a manifest lists `PART_LIMIT` parts, the next
compaction writes all rows as one part instead (readers that still follow an older,
retained manifest keep finding its parts until `orphans` lists them for deletion, a day later).

This module only reads and plans; `jobs.publish.state.update` writes (`compact`, `collect_orphans`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.compute as pc

from jobs.core.errors import TransientError
from jobs.core.history import PREFIX
from jobs.core.model import HistoryRow, ResultRow, parquet_bytes, read_table, to_table
from jobs.core.pointer import Pointer, PointerCorrupt, PointerValue, unique_name
from jobs.core.store import NotFound, Reads

MANIFEST_SCHEMA = "rebuilder.history-manifest/1"
PART_LIMIT = 64
PARQUET = "application/vnd.apache.parquet"


class HistoryBusy(TransientError):
    """The history pointer kept moving while this compaction was prepared."""


@dataclass(frozen=True)
class HistoryState:
    """One version of the history: all its rows, the parts holding them, the pointer read."""

    table: pa.Table
    parts: tuple[str, ...]
    pointer: PointerValue | None
    etag: str | None
    known_ids: frozenset[str] | None = field(default=None, repr=False, compare=False)  # build_ids(), if known

    def holding(self, ids: Iterable[str]) -> set[str]:
        """Those of `ids` this history holds (a few ids against a million rows, in Arrow)."""
        wanted = pa.array(sorted(set(ids)), pa.string())
        if len(wanted) == 0 or self.table.num_rows == 0:
            return set()
        column = self.table.column("build_id")
        return set(column.filter(pc.is_in(column, value_set=wanted)).to_pylist())

    def build_ids(self) -> frozenset[str]:
        """Every build id in this version of the history (a million rows: computed once)."""
        if self.known_ids is None:
            object.__setattr__(self, "known_ids", frozenset(self.table.column("build_id").to_pylist()))
        return self.known_ids  # type: ignore[return-value]


@dataclass(frozen=True)
class Compacted:
    """What one compaction did; `history` is the state it left (or found, if nothing was new)."""

    added: tuple[str, ...]  # build ids appended, sorted
    part: str | None
    manifest: str | None
    merged: bool
    history: HistoryState


def _manifest_parts(store: Reads, key: str) -> tuple[str, ...]:
    raw = json.loads(store.get(key).data)
    parts = raw.get("parts") if isinstance(raw, dict) else None
    if not isinstance(parts, list) or not all(isinstance(p, str) and p.startswith(PREFIX + "/") for p in parts):
        raise PointerCorrupt("history manifest must list parts under history/", key=key)
    return tuple(parts)


def read_history_state(store: Reads, *, attempts: int = 5) -> HistoryState:
    """The current history with the pointer it was read through."""
    pointer = Pointer(store, PREFIX)  # type: ignore[arg-type]  # read only
    for _ in range(attempts):
        value, etag = pointer.read()
        if value is None:
            return HistoryState(to_table([], HistoryRow), (), None, None)
        try:
            parts = _manifest_parts(store, value.target)
            tables = [read_table(store.get(p).data) for p in parts]
        except NotFound:
            continue  # collected after the pointer moved on: read the newer version
        table = pa.concat_tables(tables) if tables else to_table([], HistoryRow)
        return HistoryState(table, parts, value, etag)
    raise HistoryBusy("the history kept moving while it was read", key=pointer.key)


def compacted_build_ids(store: Reads) -> set[str]:
    """Build ids already in the history (publish skips their results unread)."""
    return read_history_state(store).build_ids()


@dataclass(frozen=True)
class Compaction:
    """One compaction prepared from a history version: the objects to write, then the pointer.

    `jobs.publish.state.update.compact` writes it (part, manifest, pointer by compare-and-swap).
    """

    added: tuple[str, ...]  # build ids appended, sorted
    part: str
    part_body: bytes
    manifest: str
    manifest_body: bytes
    parts: tuple[str, ...]  # what the manifest lists
    merged: bool
    table: pa.Table  # the history once the pointer moved
    build_ids: frozenset[str]

    @property
    def pointer_meta(self) -> dict[str, int]:
        return {"parts": len(self.parts), "rows": self.table.num_rows}


def prepare(state: HistoryState, rows: Iterable[ResultRow]) -> Compaction | None:
    """The compaction appending the rows whose build id `state` lacks, or None if there are none."""
    have = state.build_ids()
    new = {r.build_id: r for r in rows if r.build_id not in have}
    if not new:
        return None
    added = to_table([new[b] for b in sorted(new)], HistoryRow)
    merged = len(state.parts) + 1 > PART_LIMIT
    table = pa.concat_tables([state.table, added])
    name = unique_name("")
    part = f"{PREFIX}/part-{name}.parquet"
    parts = (part,) if merged else (*state.parts, part)
    manifest = f"{PREFIX}/manifest-{name}.json"
    body = {"schema": MANIFEST_SCHEMA, "parts": list(parts), "rows": table.num_rows}
    return Compaction(tuple(sorted(new)), part, parquet_bytes(table if merged else added), manifest,
                      json.dumps(body, indent=1).encode(), parts, merged, table, have | frozenset(new))


def orphans(store: Reads, *, now: datetime | None = None, min_age_seconds: float = 86400.0) -> list[str]:
    """History objects no current or retained manifest needs, once they are old (to delete).

    They are left by killed publishes and by merges; the age guard keeps objects another
    publisher or a slow reader may be about to use.
    """
    pointer = Pointer(store, PREFIX)  # type: ignore[arg-type]  # read only
    value, _ = pointer.read()
    if value is None:
        return []
    keep = {pointer.key}
    for manifest in (value.target, *value.retained):
        keep.add(manifest)
        try:
            keep.update(_manifest_parts(store, manifest))
        except NotFound:
            continue
    now = now or datetime.now(timezone.utc)
    found = []
    # Only parts and manifests can be orphans: listing all of history/ would also list
    # every countersigned attestation ever kept (history/attestations/).
    listed = [*store.list(f"{PREFIX}/part-"), *store.list(f"{PREFIX}/manifest-")]
    for info in listed:
        if info.key in keep or "/" in info.key[len(PREFIX) + 1:]:
            continue
        if info.last_modified and (now - info.last_modified).total_seconds() >= min_age_seconds:
            found.append(info.key)
    return found
