"""Bounded reads: every byte from outside (mirror, worker upload, published site) is read with a cap.

One discipline for sync, publish, work and rebuildctl:

- `read_capped` reads a stream (or bytes) to at most `cap` bytes and fails one byte past it;
- `decompress_capped` decompresses gzip or xz *while streaming*, stopping one byte past the
  output cap, so a bomb (3 MB of gzip that expand to 3 GiB) never expands in memory;
- `Deadline` is a total time budget for one request (not a per-read timeout, which a server
  sending one byte every few seconds never trips), and `get_capped` is an HTTP GET that
  respects the deadline, the size cap and follows redirects only within one origin.

Over a cap, the error is `OverLimit` naming the object and the limit; callers refuse the
object whole (nothing half-written). The limits themselves are `LIMITS` (the table in
docs/design.md "Limits" is checked against it by tests/core/test_bounded.py).
"""

from __future__ import annotations

import lzma
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO
from urllib.parse import urljoin, urlsplit

from jobs.core.errors import TerminalError, TransientError
from jobs.core.record import record

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
GZIP_MAGIC = b"\x1f\x8b"
XZ_MAGIC = b"\xfd7zXZ\x00"
_CHUNK = 1 << 16


@record(frozen=True)
class Limit:
    """One cap: its value, what it bounds and where an operator sets it (None: fixed)."""

    name: str
    value: int
    unit: str  # "bytes", "characters", "seconds"
    bounds: str
    setting: str | None = None


_LIMITS = (
    # sync: the distro's indexes
    Limit("index_download", 512 * MiB, "bytes", "one index file as downloaded, and a Debian index decompressed (sync)",
          "`[sync] max_index_bytes`"),
    Limit("index_unpacked", GiB, "bytes", "an Arch database unpacked (sync)", "`[sync] max_unpacked_bytes`"),
    Limit("index_member", MiB, "bytes", "one package's `desc` in an Arch database (sync)"),
    Limit("inrelease", 64 * MiB, "bytes", "a Debian `InRelease` file (sync)"),
    Limit("mirror_deadline", 600, "seconds", "one mirror request of sync (index, InRelease), from connecting to "
          "the last byte, redirects and retries included; past it the profile fails, transient (exit 75)",
          "`[sync] deadline`"),
    # work: what a worker downloads
    Limit("artifact_download", 4 * GiB, "bytes", "one package or source file a worker downloads"),
    Limit("download_deadline", 3600, "seconds", "one file a worker downloads before a build (package, "
          ".buildinfo), from connecting to the last byte; past it the attempt is FAIL, retried as usual",
          "`[build] download_deadline` (worker)"),
    # publish: what workers upload
    Limit("result", MiB, "bytes", "one signed result object (publish)"),
    Limit("notice", 64 * KiB, "bytes", "one claim notice (start, lost; a done receipt is read as a result) a worker "
          "writes, as publish reads it"),
    Limit("enrolment", 64 * KiB, "bytes", "one worker enrolment record, as publish reads it"),
    Limit("attestation", MiB, "bytes", "one attestation a worker uploads, as publish countersigns it"),
    Limit("run_attestations", 256 * MiB, "bytes", "the attestations publish accepts in one run, kept together in "
          "the run's `history/attestations/` object (read back capped at 1,000 attestations' worth); the GOOD "
          "results past it wait, unjudged, for the next publish"),
    Limit("record", MiB, "bytes", "one claim or worker record a worker writes, as publish reads it"),
    Limit("upload", 64 * MiB, "bytes", "one uploaded build file as stored: log, diffoscope text or HTML, "
          "attestation (publish copies it; larger is not published)", "`[publish] max_upload_bytes`"),
    Limit("report_decoded", 12 * MiB, "bytes", "a diffoscope HTML report decompressed, before sanitizing: "
          "the sanitizer holds about 25 times the report in memory, so this keeps publish under 512 MiB "
          "(a larger report is not published as HTML; its text form still is)", "`[publish] max_report_bytes`"),
    Limit("report_tags", 1_000_000, "tags", "'<' characters in a diffoscope HTML report: the sanitizer's memory "
          "grows with the number of elements (up to about 225 bytes each) more than with the bytes"),
    Limit("log_decoded", 256 * MiB, "bytes", "a build log decompressed while its tail is read for classification; "
          "and any gzip build file (log, diffoscope text) publish copies, inflated once to check it: a visitor's "
          "browser inflates it, so a larger or broken one is not published"),
    Limit("signed_file", GiB, "bytes", "one build file publish streams to check its size and SHA-256 against the "
          "signed result (larger is refused unread)"),
    Limit("admin_request", 64 * KiB, "bytes", "one admin request (requeue, queue push/drop) as rebuildctl or "
          "`rebuilder serve` writes it and publish reads it"),
    # rebuilder serve: what it reads to answer the v0 API
    Limit("serve_list", GiB, "bytes", "the v0 package list `rebuilder serve` filters (ours, but the store is shared)"),
    Limit("serve_feed", 256 * MiB, "bytes", "one feed `rebuilder serve` reads to answer the v0 API"),
    Limit("serve_inflated", GiB, "bytes", "one gzip-encoded file `rebuilder serve` decompresses for a client "
          "that does not take gzip"),
    Limit("serve_idle", 60, "seconds", "how long `rebuilder serve` waits on one client's socket (a request "
          "line, a header, a body, a read of its answer) before it closes the connection"),
    # rebuildctl: a published site
    Limit("feed", 32 * MiB, "bytes", "one feed or file rebuildctl reads, after gzip decoding",
          "`REBUILDCTL_MAX_FEED_BYTES`"),
    Limit("feeds_total", 256 * MiB, "bytes", "estimated memory of all JSON one rebuildctl command parses",
          "`REBUILDCTL_MAX_TOTAL_BYTES`"),
    Limit("request_deadline", 120, "seconds", "one rebuildctl request, from connecting to the last byte "
          "(redirects included)", "`REBUILDCTL_DEADLINE`"),
    Limit("redirects", 5, "redirects", "redirects rebuildctl follows for one request, same origin only"),
    Limit("package_metadata", MiB, "bytes", "`.PKGINFO` or a Debian `control` read from a package file "
          "`rebuildctl verify` checks"),
    # fields (jobs.core.model.limits)
    Limit("name", 255, "characters", "package, source and architecture names, component, distro, release"),
    Limit("version", 255, "characters", "package and source versions"),
    Limit("url", 2048, "characters", "artifact and build-input URLs"),
    Limit("reason", 4096, "characters", "a result's reason and other free text (printable only)"),
    Limit("description", 200, "characters", "a package's one-line description (Arch %DESC%, Debian's "
          "Description synopsis): longer is cut, control and bidi characters replaced"),
    Limit("worker_name", 255, "characters", "a worker's name (printable only)"),
    Limit("maintainers", 64, "names", "the maintainer and uploaders kept for one Debian package, in the order its "
          "stanzas name them (every binary of a source carries them: the rest are not kept)"),
    Limit("profile_name", 64, "characters", "a sync profile or worker backend name: [A-Za-z0-9._-], not starting with '.'"),
    Limit("key_segment", 250, "bytes", "one '/'-separated segment of a store key, on both stores (a local file "
          "system's 255-byte NAME_MAX less the local store's `.json` metadata suffix)"),
    Limit("key", 1024, "bytes", "a whole store key (both stores)"),
)
LIMITS: dict[str, Limit] = {limit.name: limit for limit in _LIMITS}


def limits_markdown() -> str:
    """The limits as the table of docs/design.md "Limits" (a generated block)."""
    rows = ["| limit | value | bounds | set by |", "|---|---|---|---|"]
    for limit in _LIMITS:
        value = f"{limit.value:,} {limit.unit}"
        if limit.unit == "bytes" and limit.value >= MiB:
            value += f" ({limit.value / MiB:g} MiB)"
        rows.append(f"| `{limit.name}` | {value} | {limit.bounds} | {limit.setting or 'fixed'} |")
    return "\n".join(rows) + "\n"


_CONFIGURED: dict[str, int] = {}  # what an operator set, while a job runs (`configured`)


def cap(name: str) -> int:
    """The value of limit `name`: the operator's while a job runs with it `configured`, else the default."""
    return _CONFIGURED.get(name, LIMITS[name].value)


@contextmanager
def configured(values: dict[str, int | None]) -> Iterator[None]:
    """Within the block, `cap(name)` is `values[name]` for each name set (None: the default).

    A job applies its config's limits for its whole run (all its threads see them); the block
    restores what was set before, so tests running jobs one after another do not leak them.
    """
    unknown = set(values) - set(LIMITS)
    if unknown:
        raise KeyError(f"unknown limits: {sorted(unknown)}")
    before = dict(_CONFIGURED)
    _CONFIGURED.update({name: value for name, value in values.items() if value is not None})
    try:
        yield
    finally:
        _CONFIGURED.clear()
        _CONFIGURED.update(before)


class OverLimit(TerminalError):
    """An object from outside is larger (or slower) than its limit; it is refused whole."""

    def __init__(self, what: str, limit: int, unit: str = "bytes", *, problem: str = "larger than") -> None:
        super().__init__(f"{what}: {problem} the limit of {limit:,} {unit}")
        self.what, self.limit = what, limit


class CorruptData(TerminalError):
    """Compressed data that does not decompress (truncated, corrupt, trailing garbage)."""


class DeadlineExceeded(TransientError):
    """A request took longer than its total deadline (a server trickling bytes)."""


# --- plain reads ----------------------------------------------------------------------------

def read_capped(source: BinaryIO | bytes | Iterable[bytes], limit: int, what: str) -> bytes:
    """All of `source` (a file object, bytes or an iterable of chunks), or OverLimit past `limit` bytes."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) > limit:
            raise OverLimit(what, limit)
        return bytes(source)
    chunks: Iterable[bytes]
    if hasattr(source, "read"):
        reader = source
        chunks = iter(lambda: reader.read(min(_CHUNK * 16, limit + 1)), b"")
    else:
        chunks = source
    out = bytearray()
    for chunk in chunks:
        out += chunk
        if len(out) > limit:
            raise OverLimit(what, limit)
    return bytes(out)


# --- decompression ---------------------------------------------------------------------------

def compression_of(data: bytes, encoding: str | None = None) -> str:
    """ "gz", "xz" or "" from a Content-Encoding and the magic bytes."""
    if encoding == "gzip" or data[:2] == GZIP_MAGIC:
        return "gz"
    if data[:6] == XZ_MAGIC:
        return "xz"
    return ""


def decompress_chunks(data: bytes, kind: str, limit: int, what: str) -> Iterator[bytes]:
    """`data` decompressed as `kind` ("gz", "xz" or "" for plain) in chunks, OverLimit one byte past `limit`.

    Concatenated members/streams are read one after another; a truncated or corrupt stream is
    CorruptData, never silently shorter output.
    """
    if kind == "":
        if len(data) > limit:
            raise OverLimit(what, limit)
        yield data
        return
    if kind not in ("gz", "xz"):
        raise ValueError(f"unknown compression {kind!r}")
    magic, name = (GZIP_MAGIC, "gzip") if kind == "gz" else (XZ_MAGIC, "xz")
    if not data.startswith(magic):
        raise CorruptData(f"{what}: not a {name} stream")
    total = 0
    rest = memoryview(data)
    while True:
        dec: Any = (zlib.decompressobj(wbits=16 + zlib.MAX_WBITS) if kind == "gz"
                    else lzma.LZMADecompressor(format=lzma.FORMAT_XZ))
        pending = rest
        try:
            while not dec.eof:
                room = min(limit - total + 1, _CHUNK * 16)
                if kind == "gz":
                    chunk = dec.decompress(pending, room)
                    progressed = bool(chunk) or len(dec.unconsumed_tail) != len(pending)
                    pending = dec.unconsumed_tail
                else:
                    chunk = dec.decompress(pending, max_length=room)
                    pending = b""
                    progressed = bool(chunk) or not dec.needs_input
                total += len(chunk)
                if total > limit:
                    raise OverLimit(f"{what} decompressed", limit)
                if chunk:
                    yield chunk
                elif not progressed and not dec.eof:
                    raise CorruptData(f"{what}: truncated {name} stream")
        except (zlib.error, lzma.LZMAError) as exc:
            raise CorruptData(f"{what}: corrupt {name} stream ({exc})") from None
        rest = memoryview(dec.unused_data)
        if not bytes(rest).strip(b"\0"):  # stream padding
            return
        if not bytes(rest[: len(magic)]) == magic:
            raise CorruptData(f"{what}: trailing data after the {name} stream")


def decompress_capped(data: bytes, kind: str, limit: int, what: str) -> bytes:
    """`data` decompressed as `kind` ("gz", "xz", ""), at most `limit` bytes (OverLimit, CorruptData)."""
    if kind == "":
        return read_capped(data, limit, what)
    out = bytearray()
    for chunk in decompress_chunks(data, kind, limit, what):
        out += chunk
    return bytes(out)


def decoded(data: bytes, limit: int, what: str, encoding: str | None = None) -> bytes:
    """`data` gzip/xz-decoded if it is compressed (by its magic or `encoding`), capped at `limit`."""
    return decompress_capped(data, compression_of(data, encoding), limit, what)


# --- time --------------------------------------------------------------------------------------

class Deadline:
    """A total time budget, started when made; `left()` raises DeadlineExceeded once it is spent."""

    def __init__(self, seconds: float, what: str) -> None:
        self.seconds, self.what = seconds, what
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        remaining = self.end - time.monotonic()
        if remaining <= 0:
            raise self.exceeded()
        return remaining

    def spent(self) -> bool:
        return time.monotonic() >= self.end

    def exceeded(self) -> DeadlineExceeded:
        return DeadlineExceeded(f"{self.what}: not complete within the {self.seconds:g}-second deadline")

    @contextmanager
    def applied(self) -> Iterator[Deadline]:
        """Within the block, sessions built with `jobs.core.bounded_http.deadline_adapter` keep this
        deadline on every connect and socket read of this thread (headers and body alike)."""
        before = getattr(_ACTIVE, "deadline", None)
        _ACTIVE.deadline = self
        try:
            yield self
        finally:
            _ACTIVE.deadline = before


_ACTIVE = threading.local()


def active_deadline() -> Deadline | None:
    """The deadline `Deadline.applied()` made active on this thread, if any."""
    return getattr(_ACTIVE, "deadline", None)


# --- HTTP --------------------------------------------------------------------------------------

class RedirectRefused(TerminalError):
    """A redirect to another origin (scheme, host or port), or too many redirects."""


def same_origin(a: str, b: str) -> bool:
    pa, pb = urlsplit(a), urlsplit(b)
    try:
        return (pa.scheme, pa.hostname, pa.port) == (pb.scheme, pb.hostname, pb.port)
    except ValueError:  # a port that is no port ("99999", "ab"): no origin of ours
        return False


def get_capped(session: Any, url: str, *, limit: int, deadline: Deadline, headers: dict[str, str] | None = None,
               connect_timeout: float = 10.0, read_timeout: float = 60.0,
               max_redirects: int | None = None, same_origin_only: bool = True,
               on_response: Callable[[Any], None] | None = None,
               on_chunk: Callable[[int], None] | None = None) -> tuple[Any, bytes]:
    """GET `url` with `session` (requests): (response, body), the body at most `limit` bytes
    (before and after Content-Encoding decoding, which streams), all within `deadline`,
    redirects followed only within the origin of `url` (any with `same_origin_only=False`:
    a distro's mirror redirector). `on_response(resp)` sees the final response before its body
    is read, `on_chunk(n)` each chunk of the body as it arrives (a progress bar). Raises OverLimit, CorruptData, DeadlineExceeded, RedirectRefused or requests' errors.

    With a session built on `jobs.core.bounded_http.deadline_adapter`, the deadline holds on
    every socket read (a server trickling its headers too); with another, between reads of the body.
    """
    with deadline.applied():
        return _get_capped(session, url, limit, deadline, headers, connect_timeout, read_timeout,
                           max_redirects, same_origin_only, on_response, on_chunk)


def _get_capped(session: Any, url: str, limit: int, deadline: Deadline, headers: dict[str, str] | None,
                connect_timeout: float, read_timeout: float, max_redirects: int | None, same_origin_only: bool,
                on_response: Callable[[Any], None] | None,
                on_chunk: Callable[[int], None] | None) -> tuple[Any, bytes]:
    headers = {"Accept-Encoding": "gzip", **(headers or {})}
    max_redirects = cap("redirects") if max_redirects is None else max_redirects
    current = url
    for _ in range(max_redirects + 1):
        left = deadline.left()
        try:
            resp = session.get(current, headers=headers, stream=True, allow_redirects=False,
                               timeout=(min(connect_timeout, left), min(read_timeout, left)))
        except Exception:
            if deadline.spent():  # the timeout that fired was the deadline's
                raise deadline.exceeded() from None
            raise
        with resp:
            if resp.is_redirect:
                target = urljoin(current, resp.headers.get("Location", ""))
                if same_origin_only and not same_origin(url, target):
                    raise RedirectRefused("redirect to another origin refused", url=current, location=target[:200])
                current = target
                continue
            length = resp.headers.get("Content-Length", "")
            if length.isascii() and length.isdigit() and int(length) > limit and resp.status_code == 200:
                raise OverLimit(current, limit)
            if on_response is not None:
                on_response(resp)
            body = _read_response(resp, limit, deadline, current, read_timeout, on_chunk)
            coding = resp.headers.get("Content-Encoding", "").strip().lower()
            if coding in ("gzip", "x-gzip"):
                body = decompress_capped(body, "gz", limit, current)
            elif coding not in ("", "identity"):
                raise CorruptData(f"{current}: unsupported Content-Encoding {coding[:40]!r}")
            return resp, body
    raise RedirectRefused(f"more than {max_redirects} redirects", url=url)


def _read_response(resp: Any, limit: int, deadline: Deadline, what: str, read_timeout: float,
                   on_chunk: Callable[[int], None] | None) -> bytes:
    out = bytearray()
    raw = resp.raw
    while True:
        _set_socket_timeout(raw, min(read_timeout, deadline.left()))
        try:
            chunk = raw.read1(_CHUNK * 4, decode_content=False)  # what has arrived: the deadline is checked between
        except Exception:
            if deadline.spent():
                raise deadline.exceeded() from None
            raise
        if not chunk:
            deadline.left()
            return bytes(out)
        out += chunk
        if on_chunk is not None:
            on_chunk(len(chunk))
        if len(out) > limit:
            raise OverLimit(what, limit)
        deadline.left()


def _set_socket_timeout(raw: Any, seconds: float) -> None:
    """Shorten the socket's read timeout to what is left of the deadline (urllib3 keeps it per request)."""
    sock = getattr(getattr(raw, "_connection", None), "sock", None)
    if sock is None:
        fp = getattr(raw, "_fp", None)
        sock = getattr(getattr(getattr(fp, "fp", None), "raw", None), "_sock", None)
    if sock is not None:
        try:
            sock.settimeout(max(seconds, 0.01))
        except OSError:
            pass


# --- store objects -------------------------------------------------------------------------

def read_object(store: Any, key: str, limit: int) -> tuple[bytes, Any]:
    """(bytes, ObjectInfo) of a stored object written by someone we do not trust, at most `limit` bytes.

    The size is checked before reading (HEAD), and again while streaming (the object may be
    replaced in between): an oversized object is never read whole. NotFound as the store says.
    """
    info = store.head(key)
    if info.size > limit:
        raise OverLimit(key, limit)
    body = store.open(key)
    try:
        return read_capped(body, limit, key), info
    finally:
        body.close()
