"""Fetching index files over HTTP(S) or from file:// (and plain paths), bounded in size.

Retries with exponential backoff are urllib3's (`Retry` on the requests adapter): connection
errors, timeouts and 429/5xx answers. Each retry is one line for the operator (what failed,
the URL, attempt n of m: `jobs.core.progress.line`). What is left after them is a
`FetchUnavailable` naming the cause in a few words (transient: the sync exits 75 and the
scheduler tries again); a 404 or another 4xx is a `FetchFailed` (terminal).

Every request is bounded (`jobs.core.bounded`): in size (`[sync] max_index_bytes`) and in time,
by a total deadline (`[sync] deadline`) from connecting to the last byte, retries and redirects
included, held on every socket read, so a mirror trickling one byte every few seconds ends the
profile with one line naming the URL and the deadline (transient) instead of hanging the sync.

A conditional GET (`If-None-Match` / `If-Modified-Since`, RFC 9110 §13) lets an unchanged
index cost one small request. Only validators that name one version of the bytes are kept
(`validator_of`): a strong ETag, and a Last-Modified at least a second older than the
response's Date. A file changed within the second it was served may change again within that
second and keep the same Last-Modified (and nginx's ETag, made of mtime and size, too), so such a
response keeps no validator at all: RFC 9110 §8.8.2.2 calls that Last-Modified weak.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import unquote, urlsplit

from jobs.core import progress
from jobs.core.bounded import CorruptData, Deadline, DeadlineExceeded, OverLimit, RedirectRefused, cap, get_capped
from jobs.core.errors import TerminalError, TransientError

# Decompressed Debian Packages files are ~100 MB today; compressed indexes far smaller.
DEFAULT_MAX_BYTES = cap("index_download")  # the default; a Fetcher reads `cap` at each fetch
MAX_REDIRECTS = 10  # a mirror redirector may send us to another host (requests follows 30)
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
class Validator:
    """What a server said identifies the version it sent: a strong ETag, a Last-Modified date, or both."""

    etag: str | None = None
    last_modified: str | None = None

    def headers(self) -> dict[str, str]:
        """The request headers of a conditional GET."""
        out = {}
        if self.etag:
            out["If-None-Match"] = self.etag
        if self.last_modified:
            out["If-Modified-Since"] = self.last_modified
        return out

    def to_json(self) -> dict[str, str]:
        """As stored in a snapshot pointer's metadata."""
        return {k: v for k, v in (("etag", self.etag), ("last_modified", self.last_modified)) if v}

    @classmethod
    def from_json(cls, raw: object) -> Validator | None:
        """The stored form read back; None for an empty or malformed one (then the GET is unconditional)."""
        if not isinstance(raw, dict):
            return None
        etag, modified = raw.get("etag"), raw.get("last_modified")
        value = cls(etag if isinstance(etag, str) and etag else None,
                    modified if isinstance(modified, str) and modified else None)
        return value if value.etag or value.last_modified else None


@dataclass(frozen=True)
class Fetched:
    """One fetched file: its bytes (empty when not modified), sha256 and validator (None: none usable)."""

    url: str
    data: bytes
    sha256: str
    validator: Validator | None
    not_modified: bool = False


class Fetcher:
    """Fetches index files with one pooled HTTP session."""

    def __init__(self, *, timeout: float = 60.0, retries: int = 5, backoff: float = 1.0,
                 max_bytes: int | None = None, deadline: float | None = None) -> None:
        # None: the limit in force when fetching (`[sync] max_index_bytes`, `[sync] deadline`).
        self.timeout, self._max_bytes, self._deadline = timeout, max_bytes, deadline
        self.attempts = retries + 1
        self._retries, self._backoff = retries, backoff
        self._session = None  # made on the first HTTP fetch: a file:// sync never imports requests
        self.requests = 0  # counted for the request-accounting benchmarks
        self._kept: dict[str, Fetched] = {}

    @property
    def session(self):
        """The pooled `requests.Session` (with retries and deadlines), made on first use."""
        if self._session is None:
            from jobs.sync.fetch_http import http_session

            self._session = http_session(retries=self._retries, backoff=self._backoff, user_agent=USER_AGENT)
        return self._session

    @property
    def max_bytes(self) -> int:
        return cap("index_download") if self._max_bytes is None else self._max_bytes

    @property
    def deadline(self) -> float:
        return cap("mirror_deadline") if self._deadline is None else self._deadline

    def fetch(self, url: str, *, validator: Validator | None = None, max_bytes: int | None = None) -> Fetched:
        """The bytes at `url`; with `validator`, a 304 gives `not_modified=True` and no bytes."""
        limit = max_bytes if max_bytes is not None else self.max_bytes
        kept = self._kept.pop(url, None) if validator is None else None
        if kept is not None:
            if len(kept.data) > limit:
                raise FetchFailed(f"larger than the {limit}-byte limit", url=url)
            return kept
        parts = urlsplit(url)
        if parts.scheme in ("", "file"):
            return self._file(url, Path(unquote(parts.path) if parts.scheme else url), validator, limit)
        if parts.scheme not in ("http", "https"):
            raise FetchFailed(f"unsupported URL scheme {parts.scheme!r}", url=url)
        headers = {"Accept-Encoding": "identity"}  # index files are compressed already
        if validator:
            headers.update(validator.headers())
        session = self.session
        import requests
        import urllib3

        from jobs.sync.fetch_http import grow

        self.requests += 1
        deadline = Deadline(self.deadline, url)
        try:
            resp, data = get_capped(session, url, limit=limit, deadline=deadline, headers=headers,
                                    connect_timeout=self.timeout, read_timeout=self.timeout,
                                    max_redirects=MAX_REDIRECTS, same_origin_only=False, on_response=grow,
                                    on_chunk=_advance)
        except DeadlineExceeded:
            raise FetchUnavailable(f"not complete within the {deadline.seconds:g}-second deadline "
                                   "(`[sync] deadline`)", url=url) from None
        except OverLimit:
            raise FetchFailed(f"larger than the {limit}-byte limit", url=url) from None
        except (CorruptData, RedirectRefused) as exc:
            raise FetchFailed(str(exc), url=url) from None
        except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
            # A connection or timeout error retries; one while reading the body does not.
            tries = f" after {self.attempts} attempts" if isinstance(
                exc, (requests.ConnectionError, requests.Timeout)) else ""
            from jobs.core.neterrors import describe  # here: it loads ssl, which a local mirror never needs

            raise FetchUnavailable(f"{describe(exc)}{tries}", url=url) from exc
        if resp.status_code == 304 and validator:
            return Fetched(url, b"", "", validator, not_modified=True)
        if resp.status_code >= 500 or resp.status_code == 429:
            raise FetchUnavailable(f"HTTP {resp.status_code} after {self.attempts} attempts", url=url)
        if resp.status_code != 200:
            raise FetchFailed(f"HTTP {resp.status_code}", url=url, status=resp.status_code)
        return Fetched(url, data, hashlib.sha256(data).hexdigest(), validator_of(resp.headers))

    @contextmanager
    def answering(self, kept: Iterable[Fetched]) -> Iterator[Fetcher]:
        """Within the block, the first plain fetch of each of these URLs gets the bytes already downloaded."""
        self._kept = {got.url: got for got in kept if not got.not_modified}
        try:
            yield self
        finally:
            self._kept = {}

    def _file(self, url: str, path: Path, validator: Validator | None, limit: int) -> Fetched:
        try:
            with open(path, "rb") as f:
                progress.grow("download", os.fstat(f.fileno()).st_size)
                data = _read_bounded(iter(lambda: f.read(1 << 20), b""), limit, url)
        except FileNotFoundError:
            raise FetchFailed("no such file", url=url, status=404) from None
        except IsADirectoryError:
            raise FetchFailed("is a directory", url=url) from None
        except OSError as exc:
            raise FetchFailed(f"cannot read: {exc.strerror}", url=url) from exc
        # A local file is read whole anyway; its digest is an exact validator, and "not
        # modified" still spares the parsing.
        sha = hashlib.sha256(data).hexdigest()
        tag = Validator(etag=f'"{sha}"')
        if validator is not None and validator.etag == tag.etag:
            return Fetched(url, b"", sha, tag, not_modified=True)
        return Fetched(url, data, sha, tag)


def validator_of(headers: Mapping[str, str]) -> Validator | None:
    """The validator of a 200 response worth remembering (see the module docstring); None if none is."""
    etag = headers.get("ETag")
    if etag and (etag.startswith("W/") or not etag.startswith('"')):
        etag = None  # a weak ETag names equivalent content, not the same bytes
    modified = headers.get("Last-Modified")
    if modified:
        when, date = _http_date(modified), _http_date(headers.get("Date"))
        if when is None or date is None:
            modified = None
        elif date - when < timedelta(seconds=1):
            return None  # changed in the second it was served: neither validator is safe
    return Validator(etag, modified) if etag or modified else None


def _http_date(value: str | None) -> datetime | None:
    from email.utils import parsedate_to_datetime  # here: a sync of a local mirror never needs it

    try:
        when = parsedate_to_datetime(value) if value else None
    except (TypeError, ValueError, OverflowError):  # OverflowError: a year past a C int
        return None
    return when.replace(tzinfo=timezone.utc) if when is not None and when.tzinfo is None else when


def _advance(n: int) -> None:
    progress.advance("download", n)


def _read_bounded(chunks, limit: int, url: str) -> bytes:
    out = bytearray()
    for chunk in chunks:
        out += chunk
        progress.advance("download", len(chunk))
        if len(out) > limit:
            raise FetchFailed(f"larger than the {limit}-byte limit", url=url)
    return bytes(out)
