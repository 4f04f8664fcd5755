"""Claim order and cost: unclaimed candidates first, claimed ones read before any write."""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timezone

from jobs.core.layout import claim_key
from jobs.core.lease import Leases
from jobs.core.model import Artifact, JobRow, Priority, job_id
from jobs.core.store import ObjectInfo, Store
from jobs.work.claim import claim_next, due_jobs
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
    # With nothing unclaimed left, the claimed ones are still looked at: finished and running are skipped.
    assert claim_next(watched, Leases(watched, ttl=600, clock_skew=30), "me", [running, finished]) is None


def test_a_poll_that_finds_nothing_claimable_reads_each_claim_once_and_writes_nothing(store):
    running, finished = job("running"), job("finished")
    leases = Leases(store, ttl=600, clock_skew=30)
    leases.acquire(claim_key(running.job_id, 1), "other-worker")
    leases.release(leases.acquire(claim_key(finished.job_id, 1), "other-worker"), {"done": True})
    watched = FaultyStore(store)
    assert claim_next(watched, Leases(watched, ttl=600, clock_skew=30), "me", [running, finished]) is None
    assert watched.log == []  # not one write, so not one refused create: no conflict
    assert (watched.ops["list"], watched.ops["get"]) == (1, 2)


def test_a_released_claim_is_taken_over_at_once(store):
    stopped = job("stopped")
    leases = Leases(store, ttl=600, clock_skew=30)
    leases.release(leases.acquire(claim_key(stopped.job_id, 1), "stopped-worker"))  # not done: SIGTERM
    claim = claim_next(store, leases, "me", [stopped])
    assert claim is not None and claim.lease.state.holder == "me" and claim.lease.state.generation == 2


def test_an_expired_claim_is_taken_over_and_a_live_one_is_not(store):
    dead = job("dead")
    holder = Leases(store, ttl=60, clock_skew=5, clock=lambda: NOW.timestamp())
    holder.acquire(claim_key(dead.job_id, 1), "crashed-worker")
    before = Leases(store, ttl=60, clock_skew=5, clock=lambda: NOW.timestamp() + 64)  # within the skew allowance
    assert claim_next(store, before, "me", [dead]) is None
    after = Leases(store, ttl=60, clock_skew=5, clock=lambda: NOW.timestamp() + 66)
    claim = claim_next(store, after, "me", [dead])
    assert claim is not None and claim.lease.state.generation == 2


class _StaleListing:
    """A store whose listing of claims/ still shows `ghosts` (deleted since, e.g. pruned by publish)."""

    def __init__(self, store: Store, ghosts: list[str]) -> None:
        self.store, self.ghosts = store, ghosts

    def __getattr__(self, name: str):
        return getattr(self.store, name)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        yield from self.store.list(prefix)
        yield from (ObjectInfo(key=key, size=0) for key in self.ghosts)


class _LateListing:
    """A store whose listing of claims/ misses `hidden` (claimed since the listing was taken)."""

    def __init__(self, store: Store, hidden: list[str]) -> None:
        self.store, self.hidden = store, hidden

    def __getattr__(self, name: str):
        return getattr(self.store, name)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return (info for info in self.store.list(prefix) if info.key not in self.hidden)


def test_after_losing_a_race_the_next_candidates_are_read_before_they_are_written(store):
    """The listing missed two claims made since: the first costs one refused create, the
    second only a read, and the free job is claimed."""
    first, second, free = job("first"), job("second"), job("free")
    leases = Leases(store, ttl=600, clock_skew=30)
    keys = [claim_key(j.job_id, 1) for j in (first, second, free)]
    leases.acquire(keys[0], "faster-worker")
    leases.release(leases.acquire(keys[1], "faster-worker"), {"done": True})
    watched = FaultyStore(_LateListing(store, keys[:2]))
    claim = claim_next(watched, Leases(watched, ttl=600, clock_skew=30), "me", [first, second, free])  # type: ignore[arg-type]
    assert claim is not None and claim.job.source_name == "free"
    assert watched.log == [("put_if_absent", keys[0]), ("put_if_absent", keys[2])]
    assert len(watched.landed) == 1  # the first create was refused; the second job was only read


def test_a_claim_gone_since_the_listing_is_created(store):
    gone = job("gone")
    stale = _StaleListing(store, [claim_key(gone.job_id, 1)])
    claim = claim_next(stale, Leases(stale, ttl=600, clock_skew=30), "me", [gone])  # type: ignore[arg-type]
    assert claim is not None and claim.lease.state.generation == 1


def test_racing_workers_claim_every_job_exactly_once(store):
    """Eight workers, each in its own random order (`due_jobs`), claim and finish 40 jobs until
    none is claimable: every job is claimed exactly once."""
    jobs = [job(f"pkg{i:02d}") for i in range(40)]
    claimed: Counter[str] = Counter()
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            leases, rng = Leases(store, ttl=600, clock_skew=30), random.Random(i)
            while True:
                candidates = due_jobs(jobs, backends=["archlinux"], architectures=["x86_64"],
                                      now=NOW, rng=rng)
                claim = claim_next(store, leases, f"w{i}", candidates)
                if claim is None:
                    return
                with lock:
                    claimed[claim.job.job_id] += 1
                leases.release(claim.lease, {"done": True})
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert claimed == Counter({j.job_id: 1 for j in jobs})


def test_workers_start_from_different_jobs():
    """`due_jobs` shuffles within a priority with each worker's own generator, so workers that
    poll together start from different unclaimed jobs instead of racing for one."""
    jobs = [job(f"pkg{i:02d}") for i in range(200)]
    firsts = {due_jobs(jobs, backends=["archlinux"], architectures=["x86_64"], now=NOW,
                       rng=random.Random(seed))[0].job_id for seed in range(20)}
    assert len(firsts) >= 15
