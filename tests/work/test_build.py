"""`rebuild`: real downloads, the real archlinux-local backend on the fixture repository, real diffoscope.

The four real makepkg rebuilds (one per outcome) run once per module, in parallel. Cases that only
need the worker's side (a crash, a timeout, a lost lease, a missing file) use tiny stand-in backends.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

from jobs.core.config import BuildConfig, DiffoscopeConfig, WorkerConfig
from jobs.core.model import Artifact, JobRow, Status, job_id
from jobs.core.signing import generate_key, product_digests, rebuild_link_name, verify_link
from jobs.demo.archrepo import FixtureRepo
from jobs.work.backends import shipped_backend
from jobs.work.build import LOG_NAME, BuildCancelled, BuildOutcome, rebuild
from tests.httpd import serve
from tests.tools import require_tool

KEY = generate_key()
LOCAL = shipped_backend("archlinux-local")
NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


def config(*, timeout: int = 240, diffoscope: bool = True, max_bytes: int | None = None) -> WorkerConfig:
    return WorkerConfig(build=BuildConfig(timeout=timeout, silent=True),
                        diffoscope=DiffoscopeConfig(enabled=diffoscope, timeout=120, max_bytes=max_bytes))


def make_job(repo: FixtureRepo, pkgbase: str, base: str | None = None, **changes: object) -> JobRow:
    """The job sync would queue for ``pkgbase``: artifacts over http (``base``) or file://."""
    packages = repo.by_pkgbase()[pkgbase]

    def url(path: Path) -> str:
        return f"{base}/{quote(path.relative_to(repo.root).as_posix())}" if base else path.as_uri()

    artifacts = tuple(Artifact(name=p.pkgname, version=p.version, architecture=p.arch, url=url(p.path),
                               sha256=p.sha256, size=p.path.stat().st_size, filename=p.filename)
                      for p in packages)
    first = dict(changes.pop("first", {}))  # type: ignore[arg-type]
    if first:
        artifacts = (dataclasses.replace(artifacts[0], **first), *artifacts[1:])
    input_url = str(changes.pop("input_url", artifacts[0].url))
    return JobRow(job_id=job_id("archlinux-local", repo.arch, input_url), backend="archlinux-local",
                  architecture=repo.arch, input_url=input_url, distro="archlinux", releases=(None,),
                  source_name=pkgbase, source_version=packages[0].version, artifacts=artifacts,
                  priority=1, queued_at=NOW, not_before=None, attempt=1, retries=0)


def backend_env(repo: FixtureRepo) -> dict[str, str]:
    return {"REBUILDER_ARCHIVE": str(repo.archive_dir), "REBUILDER_PKGBUILDS": str(repo.pkgbuild_dir)}


def script(tmp_path: Path, body: str) -> Path:
    """A stand-in backend."""
    path = tmp_path / "backend"
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return path


def log_text(outcome: BuildOutcome) -> str:
    return outcome.log.read_text(errors="replace")


@pytest.fixture(scope="module")
def real(fixture_repo: FixtureRepo, tmp_path_factory: pytest.TempPathFactory) -> dict[str, BuildOutcome]:
    """One real rebuild per outcome: GOOD over http, GOOD split over file://, BAD with diffoscope, FAIL."""
    require_tool("diffoscope", "diffoscope-minimal")
    base = tmp_path_factory.mktemp("builds")
    with serve(fixture_repo.root) as url:
        jobs = {"hello-script": make_job(fixture_repo, "hello-script", url),
                "splitpkg": make_job(fixture_repo, "splitpkg"),
                "unrepro": make_job(fixture_repo, "unrepro"),
                "ftbfs": make_job(fixture_repo, "ftbfs", url)}

        def one(name: str) -> BuildOutcome:
            return rebuild(jobs[name], backend=LOCAL, config=config(), key=KEY, workdir=base / name,
                           env=backend_env(fixture_repo), kill_grace=1)

        with ThreadPoolExecutor(max_workers=4) as pool:
            return dict(zip(jobs, pool.map(one, jobs)))


def test_a_reproducible_package_is_good_with_a_signed_attestation(fixture_repo, real):
    outcome = real["hello-script"]
    (package,) = fixture_repo.by_pkgbase()["hello-script"]
    assert (outcome.status, outcome.reason) == (Status.GOOD, None), log_text(outcome)
    assert [(a.name, a.status, a.sha256) for a in outcome.artifacts] == [(package.pkgname, Status.GOOD, package.sha256)]
    assert verify_link(outcome.attestation, [KEY.public_key()])
    assert outcome.attestation["signed"]["name"] == rebuild_link_name(package.filename)
    assert outcome.attestation["signed"]["materials"][package.filename]["sha256"] == package.sha256
    products = product_digests(outcome.attestation)
    assert {k: v["sha256"] for k, v in products.items()} == {package.filename: package.sha256}
    assert outcome.diffoscope_text is None and outcome.diffoscope_html is None
    assert "downloaded http://127.0.0.1:" in log_text(outcome)
    assert outcome.started_at.tzinfo == timezone.utc and outcome.started_at <= outcome.built_at


def test_a_split_package_is_good_with_every_artifact_attested(fixture_repo, real):
    outcome = real["splitpkg"]
    packages = fixture_repo.by_pkgbase()["splitpkg"]
    assert outcome.status is Status.GOOD, log_text(outcome)
    assert [(a.name, a.status, a.sha256) for a in outcome.artifacts] == \
        [(p.pkgname, Status.GOOD, p.sha256) for p in packages]
    products = product_digests(outcome.attestation)
    assert {k: v["sha256"] for k, v in products.items()} == {p.filename: p.sha256 for p in packages}
    assert outcome.attestation["signed"]["name"] == rebuild_link_name(packages[0].filename)


def test_an_unreproducible_package_is_bad_with_diffoscope_reports(fixture_repo, real):
    outcome = real["unrepro"]
    (package,) = fixture_repo.by_pkgbase()["unrepro"]
    assert outcome.status is Status.BAD, log_text(outcome)
    assert outcome.reason == "not reproducible: unrepro differs"
    (result,) = outcome.artifacts
    assert result.status is Status.BAD and result.sha256 not in (None, package.sha256)
    assert outcome.attestation is None
    text = outcome.diffoscope_text.read_text()
    assert "usr/share/unrepro/token" in text
    assert f"original/{package.filename}" in text and f"rebuilt/{package.filename}" in text
    assert "usr/share/unrepro/token" in outcome.diffoscope_html.read_text()
    assert not outcome.diffoscope_truncated


def test_a_package_that_fails_to_build_is_fail_with_the_backends_reason(real):
    outcome = real["ftbfs"]
    assert outcome.status is Status.FAIL
    assert outcome.reason == ("backend exited with status 1: "
                              "makepkg failed to build ftbfs: A failure occurred in build().")
    assert outcome.artifacts == [] and outcome.attestation is None
    assert "only builds in the fixture publisher" in log_text(outcome)  # makepkg's output is in the log


def test_only_the_log_and_reports_outlive_the_build(real):
    for outcome in real.values():
        assert sorted(p.name for p in outcome.log.parent.iterdir()) == \
            sorted([LOG_NAME] + [p.name for p in (outcome.diffoscope_text, outcome.diffoscope_html) if p])


def test_a_wrong_sha256_fails_before_the_backend_runs(fixture_repo, tmp_path):
    wrong = "0" * 64
    job = make_job(fixture_repo, "splitpkg", first={"sha256": wrong})
    marker = tmp_path / "ran"
    outcome = rebuild(job, backend=script(tmp_path, f'touch "{marker}"'), config=config(), key=KEY,
                      workdir=tmp_path / "w")
    package = fixture_repo.by_pkgbase()["splitpkg"][0]
    assert outcome.status is Status.FAIL and outcome.artifacts == []
    assert outcome.reason == f"sha256 mismatch for {package.pkgname} ({package.filename}): " \
                             f"expected {wrong}, got {package.sha256}"
    assert not marker.exists()
    assert "running backend" not in log_text(outcome) and outcome.reason in log_text(outcome)


@pytest.mark.parametrize("change", [
    {"filename": "../escape.pkg.tar.zst"}, {"filename": "a/b"}, {"filename": ".."}, {"filename": "x\ny"},
    {"filename": None, "url": "file:///tmp/a%2F..%2Fb"}, {"filename": None, "url": "file:///tmp/%2E%2E"},
])
def test_an_unsafe_file_name_fails(fixture_repo, tmp_path, change):
    marker = tmp_path / "ran"
    job = make_job(fixture_repo, "hello-script", first=change, input_url="file:///x/input.pkg.tar.zst")
    outcome = rebuild(job, backend=script(tmp_path, f'touch "{marker}"'), config=config(), key=KEY,
                      workdir=tmp_path / "w")
    assert outcome.status is Status.FAIL
    assert outcome.reason.startswith("unsafe file name"), outcome.reason
    assert not marker.exists() and not (tmp_path / "escape.pkg.tar.zst").exists()


def test_a_download_error_fails_naming_the_url(fixture_repo, tmp_path):
    with serve(tmp_path) as url:  # serves nothing of the repository: every artifact is a 404
        job = make_job(fixture_repo, "hello-script", url)
        outcome = rebuild(job, backend=script(tmp_path, "exit 0"), config=config(), key=KEY, workdir=tmp_path / "w")
    assert outcome.status is Status.FAIL
    assert outcome.reason == f"download failed: {job.artifacts[0].url}: HTTP 404 File not found"


def test_an_unreachable_mirror_fails_as_transient(fixture_repo, tmp_path):
    with serve(tmp_path) as url:
        pass  # the port is closed again
    job = make_job(fixture_repo, "hello-script", url)
    with requests.Session() as session:  # no retries: the test needs no backoff
        outcome = rebuild(job, backend=script(tmp_path, "exit 0"), config=config(), key=KEY, workdir=tmp_path / "w",
                          session=session)
    assert outcome.status is Status.FAIL
    assert outcome.reason.startswith(f"download failed: {job.artifacts[0].url}: ")
    assert outcome.reason.endswith(" (transient)")


def test_a_crashing_backend_fails(fixture_repo, tmp_path):
    job = make_job(fixture_repo, "hello-script")
    outcome = rebuild(job, backend=script(tmp_path, 'echo "about to crash"; exit 3'), config=config(), key=KEY,
                      workdir=tmp_path / "w")
    assert (outcome.status, outcome.reason, outcome.artifacts) == (Status.FAIL, "backend exited with status 3", [])
    assert "about to crash" in log_text(outcome)


def test_a_missing_backend_fails_as_a_missing_tool(fixture_repo, tmp_path):
    outcome = rebuild(make_job(fixture_repo, "hello-script"), backend=tmp_path / "nope", config=config(), key=KEY,
                      workdir=tmp_path / "w")
    assert outcome.status is Status.FAIL and outcome.reason.startswith("tool missing: ")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except FileNotFoundError:
        return False


def test_a_backend_past_its_timeout_fails_and_leaves_no_process(fixture_repo, tmp_path):
    pidfile = tmp_path / "pid"
    backend = script(tmp_path, f'sleep 60 & echo $! > "{pidfile}"\nsleep 60')
    start = time.monotonic()
    outcome = rebuild(make_job(fixture_repo, "hello-script"), backend=backend, config=config(timeout=2), key=KEY,
                      workdir=tmp_path / "w", kill_grace=0.5)
    assert time.monotonic() - start < 10
    assert (outcome.status, outcome.reason) == (Status.FAIL, "build timed out after 2 s")
    assert "TRUNCATED DUE TO TIMEOUT: 2 seconds" in log_text(outcome)
    assert not _alive(int(pidfile.read_text()))


def test_a_cancelled_build_raises_and_leaves_no_process(fixture_repo, tmp_path):
    pidfile = tmp_path / "pid"
    backend = script(tmp_path, f'sleep 60 & echo $! > "{pidfile}"\nsleep 60')
    cancel = threading.Event()
    timer = threading.Timer(0.5, cancel.set)
    timer.start()
    start = time.monotonic()
    with pytest.raises(BuildCancelled):
        rebuild(make_job(fixture_repo, "hello-script"), backend=backend, config=config(), key=KEY,
                workdir=tmp_path / "w", cancel=cancel, kill_grace=0.5)
    assert time.monotonic() - start < 10
    assert not _alive(int(pidfile.read_text()))
    (kept,) = (tmp_path / "w").iterdir()
    assert [p.name for p in kept.iterdir()] == [LOG_NAME]  # the scratch directory is gone


def test_a_missing_artifact_is_bad(fixture_repo, tmp_path):
    # The input is split-a: copying it back reproduces split-a, split-b is never written.
    job = make_job(fixture_repo, "splitpkg")
    outcome = rebuild(job, backend=script(tmp_path, 'cp "$1" "$REBUILDERD_OUTDIR/"'), config=config(), key=KEY,
                      workdir=tmp_path / "w")
    assert (outcome.status, outcome.reason) == (Status.BAD, "not reproducible: split-b missing")
    assert [(a.name, a.status) for a in outcome.artifacts] == [("split-a", Status.GOOD), ("split-b", Status.BAD)]
    assert outcome.artifacts[1].sha256 is None
    assert outcome.diffoscope_text is None and outcome.attestation is None


def test_a_symlink_to_the_original_is_not_a_rebuild(fixture_repo, tmp_path):
    job = make_job(fixture_repo, "hello-script")
    outcome = rebuild(job, backend=script(tmp_path, 'ln -s "$1" "$REBUILDERD_OUTDIR/"'), config=config(), key=KEY,
                      workdir=tmp_path / "w")
    assert (outcome.status, outcome.reason) == (Status.BAD, "not reproducible: hello-script missing")


def substitute(tmp_path: Path, other: Path) -> Path:
    """A backend that 'rebuilds' the input as another package's bytes."""
    return script(tmp_path, f'cp "{other}" "$REBUILDERD_OUTDIR/$(basename "$1")"')


def test_diffoscope_output_over_its_cap_is_truncated_and_still_bad(fixture_repo, tmp_path):
    require_tool("diffoscope", "diffoscope-minimal")
    job = make_job(fixture_repo, "unrepro")
    outcome = rebuild(job, backend=substitute(tmp_path, fixture_repo.package("hello-script").path),
                      config=config(max_bytes=300), key=KEY, workdir=tmp_path / "w", kill_grace=0.5)
    assert outcome.status is Status.BAD and outcome.diffoscope_truncated
    assert outcome.reason.startswith("not reproducible: unrepro differs; diffoscope output truncated at 300 bytes")
    text = outcome.diffoscope_text.read_bytes()
    assert text.endswith(b"\n\nTRUNCATED DUE TO SIZE LIMIT: 300 bytes\n\n") and len(text) < 400


def test_without_diffoscope_a_bad_build_is_still_reported(fixture_repo, tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("sh", "cp", "basename"):
        (bindir / tool).symlink_to(shutil.which(tool))
    monkeypatch.setenv("PATH", str(bindir))  # the worker's PATH: no diffoscope
    job = make_job(fixture_repo, "unrepro")
    outcome = rebuild(job, backend=substitute(tmp_path, fixture_repo.package("hello-script").path),
                      config=config(), key=KEY, workdir=tmp_path / "w")
    assert outcome.status is Status.BAD
    assert outcome.reason == "not reproducible: unrepro differs; no diffoscope report: diffoscope not installed"
    assert outcome.diffoscope_text is None and outcome.diffoscope_html is None
    assert "install the Debian package 'diffoscope-minimal'" in log_text(outcome)


def test_a_separate_build_input_is_downloaded_and_attested_as_the_material(fixture_repo, tmp_path):
    # Debian's shape: the input is a .buildinfo next to the artifacts, with no published sha256.
    buildinfo = tmp_path / "hello_1.0_amd64.buildinfo"
    buildinfo.write_text("Format: 1.0\n")
    job = make_job(fixture_repo, "hello-script", input_url=buildinfo.as_uri())
    outcome = rebuild(job, backend=script(tmp_path, 'cp "$(dirname "$1")"/*.pkg.tar.zst "$REBUILDERD_OUTDIR/"'),
                      config=config(), key=KEY, workdir=tmp_path / "w")
    assert outcome.status is Status.GOOD, log_text(outcome)
    assert list(outcome.attestation["signed"]["materials"]) == [buildinfo.name]


def test_the_backend_gets_the_workers_environment(fixture_repo, tmp_path):
    seen = tmp_path / "env"
    backend = script(tmp_path, f'env > "{seen}"; cp "$1" "$REBUILDERD_OUTDIR/"')
    outcome = rebuild(make_job(fixture_repo, "hello-script"), backend=backend, config=config(), key=KEY,
                      workdir=tmp_path / "w", env={"REBUILDER_ARCHIVE": "/archive"})
    assert outcome.status is Status.GOOD
    env = dict(line.split("=", 1) for line in seen.read_text().splitlines() if "=" in line)
    assert env["REBUILDER_ARCHIVE"] == "/archive" and env["PATH"] == os.environ["PATH"]
    assert Path(env["REBUILDER_PYTHON"]).name.startswith("python")
    assert env["REBUILDERD_OUTDIR"].endswith("/tmp/out")
