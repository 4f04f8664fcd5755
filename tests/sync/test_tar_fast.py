"""The one-pass tar walk (`jobs.sync.tar_fast`) gives what libarchive gives, or hands over to it.

Each archive is read twice: by `TarMembers.members` (the walk, libarchive from the first
irregular member on) and by libarchive alone (`TarMembers._members`); the members, their
bytes, or the CorruptIndex message must be the same. The usual database must be read by
the walk from start to end, with zlib and with ISA-L.
"""

from __future__ import annotations

import gzip
import random
import subprocess
import tarfile
import zlib
from pathlib import Path

import pytest

from jobs.sync import tar_fast
from jobs.sync.tar_members import CorruptIndex, TarMembers, detect_compression
from tests.sync.alpm_builders import M, compress, desc, package, tar
from tests.tools import require_tool

LIMIT = 1 << 30


def both(data: bytes, limit: int = LIMIT) -> tuple[object, object]:
    """(what the walk-then-libarchive reader gives, what libarchive alone gives): members or the error."""
    want = lambda path, size: path.endswith(b"/desc")  # noqa: E731

    def read(method: str):
        try:
            with TarMembers(data, location="https://mirror.example/x.db", max_unpacked=limit) as archive:
                return [tuple(m) for m in getattr(archive, method)(want)]
        except CorruptIndex as exc:
            return f"CorruptIndex: {exc}"

    return read("members"), read("_members")


def inflaters() -> list:
    found = [(zlib, zlib.error)]
    try:
        from isal import isal_zlib
    except ImportError:
        return found
    return [*found, (isal_zlib, (zlib.error, isal_zlib.error))]


def walk(data: bytes, inflater=None) -> list:
    """The walk alone (Irregular propagates)."""
    compression = detect_compression(data)
    if compression == "gzip" and inflater is not None:
        real = tar_fast._inflater
        tar_fast._inflater = lambda: inflater
        try:
            return [tuple(m) for m in tar_fast.members(data, "gzip", LIMIT, lambda p, s: True)]
        finally:
            tar_fast._inflater = real
    return [tuple(m) for m in tar_fast.members(data, compression, LIMIT, lambda p, s: True)]


def packages(n: int, seed: int = 0) -> list[M]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        out += package(f"p{i:04d}-{rnd.getrandbits(16):x}", f"{rnd.randint(0, 9)}.{i}-1",
                       extra=f"%DEPENDS%\n{'x' * rnd.randint(0, 900)}\n\n")
    return out


@pytest.mark.parametrize("inflater", inflaters(), ids=lambda i: i[0].__name__)
@pytest.mark.parametrize("kind", ["gzip", "none"])
def test_the_usual_database_is_walked_to_its_end_as_libarchive_reads_it(kind: str, inflater):
    data = compress(tar(packages(300)), kind)
    walked = walk(data, inflater)
    assert len(walked) == 300 and all(m[1] == "file" and m[3] for m in walked)
    ours, libarchive = both(data)
    assert ours == libarchive and len(ours) == 300


def test_a_database_gzip_streams_in_many_small_pieces_is_walked():
    data = compress(tar(packages(40)), "gzip")
    real = tar_fast._FEED, tar_fast.CHUNK
    tar_fast._FEED, tar_fast.CHUNK = 97, 1000  # pieces smaller than a header: every refill path
    try:
        assert walk(data) == both(data)[1]
        ours, libarchive = both(data)
        assert ours == libarchive and len(ours) == 40
    finally:
        tar_fast._FEED, tar_fast.CHUNK = real


@pytest.mark.parametrize("extension", ["tar", "tar.gz"])
def test_a_database_written_by_bsdtar_is_walked_to_its_end(tmp_path: Path, extension: str):
    bsdtar = require_tool("bsdtar", "libarchive-tools")
    for i in range(3):
        (tmp_path / f"pkg{i}-1.0-1").mkdir()
        (tmp_path / f"pkg{i}-1.0-1" / "desc").write_text(desc(f"pkg{i}"))
    flags = ["-czf"] if extension == "tar.gz" else ["-cf"]
    subprocess.run([bsdtar, *flags, str(tmp_path / f"db.{extension}"), "pkg0-1.0-1", "pkg1-1.0-1", "pkg2-1.0-1"],
                   check=True, cwd=tmp_path)
    data = (tmp_path / f"db.{extension}").read_bytes()
    assert [m[0] for m in walk(data)] == [f"pkg{i}-1.0-1/desc".encode() for i in range(3)]
    assert both(data)[0] == both(data)[1]


def test_a_name_filling_its_100_bytes_is_read_whole():
    data = compress(tar([*packages(2), M("n" * 95 + "/desc", b"x"), *packages(1, 9)]), "gzip")
    assert walk(data)[2][0] == b"n" * 95 + b"/desc"
    assert both(data)[0] == both(data)[1]


def _pax_member() -> bytes:
    info = tarfile.TarInfo("é" * 60 + "/desc")
    data = desc("pax").encode()
    info.size, info.mtime = len(data), 1700000000
    return info.tobuf(tarfile.PAX_FORMAT) + data + b"\0" * (-len(data) % 512)


def _plain(members: list[M]) -> bytearray:
    return bytearray(tar(members))


def _irregular_archives() -> dict[str, bytes]:
    """Archives the walk must hand over, each with usual members before the odd one."""
    usual = packages(3)
    cases: dict[str, bytes] = {}
    cases["symlink"] = tar([*usual, M("l-1/desc", type=tarfile.SYMTYPE, linkname="/etc/passwd"), *packages(2, 9)])
    cases["hard link"] = tar([*usual, M("h-1/desc", type=tarfile.LNKTYPE, linkname="p-1/desc"), *packages(2, 9)])
    cases["device"] = tar([*usual, M("d-1/desc", type=tarfile.CHRTYPE), *packages(2, 9)])
    cases["fifo"] = tar([*usual, M("f-1/desc", type=tarfile.FIFOTYPE)])
    cases["GNU long name"] = tar([*usual, M("x" * 300 + "/desc", desc("a").encode()), *packages(2, 9)])
    cases["pax header"] = bytes(tar(usual, end=False) + _pax_member() + tar(packages(2, 9)))
    cases["file named like a directory"] = tar([*usual, M("a-1/", b"data"), *packages(1, 9)])
    cases["member larger than the walk keeps"] = tar([*usual, M("big-1/desc", b"x" * (tar_fast.MEMBER_MAX + 1))])
    at = _headers(tar(usual))  # directory, desc, directory, desc, ...
    raw = _plain(usual)
    raw[at[1] + 148] ^= 1
    cases["bad checksum"] = bytes(raw)
    raw = _plain(usual)
    raw[at[3] + 124:at[3] + 136] = b" 0000000077\0"  # a leading space: valid, not canonical
    cases["size with a leading space"] = _fix_checksum(raw, at[3])
    raw = _plain(usual)
    raw[at[2] + 100:at[2] + 108] = b"0000z44\0"  # mode with a letter
    cases["bad mode"] = _fix_checksum(raw, at[2])
    raw = _plain(usual)
    raw[100:108] = b"00007z5\0"
    cases["bad mode in the first header"] = _fix_checksum(raw, 0)
    raw = _plain(usual)
    raw[at[1] + 345:at[1] + 350] = b"pref/"  # a GNU header with bytes in the ustar prefix
    cases["prefix bytes"] = _fix_checksum(raw, at[1])
    raw = _plain(usual)
    raw[at[2] + 124:at[2] + 136] = b"00000001000\0"  # a directory with data
    cases["directory with a size"] = _fix_checksum(raw, at[2])
    raw = _plain(usual)
    raw[at[3] + 136:at[3] + 148] = b"1234567890a\0"  # a time that is not octal
    cases["bad time"] = _fix_checksum(raw, at[3])
    cases["empty archive"] = tar([])
    cases["no end-of-archive block"] = tar(usual, end=False)
    cases["garbage after the end"] = tar(usual) + b"garbage" + b"\0" * 505
    cases["truncated in a member"] = tar(usual)[:512 * 3 + 100]
    cases["no name"] = tar(usual, end=False) + b"\0" * 100 + tar([M("a-1/desc", b"x")])[100:]
    return cases


def _headers(raw: bytes) -> list[int]:
    """Where each header of a plain (GNU-format, short-named) tar starts."""
    offsets, pos = [], 0
    while raw[pos]:
        offsets.append(pos)
        pos += 512 + -(-int(raw[pos + 124:pos + 135], 8) // 512) * 512
    return offsets


def _fix_checksum(raw: bytearray, at: int) -> bytes:
    header = raw[at:at + 512]
    header[148:156] = b" " * 8
    raw[at + 148:at + 156] = b"%06o\0 " % sum(header)
    return bytes(raw)


@pytest.mark.parametrize("name", sorted(_irregular_archives()))
@pytest.mark.parametrize("kind", ["gzip", "none", "zstd"])
def test_an_irregular_archive_gives_what_libarchive_gives(name: str, kind: str):
    data = compress(_irregular_archives()[name], kind)
    with pytest.raises(tar_fast.Irregular):
        walk(data)
    ours, libarchive = both(data)
    assert ours == libarchive


def test_after_an_irregular_member_libarchive_goes_on_from_it():
    data = compress(_irregular_archives()["symlink"], "gzip")
    ours, libarchive = both(data)
    assert ours == libarchive
    assert [m[1] for m in ours] == ["file"] * 3 + ["symbolic link"] + ["file"] * 2


def test_two_gzip_members_and_trailing_bytes_are_libarchives():
    body = tar(packages(4))
    for data in (gzip.compress(body[:2048]) + gzip.compress(body[2048:]), gzip.compress(body) + b"junk",
                 gzip.compress(body)[:-3]):
        with pytest.raises(tar_fast.Irregular):
            walk(data)
        assert both(data)[0] == both(data)[1]


@pytest.mark.parametrize("inflater", inflaters(), ids=lambda i: i[0].__name__)
@pytest.mark.parametrize("flag", [0x20, 0x40, 0x80])
def test_a_gzip_header_with_reserved_flags_is_libarchives(inflater, flag: int):
    # ISA-L inflates such a stream; libarchive's gzip reader does not take it for gzip at all.
    data = bytearray(gzip.compress(tar(packages(4))))
    data[3] |= flag
    with pytest.raises(tar_fast.Irregular):
        walk(bytes(data), inflater)
    ours, libarchive = both(bytes(data))
    assert ours == libarchive and "Unrecognized archive format" in ours


@pytest.mark.parametrize("count", [3, 300])  # libarchive fails at its open, or after the last member
@pytest.mark.parametrize("cut", [1, 8])
def test_a_gzip_stream_cut_in_its_trailer_is_an_error_that_says_so(count: int, cut: int):
    data = gzip.compress(tar(packages(count)))[:-cut]
    ours, libarchive = both(data)
    assert ours == libarchive
    assert ours.startswith("CorruptIndex: gzip-compressed tar archive: truncated or corrupt"), ours


def test_the_bound_on_the_unpacked_size_is_libarchives_error():
    data = compress(tar(packages(20)), "gzip")
    ours, libarchive = both(data, limit=20_000)
    assert ours == libarchive and "unpacks to more than 20000 bytes" in ours


@pytest.mark.parametrize("seed", range(6))
def test_any_byte_flip_gives_what_libarchive_gives(seed: int):
    rnd = random.Random(seed)
    members = packages(6, seed)
    for kind in ("gzip", "none"):
        clean = compress(tar(members), kind)
        for _ in range(60):
            data = bytearray(clean)
            position = rnd.randrange(len(data)) if kind == "gzip" or rnd.random() < 0.3 else \
                rnd.choice([i for i in range(0, len(data) - 512, 512)]) + rnd.randrange(512)
            data[position] ^= 1 << rnd.randrange(8)
            ours, libarchive = both(bytes(data))
            assert ours == libarchive, (kind, position)
