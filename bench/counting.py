"""A store wrapper that counts what a job costs: S3 requests by operation and price class, and bytes.

`CountingStore(inner)` implements the whole `Store` protocol by delegation, so any job runs
on it unchanged. It counts the requests S3 would bill, not protocol calls:

- `get`, `open` and `head` are one GET/HEAD each (a missing key is still a billed request);
- a write is one PUT, except a streamed body of `CHUNK_SIZE` or more, which `S3Store`
  uploads in parts: create + one request per part + complete;
- `list` is one LIST request per page of 1,000 keys (the first page even when it is empty);
- `delete` is one DELETE (free at AWS).

Refused conditional writes (HTTP 412) and reads of missing keys are counted as well: they
are the claim conflicts and the probes of the request-accounting benchmarks. The wrapper is
thread-safe (a lease keeper renews from its own thread).

`http_counter(store)` counts the HTTP requests boto3 really sends for an `S3Store` (retries
included), to check that the counts above match the wire.
"""

from __future__ import annotations

import math
import re
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from jobs.core.store import Blob, Body, NotFound, ObjectInfo, PreconditionFailed, Store
from jobs.core.store.base import CHUNK_SIZE

# AWS S3 Standard, us-east-1 list prices (USD per 1,000 requests), as of 2025.
PRICE_PER_1000 = {"put": 0.005, "get": 0.0004, "delete": 0.0}
PRICE_NOTE = ("AWS S3 Standard us-east-1 list prices: PUT/COPY/POST/LIST $0.005 per 1,000 requests, "
              "GET/HEAD $0.0004 per 1,000, DELETE free; data transfer and storage not included")
# Which price class each counted request falls in.
PRICE_CLASS = {"get": "get", "open": "get", "head": "get", "put": "put", "put_if_absent": "put",
               "put_if_match": "put", "list": "put", "delete": "delete"}
LIST_PAGE = 1000

# What a site object is, for counting publish's writes by kind (paths as jobs.core.urls makes them).
_LISTS = r"(?:GOOD|BAD|FAIL|UNKWN|names|class/[^/]+)"
SITE_KINDS = (
    ("build files", re.compile(r"api/v0/builds/")),
    ("package pages", re.compile(r"packages/")),
    ("package feeds", re.compile(r"api/v1/packages/")),
    ("maintainer feeds", re.compile(r"api/v1/maintainers/(?!index\.json$)")),
    ("maintainer Atom feeds", re.compile(r"maintainers/.*\.atom$")),
    ("maintainer pages and index", re.compile(r"(api/v1/)?maintainers/")),
    ("whole-list feeds", re.compile(r"api/v1/suites/.*\.all\.json$")),
    ("names list parts", re.compile(r"api/v1/suites/.*/names/[^/]+\.json$")),
    ("status and class list parts", re.compile(rf"api/v1/suites/.*/{_LISTS}/[^/]+\.json$")),
    ("list feeds (unsplit) and list indexes", re.compile(rf"api/v1/suites/.*/{_LISTS}\.json$")),
    ("suite feeds and pages, list pages", re.compile(r"(api/v1/)?suites/")),
    ("search index", re.compile(r"(api/v1/)?search")),
)


def site_kind(key: str) -> str | None:
    """The kind of a site object's key ("site/..."); None for a key outside the site."""
    if not key.startswith("site/"):
        return None
    rest = key.removeprefix("site/")
    for kind, pattern in SITE_KINDS:
        if pattern.match(rest):
            return kind
    return "dashboard, top feeds, keys, manifest"


@dataclass
class Counts:
    """Requests (as S3 bills them) and bytes, by operation; refusals and misses; by top-level prefix."""

    requests: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)  # conditional writes that got 412
    missing: Counter[str] = field(default_factory=Counter)  # reads of absent keys (404)
    bytes_read: int = 0
    bytes_written: int = 0
    list_keys: int = 0
    by_prefix: Counter[str] = field(default_factory=Counter)  # "<op> <top-level prefix>/" → requests (list: its prefix)
    listed: Counter[str] = field(default_factory=Counter)  # listing prefix → keys listed
    site_writes: Counter[str] = field(default_factory=Counter)  # write requests to site/, by `site_kind`

    @property
    def total(self) -> int:
        """All requests."""
        return sum(self.requests.values())

    def by_class(self) -> dict[str, int]:
        """Requests per price class: put (PUT/POST/LIST), get (GET/HEAD), delete."""
        out: Counter[str] = Counter()
        for op, n in self.requests.items():
            out[PRICE_CLASS[op]] += n
        return {k: out.get(k, 0) for k in PRICE_PER_1000}

    def cost_usd(self) -> float:
        """What these requests cost at the list prices above."""
        return sum(n * PRICE_PER_1000[cls] / 1000 for cls, n in self.by_class().items())

    def __sub__(self, other: Counts) -> Counts:
        return Counts(self.requests - other.requests, self.refused - other.refused, self.missing - other.missing,
                      self.bytes_read - other.bytes_read, self.bytes_written - other.bytes_written,
                      self.list_keys - other.list_keys, self.by_prefix - other.by_prefix,
                      self.listed - other.listed, self.site_writes - other.site_writes)

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.requests + other.requests, self.refused + other.refused, self.missing + other.missing,
                      self.bytes_read + other.bytes_read, self.bytes_written + other.bytes_written,
                      self.list_keys + other.list_keys, self.by_prefix + other.by_prefix,
                      self.listed + other.listed, self.site_writes + other.site_writes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready figures."""
        return {"total": self.total, "by_operation": dict(sorted(self.requests.items())),
                "by_class": self.by_class(), "refused": dict(sorted(self.refused.items())),
                "missing": dict(sorted(self.missing.items())), "bytes_read": self.bytes_read,
                "bytes_written": self.bytes_written, "list_keys": self.list_keys,
                "by_prefix": dict(sorted(self.by_prefix.items())), "listed": dict(sorted(self.listed.items())),
                "site_writes": dict(sorted(self.site_writes.items()))}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Counts:
        """The inverse of `to_dict` (counts sent back by a child process)."""
        return cls(Counter(data["by_operation"]), Counter(data["refused"]), Counter(data["missing"]),
                   data["bytes_read"], data["bytes_written"], data["list_keys"], Counter(data["by_prefix"]),
                   Counter(data.get("listed", {})), Counter(data.get("site_writes", {})))


def _prefix(key: str) -> str:
    head, sep, _ = key.partition("/")
    return head + sep if sep else key


def _write_requests(size: int, streamed: bool) -> int:
    """S3 requests `S3Store` makes for one write: multipart for streamed bodies of a chunk or more."""
    if not streamed or size < CHUNK_SIZE:
        return 1
    return 2 + max(1, math.ceil(size / CHUNK_SIZE))


class _CountingReader:
    """A body or a download stream that adds the bytes read through it to a tally."""

    def __init__(self, inner: Any, on_bytes: Any) -> None:
        self._inner, self._on_bytes, self.count = inner, on_bytes, 0

    def read(self, n: int = -1) -> bytes:
        data = self._inner.read(n)
        self.count += len(data)
        self._on_bytes(len(data))
        return data

    def __iter__(self) -> Iterator[bytes]:
        return iter(lambda: self.read(1 << 16), b"")

    def __enter__(self) -> _CountingReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._inner.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class CountingStore:
    """Any store, with every request counted (see the module docstring)."""

    def __init__(self, inner: Store) -> None:
        self.inner, self.url = inner, inner.url
        self._lock = threading.Lock()
        self._counts = Counts()

    def __repr__(self) -> str:
        return f"CountingStore({self.inner!r})"

    # -- the tally -------------------------------------------------------------------

    def counts(self) -> Counts:
        """A copy of the counts so far (subtract two copies to count one step)."""
        with self._lock:
            return self._counts + Counts()

    def reset(self) -> Counts:
        """The counts so far, and start again from zero."""
        with self._lock:
            done, self._counts = self._counts, Counts()
        return done

    def _count(self, op: str, key: str, n: int = 1, *, group: str | None = None) -> None:
        with self._lock:
            self._counts.requests[op] += n
            self._counts.by_prefix[f"{op} {group or _prefix(key)}"] += n

    def _add(self, what: str, n: int) -> None:
        with self._lock:
            setattr(self._counts, what, getattr(self._counts, what) + n)

    def _tally(self, kind: str, op: str) -> None:
        with self._lock:
            getattr(self._counts, kind)[op] += 1

    # -- reading ---------------------------------------------------------------------

    def get(self, key: str) -> Blob:
        """As the inner store's `get`."""
        self._count("get", key)
        try:
            blob = self.inner.get(key)
        except NotFound:
            self._tally("missing", "get")
            raise
        self._add("bytes_read", len(blob.data))
        return blob

    def open(self, key: str) -> BinaryIO:
        """As the inner store's `open`; bytes are counted as they are read."""
        self._count("open", key)
        try:
            stream = self.inner.open(key)
        except NotFound:
            self._tally("missing", "open")
            raise
        return _CountingReader(stream, lambda n: self._add("bytes_read", n))  # type: ignore[return-value]

    def head(self, key: str) -> ObjectInfo:
        """As the inner store's `head`."""
        self._count("head", key)
        try:
            return self.inner.head(key)
        except NotFound:
            self._tally("missing", "head")
            raise

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """As the inner store's `list`: one request per page of 1,000 keys."""
        group = prefix or "/"
        self._count("list", group, group=group)
        n = 0
        for info in self.inner.list(prefix):
            if n and n % LIST_PAGE == 0:
                self._count("list", group, group=group)
            n += 1
            with self._lock:
                self._counts.list_keys += 1
                self._counts.listed[group] += 1
            yield info

    # -- writing ---------------------------------------------------------------------

    def _write(self, op: str, key: str, body: Body, call: Any) -> str:
        if isinstance(body, (bytes, bytearray, memoryview)):
            size, streamed, wrapped = len(body), False, body
        else:
            wrapped = _CountingReader(body, lambda n: None)
            streamed = True
        try:
            return call(wrapped)
        except PreconditionFailed:
            self._tally("refused", op)
            raise
        finally:
            if streamed:
                size = wrapped.count  # type: ignore[union-attr]
            n = _write_requests(size, streamed)
            self._count(op, key, n)
            self._add("bytes_written", size)
            kind = site_kind(key)
            if kind is not None:
                with self._lock:
                    self._counts.site_writes[kind] += n

    def put(self, key: str, body: Body, *, content_type: str | None = None,
            content_encoding: str | None = None) -> str:
        """As the inner store's `put`."""
        return self._write("put", key, body, lambda b: self.inner.put(
            key, b, content_type=content_type, content_encoding=content_encoding))

    def put_if_absent(self, key: str, body: Body, *, content_type: str | None = None,
                      content_encoding: str | None = None) -> str:
        """As the inner store's `put_if_absent`."""
        return self._write("put_if_absent", key, body, lambda b: self.inner.put_if_absent(
            key, b, content_type=content_type, content_encoding=content_encoding))

    def put_if_match(self, key: str, body: Body, etag: str, *, content_type: str | None = None,
                     content_encoding: str | None = None) -> str:
        """As the inner store's `put_if_match`."""
        return self._write("put_if_match", key, body, lambda b: self.inner.put_if_match(
            key, b, etag, content_type=content_type, content_encoding=content_encoding))

    def delete(self, key: str) -> None:
        """As the inner store's `delete`."""
        self._count("delete", key)
        self.inner.delete(key)


def http_counter(store: Store) -> Counter[str] | None:
    """A counter of the HTTP requests (by S3 operation name) boto3 sends for this store; None if not S3."""
    inner = store.inner if isinstance(store, CountingStore) else store
    client = getattr(inner, "client", None)
    if client is None:
        return None
    sent: Counter[str] = Counter()
    lock = threading.Lock()

    def on_send(event_name: str = "", **kwargs: Any) -> None:
        with lock:
            sent[event_name.rsplit(".", 1)[-1]] += 1  # before-send.s3.<Operation>

    client.meta.events.register("before-send.s3", on_send)
    return sent
