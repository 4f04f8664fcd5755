"""Writing the site incrementally, in an order that never leaves a link dangling.

`site/_manifest.parquet` records every published file: its key, a digest of its content
and a digest of its inputs (what it was rendered from; "" for files rendered every run),
plus the render salt (a digest of the code and templates that render the site) and the
highest v0 build id whose files were published. Build files (`api/v0/builds/<id>/...`)
are immutable copies; they are not listed, only that watermark is kept (and a copy whose
source was missing is listed with an empty digest, to be retried).

`jobs.publish.site.build.build_site` renders only the files whose inputs changed and marks the
others as kept; a publish writes only the files whose content digest changed, in tiers:
leaves first (build files, package pages and feeds, static assets), then the lists that
link to them, then the suite pages, then the dashboard and index last; only then are
vanished files deleted (everything that linked to them has been rewritten by then) and the
new manifest written. Every page links the stylesheet and the dashboard (`index.html`): the
static assets are written before anything else, and a first publish (no dashboard yet)
writes a placeholder dashboard right after them, replaced by the real one at the end.

Killed at any instant: before writing or deleting anything, the keys about to change are
listed in `site/_pending.json`; the next run reads them as unknown (rewritten even if
their content turns back to what the manifest says, deleted if they vanished) and keeps
the old build watermark, and the pending list is removed only after the new manifest is
written. Each object write is atomic in the store, so a reader sees an old or a new file,
never half of one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from jobs.core import progress
from jobs.core.bounded import CorruptData, OverLimit, cap, decompress_chunks, read_capped
from jobs.core.layout import SITE, attestation_batch_key
from jobs.core.pointer import unique_name
from jobs.core.store import NotFound, Store
from jobs.core.urls import BUILDS_PREFIX, LEGACY_MANIFEST, MANIFEST, PENDING
from jobs.publish.site.facts import FACTS_KEY, Facts, facts_document
from jobs.publish.site.sanitize import clean_report
from jobs.publish.site.writepool import Writer, writers_for

if TYPE_CHECKING:
    from jobs.publish.site.streaming import SiteStream

log = logging.getLogger(__name__)

MANIFEST_SCHEMA = "rebuilder.site-manifest/2"
RESERVED = frozenset({MANIFEST, PENDING, LEGACY_MANIFEST})
PARQUET = "application/vnd.apache.parquet"
HTML = "text/html; charset=utf-8"
STATIC_PREFIX = "static/"
DASHBOARD = "index.html"
# What `index.html` says while the first publish is still writing the pages that link it.
PLACEHOLDER = (b'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>Rebuilder</title>'
               b'<link rel="stylesheet" href="static/style.css"></head>\n<body><main><h1>Rebuilder</h1>'
               b"<p>The first publish is still running; this page shows its results once it is done.</p>"
               b"</main></body></html>\n")
JSON = "application/json"
TEXT = "text/plain; charset=utf-8"
CSS = "text/css; charset=utf-8"
JS = "text/javascript; charset=utf-8"
ATOM = "application/atom+xml"


class Tier(IntEnum):
    """Write order: a file only links to files of its own or an earlier tier."""

    LEAF = 0  # build files, package pages and feeds, static assets, public keys
    LIST = 1  # parts of suite lists and their feeds, v0 pkgs/list
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
    input: str = ""  # digest of what it was rendered from ("": rendered every run)
    listed: bool = True  # False: a build file, covered by the manifest's build watermark
    sanitize: bool = False  # an untrusted HTML report: published through jobs.publish.site.sanitize
    # A worker's file: the SHA-256 its signed result gave ("" = none, not published); None: publish's own
    sha256: str | None = None
    # Written by every publish and never listed in the manifest: the few small files that say
    # when publish last ran (so that rewriting them does not rewrite the manifest too).
    every_run: bool = False

    @classmethod
    def content(cls, key: str, data: bytes, content_type: str, tier: Tier, *,
                stable: bytes | None = None, input: str = "", listed: bool = True, every_run: bool = False
                ) -> SiteFile:
        """A file with these bytes; `stable` (the bytes without timestamps) decides whether it changed.

        `every_run`: written by every publish, not listed in the manifest (a "last published" file).
        """
        return cls(key, content_type, tier, _digest(content_type, stable if stable is not None else data), data=data,
                   input=input, listed=listed and not every_run, every_run=every_run)

    @classmethod
    def copy(cls, key: str, source_key: str, content_type: str, tier: Tier = Tier.LEAF, *,
             sanitize: bool = False, sha256: str | None = None) -> SiteFile:
        """A copy of a store object (a build's log, report or attestation), checked against `sha256` if given."""
        return cls(key, content_type, tier, _digest(content_type, b"copy:" + source_key.encode()),
                   copy_from=source_key, listed=False, sanitize=sanitize, sha256=sha256)


def _digest(content_type: str, data: bytes) -> str:
    return hashlib.sha256(content_type.encode() + b"\0" + data).hexdigest()[:32]


# Characters that reorder or hide text where a JSON feed is read as text (a browser, a terminal):
# C1 controls, bidi marks, embeddings, overrides and isolates, line/paragraph separators. In a
# feed they are written as \u escapes: the value a JSON parser returns is unchanged, the raw
# text shows them as escapes. (C0 controls are escaped by every JSON encoder already.)
_JSON_UNSAFE = tuple((chr(c).encode(), f"\\u{c:04x}".encode()) for c in
                     [*range(0x80, 0xA0), 0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A),
                      0x2028, 0x2029])
_JSON_UNSAFE_LEAD = (b"\xc2", b"\xd8\x9c", b"\xe2\x80", b"\xe2\x81")


def json_safe(data: bytes) -> bytes:
    r"""UTF-8 JSON text with the characters above written as backslash-u escapes (same value, inert text)."""
    if data.isascii() or not any(lead in data for lead in _JSON_UNSAFE_LEAD):  # isascii: one fast pass
        return data
    for raw, escaped in _JSON_UNSAFE:
        if raw in data:
            data = data.replace(raw, escaped)
    return data


def json_bytes(payload: object) -> bytes:
    """Compact UTF-8 JSON (orjson), `json_safe`; a lone surrogate from bad input (a local store's file
    name that is not UTF-8) written as U+FFFD: its escape is JSON that orjson and serde_json refuse."""
    try:
        return json_safe(orjson.dumps(payload))
    except (orjson.JSONEncodeError, TypeError):
        return json.dumps(_no_surrogates(payload), ensure_ascii=True, separators=(",", ":")).encode()


def _no_surrogates(value: object) -> object:
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {_no_surrogates(k): _no_surrogates(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_no_surrogates(v) for v in value]
    return value


_SURROGATE = re.compile("[\ud800-\udfff]")


def json_file(key: str, payload: dict | list, tier: Tier, *, volatile: tuple[str, ...] = ("generated_at",),
              input: str = "", every_run: bool = False) -> SiteFile:
    """A JSON feed whose top-level `volatile` keys (timestamps of generation) do not count as a change."""
    stable = {k: v for k, v in payload.items() if k not in volatile} if isinstance(payload, dict) else payload
    return SiteFile.content(key, json_bytes(payload), JSON, tier, stable=json_bytes(stable), input=input,
                            every_run=every_run)


class Entry(NamedTuple):
    """What the manifest says of one published file (a tuple: hundreds of thousands per run)."""

    digest: str  # "" = unknown: rewrite it
    input: str = ""


@dataclass
class Manifest:
    """The published files as the last publish left them (pending keys read as unknown)."""

    files: dict[str, Entry] = field(default_factory=dict)
    salt: str = ""
    builds_upto: int = 0  # build files of every v0 id up to this one are published

    def unchanged(self, key: str, input: str, salt: str) -> bool:
        """Whether the file at `key` was rendered from these inputs by this code and is published."""
        entry = self.files.get(key)
        return bool(input) and salt == self.salt and entry is not None and entry.digest != "" \
            and entry.input == input

    def retry_build_ids(self) -> set[int]:
        """v0 ids of builds with a file whose copy failed (listed with an empty digest)."""
        ids = set()
        for key, entry in self.files.items():
            if key.startswith(BUILDS_PREFIX) and entry.digest == "":
                number = key[len(BUILDS_PREFIX):].split("/", 1)[0]
                if number.isdigit():
                    ids.add(int(number))
        return ids


@dataclass
class Site:
    """Every file of one publish: rendered ones by key, kept ones (inputs unchanged) with their entry."""

    source: Store
    files: dict[str, SiteFile] = field(default_factory=dict)
    kept: dict[str, Entry] = field(default_factory=dict)
    salt: str = ""
    builds_upto: int = 0
    # Files written already, as they were rendered (package pages): write_site merges its entries.
    stream: SiteStream | None = None

    def add(self, file: SiteFile) -> None:
        if file.key in RESERVED or file.key in self.files or file.key in self.kept:
            raise ValueError(f"site key {file.key!r} is reserved or added twice")
        self.files[file.key] = file
        progress.advance("render")

    def keep(self, key: str, entry: Entry) -> None:
        """A file whose inputs did not change: not rendered, not written, not deleted."""
        if key in RESERVED or key in self.files or key in self.kept:
            raise ValueError(f"site key {key!r} is reserved or added twice")
        self.kept[key] = entry
        progress.advance("render")


@dataclass(frozen=True)
class WriteStats:
    written: int
    deleted: int
    unchanged: int


def read_manifest(store: Store, prefix: str = SITE) -> Manifest:
    """The manifest the last publish left, with the keys of an unfinished publish as unknown."""
    prefix = _prefix(prefix)
    manifest = Manifest()
    try:
        table = pq.read_table(pa.BufferReader(store.get(prefix + MANIFEST).data))
        meta = json.loads((table.schema.metadata or {}).get(b"rebuilder", b"{}"))
        if meta.get("schema") != MANIFEST_SCHEMA:
            raise ValueError(f"not a {MANIFEST_SCHEMA} manifest")
        manifest.salt, manifest.builds_upto = str(meta.get("salt", "")), int(meta.get("builds_upto", 0))
        columns = table.select(["key", "digest", "input"]).to_pydict()
        manifest.files = {k: Entry(d or "", i or "") for k, d, i in zip(columns["key"], columns["digest"],
                                                                        columns["input"])}
    except NotFound:
        manifest.files = {k: Entry("") for k in _legacy_keys(store, prefix)}
    except (ValueError, KeyError, TypeError, pa.ArrowException) as exc:
        log.warning("unreadable %s%s (%s): every file is rewritten", prefix, MANIFEST, exc)
    try:
        pending = json.loads(store.get(prefix + PENDING).data)
        for key in pending.get("keys", []):
            manifest.files[str(key)] = Entry("")
        manifest.builds_upto = min(manifest.builds_upto, int(pending.get("builds_upto", 0)))
    except NotFound:
        pass
    except (ValueError, TypeError, AttributeError) as exc:
        log.warning("unreadable %s%s (%s): every file is rewritten", prefix, PENDING, exc)
        manifest.files = {k: Entry("") for k in manifest.files}
        manifest.builds_upto = 0
    return manifest


def _legacy_keys(store: Store, prefix: str) -> list[str]:
    """Keys the JSON manifest of an older version listed (so that vanished ones are deleted)."""
    try:
        raw = json.loads(store.get(prefix + LEGACY_MANIFEST).data)
    except (NotFound, ValueError):
        return []
    files = raw.get("files") if isinstance(raw, dict) else None
    return [str(k) for k in files] if isinstance(files, dict) else []


def _prefix(prefix: str) -> str:
    return prefix + "/" if prefix and not prefix.endswith("/") else prefix


def _write_manifest(store: Store, prefix: str, files: dict[str, Entry], *, salt: str, builds_upto: int) -> None:
    keys = sorted(files)
    table = pa.table({"key": pa.array(keys, pa.string()),
                      "digest": pa.array([files[k].digest for k in keys], pa.string()),
                      "input": pa.array([files[k].input for k in keys], pa.string())})
    meta = {"schema": MANIFEST_SCHEMA, "salt": salt, "builds_upto": builds_upto}
    table = table.replace_schema_metadata({"rebuilder": json.dumps(meta)})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    store.put(prefix + MANIFEST, sink.getvalue().to_pybytes(), content_type=PARQUET)


def _put(store: Store, source: Store, prefix: str, file: SiteFile) -> bool:
    try:
        return _put_one(store, source, prefix, file)
    finally:
        progress.advance("write")


def _put_one(store: Store, source: Store, prefix: str, file: SiteFile) -> bool:
    if file.copy_from is None:
        assert file.data is not None
        store.put(prefix + file.key, file.data, content_type=file.content_type)
        return True
    try:
        if BATCH_SUFFIX in file.copy_from:  # publish's own countersigned link, kept in its run's batch
            store.put(prefix + file.key, _batched_link(source, file.copy_from), content_type=file.content_type)
            return True
        data = _read_once(source, file.copy_from, cap("upload"))
    except NotFound:
        log.warning("%s: source %s is missing; not published", file.key, file.copy_from)
        return False
    except (OverLimit, CorruptData) as exc:  # larger than any real upload, or not what it should be: not published
        log.warning("%s: %s; not published", file.key, exc.message)
        return False
    except ValueError as exc:  # an unreadable batch of countersigned links
        log.warning("%s: %s is unreadable (%s); not published", file.key, file.copy_from, exc)
        return False
    if file.sha256 is not None and hashlib.sha256(data).hexdigest() != file.sha256:
        # Swapped in builds/ after its result was signed and accepted (docs/trust.md).
        log.warning("%s: source %s is not the file its result signed; not published", file.key, file.copy_from)
        return False
    # What the bytes are, not what their uploader's headers said: gzip is served gzip-encoded.
    encoding = "gzip" if data[:2] == b"\x1f\x8b" else None
    if file.sanitize:
        try:
            cleaned = clean_report(data, encoding, key=file.key)
        except (OverLimit, CorruptData) as exc:  # a bomb, not gzip after all, or truncated: nothing safe
            log.warning("%s: report %s refused: %s; not published", file.key, file.copy_from, exc.message)
            return False
        store.put(prefix + file.key, cleaned, content_type=file.content_type)
        return True
    if encoding is not None:  # a visitor's browser inflates it: a bomb or a broken stream is not served
        try:
            for _ in decompress_chunks(data, "gz", cap("log_decoded"), file.copy_from):
                pass
        except (OverLimit, CorruptData) as exc:
            log.warning("%s: %s; not published", file.key, exc.message)
            return False
    store.put(prefix + file.key, data, content_type=file.content_type, content_encoding=encoding)
    return True


def _read_once(source: Store, key: str, limit: int) -> bytes:
    """A worker's object, at most `limit` bytes, in one request (a GET, no HEAD before it): an
    oversized one is never read past the cap (OverLimit)."""
    body = source.open(key)
    try:
        return read_capped(body, limit, key)
    finally:
        body.close()


def _rank(file: SiteFile) -> int:
    """The write step of a file's tier; static assets go first of all."""
    return -1 if file.key.startswith(STATIC_PREFIX) else int(file.tier)


def write_site(store: Store, site: Site, prefix: str = SITE, *, force: bool = False,
               previous: Manifest | None = None, writers: int | None = None) -> WriteStats:
    """Publish `site` under `prefix`: changed files tier by tier, then deletions, then the manifest.

    `previous` is the manifest as `read_manifest` returned it (read again if not given);
    within a step, up to `writers` objects are written at once (None: `writers_for(store)`;
    a streamed site's files are written by its stream's threads, as many as it has).
    """
    prefix = _prefix(prefix)
    if site.stream is not None:
        try:
            site.stream.wait()  # every streamed file handled: its entries are final
        except BaseException:
            site.stream.close()
            raise
    with site.stream.writer if site.stream is not None else Writer(
            writers_for(store) if writers is None else writers) as pool:
        return _write_site(store, site, prefix, pool, force=force, old=previous if previous is not None
                           else read_manifest(store, prefix))


def _write_site(store: Store, site: Site, prefix: str, pool: Writer, *, force: bool, old: Manifest) -> WriteStats:
    streamed = site.stream.entries if site.stream is not None else {}  # written as they were rendered
    listed_before = site.stream.pending if site.stream is not None else set()  # in _pending.json already
    new = {**site.kept, **streamed, **{key: Entry(f.digest, f.input) for key, f in site.files.items() if f.listed}}
    changed = [f for key, f in site.files.items()
               if force or not f.listed or key not in old.files or old.files[key].digest != f.digest]
    vanished = sorted(k for k in set(old.files) - set(new) - set(site.files)
                      - (site.stream.unlisted if site.stream is not None else set()))
    builds_upto = max(site.builds_upto, 0)
    # Files written by every run need no pending list and no new manifest (it does not list them).
    tracked = [f for f in changed if not f.every_run]
    dirty = bool(tracked or vanished or listed_before or new != old.files or old.salt != site.salt
                 or old.builds_upto != builds_upto)
    progress.grow("write", len(changed) + len(vanished))
    if site.stream is not None and site.stream.written:  # written during the render: counted here, as done
        progress.grow("write", site.stream.written)
        progress.advance("write", site.stream.written)
    keys = {f.key for f in tracked} | set(vanished)
    if keys - listed_before:  # the list only grows until the manifest is written
        pending = {"keys": sorted(keys | listed_before), "builds_upto": old.builds_upto}
        store.put(prefix + PENDING, json.dumps(pending).encode(), content_type=JSON)
    # Step by step: a tier's files only link to files of earlier tiers, and within a tier the
    # files new to the site go first (an existing page may be about to link them). Files of
    # one step are independent of each other, so they are written concurrently.
    # Static assets (linked by every page) come before everything else.
    steps: dict[tuple[int, bool], list[SiteFile]] = {}
    for file in sorted(changed, key=lambda f: (_rank(f), f.key in old.files, f.key)):
        steps.setdefault((_rank(file), file.key in old.files), []).append(file)
    # The dashboard is written by every run (not listed): a first publish is one with no manifest.
    first_publish = DASHBOARD in site.files and not old.files and not (site.stream and site.stream.placeholder)

    def landed(file: SiteFile, ok: bool) -> None:
        if not ok:
            new[file.key] = Entry("")  # retried by the next publish

    for step, files in steps.items():
        if first_publish and _rank(files[0]) >= 0:  # the static assets have landed: pages may link them
            pool.wait()
            store.put(prefix + DASHBOARD, PLACEHOLDER, content_type=HTML)
            first_publish = False
        pool.submit(("write", *step), files, lambda f: _put(store, site.source, prefix, f), landed)
    pool.submit("delete", vanished, lambda key: (store.delete(prefix + key), progress.advance("write")))
    pool.wait()
    if dirty:
        _write_manifest(store, prefix, new, salt=site.salt, builds_upto=builds_upto)
    if tracked or vanished or listed_before:
        store.delete(prefix + PENDING)
    if old.files and LEGACY_MANIFEST not in site.files:
        try:
            store.head(prefix + LEGACY_MANIFEST)
            store.delete(prefix + LEGACY_MANIFEST)
        except NotFound:
            pass
    written = sum(1 for f in changed if new.get(f.key, Entry("x")).digest)
    unchanged = len(site.files) + len(site.kept) - len(changed)
    if site.stream is not None:
        written, unchanged = written + site.stream.written, unchanged + site.stream.unchanged
    return WriteStats(written=written, deleted=len(vanished), unchanged=unchanged)


def write_facts(store: Store, facts: Facts) -> None:
    """Keep the site facts (`jobs.publish.site.facts`) when this run learned some (one plain put, atomic)."""
    if facts.learned:
        store.put(FACTS_KEY, facts_document(facts), content_type=PARQUET)


BATCH_SCHEMA = "rebuilder.countersigned/1"
BATCH_SUFFIX = "#"  # a copy source "<batch key>#<build id>": that build's link in a run's batch


def keep_attestations(store: Store, links: Mapping[str, dict[str, Any]]) -> str | None:
    """Keep one run's countersigned attestations in one object (publish-owned, immutable):
    `history/attestations/run-<name>.json`, `{"schema", "links": {build id: link}}`; its key (None: none)."""
    if not links:
        return None
    key = attestation_batch_key(unique_name(""))
    body = {"schema": BATCH_SCHEMA, "links": {k: links[k] for k in sorted(links)}}
    store.put(key, json.dumps(body, sort_keys=True).encode(), content_type=JSON)
    return key


def batched_source(batch: str, build_id: str) -> str:
    """The copy source of one build's countersigned link in a run's batch."""
    return f"{batch}{BATCH_SUFFIX}{build_id}"


_batches: OrderedDict[str, dict[str, Any]] = OrderedDict()  # recently read batches (a site rebuilt from scratch)
_batches_lock = threading.Lock()


def _batched_link(source: Store, copy_from: str) -> bytes:
    """One build's countersigned link, from the batch `copy_from` names (NotFound if it is not there)."""
    key, _, build_id = copy_from.partition(BATCH_SUFFIX)
    with _batches_lock:
        links = _batches.get(key)
    if links is None:
        doc = json.loads(_read_once(source, key, cap("attestation") * 1000))
        links = doc.get("links") if isinstance(doc, dict) and doc.get("schema") == BATCH_SCHEMA else None
        if not isinstance(links, dict):
            raise CorruptData(f"{key} is not a {BATCH_SCHEMA} object")
        with _batches_lock:
            _batches[key] = links
            while len(_batches) > 64:
                _batches.popitem(last=False)
    link = links.get(build_id)
    if not isinstance(link, dict):
        raise NotFound(f"{key} holds no link of {build_id}", op="get", key=key)
    return json.dumps(link, sort_keys=True).encode()
