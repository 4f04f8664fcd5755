"""The local-directory store: the embedded default, zero set-up.

Objects are plain files under the root, so a published site at `<root>/site/` can be
served by any HTTP server. Conditional writes are atomic across processes on one
machine: every write prepares a temporary file first, then takes a per-key `flock`
stripe, checks its precondition against the current ETag, and `rename`s into place.
Readers never lock; `rename` lets them see the old or the new object, never a mix.

Metadata that S3 keeps beside an object (ETag, Content-Type, Content-Encoding) lives in
a sidecar under `.rebuilder-meta/`. The sidecar records the data file's identity (inode,
size, mtime, ctime) as a fast check. When that differs, the bytes decide: the sidecar still
holds if its ETag is the MD5 of what the file holds now, and its identity is then brought up
to date. A store copied with `cp -a`, `rsync -a` or `tar`, or a file `chmod`ed, changes the
identity but not the bytes, so it keeps its Content-Type and Content-Encoding; a crash
between the two renames or a file edited by hand changes the bytes, so the ETag is the MD5
of the bytes and never wrong. Without a usable sidecar (say, a copy without the dot
directories) the Content-Type is guessed from the key's extension, as static web servers do.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import mimetypes
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO, Callable

from jobs.core.store.base import (
    CHUNK_SIZE,
    Blob,
    Body,
    NotFound,
    ObjectInfo,
    PreconditionFailed,
    StoreError,
    check_key,
    check_prefix,
    normalise_etag,
)

_META = ".rebuilder-meta"
_LOCKS = ".rebuilder-locks"
_TMP = ".rebuilder-tmp"
# Lock striping bounds the number of lock files; two keys sharing a stripe only
# serialise their writes, which costs little.
_STRIPES = 256


def _fingerprint(st: os.stat_result) -> list[int]:
    return [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


class LocalStore:
    """A store in a local directory (`file:///path`)."""

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.root = Path(root).absolute()
        self.url = self.root.as_uri()
        self.fsync = fsync
        for sub in (_META, _LOCKS, _TMP):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    # -- reading -------------------------------------------------------------------

    def _path(self, key: str, op: str) -> Path:
        return self.root / check_key(key, op=op)

    def _meta_path(self, key: str) -> Path:
        return self.root / _META / (key + ".json")

    def _read_meta(self, key: str, st: os.stat_result, digest: Callable[[], str], *,
                   refresh: bool = True) -> tuple[dict | None, str]:
        """The sidecar if it describes the bytes whose stat is `st`, and the ETag of those bytes.

        `digest` computes the quoted MD5 of the bytes; it is called only when the recorded
        identity differs from `st` (a copied, restored or `chmod`ed file, or a stale sidecar).
        """
        try:
            meta = json.loads(self._meta_path(key).read_bytes())
        except (OSError, ValueError):
            meta = None
        if not isinstance(meta, dict) or not isinstance(meta.get("etag"), str):
            return None, digest()
        if meta.get("fingerprint") == _fingerprint(st):
            return meta, meta["etag"]
        etag = digest()
        if etag != meta["etag"]:
            return None, etag  # other bytes than the sidecar was written for
        if refresh:
            self._refresh_meta(key, st, meta)
        return meta, etag

    def _refresh_meta(self, key: str, st: os.stat_result, meta: dict) -> None:
        """Record the new identity of unchanged bytes, so the next read need not hash them again."""
        path = self.root / key
        try:
            with self._lock(key):
                now = os.stat(path)
                current = json.loads(self._meta_path(key).read_bytes())
                # Only if neither the file we hashed nor the sidecar we checked changed meanwhile.
                if _fingerprint(now) != _fingerprint(st) or current != meta:
                    return
                self._write_meta(key, {**meta, "fingerprint": _fingerprint(now)}, "head")
        except (OSError, ValueError, StoreError):
            pass  # a read-only copy of a store is still served, it just hashes again next time

    def _info(self, key: str, st: os.stat_result, meta: dict | None, etag: str | None) -> ObjectInfo:
        if meta is None:
            # No metadata for these bytes: guess the type from the extension, as a web server would.
            meta = {"content_type": _guess_type(key)}
        return ObjectInfo(
            key=key, size=st.st_size, etag=etag,
            last_modified=datetime.fromtimestamp(st.st_mtime, timezone.utc),
            content_type=meta.get("content_type"), content_encoding=meta.get("content_encoding"))

    def _open_existing(self, key: str, op: str) -> BinaryIO:
        path = self._path(key, op)
        try:
            f = open(path, "rb")
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound("no such object", op=op, key=key, store=self.url) from None
        except IsADirectoryError:
            raise NotFound("no such object (a prefix of other keys)", op=op, key=key, store=self.url) from None
        except OSError as exc:
            raise StoreError(f"cannot read: {exc.strerror}", op=op, key=key, store=self.url) from exc
        return f

    def get(self, key: str) -> Blob:
        """Read a whole object with the ETag of exactly these bytes."""
        with self._open_existing(key, "get") as f:
            st = os.fstat(f.fileno())
            data = f.read()
        meta, etag = self._read_meta(key, st, lambda: '"' + hashlib.md5(data, usedforsecurity=False).hexdigest() + '"')
        return Blob(data, self._info(key, st, meta, etag))

    def open(self, key: str) -> BinaryIO:
        """Stream an object; the handle keeps reading the version it opened."""
        return self._open_existing(key, "open")

    def head(self, key: str) -> ObjectInfo:
        """Metadata of an object, recomputing the ETag only if the sidecar is stale."""
        with self._open_existing(key, "head") as f:
            st = os.fstat(f.fileno())
            meta, etag = self._read_meta(key, st, lambda: _md5_file(f))
        return self._info(key, st, meta, etag)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Objects under `prefix` in key order, streamed directory by directory."""
        check_prefix(prefix)
        base = prefix.rpartition("/")[0]
        start = self.root / base if base else self.root
        yield from self._walk(start, base, prefix)

    def _walk(self, directory: Path, rel: str, prefix: str) -> Iterator[ObjectInfo]:
        try:
            entries = list(os.scandir(directory))
        except (FileNotFoundError, NotADirectoryError):
            return
        # Sorting a directory "x" as "x/" makes the walk yield keys in S3's byte order.
        def sort_key(e: os.DirEntry) -> str:
            return e.name + "/" if e.is_dir(follow_symlinks=False) else e.name
        for entry in sorted(entries, key=sort_key):
            if not rel and entry.name.startswith(".rebuilder-"):
                continue
            key = f"{rel}/{entry.name}" if rel else entry.name
            if entry.is_dir(follow_symlinks=False):
                if (key + "/").startswith(prefix) or prefix.startswith(key + "/"):
                    yield from self._walk(Path(entry.path), key, prefix)
            elif entry.is_file(follow_symlinks=False) and key.startswith(prefix):
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue  # deleted since the directory was read: S3 would not list it either
                yield ObjectInfo(key=key, size=st.st_size,
                                 last_modified=datetime.fromtimestamp(st.st_mtime, timezone.utc))

    # -- writing -------------------------------------------------------------------

    def put(self, key: str, body: Body, *, content_type: str | None = None,
            content_encoding: str | None = None) -> str:
        """Write unconditionally (last writer wins)."""
        return self._write(key, body, "put", None, content_type, content_encoding)

    def put_if_absent(self, key: str, body: Body, *, content_type: str | None = None,
                      content_encoding: str | None = None) -> str:
        """Create-only write; PreconditionFailed if the key exists."""
        return self._write(key, body, "put_if_absent", "absent", content_type, content_encoding)

    def put_if_match(self, key: str, body: Body, etag: str, *, content_type: str | None = None,
                     content_encoding: str | None = None) -> str:
        """Compare-and-swap write; PreconditionFailed unless the current ETag is `etag`."""
        return self._write(key, body, "put_if_match", normalise_etag(etag), content_type, content_encoding)

    def delete(self, key: str) -> None:
        """Remove an object and its sidecar; absent keys are fine."""
        path = self._path(key, "delete")
        with self._lock(key):
            for p in (path, self._meta_path(key)):
                try:
                    p.unlink()
                except (FileNotFoundError, NotADirectoryError):
                    pass
                except IsADirectoryError:
                    break
            if self.fsync:
                _fsync_dir(path.parent)

    def abort_incomplete_uploads(self, started_before: datetime) -> int:
        """Remove temporary files of writes that were killed before they finished."""
        cutoff = started_before.timestamp()
        removed = 0
        try:
            entries = list(os.scandir(self.root / _TMP))
        except FileNotFoundError:
            return 0
        for entry in entries:
            try:
                # A live writer's file keeps a fresh mtime: every write() updates it.
                if entry.is_file(follow_symlinks=False) and entry.stat(follow_symlinks=False).st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed += 1
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise StoreError(f"cannot remove a stale temporary file: {exc.strerror}", op="abort_incomplete",
                                 key=entry.name, store=self.url) from exc
        return removed

    def _write(self, key: str, body: Body, op: str, expect: str | None,
               content_type: str | None, content_encoding: str | None) -> str:
        path = self._path(key, op)
        tmp, etag = self._spool(body, op, key)
        try:
            with self._lock(key):
                if expect == "absent":
                    if path.exists() or path.is_symlink():
                        raise PreconditionFailed("object already exists", op=op, key=key, store=self.url)
                elif expect is not None:
                    current = self._current_etag(key, path)
                    if current != expect:
                        why = "object does not exist" if current is None else "object changed"
                        raise PreconditionFailed(why, op=op, key=key, store=self.url)
                self._install(tmp, path, op, key)
                st = os.stat(path)
                meta = {"etag": etag, "fingerprint": _fingerprint(st),
                        "content_type": content_type, "content_encoding": content_encoding}
                self._write_meta(key, meta, op)
                if self.fsync:
                    _fsync_dir(path.parent)
        finally:
            tmp.unlink(missing_ok=True)
        return etag

    def _write_meta(self, key: str, meta: dict, op: str) -> None:
        """Replace the sidecar of `key` (the caller holds the key's lock); no temporary file is left."""
        meta_tmp = self.root / _TMP / f"m-{secrets.token_hex(8)}"
        try:
            try:
                with open(meta_tmp, "xb") as f:
                    f.write(json.dumps(meta).encode())
            except OSError as exc:  # ENOSPC, EDQUOT, EIO: the data file is in place, its sidecar is stale
                raise StoreError(f"cannot write metadata: {exc.strerror}", op=op, key=key, store=self.url) from exc
            self._install(meta_tmp, self._meta_path(key), op, key)
        finally:
            meta_tmp.unlink(missing_ok=True)

    def _spool(self, body: Body, op: str, key: str) -> tuple[Path, str]:
        """Write the body to a temporary file, hashing as it goes (bounded memory)."""
        tmp = self.root / _TMP / f"d-{secrets.token_hex(8)}"
        md5 = hashlib.md5(usedforsecurity=False)
        try:
            with open(tmp, "xb") as f:
                if isinstance(body, (bytes, bytearray, memoryview)):
                    md5.update(body)
                    f.write(body)
                else:
                    while chunk := body.read(CHUNK_SIZE):
                        md5.update(chunk)
                        f.write(chunk)
                if self.fsync:
                    f.flush()
                    os.fsync(f.fileno())
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise StoreError(f"cannot write: {exc.strerror}", op=op, key=key, store=self.url) from exc
        except BaseException:
            tmp.unlink(missing_ok=True)  # the body failed (a broken stream, an interrupt): nothing is left
            raise
        return tmp, f'"{md5.hexdigest()}"'

    def _install(self, tmp: Path, path: Path, op: str, key: str) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, path)
        except (NotADirectoryError, FileExistsError, IsADirectoryError) as exc:
            raise StoreError("key collides with another key used as a prefix", op=op, key=key,
                             store=self.url) from exc
        except OSError as exc:
            raise StoreError(f"cannot write: {exc.strerror}", op=op, key=key, store=self.url) from exc

    def _current_etag(self, key: str, path: Path) -> str | None:
        try:
            with open(path, "rb") as f:
                st = os.fstat(f.fileno())
                # The caller holds the key's lock: no refresh here, it would take it again.
                return self._read_meta(key, st, lambda: _md5_file(f), refresh=False)[1]
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None

    @contextmanager
    def _lock(self, key: str) -> Iterator[None]:
        stripe = hashlib.sha256(key.encode()).digest()[0] % _STRIPES
        fd = os.open(self.root / _LOCKS / f"{stripe:03d}", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the flock


def _guess_type(key: str) -> str | None:
    kind, encoding = mimetypes.guess_type(key, strict=False)
    if kind is None or encoding is not None:
        return None  # x.tar.gz is not "application/x-tar"; the bytes are what they are
    return f"{kind}; charset=utf-8" if kind.startswith("text/") else kind


def _md5_file(f: BinaryIO) -> str:
    f.seek(0)
    return '"' + hashlib.file_digest(f, lambda: hashlib.md5(usedforsecurity=False)).hexdigest() + '"'


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return
        raise
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
