"""The members of a tar archive held in memory, read with libarchive, bounded and strict.

libarchive is the library pacman itself reads its databases with (`be_sync.c`); it is used
through libarchive-c's ctypes layer, loaded on first use, so a host without it can still run
other syncs. The usual database (gzip or plain, repo-add's headers) is read without it, by
`tar_fast`, which hands over to libarchive at the first member it is not sure of. Measured on
the benchmark's 15,000-package Arch database (36 MB of tar, 11 MB gzip), walking every member
and reading each desc takes about 0.12 s with `tar_fast` (zlib; 0.085 s with ISA-L's inflate,
not used: it reads deflate streams zlib refuses), 0.14 s with libarchive and 0.69 s
(streaming) to 0.74 s (random access) with Python's tarfile; decompressing alone takes 0.07 s
(zlib), 0.034 s (ISA-L) and `gzip -dc` 0.15 s.

Hostile input is expected (a mirror is not trusted):
- the compression is chosen from the magic bytes (gzip, zstd, xz, bzip2 or none) and only
  that filter and the tar format are enabled: an HTML error page, a zip or another
  compression is refused, never guessed at;
- anything libarchive cannot read cleanly (truncation, a bad header checksum, a corrupt
  stream, even a warning, which pacman treats as fatal too) raises `CorruptIndex`, and so
  does a tar without its end-of-archive block (libarchive stops quietly when the data ends at
  a member boundary): a partial archive must never pass for a complete one;
- the unpacked size is bounded while unpacking: each member's declared size is checked
  against `max_unpacked` before its data is decompressed, so a bomb never expands;
- members are read into memory only if asked for, never extracted; directories are not
  even reported, as nothing is ever created from them.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable, Iterator
from functools import cache
from typing import NamedTuple

from jobs.core.bounded import cap
from jobs.core.errors import TerminalError
from jobs.sync import tar_fast
from jobs.sync.decompress import CorruptIndex
from jobs.sync.tar_fast import Member

DEFAULT_MAX_UNPACKED = cap("index_unpacked")  # the default; a run reads `cap` when it starts

# Magic bytes → libarchive read filter.
_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"BZh", "bzip2"),
)
_BLOCK = 512
_AE_IFMT, _AE_IFREG, _AE_IFDIR, _AE_IFLNK = 0o170000, 0o100000, 0o040000, 0o120000
_ARCHIVE_OK, _ARCHIVE_EOF = 0, 1
# libarchive fails without a message on a gzip stream cut inside its 8-byte trailer (CRC, length).
_NO_REASON = "truncated or corrupt (libarchive gives no reason)"
_SONAME = "libarchive.so.13"  # Debian's libarchive13t64 (and libarchive13 before it)


@cache
def _libarchive():
    """libarchive-c's ctypes layer and its error class; TerminalError naming the package if missing."""
    # libarchive-c looks the library up with ctypes.util.find_library, which runs `ldconfig -p`
    # in a child process (a fork of this big one: tens of milliseconds). Its soname is tried
    # first, and handed over through LIBARCHIVE, the variable libarchive-c reads at import.
    soname = None
    if "LIBARCHIVE" not in os.environ:
        try:
            ctypes.CDLL(_SONAME)
            soname = os.environ["LIBARCHIVE"] = _SONAME
        except OSError:
            pass
    try:
        from libarchive import ffi
        from libarchive.exception import ArchiveError
    except (ImportError, OSError, AttributeError) as exc:  # AttributeError: no libarchive.so found
        raise TerminalError("libarchive is not available: install the Debian package libarchive13t64 "
                            "(libarchive13 before Debian 13) and the Python package libarchive-c, "
                            f"or set LIBARCHIVE to the library's path ({exc})") from None
    finally:
        if soname is not None:
            os.environ.pop("LIBARCHIVE", None)
    return ffi, ArchiveError


class _Calls(NamedTuple):
    """The libarchive functions called per member, bound without libarchive-c's `errcheck` wrappers.

    libarchive-c sets a Python `errcheck` on some functions (a Python call per C call, and an
    exception class of its own); the loop below checks every return code itself. They are
    bound on a handle of their own, so libarchive-c's functions stay as it set them up.
    """

    next_header: Callable
    filetype: Callable
    size: Callable
    filter_bytes: Callable
    pathname: Callable
    hardlink: Callable
    read_data: Callable


@cache
def _calls() -> _Calls:
    ffi, _ = _libarchive()
    lib = ctypes.CDLL(ffi.libarchive._name)
    p = ctypes.c_void_p

    def bind(name: str, argtypes: list, restype):
        function = getattr(lib, f"archive_{name}")
        function.argtypes, function.restype = argtypes, restype
        return function

    return _Calls(
        next_header=bind("read_next_header", [p, ctypes.POINTER(p)], ctypes.c_int),
        filetype=bind("entry_filetype", [p], ctypes.c_int),
        size=bind("entry_size", [p], ctypes.c_longlong),
        filter_bytes=bind("filter_bytes", [p, ctypes.c_int], ctypes.c_longlong),
        pathname=bind("entry_pathname", [p], ctypes.c_char_p),
        hardlink=bind("entry_hardlink", [p], ctypes.c_char_p),
        read_data=bind("read_data", [p, p, ctypes.c_size_t], ctypes.c_ssize_t))


def detect_compression(data: bytes) -> str | None:
    """The libarchive filter for `data` by its magic bytes ("none" for a plain tar), or None."""
    for magic, name in _MAGIC:
        if data.startswith(magic):
            if name == "bzip2" and data[3:4] not in b"123456789":
                return None
            return name
    # ustar/GNU magic; an empty archive is only its end-of-archive zero blocks.
    if data[257:262] == b"ustar" or (len(data) >= _BLOCK and not data[:_BLOCK].strip(b"\0")):
        return "none"
    return None


class TarMembers:
    """The members of an in-memory tar archive; a context manager (it holds a libarchive handle once one is needed).

    `location` (a URL) names the archive in errors. Raises CorruptIndex if `data` is not a tar
    archive, plain or compressed as above (when its magic bytes say so at once, else when read).
    """

    def __init__(self, data: bytes, *, location: str, max_unpacked: int | None = None) -> None:
        compression = detect_compression(data)
        if compression is None:
            raise CorruptIndex(f"not a tar archive nor a gzip/zstd/xz/bzip2-compressed one "
                               f"(starts with {data[:16]!r})", url=location)
        self.data, self.compression = data, compression
        self.location = location
        self.max_unpacked = cap("index_unpacked") if max_unpacked is None else max_unpacked
        self._archive: int | None = None
        self._buffer = ctypes.create_string_buffer(1 << 16)  # reused: a new ctypes array per size is slow

    def __enter__(self) -> TarMembers:
        return self

    def _open(self) -> int:
        """The libarchive handle (opened on first use: the usual database never needs it)."""
        if self._archive is not None:
            return self._archive
        ffi, archive_error = _libarchive()
        self._archive = ffi.read_new()
        try:
            ffi.get_read_filter_function(self.compression)(self._archive)
            ffi.get_read_format_function("tar")(self._archive)
            # libarchive keeps a pointer to `self.data`, which outlives the archive handle.
            ffi.read_open_memory(self._archive, self.data, len(self.data))
        except archive_error as exc:
            self.__exit__(None, None, None)
            raise self._corrupt(exc) from None
        return self._archive

    def __exit__(self, *exc_info: object) -> None:
        if self._archive is not None:
            _libarchive()[0].read_free(self._archive)
            self._archive = None

    def members(self, want: Callable[[bytes, int], bool] = lambda path, size: True) -> Iterator[Member]:
        """Every member but directories, in archive order; a regular file's bytes are read if `want(path, size)`.

        The usual database is read by `tar_fast` (one pass over its bytes); at the first member
        that is not plainly usual, libarchive goes on from that member (and reports its errors).
        """
        given = 0
        try:
            for member in tar_fast.members(self.data, self.compression, self.max_unpacked, want):
                yield member
                given += 1
            return
        except tar_fast.Irregular:
            pass
        yield from self._members(want, skip=given)

    def _members(self, want: Callable[[bytes, int], bool], *, skip: int = 0) -> Iterator[Member]:
        """`members` with libarchive, the first `skip` members but directories read past, not given."""
        archive = self._open()
        ffi, _ = _libarchive()
        calls = _calls()
        entry = ctypes.c_void_p()
        entry_ref = ctypes.byref(entry)
        next_header, filetype, entry_size, filter_bytes, pathname, hardlink = (
            calls.next_header, calls.filetype, calls.size, calls.filter_bytes, calls.pathname, calls.hardlink)
        limit = self.max_unpacked
        end = 0  # where the last member's data ends in the unpacked stream
        while (rc := next_header(archive, entry_ref)) != _ARCHIVE_EOF:
            if rc != _ARCHIVE_OK:  # an error, or a warning: pacman gives up on the database too
                raise CorruptIndex(f"{self._what()}: {_error(ffi, archive)}", url=self.location)
            e = entry.value
            kind = filetype(e) & _AE_IFMT
            size = entry_size(e)
            if size < 0:
                size = 0
            # Checked before the member's data is decompressed: a bomb never expands.
            end = filter_bytes(archive, 0) + -(-size // _BLOCK) * _BLOCK
            if end > limit:
                raise self._too_large()
            if kind == _AE_IFDIR:
                continue
            path = pathname(e) or b""
            if skip:
                skip -= 1
                continue
            if kind == _AE_IFREG and hardlink(e) is None:
                yield Member(path, "file", size, self._read(ffi, calls, archive, size) if want(path, size) else None)
            else:
                yield Member(path, _kind(calls, kind, e), size, None)
        unpacked = filter_bytes(archive, 0)
        if unpacked > limit:
            raise self._too_large()
        # libarchive ends quietly when the data stops at a member boundary; a complete tar
        # has an all-zero end-of-archive block there (tar(5)), which libarchive consumed.
        if unpacked < end + _BLOCK:
            raise CorruptIndex(f"{self._what()}: truncated (no end-of-archive block)", url=self.location)

    def _read(self, ffi, calls: _Calls, archive: int, size: int) -> bytes:
        if size > len(self._buffer):
            self._buffer = ctypes.create_string_buffer(size)
        got = calls.read_data(archive, self._buffer, size) if size else 0
        if got < 0:  # a corrupt stream
            raise CorruptIndex(f"{self._what()}: {_error(ffi, archive)}", url=self.location)
        if got != size:
            raise CorruptIndex(f"{self._what()}: member data ends early", url=self.location)
        return ctypes.string_at(self._buffer, size)

    def _too_large(self) -> CorruptIndex:
        return CorruptIndex(f"{self._what()}: unpacks to more than {self.max_unpacked} bytes",
                            url=self.location)

    def _what(self) -> str:
        return "tar archive" if self.compression == "none" else f"{self.compression}-compressed tar archive"

    def _corrupt(self, exc: Exception) -> CorruptIndex:
        msg = getattr(exc, "msg", exc)
        msg = msg.decode("utf-8", "replace") if isinstance(msg, bytes) else str(msg or _NO_REASON)
        return CorruptIndex(f"{self._what()}: {msg}", url=self.location)


def _kind(calls: _Calls, kind: int, entry: int) -> str:
    if kind == _AE_IFLNK:
        return "symbolic link"
    if calls.hardlink(entry) is not None:  # a tar hard link has no file type of its own
        return "hard link"
    if kind == _AE_IFREG:
        return "file"
    return "device or other special file"


def _error(ffi, archive: int) -> str:
    msg = ffi.error_string(archive)
    return msg.decode("utf-8", "replace") if msg else _NO_REASON
