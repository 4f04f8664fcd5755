"""Writing the site incrementally, in an order that never leaves a link dangling.

`site/_manifest.json` maps every published key to a digest of its content. A publish
writes only the files whose digest changed, in tiers: leaves first (build logs, package
pages and feeds, static assets), then the lists that link to them, then the suite pages,
then the dashboard and index last; only then are vanished files deleted — everything that
linked to them has been rewritten by then — and the new manifest written.

Killed at any instant: before writing or deleting anything, the manifest is rewritten with
those keys marked unknown (""), so the next run rewrites them even if their content turns
back to what the old manifest says (or they were deleted), and deletes them if they vanished.
Each object write is atomic in the store, so a reader sees an old or a new file, never
half of one.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from enum import IntEnum

from jobs.core.store import NotFound, Store
from jobs.publish.urls import MANIFEST

log = logging.getLogger(__name__)

MANIFEST_SCHEMA = "rebuilder.site-manifest/1"
HTML = "text/html; charset=utf-8"
JSON = "application/json"
TEXT = "text/plain; charset=utf-8"
CSS = "text/css; charset=utf-8"
JS = "text/javascript; charset=utf-8"
ATOM = "application/atom+xml"


class Tier(IntEnum):
    """Write order: a file only links to files of its own or an earlier tier."""

    LEAF = 0  # build files, package pages and feeds, static assets, public keys
    LIST = 1  # paginated suite lists and their feeds, v0 pkgs/list
    SUITE = 2  # suite overview pages and feeds
    TOP = 3  # dashboard, index feeds, regressions feed


@dataclass(frozen=True, slots=True)
class SiteFile:
    """One published file: its bytes, or a store object copied unchanged (gzip encoding kept)."""

    key: str  # relative to the site prefix
    content_type: str
    tier: Tier
    digest: str
    data: bytes | None = None
    copy_from: str | None = None

    @classmethod
    def content(cls, key: str, data: bytes, content_type: str, tier: Tier, *,
                stable: bytes | None = None) -> SiteFile:
        """A file with these bytes; `stable` (the bytes without timestamps) decides whether it changed."""
        return cls(key, content_type, tier, _digest(content_type, stable if stable is not None else data), data=data)

    @classmethod
    def copy(cls, key: str, source_key: str, content_type: str, tier: Tier = Tier.LEAF) -> SiteFile:
        """A copy of an immutable store object (a build's log, report or attestation)."""
        return cls(key, content_type, tier, _digest(content_type, b"copy:" + source_key.encode()), copy_from=source_key)


def _digest(content_type: str, data: bytes) -> str:
    return hashlib.sha256(content_type.encode() + b"\0" + data).hexdigest()


def json_bytes(payload: object) -> bytes:
    """Compact, ASCII-only JSON (a lone surrogate from bad input cannot break the encoding)."""
    return json.dumps(payload, ensure_ascii=True, separators=(",", ":")).encode()


def json_file(key: str, payload: dict | list, tier: Tier, *, volatile: tuple[str, ...] = ("generated_at",)
              ) -> SiteFile:
    """A JSON feed whose top-level `volatile` keys (timestamps of generation) do not count as a change."""
    stable = {k: v for k, v in payload.items() if k not in volatile} if isinstance(payload, dict) else payload
    return SiteFile.content(key, json_bytes(payload), JSON, tier, stable=json_bytes(stable))


@dataclass
class Site:
    """Every file of one publish, by key, and the store that copied files come from."""

    source: Store
    files: dict[str, SiteFile] = field(default_factory=dict)

    def add(self, file: SiteFile) -> None:
        if file.key == MANIFEST or file.key in self.files:
            raise ValueError(f"site key {file.key!r} is reserved or added twice")
        self.files[file.key] = file


@dataclass(frozen=True)
class WriteStats:
    written: int
    deleted: int
    unchanged: int


def read_manifest(store: Store, prefix: str = "site/") -> dict[str, str]:
    """Published key -> digest, as the last publish left it (empty if there is none or it is unreadable)."""
    try:
        raw = json.loads(store.get(prefix + MANIFEST).data)
    except NotFound:
        return {}
    except ValueError:
        log.warning("unreadable %s%s: every file is rewritten", prefix, MANIFEST)
        return {}
    files = raw.get("files") if isinstance(raw, dict) and raw.get("schema") == MANIFEST_SCHEMA else None
    if not isinstance(files, dict):
        return {}
    return {str(k): str(v) for k, v in files.items()}


def _write_manifest(store: Store, prefix: str, files: dict[str, str]) -> None:
    body = {"schema": MANIFEST_SCHEMA, "files": dict(sorted(files.items()))}
    store.put(prefix + MANIFEST, json.dumps(body, indent=0).encode(), content_type=JSON)


def _put(store: Store, source: Store, prefix: str, file: SiteFile) -> bool:
    if file.copy_from is None:
        assert file.data is not None
        store.put(prefix + file.key, file.data, content_type=file.content_type)
        return True
    try:
        blob = source.get(file.copy_from)
    except NotFound:
        log.warning("%s: source %s is missing; not published", file.key, file.copy_from)
        return False
    encoding = blob.info.content_encoding or ("gzip" if blob.data[:2] == b"\x1f\x8b" else None)
    store.put(prefix + file.key, blob.data, content_type=file.content_type, content_encoding=encoding)
    return True


def write_site(store: Store, site: Site, prefix: str = "site/", *, force: bool = False) -> WriteStats:
    """Publish `site` under `prefix`: changed files tier by tier, then deletions, then the manifest."""
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    old = read_manifest(store, prefix)
    new = {key: f.digest for key, f in site.files.items()}
    changed = [f for key, f in site.files.items() if force or old.get(key) != f.digest]
    vanished = sorted(set(old) - set(new))
    if changed or vanished:
        # Unknown until the final manifest: what is about to be rewritten or deleted.
        _write_manifest(store, prefix, {**old, **{f.key: "" for f in changed}, **{k: "" for k in vanished}})
    # Within a tier, files new to the site go first: an existing page may be about to link them.
    for file in sorted(changed, key=lambda f: (f.tier, f.key in old, f.key)):
        if not _put(store, site.source, prefix, file):
            new[file.key] = ""  # retried by the next publish
    for key in vanished:
        store.delete(prefix + key)
    if changed or vanished or new != old:
        _write_manifest(store, prefix, new)
    written = sum(1 for f in changed if new[f.key])
    return WriteStats(written=written, deleted=len(vanished), unchanged=len(site.files) - len(changed))
