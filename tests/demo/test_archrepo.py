"""The fixture Arch repository: real makepkg builds, a real repo-add index, served over loopback HTTP."""

from __future__ import annotations

import hashlib
import tarfile
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import pytest

from jobs.core.errors import TerminalError
from jobs.demo.archrepo import (
    FTBFS,
    PKGBASES,
    REPRODUCIBLE,
    UNREPRODUCIBLE,
    FixtureRepo,
    build_fixture_repo,
    load_fixture_repo,
    set_version,
    write_pkgbuild,
)
from jobs.work.backends.makepkg import PKGEXT, BuildFailed, BuildSettings, build_package, host_carch, makepkg_conf
from tests.fixtures_arch import key_values, package_member, read_repo_db


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def buildinfo(path: Path) -> dict[str, list[str]]:
    return key_values(package_member(path, ".BUILDINFO").decode())


def rebuild(repo: FixtureRepo, pkgbase: str, outdir: Path) -> list[Path]:
    """What an Arch rebuild backend does, in miniature: everything but the PKGBUILD comes from .BUILDINFO."""
    info = buildinfo(repo.by_pkgbase()[pkgbase][0].path)
    pkgbuild = repo.pkgbuild_dir / pkgbase
    assert sha256(pkgbuild / "PKGBUILD") == info["pkgbuild_sha256sum"][0]
    settings = BuildSettings(carch=repo.arch, packager=info["packager"][0],
                             source_date_epoch=int(info["builddate"][0]),
                             buildenv=tuple(info["buildenv"]), options=tuple(info["options"]))
    installed = [repo.archive_dir / f"{name}{PKGEXT}" for name in info.get("installed", [])]
    outdir.mkdir(parents=True)
    return build_package(pkgbuild, outdir, settings=settings, log=outdir / "build.log", installed=installed)


EXPECTED = {  # pkgname -> (pkgbase, version, arch)
    "hello-script": ("hello-script", "1.0.0-1", "any"),
    "hello-c": ("hello-c", "1:2.1-3", host_carch()),
    "split-a": ("splitpkg", "0.5-1", "any"),
    "split-b": ("splitpkg", "0.5-1", "any"),
    "unrepro": ("unrepro", "1.0-1", "any"),
    "ftbfs": ("ftbfs", "1.0-1", "any"),
}


def test_db_lists_every_package_with_its_base_and_version(fixture_repo):
    db = read_repo_db(fixture_repo.db_path.read_bytes())
    assert fixture_repo.db_path.resolve().name == "fixture.db.tar.gz"
    assert fixture_repo.db_path.read_bytes()[:2] == b"\x1f\x8b"
    found = {e["NAME"][0]: (e["BASE"][0], e["VERSION"][0], e["ARCH"][0]) for e in db.values()}
    assert found == EXPECTED
    hello_c = db["hello-c-1:2.1-3"]
    assert hello_c["FILENAME"] == [f"hello-c-1:2.1-3-{host_carch()}.pkg.tar.zst"]
    assert hello_c["DEPENDS"] == ["hello-script>=1.0"]
    assert hello_c["PACKAGER"] == ["Fixture Builder <fixture@example.org>"]
    for package in fixture_repo.packages:
        entry = db[f"{package.pkgname}-{package.version}"]
        assert entry["FILENAME"] == [package.filename] and package.path.name == package.filename
        assert entry["SHA256SUM"] == [package.sha256] == [sha256(package.path)]
        assert package.path.parent == fixture_repo.repo_dir
        assert (fixture_repo.archive_dir / package.filename).read_bytes() == package.path.read_bytes()
    with tarfile.open(fixture_repo.files_path) as files:
        listing = files.extractfile("hello-c-1:2.1-3/files").read().decode().split()  # type: ignore[union-attr]
    assert listing == ["%FILES%", "usr/", "usr/bin/", "usr/bin/hello-c"]
    assert sorted(fixture_repo.by_pkgbase()) == sorted(PKGBASES)


def test_buildinfo_records_the_fixed_build_environment(fixture_repo):
    for package in fixture_repo.packages:
        info = buildinfo(package.path)
        assert info["format"] == ["2"]
        assert info["pkgbase"] == [package.pkgbase] and info["pkgver"] == [package.version]
        assert info["startdir"] == ["/startdir"] and info["builddir"] == ["/build"]
        assert info["builddate"] == ["1700000000"]
        assert info["packager"] == ["Fixture Builder <fixture@example.org>"]
        assert info["pkgbuild_sha256sum"] == [sha256(fixture_repo.pkgbuild_dir / package.pkgbase / "PKGBUILD")]
        expected_installed = ["hello-script-1.0.0-1-any"] if package.pkgbase == "hello-c" else []
        assert info.get("installed", []) == expected_installed, package.pkgname


def test_rebuilding_reproduces_every_package_but_unrepro_and_ftbfs_fails(fixture_repo, tmp_path):
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {p: pool.submit(rebuild, fixture_repo, p, tmp_path / p) for p in PKGBASES}
    groups = fixture_repo.by_pkgbase()
    for pkgbase in REPRODUCIBLE | UNREPRODUCIBLE:
        rebuilt = {path.name: path.read_bytes() for path in futures[pkgbase].result()}
        assert sorted(rebuilt) == sorted(p.filename for p in groups[pkgbase])
        for package in groups[pkgbase]:
            same = rebuilt[package.filename] == package.path.read_bytes()
            assert same == (pkgbase in REPRODUCIBLE), package.filename
    for pkgbase in FTBFS:
        with pytest.raises(BuildFailed) as failure:
            futures[pkgbase].result()
        assert failure.value.pkgbase == pkgbase
        assert "REBUILDER_FIXTURE_PUBLISH" in failure.value.log.read_text()


def test_http_serves_the_db_and_a_package_with_an_epoch(fixture_repo, fixture_repo_url):
    mirror = fixture_repo.source_url(fixture_repo_url)
    assert mirror.endswith(f"/fixture/os/{host_carch()}")
    with urllib.request.urlopen(f"{mirror}/fixture.db") as response:
        assert response.read() == fixture_repo.db_path.read_bytes()
    package = fixture_repo.package("hello-c")
    assert ":" in package.filename
    # Both spellings reach the file: ':' is legal in a path segment, and "%3A" is what quote() gives.
    for name in (package.filename, quote(package.filename)):
        with urllib.request.urlopen(f"{mirror}/{name}") as response:
            assert hashlib.sha256(response.read()).hexdigest() == package.sha256
    assert quote(package.filename) == package.filename.replace(":", "%3A")


def test_an_updated_repo_built_in_place(fixture_repo, tmp_path):
    first = build_fixture_repo(tmp_path, packages=["hello-script"], versions={"hello-script": "1.0.0-2"},
                               db_compression="zst")
    assert first.db_path.resolve().name == "fixture.db.tar.zst"
    assert first.db_path.read_bytes()[:4] == b"\x28\xb5\x2f\xfd"
    (updated,) = first.packages
    old = fixture_repo.package("hello-script")
    assert (updated.version, updated.filename) == ("1.0.0-2", "hello-script-1.0.0-2-any.pkg.tar.zst")
    assert updated.sha256 != old.sha256
    assert "pkgrel=2" in (first.pkgbuild_dir / "hello-script/PKGBUILD").read_text()
    assert buildinfo(updated.path)["pkgver"] == ["1.0.0-2"]

    second = build_fixture_repo(tmp_path, packages=["hello-script"], versions={"hello-script": "1:1.0.0-3"})
    db = read_repo_db(second.db_path.read_bytes())
    assert [e["VERSION"] for e in db.values()] == [["1:1.0.0-3"]]
    assert sorted(p.name for p in second.repo_dir.iterdir()) == [
        "fixture.db", "fixture.db.tar.gz", "fixture.files", "fixture.files.tar.gz",
        "hello-script-1:1.0.0-3-any.pkg.tar.zst"]
    assert sorted(p.name for p in second.archive_dir.iterdir()) == [
        "hello-script-1.0.0-2-any.pkg.tar.zst", "hello-script-1:1.0.0-3-any.pkg.tar.zst"]
    assert load_fixture_repo(tmp_path) == second


def test_the_session_repo_is_shared_through_its_manifest(fixture_repo):
    assert load_fixture_repo(fixture_repo.root.parent) == fixture_repo


# Without makepkg: the PKGBUILD edits and the pinned configuration.

@pytest.mark.parametrize(("version", "lines"), [
    ("1.0.0-2", ["pkgver=1.0.0", "pkgrel=2"]),
    ("3:1.0.0-1", ["epoch=3", "pkgver=1.0.0", "pkgrel=1"]),
])
def test_set_version_rewrites_epoch_pkgver_pkgrel(tmp_path, version, lines):
    text = set_version(write_pkgbuild("hello-script", tmp_path / "a").read_text(), version)
    assert [line for line in text.splitlines() if line.startswith(("epoch=", "pkgver=", "pkgrel="))] == lines


def test_set_version_drops_an_epoch_the_new_version_lacks(tmp_path):
    text = set_version(write_pkgbuild("hello-c", tmp_path / "c").read_text(), "2.2-1")
    assert "epoch=" not in text and "pkgver=2.2\n" in text


@pytest.mark.parametrize("version", ["1.0", "a:1.0-1", "1.0-x", "1-0-1"])
def test_set_version_rejects_malformed_versions(version):
    with pytest.raises(ValueError, match="not an Arch version"):
        set_version("pkgver=1\npkgrel=1\n", version)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"packages": ["nope"]}, "unknown fixture package"),
    ({"packages": ["hello-c"]}, "select it too"),
    ({"packages": ["ftbfs"], "versions": {"unrepro": "1.0-2"}}, "not built"),
    ({"db_compression": "xz"}, "db_compression"),
])
def test_bad_arguments_are_refused_before_building(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_fixture_repo(tmp_path, **kwargs)
    assert not any(tmp_path.iterdir())


def test_makepkg_conf_pins_what_changes_the_bytes():
    conf = makepkg_conf(BuildSettings(carch="x86_64"))
    assert "PKGEXT='.pkg.tar.zst'" in conf
    assert "COMPRESSZST=('zstd' '-c' '-z' '-q' '-19' '-')" in conf
    assert "BUILDDIR='/build'" in conf and "PACKAGER='Fixture Builder <fixture@example.org>'" in conf
    assert "OPTIONS=('strip' 'docs' '!libtool' '!staticlibs' 'emptydirs' 'zipman' 'purge' '!debug' '!lto')" in conf


def test_a_missing_installed_package_is_named_before_building(tmp_path):
    with pytest.raises(TerminalError, match="missing") as failure:
        build_package(Path("unused"), tmp_path, settings=BuildSettings(carch="x86_64"), log=tmp_path / "log",
                      installed=[tmp_path / "hello-script-9-1-any.pkg.tar.zst"])
    assert "hello-script-9-1-any.pkg.tar.zst" in str(failure.value)


def test_an_arch_specific_pkgbuild_gets_the_host_architecture(tmp_path):
    assert "arch=('aarch64')" in write_pkgbuild("hello-c", tmp_path / "c", carch="aarch64").read_text()
    assert "arch=('any')" in write_pkgbuild("hello-script", tmp_path / "s", carch="aarch64").read_text()
