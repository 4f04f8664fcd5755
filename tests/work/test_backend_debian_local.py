"""The debian-local backend, run as a worker runs it: ``<script> <file.buildinfo>`` with REBUILDERD_OUTDIR set.

The real builds use the Debian fixture (tests/fixtures_debian.py): three source packages built with
dpkg-buildpackage in an mmdebstrap root made from Debian's archive, published as a signed apt
repository. The backend makes its own root with the exact Installed-Build-Depends, fetches the
source from that repository and rebuilds. Refusals that come before any build run in-process on
crafted .buildinfo files, so they need neither root nor the network.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from jobs.work.backends import FAIL_PREFIX, failure_reason, shipped_backend
from jobs.work.backends.debian_buildinfo import RebuildRefused, read_buildinfo
from jobs.work.backends.debian_config import LocalConfig
from jobs.work.backends.debian_local import main
from jobs.work.backends.script import UsageError
from tests.fixtures_debian import (
    BINNMU_VERSION,
    GONE_VERSION,
    DebianFixture,
    cache_dir,
)
from tests.work.backend_run import Run, run_script

SCRIPT = shipped_backend("debian-local")
FULL = pytest.mark.full("real mmdebstrap roots from Debian's archive and dpkg-buildpackage builds")


def run_backend(buildinfo: Path, outdir: Path, *, sources: str, extra: dict[str, str] | None = None) -> Run:
    return run_script(SCRIPT, buildinfo, outdir, {"REBUILDER_DEBIAN_SOURCES": sources,
                                                  "REBUILDER_DEBIAN_ROOT_CACHE": str(cache_dir()), **(extra or {})},
                      timeout=1800)


@pytest.fixture(scope="module")
def rebuilds(debian_fixture: DebianFixture, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    base = tmp_path_factory.mktemp("debian-rebuilds")
    names = ["hello-repro", "unrepro", "hello-doc", "hello-nmu"]
    # The first one makes (or finds) the pinned root; the other two then find it in the cache.
    signed = {"REBUILDER_DEBIAN_BUILDINFO_KEYRING": str(debian_fixture.keyring)}  # the fixture signs them
    first = run_backend(debian_fixture.buildinfo(names[0]), base / names[0], sources=debian_fixture.sources_text,
                        extra=signed)

    def one(name: str) -> Run:
        return run_backend(debian_fixture.buildinfo(name), base / name, sources=debian_fixture.sources_text,
                           extra=signed)

    with ThreadPoolExecutor(max_workers=2) as pool:
        rest = dict(zip(names[1:], pool.map(one, names[1:])))
    return {names[0]: first, **rest}


@FULL
@pytest.mark.parametrize("name", ["hello-repro", "hello-doc", "hello-nmu"])
def test_a_reproducible_package_rebuilds_byte_for_byte(debian_fixture, rebuilds, name):
    run = rebuilds[name]
    assert run.status == 0, run.output
    published = debian_fixture.debs_of(name)
    assert published and run.built() == published
    assert FAIL_PREFIX not in run.output


@FULL
def test_the_recorded_build_is_followed(debian_fixture, rebuilds):
    info = read_buildinfo(debian_fixture.buildinfo("hello-repro"))
    assert info.build_path == "/build/hello-repro-1.0"
    assert info.environment["SOURCE_DATE_EPOCH"] == "1735689600"
    out = rebuilds["hello-repro"].output
    assert f"{len(info.installed)} installed build dependencies" in out
    assert "at /build/hello-repro-1.0 as builder: dpkg-buildpackage -B" in out
    assert "dpkg-buildpackage -A" in rebuilds["hello-doc"].output  # arch:all only
    assert "hello-repro_1.0.dsc: checksums match" in out
    assert f"hello-repro_1.0_{debian_fixture.arch}.buildinfo: signature good (a key in {debian_fixture.keyring})" \
        in out
    # The binNMU: source 1.0, binary 1.0+b1, built with its Binary-Only-Changes entry first.
    nmu = read_buildinfo(debian_fixture.buildinfo("hello-nmu"))
    assert (nmu.source_version, nmu.version, nmu.binnmu) == ("1.0", BINNMU_VERSION, True)
    assert "binNMU 1.0+b1: its Binary-Only-Changes entry goes first in debian/changelog" in rebuilds["hello-nmu"].output
    assert list(rebuilds["hello-nmu"].built()) == [f"hello-nmu_{BINNMU_VERSION}_{debian_fixture.arch}.deb"]


@FULL
def test_an_unreproducible_package_rebuilds_but_differs(debian_fixture, rebuilds):
    run = rebuilds["unrepro"]
    assert run.status == 0, run.output
    published = debian_fixture.debs_of("unrepro")
    assert list(run.built()) == list(published)
    assert run.built() != published


@FULL
def test_a_build_dependency_version_the_sources_lack_is_a_fail_with_that_reason(debian_fixture, tmp_path):
    text = debian_fixture.buildinfo("hello-repro").read_text()
    changed, count = re.subn(r"\bcoreutils \(= [^)]+\)", "coreutils (= 99.9-1)", text)
    assert count == 1
    buildinfo = tmp_path / "hello-repro_1.0_amd64.buildinfo"
    buildinfo.write_text(changed)
    run = run_backend(buildinfo, tmp_path / "out", sources=debian_fixture.sources_text)
    assert run.status == 1, run.output
    assert run.output.rstrip().splitlines()[-1].startswith(FAIL_PREFIX)
    assert run.reason == "build dependency not available from the configured sources: coreutils=99.9-1"
    assert run.built() == {}


@FULL
def test_a_source_package_the_sources_lack_is_a_fail(debian_fixture, tmp_path):
    text = debian_fixture.buildinfo("hello-doc").read_text()
    buildinfo = tmp_path / "hello-doc_1.0_all.buildinfo"
    buildinfo.write_text(text.replace("Version: 1.0", "Version: 1.1", 1))
    run = run_backend(buildinfo, tmp_path / "out", sources=debian_fixture.sources_text)
    assert run.status == 1, run.output
    assert run.reason == "source package hello-doc=1.1 is not available from the configured sources"


@FULL
def test_a_source_repository_signed_by_another_key_is_a_fail(debian_fixture, tmp_path):
    archive_keyring = debian_fixture.archive.keyrings()[0]
    sources = debian_fixture.sources_text.replace(f"signed-by={debian_fixture.keyring}", f"signed-by={archive_keyring}")
    run = run_backend(debian_fixture.buildinfo("hello-doc"), tmp_path / "out", sources=sources)
    assert run.status == 1, run.output
    assert run.reason == f"apt-get update (deb-src) failed: The repository 'file:{debian_fixture.repo} fixture " \
        "InRelease' is not signed."
    assert run.built() == {}


@FULL
def test_a_stopped_rebuild_exits_with_the_reason_and_leaves_nothing_behind(debian_fixture, tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {"PATH": os.environ["PATH"], "REBUILDERD_OUTDIR": str(tmp_path / "out"), "TMPDIR": str(tmp),
           "REBUILDER_DEBIAN_SOURCES": debian_fixture.sources_text, "REBUILDER_DEBIAN_ROOT_CACHE": str(cache_dir()),
           "REBUILDER_PYTHON": sys.executable}
    proc = subprocess.Popen([str(SCRIPT), str(debian_fixture.buildinfo("hello-repro"))], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = b""
    assert proc.stdout is not None
    for line in proc.stdout:  # stop it while the build root is being unpacked
        output += line
        if b": checksums match" in line:
            proc.send_signal(signal.SIGTERM)
            break
    output += proc.stdout.read()
    assert proc.wait(timeout=120) == 128 + signal.SIGTERM, output.decode(errors="replace")
    assert failure_reason(output) == f"stopped by signal {int(signal.SIGTERM)}"
    assert list(tmp.iterdir()) == []  # the unpacked root and the source are gone
    leftover = subprocess.run(["pgrep", "-f", str(tmp)], capture_output=True, text=True)
    assert leftover.stdout == ""


# --- refusals before any build: in-process, crafted input ----------------------------------------------

GOOD_BUILDINFO = """\
Format: 1.0
Source: hello
Binary: hello
Architecture: amd64
Version: 1.0-1
Checksums-Sha256:
 {sha} 1000 hello_1.0-1_amd64.deb
Build-Origin: Debian
Build-Architecture: amd64
Build-Date: Wed, 01 Jan 2025 00:00:00 +0000
Build-Path: /build/hello-1.0
Installed-Build-Depends:
 base-files (= 12.4+deb12u5),
 libc6:amd64 (= 2.36-9+deb12u7)
Environment:
 DEB_BUILD_OPTIONS="parallel=2"
 LANG="C.UTF-8"
 SOURCE_DATE_EPOCH="1735689600"
""".replace("{sha}", "0" * 64)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "x.buildinfo"
    path.write_text(text)
    return path


def test_a_buildinfo_is_read_into_its_recorded_build(tmp_path):
    info = read_buildinfo(write(tmp_path, GOOD_BUILDINFO))
    assert (info.source, info.source_version, info.build_type) == ("hello", "1.0-1", "-B")
    assert info.installed == (("base-files", "12.4+deb12u5"), ("libc6:amd64", "2.36-9+deb12u7"))
    assert info.environment == {"DEB_BUILD_OPTIONS": "parallel=2", "LANG": "C.UTF-8",
                                "SOURCE_DATE_EPOCH": "1735689600"}


BINNMU_CHANGES = """\
Binary-Only-Changes:
 hello (1.0-1+b2) sid; urgency=low, binary-only=yes
 .
   * Binary-only non-maintainer upload for amd64; no source changes.
   * Rebuild against libfoo2.
 .
  -- amd64 Build Daemon (x86-ubc-02) <buildd_amd64-x86-ubc-02@buildd.debian.org>  Mon, 03 Mar 2025 10:00:00 +0000
"""


def binnmu(text: str = GOOD_BUILDINFO, changes: str = BINNMU_CHANGES) -> str:
    text = text.replace("Source: hello", "Source: hello (1.0-1)").replace("Version: 1.0-1", "Version: 1.0-1+b2")
    return text.replace("Build-Origin:", changes + "Build-Origin:")


def test_a_binnmu_names_its_source_version_and_its_changelog_entry(tmp_path):
    info = read_buildinfo(write(tmp_path, binnmu()))
    assert (info.source_version, info.version, info.binnmu) == ("1.0-1", "1.0-1+b2", True)
    assert info.binary_only_changes == (
        "hello (1.0-1+b2) sid; urgency=low, binary-only=yes\n\n"
        "  * Binary-only non-maintainer upload for amd64; no source changes.\n"
        "  * Rebuild against libfoo2.\n\n"
        " -- amd64 Build Daemon (x86-ubc-02) <buildd_amd64-x86-ubc-02@buildd.debian.org>  "
        "Mon, 03 Mar 2025 10:00:00 +0000\n")
    assert not read_buildinfo(write(tmp_path, GOOD_BUILDINFO)).binary_only_changes


@pytest.mark.parametrize(("changes", "why"), [
    ("", "a binNMU (hello 1.0-1+b2) without Binary-Only-Changes (its changelog entry) cannot be rebuilt"),
    (BINNMU_CHANGES.replace("(1.0-1+b2)", "(1.0-1+b3)"),
     "Binary-Only-Changes is the entry of hello 1.0-1+b3, not of hello 1.0-1+b2"),
    (BINNMU_CHANGES.replace(" hello (", " other (", 1), "Binary-Only-Changes is the entry of other 1.0-1+b2"),
    (BINNMU_CHANGES.replace(", binary-only=yes", ""), "does not start with a binary-only changelog header"),
    (BINNMU_CHANGES.replace(" hello (", " $(id) (", 1), "does not start with a binary-only changelog header"),
    (BINNMU_CHANGES.replace("  -- amd64", "  amd64"), "does not end with a ' -- Name <email>  date' line"),
    (BINNMU_CHANGES.replace("libfoo2", "libfoo2\x1b[2J"), "Binary-Only-Changes holds control characters"),
])
def test_a_binnmu_entry_that_is_not_its_own_is_refused(tmp_path, changes, why):
    with pytest.raises(RebuildRefused, match=re.escape(why)):
        read_buildinfo(write(tmp_path, binnmu(changes=changes)))


@pytest.mark.parametrize(("old", "new", "why"), [
    ("Build-Path: /build/hello-1.0", "Build-Path: /etc/../build", "Build-Path must be a plain path under /build/"),
    ("Build-Path: /build/hello-1.0", "Build-Path: /build/../etc", "Build-Path must be a plain path under /build/"),
    ("Build-Path: /build/hello-1.0", "Build-Path: /build/a b", "Build-Path must be a plain path under /build/"),
    ('LANG="C.UTF-8"', 'LD_PRELOAD="/tmp/x.so"', "Environment sets LD_PRELOAD"),
    ('LANG="C.UTF-8"', 'PATH="/tmp"', "Environment sets PATH"),
    ('LANG="C.UTF-8"', "LANG=C; rm -rf /", "Environment line is not KEY="),
    (" base-files (= 12.4+deb12u5),", " base-files (>= 12),", "Installed-Build-Depends entry is not"),
    (" base-files (= 12.4+deb12u5),", " base-files (= 1;rm),", "Installed-Build-Depends entry is not"),
    ("Source: hello", "Source: Hello$(id)", "Source is not a package name"),
    ("Version: 1.0-1", "Version: 1.0 1", "Version is not a Debian version"),
    ("Architecture: amd64", "Architecture: source", "a source-only build"),
    ("Build-Architecture: amd64", "Build-Architecture: amd64\nHost-Architecture: arm64", "cross builds"),
    ("Build-Date: Wed, 01 Jan 2025 00:00:00 +0000", "Build-Date: yesterday", "Build-Date is not"),
    # past the calendar: parsedate_to_datetime's OverflowError, and a UTC past 9999 (the snapshot URL's time)
    ("Build-Date: Wed, 01 Jan 2025 00:00:00 +0000", "Build-Date: 1 Jan 99999999999 00:00:00 +0000", "Build-Date is not"),
    ("Build-Date: Wed, 01 Jan 2025 00:00:00 +0000", "Build-Date: Fri, 31 Dec 9999 23:00:00 -1400", "Build-Date is not"),
])
def test_hostile_buildinfo_fields_are_refused_naming_the_field(tmp_path, old, new, why):
    assert old in GOOD_BUILDINFO
    with pytest.raises(RebuildRefused, match=re.escape(why)):
        read_buildinfo(write(tmp_path, GOOD_BUILDINFO.replace(old, new)))


def test_a_huge_buildinfo_is_refused_unread(tmp_path):
    path = write(tmp_path, GOOD_BUILDINFO + " x" * (1 << 20))
    with pytest.raises(RebuildRefused, match="larger than"):
        read_buildinfo(path)


def test_the_configuration_is_checked(tmp_path):
    base = {"REBUILDERD_OUTDIR": str(tmp_path / "out")}
    with pytest.raises(UsageError, match="REBUILDER_DEBIAN_SOURCES is not set"):
        LocalConfig.from_env(base)
    with pytest.raises(UsageError, match="line 1: not an apt source line"):
        LocalConfig.from_env({**base, "REBUILDER_DEBIAN_SOURCES": "hello world"})
    with pytest.raises(UsageError, match="unsupported URI"):
        LocalConfig.from_env({**base, "REBUILDER_DEBIAN_SOURCES": "deb ftp://x/debian sid main"})
    with pytest.raises(UsageError, match="keyring /nonexistent.gpg does not exist"):
        LocalConfig.from_env({**base, "REBUILDER_DEBIAN_SOURCES": "deb [signed-by=/nonexistent.gpg] http://x/ sid main"})
    with pytest.raises(UsageError, match="must contain \\{timestamp\\}"):
        LocalConfig.from_env({**base, "REBUILDER_DEBIAN_SOURCES": "deb http://x/debian sid main",
                              "REBUILDER_DEBIAN_SNAPSHOT": "http://snapshot/archive/debian/ sid main"})


def test_a_snapshot_template_adds_the_build_dates_snapshot(tmp_path):
    config = LocalConfig.from_env({"REBUILDERD_OUTDIR": str(tmp_path), "REBUILDER_DEBIAN_SOURCES":
                                   "deb http://mirror.invalid/debian sid main\n"
                                   "deb-src http://mirror.invalid/debian sid main\n",
                                   "REBUILDER_DEBIAN_SNAPSHOT":
                                   "[check-valid-until=no] http://snapshot.invalid/archive/debian/{timestamp}/ sid main"})
    info = read_buildinfo(write(tmp_path, GOOD_BUILDINFO))
    lines = [s.text() for s in config.sources_for(info)]
    assert lines[2:] == [
        "deb [check-valid-until=no] http://snapshot.invalid/archive/debian/20250101T000000Z/ sid main",
        "deb-src [check-valid-until=no] http://snapshot.invalid/archive/debian/20250101T000000Z/ sid main"]


def test_usage_errors_exit_2_with_the_reason_last(tmp_path, capsys):
    assert main([], env={}) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == FAIL_PREFIX + \
        "usage: rebuilder-backend-debian-local <file.buildinfo> (with REBUILDERD_OUTDIR set)"
    assert main([str(tmp_path / "x.buildinfo")], env={"REBUILDERD_OUTDIR": str(tmp_path)}) == 78  # the host's setup
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(FAIL_PREFIX + "REBUILDER_DEBIAN_SOURCES is not set")


def test_a_binnmu_without_its_entry_exits_1_with_the_reason(tmp_path, capsys):
    env = {"REBUILDERD_OUTDIR": str(tmp_path / "out"), "REBUILDER_DEBIAN_SOURCES": "deb http://x.invalid/debian sid main"}
    assert main([str(write(tmp_path, binnmu(changes="")))], env=env) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == FAIL_PREFIX + \
        "x.buildinfo: a binNMU (hello 1.0-1+b2) without Binary-Only-Changes (its changelog entry) cannot be rebuilt"


# --- the .buildinfo's signature (REBUILDER_DEBIAN_BUILDINFO_KEYRING) ----------------------------------


@pytest.fixture(scope="module")
def signers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, Path]]:
    """Two gpg homes with a key each, and the first one's public keyring."""
    from jobs.demo.debrepo import make_key, stop_agent

    base = tmp_path_factory.mktemp("signers")
    yield base / "one", base / "two", make_key(base / "one") and make_key(base / "two") and base / "one/fixture-archive.gpg"
    for home in ("one", "two"):
        stop_agent(base / home)


def test_a_signed_buildinfo_is_read_from_the_signed_text_only(tmp_path, signers):
    from jobs.demo.debrepo import clearsign

    one, _, keyring = signers
    signed = clearsign(GOOD_BUILDINFO.replace("Build-Path: /build/hello-1.0", "Build-Path: /build/hello-x"), one)
    # Text after the signature is no part of what was signed: it is not read.
    info = read_buildinfo(write(tmp_path, signed + "Build-Path: /build/evil\n"), keyring=keyring)
    assert info.build_path == "/build/hello-x" and info.source == "hello"
    assert LocalConfig.from_env({"REBUILDERD_OUTDIR": str(tmp_path), "REBUILDER_DEBIAN_SOURCES": "deb http://x/ a b",
                                 "REBUILDER_DEBIAN_BUILDINFO_KEYRING": str(keyring)}).buildinfo_keyring == keyring


def test_a_buildinfo_with_a_bad_or_unknown_signature_is_refused(tmp_path, signers):
    from jobs.demo.debrepo import clearsign

    one, two, keyring = signers
    signed = clearsign(GOOD_BUILDINFO, one)
    tampered = signed.replace("Build-Path: /build/hello-1.0", "Build-Path: /build/hello-2.0")
    assert tampered != signed
    cases = [(tampered, "x.buildinfo: bad signature (the text was changed after it was signed, "
                        "or the signature is corrupt)"),
             (clearsign(GOOD_BUILDINFO, two), f"x.buildinfo: signed by a key that is not in {keyring}"),
             (GOOD_BUILDINFO, "x.buildinfo: not signed, and REBUILDER_DEBIAN_BUILDINFO_KEYRING asks for a signature "
                              f"by a key in {keyring}"),
             (signed.split("-----BEGIN PGP SIGNATURE-----")[0] + "-----BEGIN PGP SIGNATURE-----\n\nbm90IGEgc2lnbmF0dXJl\n"
              "-----END PGP SIGNATURE-----\n", "x.buildinfo: malformed signature")]
    for text, why in cases:
        with pytest.raises(RebuildRefused) as caught:
            read_buildinfo(write(tmp_path, text), keyring=keyring)
        assert str(caught.value) == why
    # Without a keyring, a signed one is read (its integrity then comes from where it was found).
    assert read_buildinfo(write(tmp_path, tampered)).build_path == "/build/hello-2.0"
    with pytest.raises(UsageError, match="REBUILDER_DEBIAN_BUILDINFO_KEYRING: not an existing keyring file"):
        LocalConfig.from_env({"REBUILDERD_OUTDIR": str(tmp_path), "REBUILDER_DEBIAN_SOURCES": "deb http://x/ a b",
                              "REBUILDER_DEBIAN_BUILDINFO_KEYRING": str(tmp_path / "none.gpg")})


def test_a_refused_buildinfo_exits_1_naming_the_field(tmp_path, capsys):
    path = write(tmp_path, GOOD_BUILDINFO.replace('LANG="C.UTF-8"', 'LD_PRELOAD="/x"'))
    env = {"REBUILDERD_OUTDIR": str(tmp_path / "out"), "REBUILDER_DEBIAN_SOURCES": "deb http://x.invalid/debian sid main"}
    assert main([str(path)], env=env) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == \
        FAIL_PREFIX + "x.buildinfo: Environment sets LD_PRELOAD, which a build must not take from input"


# --- the whole loop: sync → work → publish, feeds checked --------------------------------------------

BIN = Path(sys.executable).parent
SECRET = "Fk3q9ZmT7vXc2LpW8nRb4HsY6dJg5QeA"


@FULL
def test_the_debian_fixture_is_synced_rebuilt_and_published(debian_fixture, tmp_path):
    from jobs.core.signing import ensure_key
    from tests.httpd import serve

    store = (tmp_path / "store").as_uri()
    ensure_key(tmp_path / "sign.key")
    (tmp_path / "rebuilderd.conf").write_text(
        f'[worker]\nsignup_secret = "{SECRET}"\n[publish]\nsigning_key = "{tmp_path / "sign.key"}"\n')
    (tmp_path / "sync.conf").write_text(
        f'[profile."debian-fixture"]\ndistro = "debian"\nsource = "{debian_fixture.repo.as_uri()}"\n'
        f'releases = ["fixture"]\ncomponents = ["main"]\narchitectures = ["all", "{debian_fixture.arch}"]\n'
        f'keyring = "{debian_fixture.keyring}"\nbuildinfo_base_url = "{debian_fixture.buildinfo_dir.as_uri()}"\n')
    (tmp_path / "worker.conf").write_text(
        f'signup_secret = "{SECRET}"\nsupported_architectures = ["{debian_fixture.arch}", "all"]\n'
        f'work_dir = "{tmp_path / "workers"}"\n[build]\nsilent = true\ntimeout = 1800\n'
        f'[diffoscope]\nenabled = true\n[backend."debian"]\npath = "{shipped_backend("debian-local")}"\n')
    env = {"PATH": f"{BIN}:/usr/bin:/bin:/usr/sbin:/sbin", "HOME": str(tmp_path),
           "REBUILDER_DEBIAN_SOURCES": debian_fixture.sources_text, "REBUILDER_DEBIAN_ROOT_CACHE": str(cache_dir()),
           "REBUILDER_DEBIAN_BUILDINFO_KEYRING": str(debian_fixture.keyring)}  # its .buildinfo files are signed
    common = [str(BIN / "rebuilder"), "--store", store, "--config", str(tmp_path / "rebuilderd.conf")]
    res = subprocess.run(common + ["run", "--profiles", str(tmp_path / "sync.conf"), "--worker-config",
                                   str(tmp_path / "worker.conf"), "--workers", "2"],
                         capture_output=True, text=True, env=env, timeout=1800, cwd=tmp_path)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    lines = res.stdout.splitlines()
    assert lines[0].startswith("sync debian-fixture: updated"), lines
    assert lines[-1] == "run: GOOD 3, BAD 1, FAIL 1, UNKWN 0", lines

    with serve(tmp_path / "store" / "site") as base:
        records = json.load(urllib.request.urlopen(f"{base}/api/v0/pkgs/list?distro=debian"))
        status = {r["name"]: r["status"] for r in records}
        # v0 has no FAIL (rebuilderd's v0 maps it to BAD); v1 below says FAIL and why.
        assert status == {"hello-repro": "GOOD", "hello-doc": "GOOD", "hello-nmu": "GOOD", "unrepro": "BAD",
                          "gone-dep": "BAD"}
        # What debian-repro-status matches an installed package by: binary name, version (a binNMU's
        # +b1 too) and architecture, as dpkg-query prints them.
        assert {(r["name"], r["version"], r["architecture"]) for r in records} == {
            ("hello-repro", "1.0", debian_fixture.arch), ("unrepro", "1.0", debian_fixture.arch),
            ("hello-doc", "1.0", "all"), ("hello-nmu", BINNMU_VERSION, debian_fixture.arch),
            ("gone-dep", "1.0", debian_fixture.arch)}
        unrepro = next(r for r in records if r["name"] == "unrepro")
        assert unrepro["has_diffoscope"]
        diff = urllib.request.urlopen(f"{base}/api/v0/builds/{unrepro['build_id']}/diffoscope").read()
        diff = gzip.decompress(diff) if diff.startswith(b"\x1f\x8b") else diff  # the store keeps it gzipped
        assert b"usr/share/unrepro/token" in diff
        detail = {name: json.load(urllib.request.urlopen(f"{base}/api/v1/packages/debian/{name}.json"))
                  for name in status}
        text = json.dumps(detail["gone-dep"])
        assert '"FAIL"' in text
        assert f"build dependency not available from the configured sources: coreutils={GONE_VERSION}" in text
        assert '"GOOD"' in json.dumps(detail["hello-repro"]) and '"BAD"' in json.dumps(detail["unrepro"])

        def page(path: str) -> str:
            data = urllib.request.urlopen(f"{base}/{path}").read()
            return (gzip.decompress(data) if data.startswith(b"\x1f\x8b") else data).decode()

        def listed(path: str, status: str) -> set[str]:  # what the list page's shell shows: its JSON feed
            return {p["name"] for p in json.loads(page(f"api/v1/suites/{path}/{status}.json"))["packages"]}

        suite = f"debian/fixture/main/{debian_fixture.arch}"
        failed = listed(suite, "FAIL")
        assert "gone-dep" in failed and "hello-repro" not in failed
        assert "unrepro" in listed(suite, "BAD") and "hello-repro" in listed(suite, "GOOD")
        assert "hello-doc" in listed("debian/fixture/main/all", "GOOD")
        assert f"coreutils={GONE_VERSION}" in page("packages/debian/gone-dep.html")
