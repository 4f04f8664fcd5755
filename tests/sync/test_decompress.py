"""Bounded decompression of index files: bombs, truncation and trailing junk are errors."""

from __future__ import annotations

import gzip
import lzma

import pytest

from jobs.sync.decompress import CorruptIndex, decompress

DATA = b"Package: hello\nVersion: 2.10-3\n\n" * 50_000


@pytest.mark.parametrize("kind", ["xz", "gz"])
def test_round_trip_and_concatenated_streams(kind):
    packed = lzma.compress(DATA) if kind == "xz" else gzip.compress(DATA)
    assert decompress(packed, kind, url="u", limit=len(DATA)) == DATA
    assert decompress(packed + packed, kind, url="u", limit=2 * len(DATA)) == DATA + DATA
    assert decompress(packed + b"\0" * 8, kind, url="u", limit=len(DATA)) == DATA  # padding


@pytest.mark.parametrize("kind", ["xz", "gz"])
@pytest.mark.parametrize("damage, message", [
    (lambda b: b[:-20], "truncated"),
    (lambda b: b[: len(b) // 2], "truncated"),
    (lambda b: b + b"<html>", "trailing data"),
    (lambda b: b"<html>" + b, "not an? (xz|gzip) file"),
])
def test_damaged_streams_fail(kind, damage, message):
    packed = lzma.compress(DATA) if kind == "xz" else gzip.compress(DATA)
    with pytest.raises(CorruptIndex, match=message):
        decompress(damage(packed), kind, url="u", limit=len(DATA))


@pytest.mark.parametrize("kind", ["xz", "gz", ""])
def test_bombs_stop_at_the_limit(kind):
    bomb = b"\0" * (32 << 20)
    packed = {"xz": lzma.compress, "gz": gzip.compress, "": bytes}[kind](bomb if kind else bomb[: 2 << 20])
    with pytest.raises(CorruptIndex, match="limit"):
        decompress(packed, kind, url="u", limit=1 << 20)


def test_corrupt_xz_fails():
    packed = bytearray(lzma.compress(DATA))
    packed[len(packed) // 2] ^= 0xFF
    with pytest.raises(CorruptIndex, match="corrupt xz"):
        decompress(bytes(packed), "xz", url="u", limit=len(DATA))
