"""Reading a local package's identity (pacman in every compression, .deb built by dpkg-deb) and verifying a .deb."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import subprocess
from pathlib import Path

import pytest
import zstandard

from jobs.core.signing import generate_key, make_link, public_keys_feed, rebuild_link_name, sign_link
from jobs.ctl.pkgfile import NotAPackage, read_package
from tests.ctl.support import ctl
from tests.tools import require_tool


@pytest.mark.parametrize("compress", ["xz", "gz", "bz2", "tar"])
def test_pacman_package_in_every_compression(fixture_repo, tmp_path, compress):
    built = fixture_repo.package("hello-c")
    tar = zstandard.ZstdDecompressor().decompressobj().decompress(built.path.read_bytes())
    data = {"xz": lzma.compress, "gz": gzip.compress, "bz2": bz2.compress, "tar": bytes}[compress](tar)
    path = tmp_path / built.filename.replace(".zst", f".{compress}" if compress != "tar" else "")
    path.write_bytes(data)
    pkg = read_package(path)
    assert (pkg.kind, pkg.name, pkg.version, pkg.architecture) == ("pacman", "hello-c", "1:2.1-3", "x86_64")


def _deb(tmp_path: Path, compression: str, name: str = "hello-deb", version: str = "1:2.0-3") -> Path:
    dpkg_deb = require_tool("dpkg-deb", "dpkg")
    root = tmp_path / f"root-{compression}"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "usr/share/doc").mkdir(parents=True)
    (root / "usr/share/doc/hello.txt").write_text("hello\n")
    (root / "DEBIAN/control").write_text(f"Package: {name}\nVersion: {version}\nArchitecture: amd64\n"
                                         "Maintainer: Someone <someone@example.org>\nDescription: test package\n")
    out = tmp_path / f"{name}_{version.split(':')[-1]}_amd64-{compression}.deb"
    subprocess.run([dpkg_deb, "--root-owner-group", f"-Z{compression}", "--build", str(root), str(out)],
                   check=True, capture_output=True)
    return out


@pytest.mark.parametrize("compression", ["xz", "gzip", "zstd", "none"])
def test_deb_identity(tmp_path, compression):
    pkg = read_package(_deb(tmp_path, compression))
    assert (pkg.kind, pkg.name, pkg.version, pkg.architecture) == ("deb", "hello-deb", "1:2.0-3", "amd64")


def test_not_a_package(tmp_path, fixture_repo):
    for data in (b"hello\n", b"!<arch>\nnot really an ar archive", gzip.compress(b"\0" * 2048)):
        path = tmp_path / "x"
        path.write_bytes(data)
        with pytest.raises(NotAPackage):
            read_package(path)
    with pytest.raises(NotAPackage, match="no .PKGINFO"):
        read_package(fixture_repo.db_path)  # a tar.gz, but a repository database


def test_verify_a_deb_against_a_rebuilderd_style_v0_site(tmp_path):
    """No Debian build runs in the tests: the site is written here, in rebuilderd's v0 shapes."""
    deb = _deb(tmp_path, "xz")
    key = generate_key()
    link = sign_link(make_link(rebuild_link_name(deb.name), {"hello-deb.dsc": b"source"}, {deb.name: deb}), key)
    site = tmp_path / "site"
    (site / "api/v0/pkgs").mkdir(parents=True)
    (site / "api/v0/builds/7").mkdir(parents=True)
    (site / "api/v0/builds/7/attestation").write_text(json.dumps(link))
    (site / "api/v0/public-keys").write_text(json.dumps(public_keys_feed([key.public_key()])))
    (site / "api/v0/pkgs/list").write_text(json.dumps([
        {"name": "hello-deb", "version": "1:2.0-3", "status": "GOOD", "distro": "debian", "suite": "main",
         "architecture": "amd64", "artifact_url": f"https://deb.example/{deb.name}", "build_id": 7,
         "built_at": "2026-05-01T12:00:00.000000", "has_diffoscope": False, "has_attestation": True}]))
    res = ctl("-H", site.as_uri(), "verify", str(deb))
    assert res.exit_code == 0, res.output
    assert res.stdout.splitlines()[1].startswith(f"  confirmed {site.as_uri()}: key ")
    other = _deb(tmp_path, "gzip")  # same identity, other bytes, another file name
    res = ctl("-H", site.as_uri(), "verify", str(other))
    assert res.exit_code == 1 and "not-a-product" in res.stdout
