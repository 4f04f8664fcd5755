"""The feed contract (jobs.core.feeds): what publish writes is what rebuildctl reads back, field for field."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from jobs.core import feeds
from jobs.core.feeds import (
    FILE_NAMES,
    CurrentJob,
    DashboardBuild,
    FeedInvalid,
    PackageRecord,
    QueuedJob,
    Running,
    Worker,
)
from jobs.core.record import fields

T = datetime(2026, 5, 1, 10, 0, 0, 123000, tzinfo=timezone.utc)


def _job(running: Running | None, releases: tuple[str | None, ...] = ("sid", "trixie")) -> QueuedJob:
    return QueuedJob("j1", 2, 1, T + timedelta(hours=1), T, "debian", releases, "main", "amd64", "hello", "1.0-1",
                     "debian", "https://deb.example/hello_1.0-1.buildinfo",
                     (("hello", "1.0-1", "https://deb.example/hello.deb", "amd64"),), running)


@pytest.mark.parametrize("job", [
    _job(None),
    _job(Running("w1", "ab" * 32, T, T + timedelta(seconds=30), T + timedelta(minutes=10))),
    _job(Running(None, "cd" * 32, T, None, None), releases=(None,)),
    _job(None, releases=()),
])
def test_a_queued_job_reads_back_as_written(job: QueuedJob) -> None:
    doc = {"generated_at": "2026-05-01T10:00:00Z", "jobs": [job.json()]}
    feeds.check(doc, feeds.QUEUE, url="queue.json", what="queue")
    back = QueuedJob.from_json(doc["jobs"][0])
    assert back == job and back.raw is doc["jobs"][0]
    assert back.release == (job.releases[0] if job.releases else None)


def test_a_queued_job_of_an_older_site_reads_with_defaults() -> None:
    old = {"job_id": "j1", "attempt": 1, "priority": 0, "not_before": None, "queued_at": "2026-05-01T10:00:00Z",
           "distro": "archlinux", "release": None, "component": "core", "architecture": "x86_64",
           "source_name": "zstd", "source_version": "1.5.6-1", "artifacts": [{"name": "zstd"}], "running": None}
    feeds.check({"generated_at": "2026-05-01T10:00:00Z", "jobs": [old]}, feeds.QUEUE, url="q", what="queue")
    job = QueuedJob.from_json(old)
    assert (job.releases, job.backend, job.input_url, job.artifacts) == ((None,), "", None, (("zstd", None, None, None),))
    assert job.due(T) and job.running_for(T) is None


@pytest.mark.parametrize("worker", [
    Worker("ab" * 32, "w1", 1, "authorized", T, 7),
    Worker("cd" * 32, None, None, "untrusted", None, 0,
           CurrentJob("j1", 2, "hello", "1.0-1", "debian", "amd64", T)),
])
def test_a_worker_reads_back_as_written(worker: Worker) -> None:
    doc = {"generated_at": "2026-05-01T10:00:00Z", "workers": [worker.json()]}
    feeds.check(doc, feeds.WORKERS, url="workers.json", what="workers")
    assert Worker.from_json(doc["workers"][0]) == worker


def test_a_feed_of_the_wrong_shape_is_one_clear_error() -> None:
    job = _job(None).json()
    job["attempt"] = "2"
    with pytest.raises(FeedInvalid, match=r"jobs\[0\]\.attempt is text, not a number"):
        feeds.check({"generated_at": "x", "jobs": [job]}, feeds.QUEUE, url="queue.json", what="queue")


def _package(**changes: object) -> PackageRecord:
    fields = dict(distro="debian", release="trixie", component="main", architecture="amd64", name="hello",
                  version="1.0-1", artifact_architecture="amd64", artifact_url="https://deb.example/hello.deb",
                  artifact_sha256="ab" * 32, source_name="hello", source_version="1.0-1", status="BAD",
                  build_id="j1-2", v0_build_id=7, built_at=T, has_diffoscope=True, has_attestation=False,
                  reason="differs", failure_class="not-reproducible", worker_name="w1", maintainers=("a@example.org",),
                  description="says hello",
                  page="packages/debian/hello.html",
                  files={"log": "api/v0/builds/7/log", "diffoscope": "api/v0/builds/7/diffoscope",
                         "diffoscope_html": None, "attestation": None})
    return PackageRecord(**{**fields, **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize("record", [
    _package(),
    _package(release=None, component=None, artifact_url=None, build_id=None, v0_build_id=None, built_at=None,
             reason=None, failure_class=None, worker_name=None, maintainers=(), description=None, page=None,
             status="UNKWN",
             files=dict.fromkeys(FILE_NAMES)),
])
def test_a_package_reads_back_as_written(record: PackageRecord) -> None:
    doc = {"packages": [record.json()]}
    for spec in (feeds.LIST, feeds.PACKAGE_FEED):
        feeds.check(doc, spec, url="list.json", what="list")
    assert PackageRecord.from_json(doc["packages"][0]) == record
    assert list(record.json()) == list(fields(PackageRecord))  # the feed's key order


def test_a_package_of_an_older_site_reads_with_defaults() -> None:
    old = {"distro": "archlinux", "release": None, "component": "core", "architecture": "x86_64", "status": "GOOD",
           "name": "zstd", "version": "1.5.6-1", "artifact_architecture": "x86_64", "artifact_url": None,
           "build_id": None, "maintainers": "not a list"}
    feeds.check({"packages": [old]}, feeds.LIST, url="l", what="list")
    record = PackageRecord.from_json(old)
    assert (record.files, record.maintainers, record.built_at, record.has_attestation) == ({}, (), None, False)
    with pytest.raises(ValueError):  # rebuildctl names the feed (tests/ctl)
        PackageRecord.from_json({**old, "built_at": "yesterday"})


@pytest.mark.parametrize("build", [
    DashboardBuild(3, "hello", "1.0-1", "debian", "main", "amd64", "https://deb.example/hello.dsc",
                   (("hello", "1.0-1", "https://deb.example/hello.deb"),), T, 1, T + timedelta(seconds=5),
                   T + timedelta(seconds=65)),
    DashboardBuild(1, "zstd", "1.5.6-1", "archlinux", "", "x86_64", None, (), None, None, None, None),
])
def test_a_dashboard_build_reads_back_as_written(build: DashboardBuild) -> None:
    doc = {"active_builds": [build.json()]}
    feeds.check(doc, feeds.DASHBOARD, url="api/v0/dashboard", what="dashboard")
    assert DashboardBuild.from_json(doc["active_builds"][0]) == build
    assert build.json()["started_at"] == feeds.naive(build.started_at)  # v0: UTC, no zone
