"""rebuildctl's transport: read a published site over http(s):// or file://.

HTTP goes through one `requests.Session` (`jobs.ctl.session`) with timeouts and urllib3's
Retry (GET only, on connection errors, 429 and 5xx). `json_each` fetches several feeds
`FETCHERS` at a time over that session's keep-alive connections, in order, so a long list
published in parts arrives while its first parts are being read. Responses carrying an
ETag or Last-Modified are kept under `$XDG_CACHE_HOME/rebuildctl` (one file each: the
validators on the first line, then the body) and revalidated with If-None-Match /
If-Modified-Since, so a repeated `pkgs ls` downloads nothing that did not change
(the whole-list download is what slows rebuilderd's websites: docs/design.md#feeds-that-existing-tools-read).

Logs and diffoscope reports are stored gzip-compressed; a static host that serves the
stored bytes without `Content-Encoding: gzip` (or a file:// site) hands us the raw gzip,
which `text` decodes.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

import orjson

from jobs.core.errors import TerminalError, TransientError

DEFAULT_ENDPOINT = "http://127.0.0.1:8484"
TIMEOUT = (10.0, 60.0)  # connect, read (seconds)
# Feeds in flight at once: enough to hide the round trips of a list's 200-row parts behind
# the parsing of those already there, few enough to be polite to a static host.
FETCHERS = 4
_GZIP_MAGIC = b"\x1f\x8b"


class FeedNotFound(TerminalError):
    """The site has no such file (HTTP 404/410 or a missing file)."""

    def __init__(self, url: str) -> None:
        super().__init__("not published", url=url)
        self.url = url


class FeedUnavailable(TransientError):
    """The site could not be reached or answered with a server error."""


class FeedInvalid(TerminalError):
    """A file was fetched but is not what the site layout promises (e.g. not JSON)."""


def cache_dir(env: dict[str, str] | None = None) -> Path:
    """`$XDG_CACHE_HOME/rebuildctl` (default `~/.cache/rebuildctl`)."""
    env = dict(os.environ if env is None else env)
    base = env.get("XDG_CACHE_HOME") or str(Path(env.get("HOME") or "~").expanduser() / ".cache")
    return Path(base) / "rebuildctl"


@dataclass
class Site:
    """A published site at `base` (no trailing slash); `get` takes site-relative keys."""

    base: str
    cache: Path | None = None
    timeout: tuple[float, float] = TIMEOUT

    def __post_init__(self) -> None:
        self.base = self.base.rstrip("/")
        self._session: Any = None
        self._lock = threading.Lock()  # the fetchers of `json_each` share the session and the cache directory
        self._cache_made = False

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
        """One JSON feed."""
        data = self.get(key)
        if data[:2] == _GZIP_MAGIC:
            data = gzip.decompress(data)
        try:
            return orjson.loads(data)  # 2-3x the speed of json.loads on the big list feeds
        except orjson.JSONDecodeError:
            raise FeedInvalid("not a JSON feed", url=self.url(key)) from None

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
        self._http()  # one session, made before the fetchers share it
        pool = ThreadPoolExecutor(min(FETCHERS, len(keys)), thread_name_prefix="rebuildctl-fetch")
        try:
            yield from pool.map(one, keys)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)  # on an error, drop what was not started

    def text(self, key: str) -> str:
        """A text file (log, diffoscope report), gzip-decoded if it arrives still compressed."""
        data = self.get(key)
        if data[:2] == _GZIP_MAGIC:
            try:
                data = gzip.decompress(data)
            except (OSError, EOFError):
                raise FeedInvalid("corrupt gzip data", url=self.url(key)) from None
        return data.decode("utf-8", "replace")

    # --- transports ----------------------------------------------------------------------

    @staticmethod
    def _get_file(url: str) -> bytes:
        path = Path(url2pathname(unquote(urlsplit(url).path)))
        try:
            return path.read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise FeedNotFound(url) from None
        except OSError as exc:
            raise FeedUnavailable(f"cannot read: {exc.strerror}", url=url) from None

    def _http(self) -> Any:
        with self._lock:
            if self._session is None:
                from jobs.ctl.session import session

                self._session = session(FETCHERS)
            return self._session

    def _cache_path(self, url: str) -> Path | None:
        if self.cache is None:
            return None
        return self.cache / f"{hashlib.sha256(url.encode()).hexdigest()}.feed"

    def _get_http(self, url: str) -> bytes:
        import requests
        import urllib3

        path = self._cache_path(url)
        meta, cached = _read_cached(path) if path else ({}, b"")
        headers = {}
        if meta.get("etag"):
            headers["If-None-Match"] = meta["etag"]
        if meta.get("last_modified"):
            headers["If-Modified-Since"] = meta["last_modified"]
        try:
            # The body in one read, not requests' 10 KiB chunks (a quarter of the client's time on a
            # list's 120 kB parts); read to its end, the connection goes back to the pool for the next.
            resp = self._http().get(url, headers=headers or None, timeout=self.timeout, stream=True)
            with resp:
                body = resp.raw.read(decode_content=True)
        except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
            raise FeedUnavailable(f"cannot fetch: {type(exc).__name__}", url=url) from None
        if resp.status_code == 304 and headers:  # the body was read with its validators: no race with a rewrite
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
