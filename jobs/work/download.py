"""Fetch a job's artifacts and build input into ``inputs/``, checking names, sizes and sha256.

rebuilderd (docs/design.md#build-execution-and-the-backend-contract, step 2) downloads every artifact URL
to ``inputs/<last path segment>``
and then the job's input URL. We do the same, with three differences: a file name is checked
before it touches the file system (it comes from an untrusted index), the sha256 the index
published is checked while streaming (the backend never runs on a wrong file), and a size cap
bounds what a hostile or broken mirror can make us write. Each file also has a total deadline
(`[build] download_deadline`, kept on every socket read by `jobs.core.bounded_http`): a mirror
trickling one byte every few seconds fails the attempt with the URL and the deadline instead of
holding the worker (and its claim) forever. A file that fails is removed, never left half-written.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit, urlunsplit
from urllib.request import url2pathname

import requests
import urllib3

from jobs.core.bounded import Deadline, DeadlineExceeded, cap
from jobs.core.bounded_http import DeadlineRetry, deadline_adapter
from jobs.core.errors import TerminalError
from jobs.core.model import Artifact, JobRow

CHUNK = 1 << 20
DEFAULT_MAX_BYTES = cap("artifact_download")  # no package anyone rebuilds is bigger; a mirror streaming forever is stopped
SIZE_SLACK = 1 << 20  # the index's size is exact, but a cap must not turn a sha256 mismatch into a size error
CONNECT_TIMEOUT = 30.0
READ_TIMEOUT = 60.0  # rebuilderd's reqwest read timeout
NAME_MAX = 255
# Statuses a later attempt may not see again (overload, gateway trouble, throttling).
TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class DownloadError(TerminalError):
    """A build input could not be fetched; ``transient`` says whether a later attempt may succeed."""

    def __init__(self, message: str, *, url: str | None = None) -> None:
        super().__init__(message, url=url)
        self.url = url


class TransientDownloadError(DownloadError):
    """A network or server failure that a later attempt may not see (connection, timeout, 5xx)."""

    transient = True


class UnsafeFileName(DownloadError):
    """A file name from the index could escape ``inputs/`` or confuse a backend."""


class ChecksumMismatch(DownloadError):
    """The downloaded file is not the one the index published."""

    def __init__(self, label: str, expected: str, actual: str, *, url: str) -> None:
        super().__init__(f"sha256 mismatch for {label}: expected {expected}, got {actual}", url=url)
        self.expected, self.actual = expected, actual


class DownloadCancelled(Exception):
    """The caller's cancel event fired while downloading."""


@dataclass(frozen=True)
class Fetched:
    """One downloaded file: where it is and its sha256 (hex)."""

    url: str
    path: Path
    sha256: str
    size: int


@dataclass(frozen=True)
class Inputs:
    """Everything a build needs on disk: the artifacts (in job order) and the build input."""

    artifacts: tuple[tuple[Artifact, Fetched], ...]
    input: Fetched


def safe_file_name(name: str) -> str:
    """``name`` if it can be one plain file in a directory; UnsafeFileName otherwise."""
    if (not name or name in (".", "..") or "/" in name or "\\" in name
            or any(ord(c) < 0x20 or ord(c) == 0x7F for c in name)):
        raise UnsafeFileName(f"unsafe file name {name!r}")
    if len(name.encode("utf-8", errors="surrogateescape")) > NAME_MAX:
        raise UnsafeFileName(f"unsafe file name {name[:40]!r}...: longer than {NAME_MAX} bytes")
    return name


def url_file_name(url: str) -> str:
    """The unquoted last path segment of ``url`` (rebuilderd's file name rule), checked."""
    path = urlsplit(url).path
    return safe_file_name(unquote(path.rsplit("/", 1)[-1]))


def shown_url(url: str) -> str:
    """``url`` without user:password, fit for logs and results."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


def default_session() -> requests.Session:
    """A session that retries connection errors and transient statuses with backoff."""
    retry = DeadlineRetry(total=3, backoff_factor=1.0, status_forcelist=sorted(TRANSIENT_STATUS),
                          allowed_methods=frozenset({"GET"}), raise_on_status=False)
    session = requests.Session()
    adapter = deadline_adapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def download_inputs(job: JobRow, inputs: Path, *, session: requests.Session, cancel: threading.Event | None = None,
                    note: Callable[[str], None] = lambda _: None,
                    max_bytes: int = DEFAULT_MAX_BYTES, deadline: float | None = None) -> Inputs:
    """Download every artifact and the build input of ``job`` into ``inputs``; raise DownloadError.

    Each file within ``deadline`` seconds (default: the `download_deadline` limit).
    """
    names: dict[str, str] = {}  # file name -> URL: two URLs must not share one file
    planned: list[tuple[Artifact, str]] = []
    for artifact in job.artifacts:
        try:
            name = safe_file_name(artifact.filename) if artifact.filename else url_file_name(artifact.url)
        except UnsafeFileName as e:
            raise UnsafeFileName(f"{e.message} for artifact {artifact.name}", url=shown_url(artifact.url)) from None
        _claim(names, name, artifact.url)
        planned.append((artifact, name))
    input_name = None
    if job.input_url not in names.values():
        try:
            input_name = url_file_name(job.input_url)
        except UnsafeFileName as e:
            raise UnsafeFileName(f"{e.message} for the build input", url=shown_url(job.input_url)) from None
        _claim(names, input_name, job.input_url)
    fetched: dict[str, Fetched] = {}
    done: list[tuple[Artifact, Fetched]] = []
    for artifact, name in planned:
        if artifact.url not in fetched:
            limit = artifact.size + SIZE_SLACK if artifact.size is not None else max_bytes
            fetched[artifact.url] = fetch(artifact.url, inputs / name, session=session, cancel=cancel,
                                          max_bytes=min(limit, max_bytes), deadline=deadline)
            got = fetched[artifact.url]
            note(f"downloaded {shown_url(artifact.url)} -> {name} ({got.size} bytes, sha256 {got.sha256})")
        got = fetched[artifact.url]
        if artifact.sha256 is not None and got.sha256 != artifact.sha256.lower():
            raise ChecksumMismatch(f"{artifact.name} ({name})", artifact.sha256.lower(), got.sha256,
                                   url=shown_url(artifact.url))
        done.append((artifact, got))
    if input_name is None:
        build_input = fetched[job.input_url]
    else:
        # A Debian .buildinfo: the index publishes no sha256 for it, the backend checks what it says.
        build_input = fetch(job.input_url, inputs / input_name, session=session, cancel=cancel, max_bytes=max_bytes,
                            deadline=deadline)
        note(f"downloaded {shown_url(job.input_url)} -> {input_name} ({build_input.size} bytes, "
             f"sha256 {build_input.sha256})")
    return Inputs(artifacts=tuple(done), input=build_input)


def _claim(names: dict[str, str], name: str, url: str) -> None:
    other = names.setdefault(name, url)
    if other != url:
        raise UnsafeFileName(f"unsafe file name {name!r}: used by both {shown_url(other)} and {shown_url(url)}",
                             url=shown_url(url))


def fetch(url: str, dest: Path, *, session: requests.Session, cancel: threading.Event | None = None,
          max_bytes: int = DEFAULT_MAX_BYTES, deadline: float | None = None) -> Fetched:
    """Stream an http(s) or file:// URL into ``dest`` (which must not exist), hashing it on the way,
    within ``deadline`` seconds in all (default: the `download_deadline` limit). On any error
    ``dest`` is removed."""
    scheme = urlsplit(url).scheme.lower()
    seconds = cap("download_deadline") if deadline is None else deadline
    try:
        with open(dest, "xb") as sink:
            if scheme in ("http", "https"):
                digest, size = _fetch_http(url, sink, session, cancel, max_bytes, Deadline(seconds, shown_url(url)))
            elif scheme == "file":
                digest, size = _fetch_file(url, sink, cancel, max_bytes)
            else:
                raise DownloadError(f"unsupported URL scheme {scheme!r}", url=shown_url(url))
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    return Fetched(url=url, path=dest, sha256=digest, size=size)


def _copy(chunks: Iterator[bytes], sink: BinaryIO, url: str, cancel: threading.Event | None,
          max_bytes: int) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    for chunk in chunks:
        if cancel is not None and cancel.is_set():
            raise DownloadCancelled(url)
        size += len(chunk)
        if size > max_bytes:
            raise DownloadError(f"larger than {max_bytes} bytes", url=shown_url(url))
        digest.update(chunk)
        sink.write(chunk)
    return digest.hexdigest(), size


def _fetch_http(url: str, sink: BinaryIO, session: requests.Session, cancel: threading.Event | None,
                max_bytes: int, deadline: Deadline) -> tuple[str, int]:
    shown = shown_url(url)
    try:
        # identity + raw bytes: a mirror that labels a .tar.gz "Content-Encoding: gzip" must not make
        # us hash the decompressed stream (curl and reqwest keep the bytes as served, too).
        with deadline.applied(), session.get(
                url, stream=True, timeout=(min(CONNECT_TIMEOUT, deadline.left()), READ_TIMEOUT),
                headers={"Accept-Encoding": "identity"}) as response:
            if response.status_code >= 400:
                error = TransientDownloadError if response.status_code in TRANSIENT_STATUS else DownloadError
                raise error(f"HTTP {response.status_code} {response.reason or ''}".rstrip(), url=shown)
            length = response.headers.get("Content-Length", "")
            if length.isascii() and length.isdigit() and int(length) > max_bytes:  # "²" is no length
                raise DownloadError(f"larger than {max_bytes} bytes (Content-Length {length})", url=shown)
            return _copy(response.raw.stream(CHUNK, decode_content=False), sink, url, cancel, max_bytes)
    except DeadlineExceeded:
        raise TransientDownloadError(f"not complete within the {deadline.seconds:g}-second deadline "
                                     "([build] download_deadline)", url=shown) from None
    except (requests.ConnectionError, requests.Timeout, urllib3.exceptions.HTTPError) as e:
        raise TransientDownloadError(_one_line(e), url=shown) from e
    except requests.RequestException as e:
        raise DownloadError(_one_line(e), url=shown) from e


def _fetch_file(url: str, sink: BinaryIO, cancel: threading.Event | None, max_bytes: int) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise DownloadError(f"file:// URL on another host {parts.netloc!r}", url=url)
    path = url2pathname(parts.path)
    try:
        with open(path, "rb") as source:
            return _copy(iter(lambda: source.read(CHUNK), b""), sink, url, cancel, max_bytes)
    except OSError as e:
        raise DownloadError(f"{e.strerror or e}: {path}", url=url) from e


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__
