"""Arch sync: repository database parsing (real-format fixtures and hostile archives), grouping, read_index."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import logging
import random
import subprocess
import tarfile
import time
from pathlib import Path
from urllib.parse import unquote

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobs.core.config.sync_conf import IncludeRule, SyncProfile
from jobs.core.errors import ConfigError, TerminalError
from jobs.sync.alpm_db import MAX_DESC_BYTES
from jobs.sync.alpm_desc import InvalidDesc, parse_desc
from jobs.sync.archlinux import CorruptIndex, group, mirror_url, parse_db, read_index
from jobs.sync.fetch import Fetcher
from jobs.sync.tar_members import detect_compression
from tests.httpd import serve
from tests.sync.alpm_builders import COMPRESSIONS, M, compress, db, desc, package, tar
from tests.tools import require_tool

FIXTURES = Path(__file__).parent.parent / "fixtures" / "sync" / "arch"
CORE_DB = (FIXTURES / "core.db").read_bytes()
MIRROR = "https://mirror.example/archlinux/core/os/x86_64"


def parse(data: bytes, **kwargs):
    kwargs.setdefault("repo", "core")
    kwargs.setdefault("base_url", MIRROR)
    kwargs.setdefault("location", "https://mirror.example/core.db")
    return parse_db(data, **kwargs)


def names(entries) -> list[str]:
    return [e.name for e in entries]


def reasons(skipped) -> list[str]:
    return [s.reason for s in skipped]


def profile(source: str, **fields) -> SyncProfile:
    fields.setdefault("components", ("core",))
    fields.setdefault("architectures", ("x86_64",))
    return SyncProfile(name="arch", distro="archlinux", source=source, **fields)


# --- the committed real-format fixtures -------------------------------------------------------


def test_core_db_fixture_is_what_its_script_makes():
    spec = importlib.util.spec_from_file_location("make_core_db", FIXTURES / "make_core_db.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert gzip.decompress(CORE_DB) == script.tar_bytes(script.members())


def test_parses_v1_and_v2_descs():
    entries, skipped = parse(CORE_DB)
    assert skipped == []
    assert names(entries) == ["acl", "gcc", "gcc-libs", "hello-c", "iana-etc"]
    acl = entries[0]  # v2: no %MD5SUM%, with %PGPSIG%
    assert (acl.version, acl.architecture, acl.source_name, acl.size) == ("2.3.2-1", "x86_64", "acl", 140595)
    assert acl.sha256 == hashlib.sha256(b"acl").hexdigest()
    assert acl.maintainers == ("Christian Hesse <eworm@archlinux.org>",)
    assert acl.component == "core"
    assert acl.filename == "acl-2.3.2-1-x86_64.pkg.tar.zst"
    assert acl.url == f"{MIRROR}/acl-2.3.2-1-x86_64.pkg.tar.zst"
    hello = entries[3]  # v1: with %MD5SUM%
    assert (hello.version, hello.size) == ("1:2.1-3", 2808)
    iana = entries[4]  # v2 without %PGPSIG%, arch any, non-ASCII packager
    assert iana.architecture == "any"
    assert iana.maintainers == ("Sébastien Luttringer <seblu@archlinux.org>",)


def test_v1_and_v2_desc_files_parse_alone():
    v1 = parse_desc((FIXTURES / "hello-c.v1.desc").read_bytes())
    v2 = parse_desc((FIXTURES / "acl.v2.desc").read_bytes())
    assert "%MD5SUM%" in (FIXTURES / "hello-c.v1.desc").read_text()
    assert "%MD5SUM%" not in (FIXTURES / "acl.v2.desc").read_text()
    assert "%PGPSIG%" in (FIXTURES / "acl.v2.desc").read_text()
    assert (v1.name, v2.name) == ("hello-c", "acl")


def test_epoch_file_name_kept_raw_and_url_encoded():
    hello = parse(CORE_DB)[0][3]
    assert hello.filename == "hello-c-1:2.1-3-x86_64.pkg.tar.zst"
    assert hello.url == f"{MIRROR}/hello-c-1%3A2.1-3-x86_64.pkg.tar.zst"
    gcc = parse(CORE_DB)[0][1]
    assert gcc.url.endswith("/gcc-14.2.1%2Br134%2Bgab884fffe3fc-1-x86_64.pkg.tar.zst")


def test_split_package_is_one_build_input():
    entries, _ = parse(CORE_DB)
    inputs = group(entries, distro="archlinux", architecture="x86_64", backend="archlinux")
    by_base = {bi.source_name: bi for bi in inputs}
    assert list(by_base) == ["acl", "gcc", "hello-c", "iana-etc"]
    gcc = by_base["gcc"]
    assert [a.name for a in gcc.artifacts] == ["gcc", "gcc-libs"]
    assert gcc.source_version == "14.2.1+r134+gab884fffe3fc-1"
    assert gcc.input_url == entries[1].url  # the first package of the base
    assert (gcc.distro, gcc.release, gcc.backend, gcc.architecture) == ("archlinux", None, "archlinux", "x86_64")


def test_any_packages_are_listed_under_the_report_architecture():
    entries, _ = parse(CORE_DB)
    iana = next(bi for bi in group(entries, distro="archlinux", architecture="x86_64", backend="archlinux")
                if bi.source_name == "iana-etc")
    assert iana.architecture == "x86_64"
    assert iana.artifacts[0].architecture == "any"


def test_grouping_does_not_depend_on_order():
    entries, _ = parse(CORE_DB)
    expected = group(entries, distro="archlinux", architecture="x86_64", backend="archlinux")
    for seed in range(5):
        shuffled = entries[:]
        random.Random(seed).shuffle(shuffled)
        assert group(shuffled, distro="archlinux", architecture="x86_64", backend="archlinux") == expected


def test_archive_order_does_not_matter():
    members = package("zlib") + package("acl") + package("bash")
    assert names(parse(db(members))[0]) == ["acl", "bash", "zlib"]


def test_base_with_disagreeing_versions_keeps_all_and_warns(caplog: pytest.LogCaptureFixture):
    members = package("foo", "1.0-1", base="foo") + package("foo-doc", "0.9-1", base="foo")
    entries, _ = parse(db(members))
    with caplog.at_level(logging.WARNING, logger="jobs.sync.archlinux"):
        (bi,) = group(entries, distro="archlinux", architecture="x86_64", backend="archlinux")
    assert [(a.name, a.version) for a in bi.artifacts] == [("foo", "1.0-1"), ("foo-doc", "0.9-1")]
    assert (bi.source_version, bi.input_url) == ("1.0-1", f"{MIRROR}/foo-1.0-1-x86_64.pkg.tar.zst")
    assert "several versions: 0.9-1, 1.0-1" in caplog.text


def test_missing_base_means_own_base():
    entries, skipped = parse(db(package("solo", base="")))
    assert skipped == [] and entries[0].source_name == "solo"


def test_url_round_trips_to_the_right_file_on_http_server(tmp_path: Path):
    files = {"hello-c-1:2.1-3-x86_64.pkg.tar.zst": b"epoch", "gcc-14.2.1+r134-1-x86_64.pkg.tar.zst": b"plus",
             "gcc-14.2.1 r134-1-x86_64.pkg.tar.zst": b"space", "odd%41name@-1-1-any.pkg.tar.zst": b"percent",
             "pkg-1.0-1-x86_64.pkg.tar.zst": b"plain"}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    members = [M(f"p{i}-1-1/desc", desc(f"p{i}", filename=name).encode()) for i, name in enumerate(files)]
    with serve(tmp_path) as base:
        entries, skipped = parse(db(members), base_url=base)
        assert skipped == []
        for entry in entries:
            response = requests.get(entry.url, timeout=10)
            assert response.status_code == 200, entry.url
            assert response.content == files[entry.filename]


def _package_file(directory: Path, name: str, version: str, base: str, arch: str = "x86_64") -> Path:
    """A minimal package (only a .PKGINFO), enough for repo-add."""
    pkginfo = (f"pkgname = {name}\npkgbase = {base}\npkgver = {version}\npkgdesc = test package\n"
               f"builddate = 1700000000\npackager = Jane Doe <jane@example.org>\nsize = 10\narch = {arch}\n")
    path = directory / f"{name}-{version}-{arch}.pkg.tar.gz"
    path.write_bytes(gzip.compress(tar([M(".PKGINFO", pkginfo.encode())]), mtime=0))
    return path


@pytest.mark.parametrize("extension", ["tar", "tar.gz", "tar.xz", "tar.bz2", "tar.zst"])
def test_database_written_by_the_real_repo_add(tmp_path: Path, extension: str):
    repo_add = require_tool("repo-add", "pacman-package-manager")
    require_tool("bsdtar", "libarchive-tools")
    packages = [_package_file(tmp_path, "foo", "1:1.0-1", "foo"), _package_file(tmp_path, "foo-libs", "1:1.0-1", "foo"),
                _package_file(tmp_path, "bar", "2.0+git-3", "bar", "any")]
    subprocess.run([repo_add, "-q", str(tmp_path / f"test.db.{extension}"), *map(str, packages)],
                   check=True, capture_output=True, cwd=tmp_path)
    with serve(tmp_path) as base:
        for db_name in ("test.db", "test.files"):  # the .files database has `files` members too
            data = (tmp_path / db_name).read_bytes()
            assert detect_compression(data) == {"tar": "none", "tar.gz": "gzip", "tar.xz": "xz",
                                                "tar.bz2": "bzip2", "tar.zst": "zstd"}[extension]
            entries, skipped = parse(data, base_url=base)
            assert skipped == [] and names(entries) == ["bar", "foo", "foo-libs"]
            for entry, path in zip(entries, [packages[2], packages[0], packages[1]]):
                assert entry.filename == path.name and entry.size == path.stat().st_size
                assert entry.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
                assert requests.get(entry.url, timeout=10).content == path.read_bytes()
            inputs = group(entries, distro="archlinux", architecture="x86_64", backend="archlinux")
            assert [(bi.source_name, len(bi.artifacts)) for bi in inputs] == [("bar", 1), ("foo", 2)]


# --- compressions -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", COMPRESSIONS)
def test_every_compression_is_detected_by_magic(kind: str):
    data = db(package("a") + package("b"), kind)
    assert detect_compression(data) == kind
    entries, skipped = parse(data)
    assert names(entries) == ["a", "b"] and skipped == []


def test_empty_database_is_empty_not_an_error():
    for kind in COMPRESSIONS:
        assert parse(compress(tar([]), kind)) == ([], [])


# --- hostile archives: CorruptIndex, never a partial result -----------------------------------


@pytest.mark.parametrize("kind", COMPRESSIONS)
@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.33, 0.5, 0.9, 0.99])
def test_truncated_archive_is_corrupt(kind: str, fraction: float):
    data = db([m for i in range(20) for m in package(f"p{i}")], kind)
    # A plain tar cut inside its two end-of-archive blocks keeps one of them: still complete.
    content = len(data) - 1024 if kind == "none" else len(data)
    with pytest.raises(CorruptIndex):
        parse(data[:int(content * fraction)])


@pytest.mark.parametrize("kind", [k for k in COMPRESSIONS if k != "none"])
def test_compressed_archive_missing_its_last_bytes_is_corrupt(kind: str):
    data = db(package("a") + package("b"), kind)
    for cut in (1, 2, 4, 8, 16):
        with pytest.raises(CorruptIndex):
            parse(data[:-cut])


def test_plain_tar_cut_at_a_member_boundary_is_corrupt():
    # libarchive ends quietly there; the missing end-of-archive block gives it away.
    body = tar(package("a") + package("b"), end=False)
    for cut in range(512, len(body) + 1, 512):
        with pytest.raises(CorruptIndex, match="end-of-archive|Truncated"):
            parse(body[:cut])


@pytest.mark.parametrize(("data", "match"), [
    (b"\x1f\x8b\x08\x00" + b"garbage!" * 64, "gzip"),
    (b"\x28\xb5\x2f\xfd" + b"garbage!" * 64, "zstd"),
    (b"\xfd7zXZ\x00" + b"garbage!" * 64, "xz"),
    (b"BZh9" + b"garbage!" * 64, "bzip2"),
    (compress(b"<html><body>404 Not Found</body></html>" * 20, "gzip"), "gzip"),
    (compress(b"\x00" * 100 + b"not a tar" * 100, "zstd"), "zstd"),
    (b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head></html>\n", "not a tar archive"),
    (b"", "not a tar archive"),
    (b"PK\x03\x04" + b"\0" * 600, "not a tar archive"),
    (b"\x04\x22\x4d\x18" + b"lz4" * 300, "not a tar archive"),
    (b"BZhX" + b"\0" * 600, "not a tar archive"),
])
def test_wrong_or_unknown_content_is_corrupt(data: bytes, match: str):
    with pytest.raises(CorruptIndex, match=match) as info:
        parse(data, location="https://mirror.example/core/os/x86_64/core.db")
    assert isinstance(info.value, TerminalError)
    assert info.value.url == "https://mirror.example/core/os/x86_64/core.db"


def test_gzip_magic_on_a_valid_zstd_stream_is_corrupt():
    data = compress(tar(package("a")), "zstd")
    with pytest.raises(CorruptIndex):
        parse(b"\x1f\x8b" + data[2:])


def test_corrupted_byte_in_compressed_stream_is_corrupt():
    data = bytearray(db([m for i in range(20) for m in package(f"p{i}")], "gzip"))
    data[len(data) // 2] ^= 0xFF
    with pytest.raises(CorruptIndex):
        parse(bytes(data))


def test_bad_tar_header_checksum_is_corrupt():
    raw = bytearray(tar(package("a") + package("b")))
    raw[512 + 100] ^= 0x01  # the mode field of the second member's header, covered by its checksum
    with pytest.raises(CorruptIndex):
        parse(bytes(raw))


def test_zip_bomb_is_stopped_before_it_expands():
    bomb = db([M("a-1-1/desc", b"\0" * (64 << 20))], "gzip")  # 64 MiB of zeros, ~64 KB compressed
    assert len(bomb) < 1 << 20
    started = time.monotonic()
    with pytest.raises(CorruptIndex, match="unpacks to more than"):
        parse(bomb, max_unpacked=8 << 20)
    assert time.monotonic() - started < 1.0


def test_many_small_members_are_bounded_too():
    members = [M(f"p{i}-1-1/junk", b"x" * 1000) for i in range(2000)]  # ~3 MB unpacked
    with pytest.raises(CorruptIndex, match="unpacks to more than"):
        parse(db(members, "xz"), max_unpacked=1 << 20)
    assert parse(db(members, "xz"), max_unpacked=4 << 20) == ([], [])


def test_huge_declared_size_without_data_is_corrupt():
    raw = tar([M("a-1-1/desc", b"x")], end=False)
    header = bytearray(raw[:512])
    header[124:136] = b"%011o\0" % (1 << 32)
    header[148:156] = b"        "
    header[148:156] = b"%06o\0 " % sum(header)
    with pytest.raises(CorruptIndex):
        parse(compress(bytes(header) + raw[512:] + b"\0" * 1024, "gzip"), max_unpacked=1 << 40)


def test_oversized_special_headers_are_corrupt():
    # GNU long names and pax records are read whole by libarchive before any member; it caps them.
    long_name = compress(tar([M("x" * 3_000_000 + "/desc", desc("a").encode())]), "gzip")
    with pytest.raises(CorruptIndex, match="Special header too large"):
        parse(long_name)
    info = tarfile.TarInfo("a-1.0-1/desc")
    info.size, info.pax_headers = 10, {"comment": "y" * 20_000_000}
    pax = info.tobuf(tarfile.PAX_FORMAT) + b"0123456789" + b"\0" * (502 + 1024)
    with pytest.raises(CorruptIndex, match="Special header too large"):
        parse(compress(pax, "zstd"))


@pytest.mark.parametrize("corruption", range(40))
def test_any_byte_flip_gives_corrupt_index_or_a_result(corruption: int):
    rnd = random.Random(corruption)
    for kind in ("gzip", "none"):
        data = bytearray(compress(tar(package("a") + package("b", base="a")), kind))
        position = rnd.randrange(len(data))
        data[position] ^= 1 << rnd.randrange(8)
        try:
            entries, skipped = parse(bytes(data))
        except CorruptIndex:
            continue
        assert len(entries) <= 2


# --- hostile members: skipped, counted, never followed ----------------------------------------


def test_unsafe_and_special_members_are_skipped_and_counted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    members = package("good") + [
        M("../escape-1-1/desc", desc("escape").encode()),
        M("/etc/abs-1-1/desc", desc("abs").encode()),
        M("a/../../b-1-1/desc", desc("b").encode()),
        M("../", type=tarfile.DIRTYPE),  # a directory is never used nor named: nothing to report
        M("link-1-1/desc", type=tarfile.SYMTYPE, linkname="/etc/passwd"),
        M("hard-1-1/desc", type=tarfile.LNKTYPE, linkname="good-1.0-1/desc"),
        M("chr-1-1/desc", type=tarfile.CHRTYPE),
        M("fifo-1-1/desc", type=tarfile.FIFOTYPE),
        M(b"bad\xff-1-1/desc", desc("bad").encode()),
        M("ctl\x1b[31m-1-1/desc", desc("ctl").encode()),
        M("nested/deep-1-1/desc", desc("deep").encode()),
        M("desc", desc("top").encode()),
        M(".hidden/desc", desc("hidden").encode()),
    ]
    entries, skipped = parse(db(members))
    assert names(entries) == ["good"]
    assert reasons(skipped) == [
        "unsafe member name (absolute or with '..')",
        "unsafe member name (absolute or with '..')",
        "unsafe member name (absolute or with '..')",
        "symbolic link, not a regular file",
        "hard link, not a regular file",
        "device or other special file, not a regular file",
        "device or other special file, not a regular file",
        "member name is not valid UTF-8",
        "member name contains control characters",
        "desc not at <name>-<version>/desc",
        "desc not at <name>-<version>/desc",
        "desc not at <name>-<version>/desc",
    ]
    assert skipped[0].location == "core.db: ../escape-1-1/desc"
    assert skipped[7].location == "core.db: bad\\xff-1-1/desc"
    assert "\x1b" not in skipped[8].location
    assert list(tmp_path.iterdir()) == [] and not (tmp_path.parent / "escape-1-1").exists()


def test_other_files_of_a_package_are_ignored():
    members = package("a") + [M("a-1.0-1/files", b"%FILES%\nusr/\n"), M("a-1.0-1/mtree", b"junk")]
    assert parse(db(members)) == (parse(db(package("a")))[0], [])


def test_duplicate_member_is_skipped_and_counted():
    members = package("a") + [M("a-1.0-1/desc", desc("a", "9.9-9").encode())]
    entries, skipped = parse(db(members))
    assert [(e.name, e.version) for e in entries] == [("a", "1.0-1")]
    assert reasons(skipped) == ["duplicate member"]


def test_two_descs_of_one_package_name_keep_the_first():
    entries, skipped = parse(db(package("a", "2.0-1") + package("a", "1.0-1")))
    assert [(e.name, e.version) for e in entries] == [("a", "1.0-1")]  # a-1.0-1/ sorts first
    assert reasons(skipped) == ["another desc already lists package 'a'"]


@pytest.mark.slow
def test_100000_members_of_one_name_stay_fast_and_bounded():
    member = M("a-1.0-1/desc", desc("a").encode())
    data = compress(tar([member] * 100_000), "gzip")
    started = time.monotonic()
    entries, skipped = parse(data)
    elapsed = time.monotonic() - started
    assert names(entries) == ["a"]
    assert len(skipped) == 99_999 and set(reasons(skipped)) == {"duplicate member"}
    assert elapsed < 10, elapsed


@pytest.mark.slow
def test_100000_packages_of_one_name_stay_fast_and_bounded():
    text = desc("a").encode()
    data = compress(tar(M(f"a-{i}-1/desc", text) for i in range(100_000)), "zstd")
    started = time.monotonic()
    entries, skipped = parse(data)
    assert time.monotonic() - started < 20
    assert len(entries) == 1 and len(skipped) == 99_999


@pytest.mark.parametrize(("text", "reason"), [
    (desc("a").replace("%NAME%\na\n\n", ""), "missing %NAME%"),
    (desc("a").replace("%VERSION%\n1.0-1\n\n", ""), "missing %VERSION%"),
    (desc("a").replace("%FILENAME%", "%FILENAMES%"), "missing %FILENAME%"),
    (desc("a").replace("%ARCH%\nx86_64\n\n", ""), "missing %ARCH%"),
    (desc("a").replace("%PACKAGER%\nJane Doe <jane@example.org>\n\n", ""), "missing %PACKAGER%"),
    (desc("a").replace("%SHA256SUM%", "%MD5SUM%"), "missing %SHA256SUM%"),
    (desc("a").replace("%CSIZE%\n1234\n\n", ""), "missing %CSIZE%"),
    (desc("a", packager="Jane\0Doe"), "%PACKAGER% contains a control"),
    (desc("a", packager="Jane\x1b[2JDoe"), "%PACKAGER% contains a control"),
    (desc("a", packager="Jane\u202eeoD"), "%PACKAGER% contains a control"),
    (desc("a", filename="a\0.pkg.tar.zst"), "%FILENAME% contains a control"),
    (desc("a", filename="a\r.pkg.tar.zst"), "%FILENAME% contains a control"),
    (desc("a", filename="sub/a.pkg.tar.zst"), "%FILENAME% is not a plain file name"),
    (desc("a", filename="../a.pkg.tar.zst"), "%FILENAME% is not a plain file name"),
    (desc("a", filename=".a.pkg.tar.zst"), "%FILENAME% is not a plain file name"),
    (desc("a", filename="a\\b.pkg.tar.zst"), "%FILENAME% is not a plain file name"),
    (desc("a", filename="a" * 256), "%FILENAME% is longer than 255 bytes"),
    (desc("a", sha256="0" * 63), "%SHA256SUM% is not valid"),
    (desc("a", sha256="g" * 64), "%SHA256SUM% is not valid"),
    (desc("a", sha256="0" * 65), "%SHA256SUM% is not valid"),
    (desc("a", csize="12k"), "%CSIZE% is not a size in bytes"),
    (desc("a", csize="-1"), "%CSIZE% is not a size in bytes"),
    (desc("a", csize="1_000"), "%CSIZE% is not a size in bytes"),
    (desc("a", csize="١٢"), "%CSIZE% is not a size in bytes"),
    (desc("a", csize="99999999999999999999"), "%CSIZE% is not a size in bytes"),
    (desc("a", csize="9999999999999999999"), "%CSIZE% is too large"),
    (desc("a", version="1.0"), "%VERSION% is not valid"),
    (desc("a", version="1.0 -1"), "%VERSION% is not valid"),
    (desc("-a"), "%NAME% is not valid"),
    (desc("a", base="b/c"), "%BASE% is not valid"),
    (desc("a", arch="x86-64"), "%ARCH% is not valid"),
    (desc("a") + "%NAME%\nb\n\n", "%NAME% appears twice"),
    (desc("a").replace("%NAME%\na\n", "%NAME%\na\nb\n"), "%NAME% has more than one value"),
    (desc("a").replace("%NAME%\na\n", "%NAME%\n"), "%NAME% has no value"),
    ("", "missing %FILENAME%"),
    ("<html><body>Not Found</body></html>", "missing %FILENAME%"),
])
def test_malformed_desc_is_skipped_and_parsing_continues(text: str, reason: str):
    members = package("before") + [M("x-1-1/desc", text.encode())] + package("z-after")
    entries, skipped = parse(db(members))
    assert names(entries) == ["before", "z-after"]
    assert len(skipped) == 1 and skipped[0].location == "core.db: x-1-1/desc"
    assert skipped[0].reason.startswith(reason), skipped[0].reason


def test_invalid_utf8_desc_is_skipped():
    members = [M("x-1-1/desc", desc("x").encode().replace(b"Jane", b"J\xc3\x28ne"))] + package("y")
    entries, skipped = parse(db(members))
    assert names(entries) == ["y"] and reasons(skipped)[0].startswith("not valid UTF-8")


def test_ten_megabyte_field_is_skipped_without_being_read():
    big = desc("big", extra=f"%DESC%\n{'x' * (10 << 20)}\n\n")
    entries, skipped = parse(db([M("big-1-1/desc", big.encode())] + package("small")))
    assert names(entries) == ["small"]
    assert reasons(skipped) == [f"desc larger than {MAX_DESC_BYTES} bytes"]


def test_long_but_allowed_field_and_unknown_sections_are_fine():
    text = desc("a", extra=f"%PROVIDES%\n{chr(10).join(f'lib{i}.so=1-64' for i in range(20000))}\n\n"
                            "%XDATA%\npkgtype=pkg\n\n%FUTURE%\n\x01anything\n\n")
    assert len(text) < MAX_DESC_BYTES
    entries, skipped = parse(db([M("a-1.0-1/desc", text.encode())]))
    assert names(entries) == ["a"] and skipped == []


def test_long_member_names_are_read_and_shortened_in_reports():
    name = "p" * 150
    entries, skipped = parse(db(package(name, filename="p.pkg.tar.zst") + [M("x" * 5000 + "/../desc", b"")]))
    assert names(entries) == [name]
    assert len(skipped[0].location) < 300


# --- the desc parser never raises anything but InvalidDesc -----------------------------------


_FIELD_NAMES = ["FILENAME", "NAME", "BASE", "VERSION", "ARCH", "PACKAGER", "SHA256SUM", "CSIZE", "DESC", "MD5SUM"]
_values = st.one_of(st.text(max_size=20), st.sampled_from(["a", "1.0-1", "x86_64", "a.pkg.tar.zst", "0" * 64, "1"]))
_sections = st.lists(st.tuples(st.sampled_from(_FIELD_NAMES), st.lists(_values, max_size=3)), max_size=12)


def _render(sections) -> str:
    return "".join(f"%{key}%\n" + "".join(f"{v}\n" for v in values) + "\n" for key, values in sections)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=300), _sections.map(lambda s: _render(s).encode("utf-8", "surrogatepass"))))
def test_desc_parser_only_raises_invalid_desc(data: bytes):
    try:
        result = parse_desc(data)
    except InvalidDesc as exc:
        assert exc.reason
    else:
        assert "/" not in result.filename and not result.filename.startswith(".")
        assert len(result.sha256) == 64 and result.csize >= 0
        assert all(value.isprintable() for value in result[:7])


@given(st.lists(st.sampled_from([m for name in ("a", "b") for m in package(name)]
                                + [M("c-1-1/desc", b"%NAME%\nc\n\n")]), max_size=8),
       st.sampled_from(COMPRESSIONS))
def test_any_member_list_parses_to_entries_plus_skipped(members: list[M], kind: str):
    entries, skipped = parse(db(members, kind))
    assert len(entries) + len(skipped) == sum(1 for m in members if m.name.endswith("/desc"))


@given(st.sampled_from(["a", "a-b", "lib32-a", "a+b", "a@b", "a_b", "a.b"]),
       st.sampled_from(["1-1", "1:1-1", "1.0+git.r3.g123abc-2", "2024.01.01_x-1.1", "1~rc1-1"]),
       st.sampled_from(["x86_64", "any", "aarch64", "i686"]))
def test_valid_desc_round_trips(name: str, version: str, arch: str):
    result = parse_desc(desc(name, version, arch=arch, v1=True).encode())
    assert (result.name, result.version, result.arch, result.base) == (name, version, arch, name)
    assert result.filename == f"{name}-{version}-{arch}.pkg.tar.zst"


# --- read_index -------------------------------------------------------------------------------


def _mirror(root: Path, repos: dict[str, bytes], arch: str = "x86_64") -> None:
    for repo, data in repos.items():
        directory = root / repo / "os" / arch
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"{repo}.db").write_bytes(data)


def test_read_index_over_file_url(tmp_path: Path):
    extra = db(package("firefox", packager="Mozilla Packager <m@archlinux.org>") + package("gcc", "9-1"))
    _mirror(tmp_path, {"core": CORE_DB, "extra": extra})
    source = tmp_path.as_uri() + "/$repo/os/$arch"
    result = read_index(profile(source, components=("core", "extra")), Fetcher())
    assert [(bi.source_name, bi.artifacts[0].component) for bi in result.inputs] == [
        ("acl", "core"), ("gcc", "core"), ("hello-c", "core"), ("iana-etc", "core"),
        ("firefox", "extra"), ("gcc", "extra")]  # one pkgbase in two repos: two build inputs
    core_url = f"{tmp_path.as_uri()}/core/os/x86_64/core.db"
    assert result.sources[core_url] == hashlib.sha256(CORE_DB).hexdigest()
    assert len(result.sources) == 2 and result.skipped == []
    hello = next(bi for bi in result.inputs if bi.source_name == "hello-c")
    assert hello.input_url == f"{tmp_path.as_uri()}/core/os/x86_64/hello-c-1%3A2.1-3-x86_64.pkg.tar.zst"


def test_read_index_accepts_a_local_path(tmp_path: Path):
    _mirror(tmp_path, {"core": CORE_DB})
    result = read_index(profile(str(tmp_path) + "/$repo/os/$arch"), Fetcher())
    assert result.inputs[0].input_url.startswith(tmp_path.as_uri() + "/core/os/x86_64/")
    assert Path(unquote(result.inputs[0].input_url[len("file://"):])).parent.is_dir()


def test_read_index_over_http(tmp_path: Path):
    _mirror(tmp_path, {"core": CORE_DB}, arch="x86_64")
    _mirror(tmp_path, {"core": db(package("arm-only", arch="aarch64"))}, arch="aarch64")
    with serve(tmp_path) as base:
        result = read_index(profile(base + "/$repo/os/$arch", architectures=("x86_64", "aarch64")),
                            Fetcher(retries=0))
    arm = [bi for bi in result.inputs if bi.architecture == "aarch64"]
    assert [bi.source_name for bi in arm] == ["arm-only"]
    assert arm[0].input_url == f"{base}/core/os/aarch64/arm-only-1.0-1-aarch64.pkg.tar.zst"
    assert len(result.inputs) == 5


def test_read_index_refuses_an_html_page_instead_of_a_db(tmp_path: Path):
    _mirror(tmp_path, {"core": b"<!DOCTYPE html><html><body>Mirror maintenance</body></html>"})
    with pytest.raises(CorruptIndex, match="not a tar archive"):
        read_index(profile(tmp_path.as_uri() + "/$repo/os/$arch"), Fetcher())


def test_read_index_fails_whole_on_one_truncated_db(tmp_path: Path):
    _mirror(tmp_path, {"core": CORE_DB, "extra": CORE_DB[:-100]})
    with pytest.raises(CorruptIndex) as info:
        read_index(profile(tmp_path.as_uri() + "/$repo/os/$arch", components=("core", "extra")), Fetcher())
    assert info.value.url.endswith("/extra/os/x86_64/extra.db")


@pytest.mark.parametrize(("fields", "expected"), [
    ({}, ["acl", "gcc", "gcc-libs", "hello-c", "iana-etc"]),
    ({"maintainers": ("Frederik",)}, ["gcc", "gcc-libs"]),
    ({"pkgs": ("gcc*", "acl")}, ["acl", "gcc", "gcc-libs"]),
    ({"excludes": ("gcc-*",)}, ["acl", "gcc", "hello-c", "iana-etc"]),
    ({"pkgs": ("gcc*",), "excludes": ("gcc-libs",)}, ["gcc"]),
    ({"maintainers": ("Fixture",), "pkgs": ("acl",)}, ["acl", "hello-c"]),
    ({"include": (IncludeRule(source_pkgs=("gcc",)),)}, ["gcc", "gcc-libs"]),
    ({"include": (IncludeRule(exclude=True, binary_pkgs=("gcc*",)), IncludeRule(component="core"))},
     ["acl", "hello-c", "iana-etc"]),
])
def test_profile_filters_are_applied(tmp_path: Path, fields: dict, expected: list[str]):
    _mirror(tmp_path, {"core": CORE_DB})
    result = read_index(profile(tmp_path.as_uri() + "/$repo/os/$arch", **fields), Fetcher())
    assert sorted(a.name for bi in result.inputs for a in bi.artifacts) == expected


def test_filtered_split_package_keeps_only_taken_artifacts(tmp_path: Path):
    _mirror(tmp_path, {"core": CORE_DB})
    result = read_index(profile(tmp_path.as_uri() + "/$repo/os/$arch", pkgs=("gcc-libs",)), Fetcher())
    (gcc,) = result.inputs
    assert [a.name for a in gcc.artifacts] == ["gcc-libs"]
    assert gcc.input_url == gcc.artifacts[0].url


# --- mirror URLs ------------------------------------------------------------------------------


def test_mirror_url_substitutes_and_quotes():
    assert mirror_url("https://m.example/archlinux/$repo/os/$arch/", repo="core-testing",
                      arch="x86_64") == "https://m.example/archlinux/core-testing/os/x86_64"
    assert mirror_url("https://m.example/$arch/$repo", repo="a+b", arch="x") == "https://m.example/x/a%2Bb"


@pytest.mark.parametrize(("source", "repo", "arch", "key"), [
    ("https://m/$repo/$unknown", "core", "x86_64", "source"),
    ("https://m/$repository/os", "core", "x86_64", "source"),
    ("https://m/$repo/os/$arch", "../etc", "x86_64", "components"),
    ("https://m/$repo/os/$arch", "core/../x", "x86_64", "components"),
    ("https://m/$repo/os/$arch", "core", "x86 64", "architectures"),
    ("https://m/$repo/os/$arch", "", "x86_64", "components"),
    ("https://m/$repo/os/$arch", "core?x=1", "x86_64", "components"),
])
def test_mirror_url_refuses_unsafe_names_and_unknown_variables(source: str, repo: str, arch: str, key: str):
    with pytest.raises(ConfigError) as info:
        mirror_url(source, repo=repo, arch=arch)
    assert info.value.key == key


def test_legacy_db_source_uses_the_default_mirror(caplog: pytest.LogCaptureFixture):
    urls = []

    class Recorder(Fetcher):
        def fetch(self, url, **kwargs):
            urls.append(url)
            from jobs.sync.fetch import Fetched
            return Fetched(url, CORE_DB, hashlib.sha256(CORE_DB).hexdigest(), None)

    with caplog.at_level(logging.WARNING):
        result = read_index(profile("https://old.example/core.db"), Recorder())
    assert urls == ["https://mirrors.kernel.org/archlinux/core/os/x86_64/core.db"]
    assert "legacy source" in caplog.text and len(result.inputs) == 4


@pytest.mark.parametrize("fields", [{"architectures": ()}, {"components": ()}])
def test_profile_without_architectures_or_repos_is_a_config_error(fields: dict):
    with pytest.raises(ConfigError):
        read_index(profile("https://m/$repo/os/$arch", **fields), Fetcher())


def test_fetch_errors_propagate(tmp_path: Path):
    from jobs.sync.fetch import FetchFailed
    with pytest.raises(FetchFailed):
        read_index(profile(tmp_path.as_uri() + "/$repo/os/$arch"), Fetcher())

