"""Decompress an index file (xz or gzip) with a hard bound on the output size.

A compressed index is small and its decompressed size is not known in advance, so a
decompression bomb (a few KB of xz that expand to gigabytes) must be stopped while it
expands, not after (`jobs.core.bounded.decompress_capped`: both decoders are driven with
`max_length` and stop one byte past the limit). A truncated or corrupt stream is an error, never a silently shorter index.
"""

from __future__ import annotations

from jobs.core.bounded import GZIP_MAGIC, XZ_MAGIC, CorruptData, OverLimit, decompress_capped
from jobs.core.errors import TerminalError


class CorruptIndex(TerminalError):
    """An index file that cannot be read as what it claims to be (truncated, corrupt, too large, HTML)."""

    def __init__(self, message: str, *, url: str) -> None:
        super().__init__(message, url=url)
        self.url = url


def decompress(data: bytes, kind: str, *, url: str, limit: int) -> bytes:
    """`data` decompressed as `kind` ("xz", "gz" or "" for plain), at most `limit` bytes, or CorruptIndex."""
    if kind not in ("", "xz", "gz"):
        raise ValueError(f"unknown compression {kind!r}")
    if kind == "xz" and not data.startswith(XZ_MAGIC):
        raise CorruptIndex("not an xz file", url=url)
    if kind == "gz" and not data.startswith(GZIP_MAGIC):
        raise CorruptIndex("not a gzip file", url=url)
    try:
        return decompress_capped(data, kind, limit, "index")
    except OverLimit:
        what = "decompresses to more than" if kind else "larger than"
        raise CorruptIndex(f"{what} the {limit}-byte limit", url=url) from None
    except CorruptData as exc:
        raise CorruptIndex(exc.message.removeprefix("index: "), url=url) from None
