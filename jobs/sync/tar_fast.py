"""The usual Arch database read in one pass over its bytes: zlib, then the tar headers walked in Python.

repo-add writes a gzip-compressed tar of plain ustar (or GNU) headers: a directory and a
`desc` per package, names under 100 bytes, nothing else. For that archive this walk gives
exactly the members `tar_members.TarMembers` reads with libarchive, with no C call per
member: the decompressed stream is read a few MiB at a time and each 512-byte header is
checked by one regular expression and its checksum (two `zlib.adler32`s) in place.

It accepts only what it can be sure libarchive reads the same way and raises `Irregular` at
the first thing that is not plainly so, which `TarMembers.members` takes as the cue to go on
with libarchive from that member on (the members already given are the same there): every
header must be canonical (a name, its bytes up to the first NUL as libarchive takes them, no link
name, no ustar prefix or GNU extension bytes, each number as octal digits then spaces or
NULs, typeflag `0`, NUL or `5`, a directory of size 0, a file name not ending in `/`, the
unsigned header checksum right), no member larger than `MEMBER_MAX`, the gzip stream one
member without reserved header flags that ends exactly where the data does with its CRC and length right, the whole
stream no larger than the archive's bound, and nothing but zero bytes after the
end-of-archive block. Every other compression, pax headers, long names, links, devices and
anything damaged are libarchive's, whose errors are the ones reported.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Iterator
from typing import NamedTuple

_BLOCK = 512
CHUNK = 4 << 20  # decompressed bytes read at a time
_FEED = 1 << 18  # compressed bytes given to zlib at a time
MEMBER_MAX = 1 << 20  # a larger member is left to libarchive (it is skipped there without being held)


class Irregular(Exception):
    """This archive needs libarchive from here on (not an error in itself)."""


class Member(NamedTuple):  # a tuple: cheap to make 30,000 times
    """One tar member: its raw name, what it is, and its bytes if they were asked for."""

    path: bytes
    kind: str  # "file", "symbolic link", "hard link", "device or other special file"
    size: int
    data: bytes | None


def _number(width: int, group: bool = False) -> bytes:
    """A numeric field of `width` bytes: 1 to width-1 octal digits, then spaces or NULs to its end."""
    alternatives = b"|".join(b"[0-7]{%d}[ \\0]{%d}" % (d, width - d) for d in range(width - 1, 0, -1))
    return (b"(" if group else b"(?:") + alternatives + b")"


_HEADER = re.compile(
    rb"[^\0][\s\S]{99}"  # name: up to its first NUL (or all 100 bytes), not empty
    + _number(8) + _number(8) + _number(8)  # mode, uid, gid
    + _number(12) + _number(12)  # size, mtime
    + _number(8)  # checksum
    + rb"[05\0]" + rb"\0{100}"  # typeflag, link name
    + rb"(?:ustar\x0000|ustar  \0)" + rb"[\s\S]{64}"  # magic and version, user and group names
    + rb"(?:" + _number(8) + rb"|\0{8})" + rb"(?:" + _number(8) + rb"|\0{8})"  # device numbers
    + rb"\0{167}")  # ustar prefix (GNU: times, sparse map) and the block's padding
# Bytes 124 to 156 as bsdtar, GNU tar and Python's tarfile write them: the size and the time as
# 11 octal digits and a NUL or space, the checksum as 6 and a NUL and a space.
_NUMBERS = re.compile(rb"([0-7]{11})[ \0][0-7]{11}[ \0]([0-7]{6})\0 ")


def _inflater():
    """The module that inflates: zlib, as libarchive does (and so pacman).

    Not ISA-L's `isal_zlib`, though it inflates about twice as fast: it reads deflate streams
    zlib refuses (an incomplete Huffman code, tests/sync/test_tar_fast_deflate.py), which the
    walk would then accept where libarchive fails.
    """
    return zlib, zlib.error


def _gunzip(data: bytes, limit: int, inflater=None) -> Iterator[bytes]:
    """The decompressed stream of one complete gzip member, piece by piece; Irregular otherwise.

    The compressed bytes go in `_FEED` at a time and come out at most CHUNK at a time (a bomb
    never expands past the bound; no long unconsumed input is copied from call to call).
    """
    if data[3:4] and data[3] & 0xE0:  # reserved flags: ISA-L ignores them, libarchive's gzip reader refuses them
        raise Irregular("reserved gzip header flags")
    module, errors = inflater or _inflater()
    inflate = module.decompressobj(31)
    total = 0
    view = memoryview(data)
    try:
        for start in range(0, len(data), _FEED):
            pending = view[start:start + _FEED]
            while pending and not inflate.eof:
                before = len(pending)
                chunk = inflate.decompress(pending, CHUNK)
                pending = inflate.unconsumed_tail
                total += len(chunk)
                if total > limit:
                    raise Irregular("unpacks to more than the bound")
                if chunk:
                    yield chunk
                elif len(pending) == before:
                    raise Irregular("the gzip stream makes no progress")
            if inflate.eof:
                if pending or inflate.unused_data or start + _FEED < len(data):
                    raise Irregular("data after the gzip stream")
                return
    except errors as exc:
        raise Irregular(str(exc)) from None
    raise Irregular("the gzip stream ends early")


def members(data: bytes, compression: str, limit: int,
            want: Callable[[bytes, int], bool]) -> Iterator[Member]:
    """The archive's members but directories, in order, a file's bytes read if `want(path, size)`; or Irregular.

    A header is checked in full (`_HEADER`) unless its bytes but the name, size, time and
    checksum are those of an earlier header of its type that was (repo-add's headers differ in
    nothing else); the size, time and checksum fields of every header are checked (`_NUMBERS`)
    and the checksum summed.
    """
    if compression == "gzip":
        chunks = _gunzip(data, limit)
    elif compression == "none" and len(data) <= limit:
        chunks = iter((data,))
    else:
        raise Irregular(f"{compression} is left to libarchive")
    buf, pos = b"", 0
    check, numbers, adler32 = _HEADER.match, _NUMBERS.match, zlib.adler32
    view = memoryview(buf)
    known: dict[int, tuple[bytes, bytes, int]] = {}  # typeflag → a checked header's mode/uid/gid, bytes 156 to 512, their sum
    while True:
        if len(buf) - pos < _BLOCK:
            buf, pos = _more(buf, pos, chunks, _BLOCK)
            view = memoryview(buf)
        if buf[pos] == 0:  # no name: the end-of-archive block, whatever follows zero bytes too
            if known and not buf[pos:].strip(b"\0") and not any(chunk.strip(b"\0") for chunk in chunks):
                return
            raise Irregular("an empty archive, a header without a name or data after the end")
        typeflag = buf[pos + 156]
        same = known.get(typeflag)
        if same is None or not (buf.startswith(same[0], pos + 100) and buf.startswith(same[1], pos + 156)):
            if check(buf, pos) is None:
                raise Irregular("not a plain header")
            rest = buf[pos + 156:pos + _BLOCK]
            same = known[typeflag] = (buf[pos + 100:pos + 124], rest, sum(rest))
        # Size and time as 11 octal digits and a NUL or space, the checksum as 6 and a NUL and a space.
        fields = numbers(buf, pos + 124)
        if fields is None:
            raise Irregular("not a plain header")
        size_digits, checksum_digits = fields.groups()
        size, checksum = int(size_digits, 8), int(checksum_digits, 8)
        # Bytes 0 to 148 sum to less than 65521: adler32's low half is 1 + their sum.
        if (adler32(view[pos:pos + 148]) & 0xFFFF) - 1 + 8 * 32 + same[2] != checksum:
            raise Irregular("header checksum")
        start = pos + _BLOCK
        pos = start + -(-size // _BLOCK) * _BLOCK
        if typeflag == 0x35:  # "5", a directory
            if size:
                raise Irregular("a directory with data")
            continue
        name = buf[start - _BLOCK:start - _BLOCK + 100].partition(b"\0")[0]
        if size > MEMBER_MAX or name.endswith(b"/"):
            raise Irregular("a large member or a file named like a directory")
        if len(buf) < pos:
            buf, start = _more(buf, start, chunks, pos - start + _BLOCK)
            pos = start + -(-size // _BLOCK) * _BLOCK
            view = memoryview(buf)
        yield Member(name, "file", size, buf[start:start + size] if want(name, size) else None)


def _more(buf: bytes, pos: int, chunks: Iterator[bytes], need: int) -> tuple[bytes, int]:
    """`buf` from `pos` on with chunks appended until it holds `need` bytes (or the stream ends: Irregular)."""
    parts = [buf[pos:]]
    have = len(parts[0])
    for chunk in chunks:
        parts.append(chunk)
        have += len(chunk)
        if have >= need:
            break
    if have < need:
        raise Irregular("the archive ends inside a header or member")
    return b"".join(parts), 0
