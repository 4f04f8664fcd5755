"""Decompress an index file (xz or gzip) with a hard bound on the output size.

A compressed index is small and its decompressed size is not known in advance, so a
decompression bomb (a few KB of xz that expand to gigabytes) must be stopped while it
expands, not after: both decoders are driven with `max_length` and stop one byte past the
limit. A truncated or corrupt stream is an error, never a silently shorter index.
"""

from __future__ import annotations

import lzma
import zlib

from jobs.core.errors import TerminalError

XZ_MAGIC = b"\xfd7zXZ\x00"
GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20


class CorruptIndex(TerminalError):
    """An index file that cannot be read as what it claims to be (truncated, corrupt, too large, HTML)."""

    def __init__(self, message: str, *, url: str) -> None:
        super().__init__(message, url=url)
        self.url = url


def decompress(data: bytes, kind: str, *, url: str, limit: int) -> bytes:
    """`data` decompressed as `kind` ("xz", "gz" or "" for plain), at most `limit` bytes, or CorruptIndex."""
    if kind == "":
        if len(data) > limit:
            raise CorruptIndex(f"larger than the {limit}-byte limit", url=url)
        return data
    if kind == "xz":
        if not data.startswith(XZ_MAGIC):
            raise CorruptIndex("not an xz file", url=url)
        return _xz(data, url, limit)
    if kind == "gz":
        if not data.startswith(GZIP_MAGIC):
            raise CorruptIndex("not a gzip file", url=url)
        return _gzip(data, url, limit)
    raise ValueError(f"unknown compression {kind!r}")


def _xz(data: bytes, url: str, limit: int) -> bytes:
    out = bytearray()
    rest = data
    while True:  # one xz stream after another (xz(1) writes concatenated streams with -T)
        dec = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
        try:
            out += dec.decompress(rest, max_length=_room(out, limit, url))
            while not dec.eof:
                if dec.needs_input:
                    raise CorruptIndex("truncated xz stream", url=url)
                out += dec.decompress(b"", max_length=_room(out, limit, url))
        except lzma.LZMAError as exc:
            raise CorruptIndex(f"corrupt xz stream: {exc}", url=url) from None
        _room(out, limit, url)
        rest = dec.unused_data
        if not rest.strip(b"\0"):  # stream padding
            return bytes(out)
        if not rest.startswith(XZ_MAGIC):
            raise CorruptIndex("trailing data after the xz stream", url=url)


def _gzip(data: bytes, url: str, limit: int) -> bytes:
    out = bytearray()
    rest = data
    while True:  # gzip allows several members one after another
        dec = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            out += dec.decompress(rest, _room(out, limit, url))
            while not dec.eof:
                tail = dec.unconsumed_tail
                chunk = dec.decompress(tail, _room(out, limit, url))
                if not chunk and not dec.eof and len(dec.unconsumed_tail) == len(tail):
                    raise CorruptIndex("truncated gzip stream", url=url)
                out += chunk
        except zlib.error as exc:
            raise CorruptIndex(f"corrupt gzip stream: {exc}", url=url) from None
        _room(out, limit, url)
        rest = dec.unused_data
        if not rest.strip(b"\0"):
            return bytes(out)
        if not rest.startswith(GZIP_MAGIC):
            raise CorruptIndex("trailing data after the gzip stream", url=url)


def _room(out: bytearray, limit: int, url: str) -> int:
    """How much more may be produced: one byte past the limit, so reaching it is detectable."""
    if len(out) > limit:
        raise CorruptIndex(f"decompresses to more than the {limit}-byte limit", url=url)
    return min(limit - len(out) + 1, _CHUNK * 64)
