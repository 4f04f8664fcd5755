"""rebuildctl's transport: read a published site over http(s):// or file://.

HTTP goes through one `jobs.ctl.transport.Transport` (http.client) with timeouts and retries
(GET only, on connection errors, 429 and 5xx). `json_each` fetches several feeds
`FETCHERS` at a time over its keep-alive connections, in order, so a long list
published in parts arrives while its first parts are being read. Responses carrying an
ETag or Last-Modified are kept under `$XDG_CACHE_HOME/rebuildctl` (one file each: the
validators on the first line, then the body) and revalidated with If-None-Match /
If-Modified-Since, so a repeated `pkgs ls` downloads nothing that did not change
(the whole-list download is what slows rebuilderd's websites: docs/design.md#feeds-that-existing-tools-read).

Logs and diffoscope reports are stored gzip-compressed; a static host that serves the
stored bytes without `Content-Encoding: gzip` (or a file:// site) hands us the raw gzip,
which `text` decodes.

The site is untrusted (`jobs.core.bounded`): every file is read with a size cap (before and
after gzip decoding, which streams), every request within a total deadline, redirects are
followed only within the site's origin, and the JSON a command parses has a memory budget
(`Limits`, set by `REBUILDCTL_MAX_FEED_BYTES`, `REBUILDCTL_MAX_TOTAL_BYTES`,
`REBUILDCTL_DEADLINE`). Wrong-typed feeds are one `FeedInvalid` (`jobs.core.feeds`).
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from jobs.core.bounded import CorruptData, OverLimit, cap, decoded, read_capped
from jobs.core.errors import TerminalError, TransientError
from jobs.core.feeds import FeedInvalid
from jobs.core.record import record

DEFAULT_ENDPOINT = "http://127.0.0.1:8484"
TIMEOUT = (10.0, 60.0)  # connect, read (seconds)
# Feeds in flight at once: enough to hide the round trips of a list's 200-row parts behind
# the parsing of those already there, few enough to be polite to a static host.
FETCHERS = 4
# What one JSON value costs in memory at most, besides its text: a list, dict or str object
# and the pointer to it (an empty list from 3 bytes of `[],` is 64 bytes of objects).
_BYTES_PER_VALUE = 80


class FeedNotFound(TerminalError):
    """The site has no such file (HTTP 404/410 or a missing file)."""

    def __init__(self, url: str, hint: str = "") -> None:
        super().__init__(f"not published{hint}", url=url)
        self.url = url


class FeedUnavailable(TransientError):
    """The site could not be reached or answered with a server error."""


def cache_dir(env: dict[str, str] | None = None) -> Path:
    """`$XDG_CACHE_HOME/rebuildctl` (default `~/.cache/rebuildctl`)."""
    env = dict(os.environ if env is None else env)
    base = env.get("XDG_CACHE_HOME") or str(Path(env.get("HOME") or "~").expanduser() / ".cache")
    return Path(base) / "rebuildctl"


@record(frozen=True)
class Limits:
    """What rebuildctl reads from a site at most (`jobs.core.bounded.LIMITS`)."""

    feed_bytes: int = cap("feed")  # one file, after gzip decoding
    total_bytes: int = cap("feeds_total")  # estimated memory of all JSON parsed by one command
    deadline: float = cap("request_deadline")  # seconds for one request, redirects included

    @classmethod
    def from_env(cls, env: dict[str, str] | os._Environ[str] | None = None) -> Limits:
        """The defaults, overridden by $REBUILDCTL_MAX_FEED_BYTES, $REBUILDCTL_MAX_TOTAL_BYTES, $REBUILDCTL_DEADLINE."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for var, name, kind in (("REBUILDCTL_MAX_FEED_BYTES", "feed_bytes", int),
                                ("REBUILDCTL_MAX_TOTAL_BYTES", "total_bytes", int),
                                ("REBUILDCTL_DEADLINE", "deadline", float)):
            raw = env.get(var)
            if raw:
                try:
                    values[name] = kind(raw)
                except ValueError:
                    raise TerminalError(f"${var} must be a number", value=raw[:40]) from None
                if values[name] <= 0:
                    raise TerminalError(f"${var} must be positive", value=raw[:40])
        return cls(**values)


class Site:
    """A published site at `base` (no trailing slash); `get` takes site-relative keys."""

    def __init__(self, base: str, cache: Path | None = None, timeout: tuple[float, float] = TIMEOUT,
                 limits: Limits | None = None) -> None:
        self.base, self.cache, self.timeout = base.rstrip("/"), cache, timeout
        self.limits = Limits() if limits is None else limits
        self._session: Any = None
        self._lock = threading.Lock()  # the fetchers of `json_each` share the session and the cache directory
        self._cache_made = False
        self._parsed = 0  # estimated bytes of JSON parsed so far (the `total_bytes` budget)

    def url(self, key: str) -> str:
        return f"{self.base}/{key.lstrip('/')}"

    def get(self, key: str) -> bytes:
        """The bytes of one site file; FeedNotFound, FeedUnavailable."""
        url = self.url(key)
        scheme = urlsplit(self.base).scheme
        if scheme == "file":
            return self._get_file(url)
        if scheme in ("http", "https"):
            return self._get_http(url)
        raise FeedInvalid("endpoint must be an http://, https:// or file:// URL", endpoint=self.base)

    def json(self, key: str) -> Any:
        """One JSON feed (gzip-decoded if it arrives compressed), within the size caps and the memory budget."""
        data = self._decoded(key)
        self._budget(key, data)
        try:
            return loads(data, big=self._parsed >= ORJSON_FROM)
        except (ValueError, RecursionError):  # a JSONDecodeError, bytes that are not UTF-8, nesting too deep
            raise FeedInvalid("not a JSON feed", url=self.url(key)) from None

    def _decoded(self, key: str) -> bytes:
        try:
            return decoded(self.get(key), self.limits.feed_bytes, self.url(key))
        except CorruptData:
            raise FeedInvalid("corrupt gzip data", url=self.url(key)) from None

    def _budget(self, key: str, data: bytes) -> None:
        """Refuse JSON whose objects would take more memory than is left of the command's budget.

        Each value is at most one object and a pointer besides its text; values are separated
        by commas, and containers open with a bracket, so counting those bounds the objects.
        """
        cost = len(data) + _BYTES_PER_VALUE * (data.count(b",") + data.count(b"[") + data.count(b"{") + 1)
        with self._lock:
            self._parsed += cost
            over = self._parsed > self.limits.total_bytes
        if over:
            raise OverLimit(f"{self.url(key)} (JSON read by this command, as objects in memory)",
                            self.limits.total_bytes, problem="more than")

    def json_each(self, keys: Sequence[str], *, missing_ok: bool = False) -> Iterator[Any]:
        """The JSON feeds at `keys`, in that order; over HTTP `FETCHERS` at a time.

        With `missing_ok`, a feed that is not published comes as None; else FeedNotFound is
        raised where it falls in the order (as are the other errors of `json`).
        """
        def one(key: str) -> Any:
            try:
                return self.json(key)
            except FeedNotFound:
                if missing_ok:
                    return None
                raise

        if len(keys) < 2 or urlsplit(self.base).scheme not in ("http", "https"):
            yield from map(one, keys)
            return
        self.transport()  # one client, made before the fetchers share it
        yield from _fetched_in_order(one, keys, min(FETCHERS, len(keys)))

    def text(self, key: str) -> str:
        """A text file (log, diffoscope report), gzip-decoded if it arrives still compressed."""
        return self._decoded(key).decode("utf-8", "replace")

    # --- transports ----------------------------------------------------------------------

    def _get_file(self, url: str) -> bytes:
        from urllib.request import url2pathname  # not at the top: a tenth of the client's imports, for file:// only

        path = Path(url2pathname(unquote(urlsplit(url).path)))
        site = os.path.normpath(url2pathname(unquote(urlsplit(self.base).path)))
        if os.path.commonpath([site, os.path.normpath(path)]) != site:  # "../../etc/passwd" in a feed's `files`
            raise FeedInvalid("a file outside the site", url=url)
        try:
            with open(path, "rb") as f:
                return read_capped(f, self.limits.feed_bytes, url)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            # -H naming a store (as the demo prints it) rather than its site: say where the site is.
            below = path.parent.parent.parent / "site" / "api" / "v1" / "index.json"
            hint = (f"; that is a store, its site is below it: -H {self.base}/site"
                    if url == self.url("api/v1/index.json") and below.is_file() else "")
            raise FeedNotFound(url, hint) from None
        except OSError as exc:
            raise FeedUnavailable(f"cannot read: {exc.strerror}", url=url) from None

    def transport(self) -> Any:
        """The site's `jobs.ctl.transport.Transport` (made once, shared by the fetchers)."""
        with self._lock:
            if self._session is None:
                from jobs.ctl.transport import Transport

                self._session = Transport(FETCHERS, connect_timeout=self.timeout[0], read_timeout=self.timeout[1])
            return self._session

    def _cache_path(self, url: str) -> Path | None:
        if self.cache is None:
            return None
        return self.cache / f"{sha256_hex(url.encode())}.feed"

    def _get_http(self, url: str) -> bytes:
        from jobs.core.bounded import Deadline
        from jobs.ctl.transport import TransportError

        path = self._cache_path(url)
        meta, cached = _read_cached(path) if path else ({}, b"")
        headers = {"Accept-Encoding": "gzip"}
        if meta.get("etag"):
            headers["If-None-Match"] = meta["etag"]
        if meta.get("last_modified"):
            headers["If-Modified-Since"] = meta["last_modified"]
        try:
            # Read whole within the caps; a Content-Encoding is decoded here, capped, and again by `json`/`text`
            # if the bytes are still compressed; read to its end, the connection is kept for the next.
            resp = self.transport().request("GET", url, limit=self.limits.feed_bytes,
                                        deadline=Deadline(self.limits.deadline, url), headers=headers)
        except TransportError as exc:
            # Only the CA bundle's error (the user's own file, named by their environment) says more than its kind.
            raise FeedUnavailable(f"cannot fetch: {exc if exc.kind == 'CABundleError' else exc.reason}", url=url) from None
        body = resp.body
        if resp.status_code == 304 and len(headers) > 1:  # the body was read with its validators: no race with a rewrite
            return cached
        if resp.status_code in (404, 410):
            raise FeedNotFound(url)
        if resp.status_code >= 500 or resp.status_code == 429:
            raise FeedUnavailable(f"HTTP {resp.status_code}", url=url)
        if resp.status_code != 200:
            raise FeedInvalid(f"HTTP {resp.status_code}", url=url)
        validators = {"etag": resp.headers.get("ETag"), "last_modified": resp.headers.get("Last-Modified")}
        if path and any(validators.values()):
            self._store(path, body, validators)
        return body

    def _store(self, path: Path, body: bytes, validators: dict[str, str | None]) -> None:
        # The cache is an optimisation: failing to write it must never fail the command.
        try:
            if not self._cache_made:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._cache_made = True
            tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            try:
                with open(tmp, "wb") as out:
                    out.write(json.dumps(validators).encode() + b"\n")
                    out.write(body)
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)  # a full disk must not leave a partial file behind
        except OSError:
            pass


# The standard library's json parses a command's feeds until they add up to ORJSON_FROM (as the memory
# budget counts them, `Site._budget`: their bytes and 80 a value, this one's included); orjson parses
# the rest, 5-10x faster on the big list feeds. Its
# import (it loads dataclasses, uuid and platform: about 63 million instructions, a quarter of a
# `pkgs ls --name N`) costs as much as json.loads spends on roughly 150 KiB more than orjson would.
ORJSON_FROM = 64 * 1024
ORJSON_LOADED_FROM = 4096  # once orjson is imported, it parses every document but the smallest
# What the two parsers read differently: an integer beyond 64 bits (orjson: a float), a lone
# surrogate escape (orjson: an error), an exponent of three digits (1e400: json's inf, orjson's
# error). A small document holding any of them (or text looking like one after a `:`, `,`, `[` or at the start)
# is parsed by orjson too, so every feed means the same whichever parser reads it. Nesting json gives up on
# (near 1000 levels, fewer the deeper its caller) is handed to orjson, which reads up to 1024.
_ORJSON_ONLY = re.compile(rb"(?:^|[:,\[])\s*-?(?:\d{19}|\d+(?:\.\d+)?[eE][-+]?\d{3})|\\u[dD][89a-fA-F]")


def loads(data: bytes, *, big: bool = False) -> Any:
    """`data` parsed as orjson parses it: ValueError (or RecursionError) if it is not one UTF-8 JSON document.
    `big`: part of a command that reads at least ORJSON_FROM bytes of JSON (then orjson is worth its import)."""
    if big or len(data) >= ORJSON_FROM or (len(data) >= ORJSON_LOADED_FROM and "orjson" in sys.modules) \
            or _ORJSON_ONLY.search(data):
        import orjson

        return orjson.loads(data)
    try:
        return json.loads(data.decode("utf-8"), parse_constant=_no_constant)
    except RecursionError:  # json gives up near 1000 levels (fewer the deeper the caller), orjson reads 1024
        import orjson

        return orjson.loads(data)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN, Infinity: json reads them, orjson (and the JSON standard) not


def sha256_hex(data: bytes) -> str:
    """The SHA-256 of `data` in hex, from the interpreter's own module where it has one: `hashlib` loads
    OpenSSL's libcrypto (5% of a `pkgs ls --name N` over http://) for the digest of a URL."""
    try:
        from _sha2 import sha256  # Python 3.12 and later
    except ImportError:
        try:
            from _sha256 import sha256  # Python 3.11
        except ImportError:  # an interpreter built without them
            from hashlib import sha256
    return sha256(data).hexdigest()  # type: ignore[no-any-return]


def _fetched_in_order(one: Callable[[str], Any], keys: Sequence[str], fetchers: int) -> Iterator[Any]:
    """`one(key)` of each key in order, `fetchers` threads computing them ahead; an error is raised where it
    falls. Plain threads, not concurrent.futures (whose import, logging with it, was a tenth of `pkgs ls --name`).
    When the caller stops early (an error), keys not started are dropped."""
    results: list[Any] = [None] * len(keys)
    ready = [threading.Event() for _ in keys]
    order = iter(range(len(keys)))
    lock = threading.Lock()
    stopped = False

    def fetch() -> None:
        while True:
            with lock:
                i = None if stopped else next(order, None)
            if i is None:
                return
            try:
                results[i] = (True, one(keys[i]))
            except BaseException as exc:  # noqa: BLE001 (raised again, in order, by the caller's thread)
                results[i] = (False, exc)
            ready[i].set()

    for n in range(fetchers):
        threading.Thread(target=fetch, name=f"rebuildctl-fetch-{n}", daemon=True).start()
    try:
        for i in range(len(keys)):
            ready[i].wait()
            ok, value = results[i]
            results[i] = None  # handed over: not kept while the rest arrive
            if not ok:
                raise value
            yield value
    finally:
        with lock:
            stopped = True


def _read_cached(path: Path) -> tuple[dict[str, str], bytes]:
    """The validators and body of a cached response; ({}, b"") if there is none or it is unreadable."""
    try:
        data = path.read_bytes()
    except OSError:
        return {}, b""
    head, newline, body = data.partition(b"\n")
    try:
        meta = json.loads(head) if newline else None
    except ValueError:
        meta = None
    return (meta, body) if isinstance(meta, dict) else ({}, b"")
