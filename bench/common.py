"""What the claim and request benchmarks share: a SeaweedFS to run on, and queues of trivial jobs."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from jobs.core.model import Artifact, JobRow, job_id
from jobs.core.queue import update_queue
from jobs.core.store import Store
from tests.s3server import ACCESS_KEY, REGION, SECRET_KEY, SeaweedServer

BACKEND = "bench"
ARCH = "x86_64"
QUEUED_AT = datetime(2026, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class S3Target:
    """An S3-compatible server (SeaweedFS) and a bucket to make fresh stores in."""

    endpoint: str
    bucket: str

    def url(self) -> str:
        """A new, empty store: a fresh prefix in the bucket."""
        return f"s3://{self.bucket}/{uuid.uuid4().hex[:12]}?endpoint_url={self.endpoint}&region={REGION}"


def s3_env(endpoint: str) -> dict[str, str]:
    """The environment boto3 needs (here and in child processes) for the test server's credentials."""
    return {"AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
            "AWS_DEFAULT_REGION": REGION, "AWS_ENDPOINT_URL": endpoint}


@contextlib.contextmanager
def seaweedfs(endpoint: str | None = None) -> Iterator[S3Target]:
    """A SeaweedFS to benchmark on: the one at `endpoint` (credentials from the environment, else
    the test server's), or a `weed mini` started here on loopback and stopped afterwards."""
    saved = dict(os.environ)
    server = None
    tmp = None
    try:
        if endpoint is None:
            tmp = tempfile.TemporaryDirectory(prefix="bench-seaweed-")
            server = SeaweedServer(Path(tmp.name))
            server.start()
            endpoint = server.endpoint
        os.environ.update(s3_env(endpoint))
        import boto3  # after the environment is set

        bucket = f"bench-{uuid.uuid4().hex[:12]}"
        boto3.session.Session().client("s3", endpoint_url=endpoint, region_name=REGION).create_bucket(Bucket=bucket)
        yield S3Target(endpoint, bucket)
    finally:
        os.environ.clear()
        os.environ.update(saved)
        if server is not None:
            server.stop()
        if tmp is not None:
            tmp.cleanup()


def trivial_job(i: int, *, artifact: Path | None = None) -> JobRow:
    """Job number `i` of the "bench" backend; with `artifact`, that file (file://) is what it must rebuild."""
    if artifact is not None:
        data = artifact.read_bytes()
        url, sha, size, filename = artifact.as_uri(), hashlib.sha256(data).hexdigest(), len(data), artifact.name
    else:
        url, sha, size, filename = f"https://mirror.example/pkg{i:06d}-1.0-1-x86_64.pkg.tar.zst", "0" * 64, 1, None
    name = f"pkg{i:06d}"
    return JobRow(job_id=job_id(BACKEND, ARCH, url), backend=BACKEND, architecture=ARCH, input_url=url,
                  distro="benchdistro", releases=(None,), source_name=name, source_version="1.0-1",
                  artifacts=(Artifact(name, "1.0-1", ARCH, url, sha, size, filename),), priority=1,
                  queued_at=QUEUED_AT, not_before=None, attempt=1, retries=0)


def queue_jobs(store: Store, jobs: list[JobRow]) -> None:
    """Put `jobs` in the store's queue (one queue write, as a sync does)."""
    update_queue(store, lambda current: {**current, **{j.job_id: j for j in jobs}}, meta={"by": "benchmark"})


def rate(n: float, seconds: float) -> float:
    """`n` per second, rounded for printing."""
    return round(n / seconds, 1) if seconds > 0 else float("inf")
