"""Builders for Arch repository databases in tests and benchmarks: descs, tar members, compression."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import lzma
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass

import zstandard

COMPRESSIONS = ("gzip", "zstd", "xz", "bzip2", "none")
MTIME = 1700000000


def desc(name: str, version: str = "1.0-1", *, base: str | None = None, arch: str = "x86_64",
         filename: str | None = None, packager: str = "Jane Doe <jane@example.org>",
         sha256: str | None = None, csize: str = "1234", extra: str = "", v1: bool = False) -> str:
    """A desc as repo-add writes it (v2 unless `v1`), with `extra` sections appended."""
    filename = filename if filename is not None else f"{name}-{version}-{arch}.pkg.tar.zst"
    sha256 = sha256 if sha256 is not None else hashlib.sha256(filename.encode()).hexdigest()
    base_section = f"%BASE%\n{base if base is not None else name}\n\n" if base != "" else ""
    md5 = f"%MD5SUM%\n{hashlib.md5(filename.encode()).hexdigest()}\n\n" if v1 else ""
    return (f"%FILENAME%\n{filename}\n\n%NAME%\n{name}\n\n{base_section}%VERSION%\n{version}\n\n"
            f"%DESC%\nThe {name} package\n\n%CSIZE%\n{csize}\n\n%ISIZE%\n4321\n\n{md5}"
            f"%SHA256SUM%\n{sha256}\n\n%URL%\nhttps://example.org/{name}\n\n%LICENSE%\nMIT\n\n"
            f"%ARCH%\n{arch}\n\n%BUILDDATE%\n{MTIME}\n\n%PACKAGER%\n{packager}\n\n{extra}")


@dataclass(frozen=True)
class M:
    """One tar member to write: a file (data), a directory, a link or a device."""

    name: str | bytes
    data: bytes = b""
    type: bytes = tarfile.REGTYPE
    linkname: str = ""


def package(name: str, version: str = "1.0-1", **fields) -> list[M]:
    """The two members repo-add writes for one package: its directory and its desc."""
    directory = f"{name}-{version}"
    return [M(directory, type=tarfile.DIRTYPE), M(f"{directory}/desc", desc(name, version, **fields).encode())]


def header(member: M) -> bytes:
    """The tar header block(s) of one member (GNU format, so any name fits)."""
    info = tarfile.TarInfo()
    # tarfile wants str names; surrogateescape carries arbitrary bytes through unchanged.
    info.name = member.name if isinstance(member.name, str) else member.name.decode("utf-8", "surrogateescape")
    info.type, info.linkname, info.mtime = member.type, member.linkname, MTIME
    info.size = len(member.data) if member.type in (tarfile.REGTYPE, tarfile.AREGTYPE) else 0
    info.mode = 0o755 if member.type == tarfile.DIRTYPE else 0o644
    return info.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape")


def member_bytes(member: M) -> bytes:
    """Header and padded data of one member."""
    data = member.data if member.type in (tarfile.REGTYPE, tarfile.AREGTYPE) else b""
    return header(member) + data + b"\0" * (-len(data) % 512)


def tar(members: Iterable[M], *, end: bool = True) -> bytes:
    """A tar archive of `members` in this order, with the end-of-archive blocks unless `end` is false."""
    body = b"".join(member_bytes(m) for m in members)
    return body + (b"\0" * 1024 if end else b"")


def compress(raw: bytes, kind: str) -> bytes:
    """`raw` compressed with one of COMPRESSIONS."""
    if kind == "gzip":
        return gzip.compress(raw, compresslevel=6, mtime=0)
    if kind == "zstd":
        return zstandard.ZstdCompressor(level=3).compress(raw)
    if kind == "xz":
        return lzma.compress(raw)
    if kind == "bzip2":
        return bz2.compress(raw)
    if kind == "none":
        return raw
    raise ValueError(kind)


def db(members: Iterable[M], kind: str = "gzip") -> bytes:
    """A compressed repository database of `members`."""
    return compress(tar(members), kind)
