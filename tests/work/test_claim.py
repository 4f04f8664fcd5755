"""Claim order: unclaimed candidates before those whose claim object exists."""

from __future__ import annotations

from datetime import datetime, timezone

from jobs.core.layout import claim_key
from jobs.core.lease import Leases
from jobs.core.model import Artifact, JobRow, Priority, job_id
from jobs.work.claim import claim_next
from tests.faults import FaultyStore

NOW = datetime(2026, 5, 1, 12, tzinfo=timezone.utc)


def job(name: str) -> JobRow:
    url = f"file:///in/{name}.BUILDINFO"
    return JobRow(job_id=job_id("archlinux", "x86_64", url), backend="archlinux", architecture="x86_64",
                  input_url=url, distro="archlinux", releases=(None,), source_name=name, source_version="1-1",
                  artifacts=(Artifact(name, "1-1", f"file:///out/{name}.pkg.tar.zst", "0" * 64),),
                  priority=Priority.NEW, queued_at=NOW, not_before=None, attempt=1, retries=0)


def test_candidates_with_a_claim_object_are_tried_last(store):
    running, finished, free = job("running"), job("finished"), job("free")
    leases = Leases(store, ttl=600, clock_skew=30)
    leases.acquire(claim_key(running.job_id, 1), "other-worker")
    done = leases.acquire(claim_key(finished.job_id, 1), "other-worker")
    leases.release(done, {"done": True})
    watched = FaultyStore(store)
    claim = claim_next(watched, Leases(watched, ttl=600, clock_skew=30), "me", [running, finished, free])
    assert claim is not None and claim.job.source_name == "free"
    assert [key for _, key in watched.log] == [claim_key(free.job_id, 1)]  # no refused create on the others
    # with nothing unclaimed left, the claimed ones are still tried: finished and running are skipped
    assert claim_next(watched, Leases(watched, ttl=600, clock_skew=30), "me", [running, finished]) is None
