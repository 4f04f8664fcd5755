"""Fetching index files over HTTP(S) or from file:// (and plain paths), bounded in size.

Retries with exponential backoff are urllib3's (`Retry` on the requests adapter): connection
errors, timeouts and 429/5xx answers. What is left after them is a `FetchUnavailable`
(transient: the sync exits 75 and the scheduler tries again); a 404 or another 4xx is a
`FetchFailed` (terminal). A conditional GET (`If-None-Match`) lets an unchanged index cost
one small request.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from jobs.core.errors import TerminalError, TransientError

# Decompressed Debian Packages files are ~100 MB today; compressed indexes far smaller.
DEFAULT_MAX_BYTES = 512 * 1024 * 1024
USER_AGENT = "rebuilder-sync (+https://github.com/kpcyrd/rebuilderd compatible)"


class FetchFailed(TerminalError):
    """The index could not be fetched and retrying will not help (404, 403, too large, bad URL)."""

    def __init__(self, message: str, *, url: str, status: int | None = None) -> None:
        super().__init__(message, url=url, status=status)
        self.url, self.status = url, status


class FetchUnavailable(TransientError):
    """The server did not answer usefully after retries: try again later."""

    def __init__(self, message: str, *, url: str) -> None:
        super().__init__(message, url=url)
        self.url = url


@dataclass(frozen=True)
class Fetched:
    """One fetched file: its bytes (empty when not modified), sha256 and validator."""

    url: str
    data: bytes
    sha256: str
    etag: str | None
    not_modified: bool = False


class Fetcher:
    """Fetches index files with one pooled HTTP session."""

    def __init__(self, *, timeout: float = 60.0, retries: int = 5, backoff: float = 1.0,
                 max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.timeout, self.max_bytes = timeout, max_bytes
        self.session = requests.Session()
        retry = Retry(total=retries, connect=retries, read=retries, status=retries, backoff_factor=backoff,
                      status_forcelist=(429, 500, 502, 503, 504), allowed_methods=("GET", "HEAD"),
                      raise_on_status=False, respect_retry_after_header=True)
        adapter = HTTPAdapter(max_retries=retry)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers["User-Agent"] = USER_AGENT
        self.requests = 0  # counted for the request-accounting benchmarks

    def fetch(self, url: str, *, etag: str | None = None, max_bytes: int | None = None) -> Fetched:
        """The bytes at `url`; with `etag`, a 304 gives `not_modified=True` and no bytes."""
        limit = max_bytes if max_bytes is not None else self.max_bytes
        parts = urlsplit(url)
        if parts.scheme in ("", "file"):
            return self._file(url, Path(unquote(parts.path) if parts.scheme else url), etag, limit)
        if parts.scheme not in ("http", "https"):
            raise FetchFailed(f"unsupported URL scheme {parts.scheme!r}", url=url)
        headers = {"Accept-Encoding": "identity"}  # index files are compressed already
        if etag:
            headers["If-None-Match"] = etag
        self.requests += 1
        try:
            with self.session.get(url, headers=headers, timeout=self.timeout, stream=True) as resp:
                if resp.status_code == 304:
                    return Fetched(url, b"", "", etag, not_modified=True)
                if resp.status_code >= 500 or resp.status_code == 429:
                    raise FetchUnavailable(f"HTTP {resp.status_code} after retries", url=url)
                if resp.status_code != 200:
                    raise FetchFailed(f"HTTP {resp.status_code}", url=url, status=resp.status_code)
                data = _read_bounded(resp.iter_content(1 << 20), limit, url)
                return Fetched(url, data, hashlib.sha256(data).hexdigest(), resp.headers.get("ETag"))
        except requests.RequestException as exc:
            raise FetchUnavailable(f"network error after retries: {exc.__class__.__name__}: {exc}",
                                   url=url) from exc

    def _file(self, url: str, path: Path, etag: str | None, limit: int) -> Fetched:
        try:
            with open(path, "rb") as f:
                data = _read_bounded(iter(lambda: f.read(1 << 20), b""), limit, url)
        except FileNotFoundError:
            raise FetchFailed("no such file", url=url, status=404) from None
        except IsADirectoryError:
            raise FetchFailed("is a directory", url=url) from None
        except OSError as exc:
            raise FetchFailed(f"cannot read: {exc.strerror}", url=url) from exc
        sha = hashlib.sha256(data).hexdigest()
        tag = f'"{sha}"'
        if etag == tag:
            return Fetched(url, b"", sha, tag, not_modified=True)
        return Fetched(url, data, sha, tag)


def _read_bounded(chunks, limit: int, url: str) -> bytes:
    out = bytearray()
    for chunk in chunks:
        out += chunk
        if len(out) > limit:
            raise FetchFailed(f"larger than the {limit}-byte limit", url=url)
    return bytes(out)
