"""rebuildctl's transport: read a published site over http(s):// or file://.

HTTP goes through one `requests.Session` with timeouts and urllib3's Retry (GET only,
on connection errors, 429 and 5xx). Responses carrying an ETag or Last-Modified are kept
under `$XDG_CACHE_HOME/rebuildctl` and revalidated with If-None-Match / If-Modified-Since,
so a repeated `pkgs ls` downloads nothing that did not change (reference §10 #15).

Logs and diffoscope reports are stored gzip-compressed; a static host that serves the
stored bytes without `Content-Encoding: gzip` (or a file:// site) hands us the raw gzip,
which `text` decodes.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

import orjson

from jobs.core.errors import TerminalError, TransientError

DEFAULT_ENDPOINT = "http://127.0.0.1:8484"
TIMEOUT = (10.0, 60.0)  # connect, read (seconds)
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
        if self._session is None:
            import requests
            from requests.adapters import HTTPAdapter
            from urllib3.util.retry import Retry

            retry = Retry(total=3, backoff_factor=0.5, status_forcelist=(429, 500, 502, 503, 504),
                          allowed_methods=frozenset({"GET"}), raise_on_status=False)
            session = requests.Session()
            session.headers["User-Agent"] = "rebuildctl (rebuilder)"
            for prefix in ("http://", "https://"):
                session.mount(prefix, HTTPAdapter(max_retries=retry))
            self._session = session
        return self._session

    def _cache_paths(self, url: str) -> tuple[Path, Path] | None:
        if self.cache is None:
            return None
        digest = hashlib.sha256(url.encode()).hexdigest()
        return self.cache / f"{digest}.body", self.cache / f"{digest}.json"

    def _get_http(self, url: str) -> bytes:
        import requests

        paths = self._cache_paths(url)
        meta: dict[str, str] = {}
        if paths and paths[0].exists() and paths[1].exists():
            try:
                meta = json.loads(paths[1].read_text())
            except (OSError, ValueError):
                meta = {}
        headers = {}
        if meta.get("etag"):
            headers["If-None-Match"] = meta["etag"]
        if meta.get("last_modified"):
            headers["If-Modified-Since"] = meta["last_modified"]
        try:
            resp = self._http().get(url, headers=headers, timeout=self.timeout)
        except requests.RequestException as exc:
            raise FeedUnavailable(f"cannot fetch: {type(exc).__name__}", url=url) from None
        if resp.status_code == 304 and paths:
            try:
                return paths[0].read_bytes()
            except OSError:
                pass  # the cache went away under us: fetch unconditionally
            resp = self._http().get(url, timeout=self.timeout)
        if resp.status_code in (404, 410):
            raise FeedNotFound(url)
        if resp.status_code >= 500 or resp.status_code == 429:
            raise FeedUnavailable(f"HTTP {resp.status_code}", url=url)
        if resp.status_code != 200:
            raise FeedInvalid(f"HTTP {resp.status_code}", url=url)
        body = resp.content
        validators = {"etag": resp.headers.get("ETag"), "last_modified": resp.headers.get("Last-Modified")}
        if paths and any(validators.values()):
            self._store(paths, body, validators)
        return body

    @staticmethod
    def _store(paths: tuple[Path, Path], body: bytes, validators: dict[str, str | None]) -> None:
        # The cache is an optimisation: failing to write it must never fail the command.
        try:
            paths[0].parent.mkdir(parents=True, exist_ok=True)
            for path, data in ((paths[0], body), (paths[1], json.dumps(validators).encode())):
                tmp = path.with_suffix(path.suffix + f".{os.getpid()}.tmp")
                tmp.write_bytes(data)
                tmp.replace(path)
        except OSError:
            pass
