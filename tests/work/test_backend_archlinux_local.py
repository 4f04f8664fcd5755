"""The archlinux-local backend, run as a worker runs it: ``<script> <package>`` with REBUILDERD_OUTDIR set.

The real builds use the session's fixture repository: its PKGBUILDs and its archive are the
backend's REBUILDER_PKGBUILDS and REBUILDER_ARCHIVE. Refusals that come before any build run
in-process on crafted packages, so they need neither root nor makepkg.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from jobs.demo.archrepo import FTBFS, REPRODUCIBLE, UNREPRODUCIBLE, FixtureRepo
from jobs.work.backends import FAIL_PREFIX, failure_reason, shipped_backend
from jobs.work.backends.archlinux_local import main
from tests.fixtures_arch import require_makepkg_host
from tests.work.backend_run import Run, run_script
from tests.work.test_buildinfo import DEVTOOLS, make_package, replace

SCRIPT = shipped_backend("archlinux-local")


def run_backend(package: Path, outdir: Path, *, pkgbuilds: Path, archive: Path | str) -> Run:
    """Run the shipped script as a subprocess, with the worker's interpreter."""
    return run_script(SCRIPT, package, outdir, {"REBUILDER_PKGBUILDS": str(pkgbuilds), "REBUILDER_ARCHIVE": str(archive)},
                      timeout=240)


def first_artifact(repo: FixtureRepo, pkgbase: str) -> Path:
    return repo.by_pkgbase()[pkgbase][0].path


@pytest.fixture(scope="module")
def rebuilds(fixture_repo: FixtureRepo, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """Every fixture pkgbase rebuilt once by the backend, in parallel (each makepkg build takes ~1.5 s)."""
    base = tmp_path_factory.mktemp("rebuilds")

    def one(pkgbase: str) -> Run:
        return run_backend(first_artifact(fixture_repo, pkgbase), base / pkgbase,
                           pkgbuilds=fixture_repo.pkgbuild_dir, archive=fixture_repo.archive_dir)

    pkgbases = sorted(REPRODUCIBLE | UNREPRODUCIBLE | FTBFS)
    with ThreadPoolExecutor(max_workers=3) as pool:
        return dict(zip(pkgbases, pool.map(one, pkgbases)))


@pytest.mark.parametrize("pkgbase", sorted(REPRODUCIBLE))
def test_a_reproducible_package_rebuilds_byte_for_byte(fixture_repo, rebuilds, pkgbase):
    run = rebuilds[pkgbase]
    assert run.status == 0, run.output
    published = {p.filename: p.path.read_bytes() for p in fixture_repo.by_pkgbase()[pkgbase]}
    assert run.built() == published  # every split package, under its published name
    assert FAIL_PREFIX not in run.output


def test_a_split_package_yields_every_package_of_its_base(fixture_repo, rebuilds):
    assert sorted(rebuilds["splitpkg"].built()) == ["split-a-0.5-1-any.pkg.tar.zst", "split-b-0.5-1-any.pkg.tar.zst"]


def test_the_installed_packages_of_the_buildinfo_are_installed(rebuilds):
    assert "1 installed package(s)" in rebuilds["hello-c"].output
    assert "0 installed package(s)" in rebuilds["hello-script"].output


def test_an_unreproducible_package_rebuilds_but_differs(fixture_repo, rebuilds):
    run = rebuilds["unrepro"]
    (package,) = fixture_repo.by_pkgbase()["unrepro"]
    assert run.status == 0, run.output
    assert list(run.built()) == [package.filename]
    assert run.built()[package.filename] != package.path.read_bytes()


def test_a_package_that_fails_to_build_exits_non_zero_with_the_reason(rebuilds):
    run = rebuilds["ftbfs"]
    assert run.status == 1
    assert run.output.rstrip().splitlines()[-1].startswith(FAIL_PREFIX)
    assert run.reason == "makepkg failed to build ftbfs: A failure occurred in build()."
    assert "only builds in the fixture publisher" in run.output  # makepkg's log is the backend's log
    assert run.built() == {}


def test_a_pkgbuild_that_changed_is_refused(fixture_repo, tmp_path):
    pkgbuilds = tmp_path / "pkgbuilds"
    shutil.copytree(fixture_repo.pkgbuild_dir, pkgbuilds)
    pkgbuild = pkgbuilds / "hello-script" / "PKGBUILD"
    expected = hashlib.sha256(pkgbuild.read_bytes()).hexdigest()
    pkgbuild.write_text(pkgbuild.read_text() + "# changed after the build\n")
    actual = hashlib.sha256(pkgbuild.read_bytes()).hexdigest()
    run = run_backend(first_artifact(fixture_repo, "hello-script"), tmp_path / "out",
                      pkgbuilds=pkgbuilds, archive=fixture_repo.archive_dir)
    assert run.status == 1
    assert run.reason == f"PKGBUILD checksum mismatch: expected {expected}, got {actual} ({pkgbuild})"
    assert run.built() == {}


def test_an_installed_package_missing_from_the_archive_is_refused(fixture_repo, tmp_path):
    archive = tmp_path / "archive"
    archive.mkdir()
    for path in fixture_repo.archive_dir.iterdir():
        if not path.name.startswith("hello-script-"):
            (archive / path.name).symlink_to(path)
    run = run_backend(first_artifact(fixture_repo, "hello-c"), tmp_path / "out",
                      pkgbuilds=fixture_repo.pkgbuild_dir, archive=archive.as_uri())
    assert run.status == 1
    assert run.reason == "installed package not in archive: hello-script-1.0.0-1-any"
    assert run.built() == {}


# Refusals before any build: crafted packages, in-process.

@pytest.fixture
def crafted(tmp_path: Path):
    """A layout where a crafted package *would* build: its PKGBUILD and installed package exist."""
    pkgbuilds, archive, outdir = tmp_path / "pkgbuilds", tmp_path / "archive", tmp_path / "out"
    archive.mkdir()
    pkgbuilds.mkdir()
    env = {"REBUILDERD_OUTDIR": str(outdir), "REBUILDER_PKGBUILDS": str(pkgbuilds), "REBUILDER_ARCHIVE": str(archive)}

    def make(text: str, pkgbase_dir: str = "example") -> Path:
        pkgbuild = tmp_path / "pkgbuilds" / pkgbase_dir / "PKGBUILD"
        pkgbuild.parent.mkdir(parents=True, exist_ok=True)
        pkgbuild.write_text("pkgname=example\n")
        text = replace(text, "pkgbuild_sha256sum", hashlib.sha256(pkgbuild.read_bytes()).hexdigest())
        return make_package(tmp_path / "example-1:1.0.0-1-any.pkg.tar.zst", {".BUILDINFO": text.encode()})

    return make, env, tmp_path


def run_main(package: Path, env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    status = main([str(package)], env)
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and captured.err.startswith(FAIL_PREFIX)
    return status, captured.err[len(FAIL_PREFIX):].strip()


@pytest.mark.parametrize("pkgbase", ["../escape", "..", ".hidden", "a\x1bb", "-rf"])
def test_a_hostile_pkgbase_is_refused_before_it_names_a_path(crafted, capsys, pkgbase):
    make, env, tmp_path = crafted
    # The directory the hostile name points at holds a PKGBUILD with the right checksum: only the
    # name check stands between the input and a build from there.
    package = make(replace(DEVTOOLS, "pkgbase", pkgbase).replace("startdir = /startdir/", "startdir = /startdir")
                   .replace("installed = ", "x = "), pkgbase_dir=pkgbase)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    status, reason = run_main(package, env, capsys)
    assert status == 1
    assert reason.startswith(".BUILDINFO pkgbase") and "is not a valid package name" in reason
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # no out dir, nothing new


def test_a_hostile_installed_entry_is_refused(crafted, capsys):
    make, env, tmp_path = crafted
    secret = tmp_path / "secret-1-1-any.pkg.tar.zst"
    secret.write_bytes(b"outside the archive")
    text = DEVTOOLS.replace("startdir = /startdir/", "startdir = /startdir")
    package = make(replace(text, "installed", "../secret-1-1-any"))
    status, reason = run_main(package, env, capsys)
    assert (status, reason.split(" is not")[0]) == (1, ".BUILDINFO installed '../secret-1-1-any'")


@pytest.mark.parametrize(("edit", "message"), [
    (("startdir = /startdir/", "startdir = /startdir"), None),  # control: reaches the archive lookup
    (("builddir = /build", "builddir = /home/build"), "this backend builds only at builddir=/build"),
    (("startdir = /startdir/", "startdir = /startdir/"), "startdir=/startdir/"),
    (("pkgarch = any", "pkgarch = sparc64"), "sparc64 packages cannot be built on this"),
])
def test_what_this_backend_cannot_reproduce_is_refused(crafted, capsys, edit, message):
    make, env, _ = crafted
    status, reason = run_main(make(DEVTOOLS.replace(*edit)), env, capsys)
    assert status == 1
    if message is None:
        assert reason == "installed package not in archive: other-package-1:0.5.0-3-any"
    else:
        assert message in reason


@pytest.mark.parametrize(("args", "env", "status", "message"), [
    ([], {}, 2, "usage: rebuilder-backend-archlinux-local"),
    (["x.pkg.tar.zst"], {"REBUILDER_PKGBUILDS": "/", "REBUILDER_ARCHIVE": "/"}, 78, "REBUILDERD_OUTDIR is not set"),
    (["x.pkg.tar.zst"], {"REBUILDERD_OUTDIR": "/o", "REBUILDER_ARCHIVE": "/"}, 78, "REBUILDER_PKGBUILDS is not set"),
    (["x.pkg.tar.zst"], {"REBUILDERD_OUTDIR": "/o", "REBUILDER_PKGBUILDS": "/", "REBUILDER_ARCHIVE": "https://a.b/"},
     78, "http(s) archives are not supported yet"),
    (["x.pkg.tar.zst"], {"REBUILDERD_OUTDIR": "/o", "REBUILDER_PKGBUILDS": "/nonexistent", "REBUILDER_ARCHIVE": "/"},
     78, "REBUILDER_PKGBUILDS: /nonexistent is not a directory"),
    (["/nonexistent.pkg.tar.zst"], {"REBUILDERD_OUTDIR": "/o", "REBUILDER_PKGBUILDS": "/", "REBUILDER_ARCHIVE": "/"},
     2, "input package not found"),
])
def test_usage_errors_exit_2_and_setup_errors_78(capsys, args, env, status, message):
    """78 (the host is not set up): the worker reports no verdict; 2 (called wrongly): the job's FAIL."""
    assert main(args, env) == status
    assert message in capsys.readouterr().err


def test_a_package_of_another_compression_is_refused(crafted, capsys):
    _, env, tmp_path = crafted
    package = make_package(tmp_path / "example-1-1-any.pkg.tar.xz", {".BUILDINFO": DEVTOOLS.encode()}, compress="gz")
    status, reason = run_main(package, env, capsys)
    assert status == 1 and "only .pkg.tar.zst packages" in reason


def test_the_shipped_scripts_are_executable():
    for name in ("archlinux-local", "archlinux", "debian"):
        assert os.access(shipped_backend(name), os.X_OK), f"{shipped_backend(name)} lost its exec bit"


SLOW_PKGBUILD = """\
pkgname=slow
pkgver=1
pkgrel=1
arch=('any')
build() { sleep 61.25; }
package() { :; }
"""


def sleepers() -> list[int]:
    """Processes running the slow PKGBUILD's ``sleep 61.25``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "cmdline").read_bytes() == b"sleep\x0061.25\x00":
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_a_terminated_backend_kills_its_build_and_says_so(tmp_path):
    """The worker's timeout sends SIGTERM to the backend's group; makepkg runs in a group of its own."""
    require_makepkg_host()
    pkgbuild = tmp_path / "pkgbuilds" / "slow" / "PKGBUILD"
    pkgbuild.parent.mkdir(parents=True)
    pkgbuild.write_text(SLOW_PKGBUILD)
    text = DEVTOOLS.replace("startdir = /startdir/", "startdir = /startdir").replace("installed = ", "x = ")
    for key, value in {"pkgname": "slow", "pkgbase": "slow", "pkgver": "1-1",
                       "pkgbuild_sha256sum": hashlib.sha256(pkgbuild.read_bytes()).hexdigest()}.items():
        text = replace(text, key, value)
    package = make_package(tmp_path / "slow-1-1-any.pkg.tar.zst", {".BUILDINFO": text.encode()})
    (tmp_path / "archive").mkdir()
    env = {"PATH": os.environ["PATH"], "REBUILDERD_OUTDIR": str(tmp_path / "out"),
           "REBUILDER_PKGBUILDS": str(tmp_path / "pkgbuilds"), "REBUILDER_ARCHIVE": str(tmp_path / "archive"),
           "REBUILDER_PYTHON": sys.executable}
    backend = subprocess.Popen([str(SCRIPT), str(package)], env=env, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while not sleepers():  # build() is running
        if backend.poll() is not None or time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(backend.pid, signal.SIGKILL)
            pytest.fail(f"the build did not start:\n{backend.communicate()[0].decode(errors='replace')}")
        time.sleep(0.05)
    os.killpg(backend.pid, signal.SIGTERM)
    output = backend.communicate(timeout=30)[0].decode(errors="replace")
    assert backend.returncode == 128 + signal.SIGTERM
    assert failure_reason(output.encode()) == f"stopped by signal {int(signal.SIGTERM)}"
    assert "==> Starting build()..." in output  # the log so far is kept
    assert sleepers() == []  # the build's own process group went with it
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
