"""A gzip stream libarchive's inflate (zlib) refuses is never read by the walk, whichever inflater it uses.

The stream here is a valid gzip member (its CRC and length right) but for one thing: its
deflate block's literal/length Huffman code is incomplete (Kraft sum below 1), which zlib,
and so libarchive and pacman, refuse ("invalid literal/lengths set") and ISA-L inflates.
The walk must hand such a database over, so the error is libarchive's: it inflates with zlib.
"""

from __future__ import annotations

import struct
import zlib

import pytest

from jobs.sync import tar_fast
from tests.sync.alpm_builders import tar
from tests.sync.test_tar_fast import both, packages, walk


def _canonical(lengths: list[int]) -> dict[int, tuple[int, int]]:
    """RFC 1951 3.2.2: each symbol's (code, length) from the code lengths."""
    counts = [0] * (max(lengths) + 1)
    for length in lengths:
        counts[length] += length > 0
    code, first = 0, [0] * (len(counts) + 1)
    for bits in range(1, len(counts)):
        code = (code + counts[bits - 1]) << 1
        first[bits] = code
    codes = {}
    for symbol, length in enumerate(lengths):
        if length:
            codes[symbol] = (first[length], length)
            first[length] += 1
    return codes


def incomplete_code_gzip(data: bytes, complete: bool = False) -> bytes:
    """`data` as one gzip member: one final dynamic block of literals with an incomplete literal/length code.

    `complete`: the same code but end-of-block 9 bits long, which completes it (a stream zlib reads).
    """
    out, acc, n = bytearray(), 0, 0

    def put(value: int, bits: int) -> None:  # least significant bit first
        nonlocal acc, n
        acc |= value << n
        n += bits
        while n >= 8:
            out.append(acc & 0xFF)
            acc >>= 8
            n -= 8

    def huffman(code: int, length: int) -> None:  # a Huffman code goes most significant bit first
        put(int(format(code, f"0{length}b")[::-1], 2), length)

    literal = [8] * 256 + [9 if complete else 10]  # 255 codes of 8 bits, one of 9, end-of-block of 10: 1/1024 short
    literal[0x41] = 9
    distance = [1]  # one distance code of length 1 (an incomplete code zlib allows)
    order = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]
    code_lengths = [2 if symbol in (1, 8, 9, 10) else 0 for symbol in range(19)]
    count = max(i for i, symbol in enumerate(order) if code_lengths[symbol]) + 1
    put(1, 1), put(2, 2)  # the final block, dynamic Huffman codes
    put(len(literal) - 257, 5), put(len(distance) - 1, 5), put(count - 4, 4)
    for i in range(count):
        put(code_lengths[order[i]], 3)
    length_codes = _canonical(code_lengths)
    for length in literal + distance:
        huffman(*length_codes[length])
    literal_codes = _canonical(literal)
    for byte in data:
        huffman(*literal_codes[byte])
    huffman(*literal_codes[256])
    if n:
        out.append(acc)
    return b"\x1f\x8b\x08\0\0\0\0\0\0\xff" + bytes(out) + struct.pack("<II", zlib.crc32(data), len(data))


def test_the_crafted_stream_is_what_it_claims():
    body = tar(packages(3))
    with pytest.raises(zlib.error, match="invalid literal/lengths set"):
        zlib.decompress(incomplete_code_gzip(body), 31)
    # Completed, the same code is zlib's to read: only the incomplete code is odd.
    assert zlib.decompress(incomplete_code_gzip(body, complete=True), 31) == body


def test_the_walk_inflates_with_what_libarchive_inflates_with():
    data = incomplete_code_gzip(tar(packages(3)))
    with pytest.raises(tar_fast.Irregular):
        walk(data)
    ours, libarchive = both(data)
    assert ours == libarchive and ours.startswith("CorruptIndex: gzip-compressed tar archive: gzip decompression failed")
