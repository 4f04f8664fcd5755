"""Reading and checking .BUILDINFO: every field is untrusted and refused unless makepkg could have written it."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st

from jobs.work.backends.buildinfo import Buildinfo, BuildinfoError, parse_buildinfo, read_buildinfo

# A devtools-built package as the ALPM BUILDINFOv2 specification shows it (keys in any order).
DEVTOOLS = """\
format = 2
pkgname = example
pkgbase = example
pkgver = 1:1.0.0-1
pkgarch = any
pkgbuild_sha256sum = b5bb9d8014a0f9b1d61e21e796d78dccdf1352f23cd32812f4850b878ae4944c
packager = John Doe <john@example.org>
builddate = 1729181726
builddir = /build
startdir = /startdir/
buildtool = devtools
buildtoolver = 1:1.2.1-1-any
buildenv = !color
buildenv = check
options = !strip
options = staticlibs
installed = other-package-1:0.5.0-3-any
installed = package2-2.1.0-6-x86_64
installed = gcc-libs-14.1.1+r58+gfc9fb69ad62-1-x86_64
"""


def replace(text: str, key: str, value: str) -> str:
    """``text`` with the first ``key = …`` line set to ``value``."""
    lines = text.splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith(f"{key} = "))
    lines[index] = f"{key} = {value}"
    return "\n".join(lines) + "\n"


def make_package(path: Path, members: dict[str, bytes], *, compress: str = "zst") -> Path:
    """A package file holding ``members`` (as makepkg orders them: dot-files first)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    data = raw.getvalue()
    if compress == "zst":
        data = zstandard.ZstdCompressor().compress(data)
    elif compress == "gz":
        import gzip
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def test_a_devtools_buildinfo_is_read_field_by_field():
    info = parse_buildinfo(DEVTOOLS)
    assert info == Buildinfo(
        format=2, pkgname="example", pkgbase="example", pkgver="1:1.0.0-1", pkgarch="any",
        pkgbuild_sha256sum="b5bb9d8014a0f9b1d61e21e796d78dccdf1352f23cd32812f4850b878ae4944c",
        packager="John Doe <john@example.org>", builddate=1729181726, builddir="/build",
        startdir="/startdir/", buildtool="devtools", buildtoolver="1:1.2.1-1-any",
        buildenv=("!color", "check"), options=("!strip", "staticlibs"),
        installed=("other-package-1:0.5.0-3-any", "package2-2.1.0-6-x86_64",
                   "gcc-libs-14.1.1+r58+gfc9fb69ad62-1-x86_64"))


@pytest.mark.parametrize("compress", ["zst", "gz", "none"])
def test_the_buildinfo_is_read_from_any_package_compression(tmp_path, compress):
    package = make_package(tmp_path / "example-1:1.0.0-1-any.pkg.tar", {
        ".BUILDINFO": DEVTOOLS.encode(), ".PKGINFO": b"pkgname = example\n", "usr/": b""}, compress=compress)
    assert read_buildinfo(package).pkgbase == "example"


@pytest.mark.parametrize(("members", "message"), [
    ({".PKGINFO": b"pkgname = x\n"}, "has no .BUILDINFO"),
    ({".BUILDINFO": b"\xff\xfe"}, "not utf-8"),
    ({".BUILDINFO": b"x" * (1024 * 1024 + 1)}, "at most"),
])
def test_a_package_without_a_readable_buildinfo_is_refused(tmp_path, members, message):
    with pytest.raises(BuildinfoError, match=message):
        read_buildinfo(make_package(tmp_path / "x-1-1-any.pkg.tar.zst", members))


def test_a_file_that_is_no_package_is_refused(tmp_path):
    junk = tmp_path / "junk.pkg.tar.zst"
    junk.write_bytes(b"\x28\xb5\x2f\xfd" + b"not zstd at all" * 10)
    with pytest.raises(BuildinfoError, match="cannot read the package"):
        read_buildinfo(junk)


@pytest.mark.parametrize(("key", "value", "message"), [
    ("pkgbase", "../../etc", "pkgbase"),
    ("pkgbase", "/etc", "pkgbase"),
    ("pkgbase", ".hidden", "pkgbase"),
    ("pkgbase", "-rf", "pkgbase"),
    ("pkgbase", "a\x1bb", "pkgbase"),
    ("pkgname", "a/b", "pkgname"),
    ("pkgver", "1.0", "pkgver"),
    ("pkgarch", "x86_64/../..", "pkgarch"),
    ("pkgbuild_sha256sum", "B5BB" * 16, "pkgbuild_sha256sum"),
    ("packager", "x' ; touch /tmp/pwned ; '", "packager"),
    ("packager", "a\\", "packager"),
    ("builddate", "-1", "builddate"),
    ("builddir", "build", "builddir"),
    ("startdir", "/startdir/../etc", "startdir"),
    ("buildenv", "!ccache'$(id)'", "buildenv"),
    ("options", "strip x", "options"),
    ("installed", "../../etc/passwd-1-1-any", "installed"),
    ("installed", "glibc-2.39", "installed"),
    ("format", "1", "unsupported .BUILDINFO format"),
])
def test_a_field_makepkg_would_not_write_is_refused(key, value, message):
    with pytest.raises(BuildinfoError, match=message):
        parse_buildinfo(replace(DEVTOOLS, key, value))


def test_a_repeated_single_key_is_refused_not_guessed():
    with pytest.raises(BuildinfoError, match="pkgbase twice"):
        parse_buildinfo(DEVTOOLS + "pkgbase = other\n")


def test_missing_keys_are_named():
    text = "\n".join(line for line in DEVTOOLS.splitlines() if not line.startswith(("startdir", "buildtool ")))
    with pytest.raises(BuildinfoError, match="lacks startdir, buildtool$"):
        parse_buildinfo(text)


@given(st.text(max_size=300))
def test_any_text_parses_or_is_refused_cleanly(text):
    try:
        parse_buildinfo(text)
    except BuildinfoError:
        pass


@given(st.text(min_size=1, max_size=40))
def test_an_accepted_pkgbase_is_safe_in_a_path(pkgbase):
    try:
        info = parse_buildinfo(replace(DEVTOOLS, "pkgbase", pkgbase))
    except BuildinfoError:
        return
    assert "/" not in info.pkgbase and not info.pkgbase.startswith((".", "-"))
    assert info.pkgbase.isprintable() and info.pkgbase not in ("", ".", "..")
