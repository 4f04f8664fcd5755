"""The small storage protocol every job talks to (docs/storage.md#operations).

Two implementations follow it: a local directory (`local.py`) and S3 (`s3.py`). Both
return S3-style ETags (the hex MD5 of the content for single-part objects, quoted), so
code written against one behaves the same on the other.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO, Protocol, runtime_checkable

from jobs.core.bounded import cap
from jobs.core.errors import TerminalError, TransientError

# Streaming puts read this much at a time; it is also the S3 multipart part size.
CHUNK_SIZE = 8 * 1024 * 1024

Body = bytes | BinaryIO


class StoreError(TerminalError):
    """A storage operation failed for good (denied, missing bucket, bad response)."""

    def __init__(self, message: str, *, op: str, key: str | None = None, store: str | None = None) -> None:
        super().__init__(message, op=op, key=key, store=store)
        self.op, self.key, self.store = op, key, store


class StoreUnavailable(TransientError):
    """The store did not answer after retries (network, 5xx, throttling): try the job again later."""

    def __init__(self, message: str, *, op: str, key: str | None = None, store: str | None = None) -> None:
        super().__init__(message, op=op, key=key, store=store)
        self.op, self.key, self.store = op, key, store


class NotFound(StoreError):
    """The object does not exist."""


class PreconditionFailed(StoreError):
    """A conditional write lost the race: the object exists (create-only) or changed (CAS)."""


class InvalidKey(StoreError):
    """An object key that could escape its prefix or is otherwise unusable."""


@dataclass(frozen=True)
class ObjectInfo:
    """Metadata of one stored object. `etag` is None only in listings of the local store."""

    key: str
    size: int
    etag: str | None = None
    last_modified: datetime | None = None
    content_type: str | None = None
    content_encoding: str | None = None


@dataclass(frozen=True)
class Blob:
    """An object read whole: its bytes and the ETag of exactly those bytes."""

    data: bytes
    info: ObjectInfo

    @property
    def etag(self) -> str:
        assert self.info.etag is not None
        return self.info.etag


@runtime_checkable
class Reads(Protocol):
    """The read-only side of a `Store`: what a module that only judges may be handed."""

    def get(self, key: str) -> Blob: ...

    def open(self, key: str) -> BinaryIO: ...

    def head(self, key: str) -> ObjectInfo: ...

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]: ...


class Store(Protocol):
    """What every storage backend provides. Keys are '/'-separated relative paths."""

    url: str

    def get(self, key: str) -> Blob:
        """Read a whole object; NotFound if absent."""

    def open(self, key: str) -> BinaryIO:
        """Stream an object (a context manager); NotFound if absent."""

    def head(self, key: str) -> ObjectInfo:
        """Metadata of an object; NotFound if absent."""

    def put(self, key: str, body: Body, *, content_type: str | None = None,
            content_encoding: str | None = None) -> str:
        """Write unconditionally; returns the new ETag."""

    def put_if_absent(self, key: str, body: Body, *, content_type: str | None = None,
                      content_encoding: str | None = None) -> str:
        """Create-only write; PreconditionFailed if the key exists."""

    def put_if_match(self, key: str, body: Body, etag: str, *, content_type: str | None = None,
                     content_encoding: str | None = None) -> str:
        """Compare-and-swap write; PreconditionFailed if the current ETag differs or the key is absent."""

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object whose key starts with `prefix`, in key order, however many there are."""

    def delete(self, key: str) -> None:
        """Remove an object; deleting an absent key is not an error."""

    def abort_incomplete_uploads(self, started_before: datetime) -> int:
        """Abort the writes under this store's prefix begun before `started_before` and never finished.

        A writer killed mid-upload (SIGKILL, power loss) cannot clean up: on S3 its multipart
        upload stays open and its parts are billed until aborted; in a local store its
        temporary file stays. Returns how many were aborted.
        """


def put_new(store: Store, key: str, body: bytes, *, content_type: str | None = None,
            content_encoding: str | None = None) -> str:
    """Create an immutable object whose key or bytes only this writer produces; returns its ETag.

    A create-only request retried after its answer was lost (a timeout, a dropped connection)
    is refused with 412 although the first one landed. The object then holds exactly our bytes,
    which is success; anything else is somebody else's object and stays a PreconditionFailed.
    """
    try:
        return store.put_if_absent(key, body, content_type=content_type, content_encoding=content_encoding)
    except PreconditionFailed:
        try:
            blob = store.get(key)
        except NotFound:
            raise PreconditionFailed("object existed, then vanished", op="put_if_absent", key=key,
                                     store=store.url) from None
        if blob.data != body:
            raise
        return blob.etag


MAX_KEY_SEGMENT = cap("key_segment")


def check_key(key: str, *, op: str) -> str:
    """Reject keys that could escape a prefix or a directory: the same rule for every backend."""
    problem = None
    if not key:
        problem = "empty key"
    elif len(key.encode("utf-8", "surrogatepass")) > 1024:
        problem = "key longer than 1024 bytes"
    elif key.startswith("/") or key.endswith("/"):
        problem = "key must not start or end with '/'"
    elif "\\" in key:
        problem = "backslash in key"
    elif any(ord(c) < 0x20 or ord(c) == 0x7F for c in key):
        problem = "control character in key"
    else:
        for segment in key.split("/"):
            if segment in ("", ".", ".."):
                problem = f"path segment {segment!r} in key"
                break
            if segment.startswith(".rebuilder-"):
                problem = "'.rebuilder-' is reserved for the store's own files"
                break
            if len(segment.encode("utf-8", "surrogatepass")) > MAX_KEY_SEGMENT:
                # the local store's limit (NAME_MAX less its metadata suffix); S3 would take more,
                # but a key must work the same on both stores
                problem = f"path segment longer than {MAX_KEY_SEGMENT} bytes in key"
                break
    if problem:
        raise InvalidKey(problem, op=op, key=repr(key))
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidKey("key is not valid UTF-8", op=op, key=repr(key)) from None
    return key


def check_prefix(prefix: str, *, op: str = "list") -> str:
    """A listing prefix may end with '/' or be empty; otherwise it follows the key rules."""
    if prefix.rstrip("/"):
        check_key(prefix.rstrip("/"), op=op)
    return prefix


def normalise_etag(etag: str) -> str:
    """ETags compare with their quotes; accept callers that dropped them."""
    etag = etag.strip()
    if etag.startswith("W/"):
        etag = etag[2:]
    return etag if etag.startswith('"') else f'"{etag}"'

