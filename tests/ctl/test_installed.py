"""`rebuildctl verify --installed`: a synthesized pacman local db and dpkg status file against real feeds.

The Arch side reads the sites the real jobs published (v1 status feeds, and the v0 list of
the same site with its v1 feeds removed). There is no Debian build in the fixtures, so the
dpkg side reads a v0 `api/v0/pkgs/list` written by hand in rebuilderd's exact shape.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from jobs.ctl.installed import open_database, read_dpkg_status, read_pacman_local
from tests.ctl.support import copy_site, ctl
from tests.httpd import serve

# (name, version, arch) installed here, and what the fixture rebuilders say about each
PACMAN = [("hello-c", "1:2.1-3", "x86_64"),  # GOOD
          ("split-a", "0.5-1", "any"),  # GOOD (a split package)
          ("unrepro", "1.0-1", "any"),  # BAD
          ("ftbfs", "1.0-1", "any"),  # FAIL (v0 says BAD)
          ("hello-script", "0.9-1", "any"),  # an older version than the rebuilder's: not listed
          ("local-only", "1-1", "x86_64")]  # not from the repository at all


def pacman_db(root: Path, packages=PACMAN) -> Path:
    """A pacman dbpath with a local database: `local/<name>-<version>/desc` (+ files) and ALPM_DB_VERSION."""
    local = root / "local"
    local.mkdir(parents=True)
    (local / "ALPM_DB_VERSION").write_text("9\n")
    for name, version, arch in packages:
        entry = local / f"{name}-{version}"
        entry.mkdir()
        (entry / "desc").write_text(f"%NAME%\n{name}\n\n%VERSION%\n{version}\n\n%BASE%\n{name}\n\n%DESC%\nA package\n\n"
                                    f"%ARCH%\n{arch}\n\n%BUILDDATE%\n1700000000\n\n%DEPENDS%\nglibc\nzstd\n\n")
        (entry / "files").write_text("%FILES%\nusr/\n\n")
    return root


def test_pacman_local_db_against_published_feeds(base, tmp_path):
    db = pacman_db(tmp_path / "pacman")
    res = ctl("-H", base, "verify", "--installed", "--dbpath", str(db))
    assert res.exit_code == 1, res.output  # not everything is reproduced
    assert res.stdout.splitlines() == [
        "[-] ftbfs 1.0-1 any FAIL",
        "[+] hello-c 1:2.1-3 x86_64 GOOD",
        "[?] hello-script 0.9-1 any UNKWN (not listed)",
        "[?] local-only 1-1 x86_64 UNKWN (not listed)",
        "[+] split-a 0.5-1 any GOOD",
        "[-] unrepro 1.0-1 any BAD",
        "2/6 packages reproduced (1 BAD, 1 FAIL, 0 UNKWN, 2 not listed)",
    ]
    report = json.loads(ctl("-H", base, "verify", "--installed", "-b", str(db / "local"), "--json").stdout)
    assert report["database"] == {"kind": "pacman", "path": str(db / "local")}
    assert (report["reproduced"], report["total"], report["distro"]) == (2, 6, "archlinux")
    hello = next(p for p in report["packages"] if p["name"] == "hello-c")
    assert hello["statuses"] == {base: "GOOD"} and hello["confirmations"] == 1


def test_all_reproduced_exits_0_and_threshold_counts_keys(base, second_base, tmp_path):
    db = pacman_db(tmp_path / "pacman", PACMAN[:2])
    res = ctl("verify", "--installed", "-b", str(db), "-r", base, "-r", second_base, "-t", "2")
    assert res.exit_code == 0, res.output
    assert res.stdout.splitlines()[-1] == "2/2 packages reproduced (0 BAD, 0 FAIL, 0 UNKWN, 0 not listed)"
    assert "[+] hello-c 1:2.1-3 x86_64 GOOD 2/2" in res.stdout


def test_same_rebuilder_at_two_urls_is_one_vote(http_base, published, tmp_path):
    db = pacman_db(tmp_path / "pacman", PACMAN[:2])
    res = ctl("verify", "--installed", "-b", str(db), "-r", http_base, "-r", (published[0] / "site").as_uri(),
              "-t", "2")
    assert res.exit_code == 1
    assert "[?] hello-c 1:2.1-3 x86_64 UNKWN 1/2" in res.stdout
    assert res.stdout.splitlines()[-1] == "0/2 packages reproduced (0 BAD, 0 FAIL, 2 UNKWN, 0 not listed)"


def test_v0_only_site_fail_reads_bad(published, tmp_path):
    site = copy_site(published[0] / "site", tmp_path / "site")
    shutil.rmtree(site / "api/v1")
    db = pacman_db(tmp_path / "pacman")
    with serve(site) as http:
        for url in (http, site.as_uri()):
            res = ctl("-H", url, "verify", "--installed", "-b", str(db))
            assert res.exit_code == 1
            assert "[-] ftbfs 1.0-1 any BAD" in res.stdout  # v0 knows no FAIL
            assert res.stdout.splitlines()[-1] == "2/6 packages reproduced (2 BAD, 0 FAIL, 0 UNKWN, 2 not listed)"


DPKG_STATUS = """\
Package: libzstd1
Status: install ok installed
Priority: optional
Architecture: amd64
Multi-Arch: same
Version: 1.5.6+dfsg-1
Description: fast lossless compression algorithm
 Zstd, short for Zstandard, is a fast lossless compression algorithm.

Package: libzstd1
Status: install ok installed
Architecture: i386
Multi-Arch: same
Version: 1.5.6+dfsg-1
Description: fast lossless compression algorithm

Package: tzdata
Status: hold ok installed
Architecture: all
Version: 2024a-4
Description: time zone and daylight-saving time data

Package: bash
Essential: yes
Status: install ok installed
Architecture: amd64
Version: 5.2.21-2.1
Description: GNU Bourne Again SHell

Package: removed-pkg
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0-1
Description: only its configuration files are left

Package: coreutils
Status: install ok installed
Architecture: amd64
Version: 9.4-3.1
Description: GNU core utilities
"""


def _v0(name: str, version: str, status: str, arch: str, build_id: int) -> dict:
    return {"name": name, "version": version, "status": status, "distro": "debian", "suite": "main",
            "architecture": arch, "artifact_url": f"https://deb.example/pool/{name}_{version}_{arch}.deb",
            "build_id": build_id, "built_at": "2026-05-01T12:00:00.000000", "has_diffoscope": status == "BAD",
            "has_attestation": status == "GOOD"}


@pytest.fixture
def debian_v0_site(tmp_path):
    """A rebuilderd-style Debian site: only the v0 list (as reproduce.debian.net serves per architecture)."""
    site = tmp_path / "debsite"
    (site / "api/v0/pkgs").mkdir(parents=True)
    records = [_v0("libzstd1", "1.5.6+dfsg-1", "GOOD", "amd64", 1), _v0("libzstd1", "1.5.5+dfsg2-2", "BAD", "amd64", 2),
               _v0("tzdata", "2024a-4", "GOOD", "all", 3), _v0("bash", "5.2.21-2.1", "BAD", "amd64", 4),
               _v0("bash", "5.2.21-2.1", "GOOD", "amd64", 5), _v0("coreutils", "9.4-3.1", "UNKWN", "amd64", None)]
    (site / "api/v0/pkgs/list").write_text(json.dumps(records))
    return site


def test_dpkg_status_against_a_v0_site(debian_v0_site, tmp_path):
    admindir = tmp_path / "dpkg"
    admindir.mkdir()
    (admindir / "status").write_text(DPKG_STATUS)
    with serve(debian_v0_site) as http:
        for url in (http, debian_v0_site.as_uri()):
            res = ctl("-H", url, "verify", "--installed", "--dbpath", str(admindir))
            assert res.exit_code == 1, res.output
            assert res.stdout.splitlines() == [
                "[+] bash 5.2.21-2.1 amd64 GOOD",  # GOOD if any build of it is GOOD (debian-repro-status)
                "[?] coreutils 9.4-3.1 amd64 UNKWN",
                "[+] libzstd1 1.5.6+dfsg-1 amd64 GOOD",
                "[?] libzstd1 1.5.6+dfsg-1 i386 UNKWN (not listed)",  # matched by architecture too
                "[+] tzdata 2024a-4 all GOOD",
                "3/5 packages reproduced (0 BAD, 0 FAIL, 1 UNKWN, 1 not listed)",
            ]
    report = json.loads(ctl("-H", debian_v0_site.as_uri(), "verify", "--installed", "-b",
                            str(admindir / "status"), "--json").stdout)
    assert report["database"]["kind"] == "dpkg" and report["distro"] == "debian"


def test_database_detection_and_usage_errors(tmp_path, base):
    pacman = pacman_db(tmp_path / "pacman", PACMAN[:1])
    assert open_database(pacman).kind == "pacman" and open_database(pacman / "local").kind == "pacman"
    assert read_pacman_local(pacman / "local")[0].version == "1:2.1-3"
    status = tmp_path / "status"
    status.write_text(DPKG_STATUS)
    assert open_database(status).kind == "dpkg"
    assert [p.name for p in read_dpkg_status(status)] == ["libzstd1", "libzstd1", "tzdata", "bash", "coreutils"]
    res = ctl("-H", base, "verify", "--installed", "--dbpath", str(tmp_path / "nowhere"))
    assert res.exit_code == 1 and "no pacman local database or dpkg status file" in res.stderr
    assert ctl("-H", base, "verify", "--dbpath", str(pacman)).exit_code == 2  # --dbpath without --installed
    assert ctl("-H", base, "verify", "--installed", "x.pkg.tar.zst").exit_code == 2
