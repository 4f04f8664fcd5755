"""Read and check the ``.BUILDINFO`` of an Arch package (format 2, docs/design.md#arch-package-files).

Everything in a ``.BUILDINFO`` is untrusted input: the package came from a mirror. Names end up
in paths (``<pkgbuilds>/<pkgbase>``, ``<archive>/<installed>.pkg.tar.zst``) and values end up
inside single quotes in the makepkg.conf that makepkg sources. So every field is checked against
the characters makepkg itself allows before anything uses it, and a value that fails is refused,
never cleaned up.
"""

from __future__ import annotations

import re
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import zstandard

from jobs.core.errors import TerminalError

MEMBER = ".BUILDINFO"
# makepkg writes a few KiB; a bigger member is not a .BUILDINFO we want to read into memory.
MAX_SIZE = 1024 * 1024
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

_SINGLE = ("format", "pkgname", "pkgbase", "pkgver", "pkgarch", "pkgbuild_sha256sum", "packager",
           "builddate", "builddir", "startdir", "buildtool", "buildtoolver")
_MULTI = ("buildenv", "options", "installed")

# makepkg's lint_pkgname: alphanumerics and @._+-, not starting with '-' or '.'.
_NAME = re.compile(r"[A-Za-z0-9@_+][A-Za-z0-9@._+-]{0,254}")
# [epoch:]pkgver-pkgrel; pkgver may not hold ':', '-' or '/' (lint_pkgver).
_VERSION = re.compile(r"(?:[0-9]+:)?[A-Za-z0-9._+~]+-[0-9]+(?:\.[0-9]+)?")
_ARCH = re.compile(r"[A-Za-z0-9_]{1,64}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_FLAG = re.compile(r"!?[A-Za-z0-9_.+-]{1,64}")
_PATH = re.compile(r"/[A-Za-z0-9._+/-]{0,4095}")
# One line of printable text without quotes or backslashes: it goes between '...' in makepkg.conf.
_TEXT = re.compile(r"[^\x00-\x1f\x7f'\\]{1,1024}")


class BuildinfoError(TerminalError):
    """The input package has no usable .BUILDINFO, or one with a field we refuse to use."""


@dataclass(frozen=True)
class Buildinfo:
    """The fields of a format-2 .BUILDINFO, checked; ``installed`` entries are ``name-ver-rel-arch``."""

    format: int
    pkgname: str
    pkgbase: str
    pkgver: str
    pkgarch: str
    pkgbuild_sha256sum: str
    packager: str
    builddate: int
    builddir: str
    startdir: str
    buildtool: str
    buildtoolver: str
    buildenv: tuple[str, ...]
    options: tuple[str, ...]
    installed: tuple[str, ...]


def read_buildinfo(package: Path) -> Buildinfo:
    """The checked .BUILDINFO of the package file ``package`` (``.pkg.tar.zst``, ``.xz``, ``.gz``)."""
    try:
        text = package_member(package, MEMBER).decode("utf-8")
    except UnicodeDecodeError as e:
        raise BuildinfoError(f"{MEMBER} is not utf-8 text", package=package.name) from e
    return parse_buildinfo(text)


def package_member(package: Path, name: str) -> bytes:
    """The bytes of the regular file ``name`` inside a package archive, read as a stream."""
    try:
        with open(package, "rb") as raw:
            magic = raw.read(4)
            raw.seek(0)
            stream: BinaryIO = raw
            if magic == _ZSTD_MAGIC:  # tarfile reads gzip, xz and bzip2 itself
                stream = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)  # type: ignore[assignment]
            with tarfile.open(fileobj=stream, mode="r|*") as tar:
                for member in tar:
                    if member.name.removeprefix("./") != name:
                        continue
                    if not member.isfile() or member.size > MAX_SIZE:
                        raise BuildinfoError(f"{name} in the package is not a regular file of at most "
                                             f"{MAX_SIZE} bytes", package=package.name)
                    return tar.extractfile(member).read()  # type: ignore[union-attr]
    except (tarfile.TarError, zstandard.ZstdError, EOFError) as e:
        raise BuildinfoError(f"cannot read the package: {e}", package=package.name) from e
    raise BuildinfoError(f"the package has no {name}", package=package.name)


def parse_buildinfo(text: str) -> Buildinfo:
    """Parse and check the ``key = value`` lines of a .BUILDINFO (BUILDINFOv2)."""
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {key: [] for key in _MULTI}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        # Exactly what makepkg's write_buildinfo prints; values are kept byte for byte.
        key, sep, value = line.partition(" = ")
        if not sep:
            raise BuildinfoError(f".BUILDINFO line {number} is not 'key = value'")
        if key in multi:
            multi[key].append(value)
        elif key in _SINGLE:
            if key in single:  # two values, two readings: refuse rather than pick one
                raise BuildinfoError(f".BUILDINFO has {key} twice")
            single[key] = value
    absent = [key for key in _SINGLE if key not in single]
    if "format" in single and single["format"] != "2":
        raise BuildinfoError(f"unsupported .BUILDINFO format {single['format']!r}: makepkg here writes "
                             "format 2, so a rebuild of another format cannot match")
    if absent:
        raise BuildinfoError(f".BUILDINFO lacks {', '.join(absent)}")

    def check(key: str, value: str, pattern: re.Pattern[str], what: str) -> str:
        if not pattern.fullmatch(value):
            raise BuildinfoError(f".BUILDINFO {key} {value!r} is not {what}")
        return value

    for key in ("pkgname", "pkgbase", "buildtool"):
        check(key, single[key], _NAME, "a valid package name")
    check("pkgver", single["pkgver"], _VERSION, "[epoch:]pkgver-pkgrel")
    check("buildtoolver", single["buildtoolver"], _TEXT, "one line of text")
    check("pkgarch", single["pkgarch"], _ARCH, "an architecture name")
    check("pkgbuild_sha256sum", single["pkgbuild_sha256sum"], _SHA256, "a sha256 in hex")
    check("packager", single["packager"], _TEXT, "one line of text without quotes or backslashes")
    check("builddate", single["builddate"], re.compile(r"[0-9]{1,12}"), "a Unix time")
    for key in ("builddir", "startdir"):
        check(key, single[key], _PATH, "an absolute path")
        if "/../" in f"{single[key]}/" or "/./" in f"{single[key]}/":
            raise BuildinfoError(f".BUILDINFO {key} {single[key]!r} is not a normalised path")
    for key in ("buildenv", "options"):
        for value in multi[key]:
            check(key, value, _FLAG, "a makepkg option such as '!ccache'")
    for value in multi["installed"]:
        check("installed", value, re.compile(r"[A-Za-z0-9@_+][A-Za-z0-9@._+:~-]{0,511}"), "name-ver-rel-arch")
        name, ver, rel, arch = (value.rsplit("-", 3) + ["", "", ""])[:4]
        if not (_NAME.fullmatch(name) and _VERSION.fullmatch(f"{ver}-{rel}") and _ARCH.fullmatch(arch)):
            raise BuildinfoError(f".BUILDINFO installed {value!r} is not name-ver-rel-arch")
    return Buildinfo(
        format=2, pkgname=single["pkgname"], pkgbase=single["pkgbase"], pkgver=single["pkgver"],
        pkgarch=single["pkgarch"], pkgbuild_sha256sum=single["pkgbuild_sha256sum"],
        packager=single["packager"], builddate=int(single["builddate"]), builddir=single["builddir"],
        startdir=single["startdir"], buildtool=single["buildtool"], buildtoolver=single["buildtoolver"],
        buildenv=tuple(multi["buildenv"]), options=tuple(multi["options"]),
        installed=tuple(multi["installed"]),
    )
