"""Benchmark: claiming jobs — throughput and requests per claim on SeaweedFS, conflicts per job.

Not a test. `python -m tests.benchmarks.bench_claims [--smoke] [--s3-endpoint URL]` (without
an endpoint it starts its own `weed mini` on loopback). Three measurements:

1. **8 worker processes, 1,000 trivial jobs, SeaweedFS.** Each process runs the worker's
   own claim path (`read_queue` → `due_jobs` → `jobs.work.claim.claim_next`, i.e.
   `Worker.next_claim`, with `Leases` on the real store) and releases each claim as done at
   once: no build, no result. The clock runs from a common start to the last claim; a
   worker stops as soon as every job is claimed (it does not go on scanning the drained
   queue). Figures: claims/s, S3 requests per claim (counted by `CountingStore` and checked
   against the HTTP requests boto3 sent), claim conflicts per job (create-only claims
   refused with 412), split into *finished* (the claim was already done: the queue still
   lists jobs that publish has not removed yet) and *held* (another worker held it).
2. **Baseline: the same with 1 worker process** (a fresh store, the same jobs): the
   throughput ratio is 8 workers ÷ 1 worker.
3. **100 simulated workers, 10,000 jobs**: 100 threads in one process, each running the same
   claim path against a local-directory store (real create-only files and CAS, fsync off)
   and holding each claim for a simulated 20 ms build before releasing it done, so about
   100 claims are live at any time. Threads share the GIL, but a held claim is a real
   object, which is what a contender runs into. The queue is read once and kept in memory
   (it does not change; the real worker's two queue GETs per claim are left out of this
   part). Two variants: the queue as the sync left it for the whole run (no publish: every
   finished job stays listed), and a publish every 100 claims that drops finished jobs from
   the queue (about what an hourly publish sees at 60,000 builds a month). Target: ≤ 0.1
   conflicts per job. A third variant simulates a proposed change (not the current code):
   workers list `claims/` and skip claimed jobs, publish deletes the claims of dropped jobs.

An idle poll is measured too: one worker looking for work in the drained 1,000-job queue
before publish has removed anything, which is what every idle worker pays every
`idle_delay` seconds.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from jobs.core.layout import claim_key
from jobs.core.lease import Leases, LeaseState
from jobs.core.model import JobRow
from jobs.core.queue import read_queue
from jobs.core.store import LocalStore, ObjectInfo, Store, open_store
from jobs.work.claim import claim_next, due_jobs
from tests.benchmarks.common import ARCH, BACKEND, S3Target, queue_jobs, rate, seaweedfs, trivial_job
from tests.benchmarks.counting import CountingStore, Counts, http_counter

WORKERS, JOBS = 8, 1_000
SIM_WORKERS, SIM_JOBS, SIM_HOLD, SIM_PUBLISH_EVERY = 100, 10_000, 0.02, 100
SMOKE = {"workers": 8, "jobs": 40, "sim_workers": 20, "sim_jobs": 300}
TARGET_CONFLICTS = 0.1


class _ConflictLeases(Leases):
    """The real `Leases`, also telling why a claim was refused (read right after a refused create)."""

    def __init__(self, store: Store, **kwargs: Any) -> None:
        super().__init__(store, **kwargs)
        self.why: Counter[str] = Counter()
        self._lock = threading.Lock()

    def read(self, key: str) -> tuple[LeaseState | None, str] | None:
        current = super().read(key)
        state = current[0] if current else None
        kind = "vanished" if current is None else "finished" if state and state.meta.get("done") else "held"
        with self._lock:
            self.why[kind] += 1
        return current


def _until(candidates: Iterable[JobRow], claimed: Any, total: int) -> Iterator[JobRow]:
    """The candidates, until every job has been claimed by someone."""
    for job in candidates:
        if claimed.value >= total:
            return
        yield job


def _claimer(url: str, name: str, total: int, seed: int, claimed: Any, ready: Any, go: Any, out: Any) -> None:
    """One worker process: claim and release (done) until every job is claimed."""
    store = CountingStore(open_store(url))
    sent = http_counter(store)
    leases = _ConflictLeases(store, ttl=600, clock_skew=30)
    rng = random.Random(seed)
    read_queue(store)  # connect and warm up; not counted
    store.reset()
    if sent is not None:
        sent.clear()
    ready.release()
    go.wait()
    started = time.time()
    claims, last = 0, None
    while claimed.value < total:
        queue = read_queue(store)
        candidates = due_jobs(queue.jobs.values(), backends=[BACKEND], architectures=[ARCH],
                              now=datetime.now(timezone.utc), rng=rng)
        claim = claim_next(store, leases, name, _until(candidates, claimed, total),  # type: ignore[arg-type]
                           meta={"worker": name})
        if claim is None:
            break
        leases.release(claim.lease, {"done": True})
        with claimed.get_lock():
            claimed.value += 1
        claims, last = claims + 1, time.time()
    out.put({"name": name, "claims": claims, "started": started, "last": last,
             "counts": store.counts().to_dict(), "why": dict(leases.why),
             "http": sum(sent.values()) if sent is not None else None})


def claim_run(url: str, workers: int, jobs: int) -> dict[str, Any]:
    """`workers` processes draining a fresh queue of `jobs` trivial jobs in the store at `url`."""
    queue_jobs(open_store(url), [trivial_job(i) for i in range(jobs)])
    # fork: a child starts in milliseconds and opens its own store (no client crosses the fork)
    ctx = multiprocessing.get_context("fork")
    claimed, ready, go, out = ctx.Value("i", 0), ctx.Semaphore(0), ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_claimer, args=(url, f"w{i}", jobs, i, claimed, ready, go, out), daemon=True)
             for i in range(workers)]
    for p in procs:
        p.start()
    for _ in procs:
        if not ready.acquire(timeout=300):
            raise RuntimeError("a claim worker did not start")
    go.set()
    reports = [out.get(timeout=1800) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    counts = sum((Counts.from_dict(r["counts"]) for r in reports), Counts())
    why = sum((Counter(r["why"]) for r in reports), Counter())
    claims = sum(r["claims"] for r in reports)
    seconds = max(r["last"] or r["started"] for r in reports) - min(r["started"] for r in reports)
    refused = counts.refused.get("put_if_absent", 0)
    http = [r["http"] for r in reports if r["http"] is not None]
    return {
        "workers": workers, "jobs": jobs, "claims": claims, "seconds": round(seconds, 2),
        "claims_per_s": rate(claims, seconds),
        "requests_per_claim": round(counts.total / max(claims, 1), 2),
        "requests_per_claim_by_operation": {op: round(n / max(claims, 1), 2)
                                            for op, n in sorted(counts.requests.items())},
        "kib_read_per_claim": round(counts.bytes_read / 1024 / max(claims, 1), 1),
        "conflicts_per_job": round(refused / max(claims, 1), 3),
        "finished_conflicts_per_job": round(why["finished"] / max(claims, 1), 3),
        "held_conflicts_per_job": round(why["held"] / max(claims, 1), 3),
        "claims_by_worker": sorted(r["claims"] for r in reports),
        "requests": counts.to_dict(),
        "http_requests": sum(http) if http else None,
        "http_matches_counted": (sum(http) == counts.total) if http else None,
    }


def idle_poll(url: str) -> dict[str, Any]:
    """One worker looking for work in a queue whose jobs are all finished but not yet published."""
    store = CountingStore(open_store(url))
    leases = Leases(store, ttl=600, clock_skew=30)
    started = time.perf_counter()
    queue = read_queue(store)
    candidates = due_jobs(queue.jobs.values(), backends=[BACKEND], architectures=[ARCH],
                          now=datetime.now(timezone.utc))
    claim = claim_next(store, leases, "idle", candidates)
    assert claim is None, "the drained queue still had a claimable job"
    counts = store.counts()
    return {"queued_finished_jobs": len(candidates), "requests": counts.total,
            "requests_by_class": counts.by_class(), "requests_per_finished_job": round(
                counts.total / max(len(candidates), 1), 2), "seconds": round(time.perf_counter() - started, 2)}


def simulated(workers: int, jobs: int, *, hold: float = SIM_HOLD, publish_every: int | None = None,
              listing: bool = False, seed: int = 7) -> dict[str, Any]:
    """`workers` threads claiming from `jobs` jobs on a local store (see the module docstring).

    `listing` simulates a proposed change, not the current code: a worker lists `claims/`
    before it claims and skips every job with a claim object, and publish deletes the claims
    of the jobs it dropped from the queue one publish later (so a worker acting on the queue
    it read just before still finds them). The listing is answered from the claim keys
    written (`_ListedClaims`), as S3 would list them.
    """
    root = Path(tempfile.mkdtemp(prefix="bench-claims-sim-"))
    try:
        store = (_ListedClaims if listing else CountingStore)(LocalStore(root, fsync=False))
        leases = _ConflictLeases(store, ttl=600, clock_skew=30)
        rows = [trivial_job(i) for i in range(jobs)]
        shared = {"queue": rows}
        finished: set[str] = set()
        lock = threading.Lock()
        claimed = _Count()
        publishes = [0]
        dropped: list[str] = []  # dropped from the queue by the last publish; their claims go next time

        def work(i: int) -> None:
            rng = random.Random(seed * 1000 + i)
            while claimed.value < jobs:
                candidates = due_jobs(shared["queue"], backends=[BACKEND], architectures=[ARCH],
                                      now=datetime.now(timezone.utc), rng=rng)
                if listing:
                    taken = _claim_keys(store)
                    candidates = [j for j in candidates if claim_key(j.job_id, j.attempt) not in taken]
                claim = claim_next(store, leases, f"sim{i}", _until(candidates, claimed, jobs))  # type: ignore[arg-type]
                if claim is None:
                    if claimed.value >= jobs:
                        return
                    time.sleep(hold)  # everything left is held: wait, as an idle worker does
                    continue
                time.sleep(hold)
                leases.release(claim.lease, {"done": True})
                with lock:
                    finished.add(claim.job.job_id)
                    claimed.value += 1
                    if publish_every and claimed.value % publish_every == 0:
                        if listing:
                            for job_id in dropped:
                                store.delete(claim_key(job_id, 1))
                        dropped[:] = [j.job_id for j in shared["queue"] if j.job_id in finished]
                        shared["queue"] = [j for j in shared["queue"] if j.job_id not in finished]
                        publishes[0] += 1

        errors: list[BaseException] = []

        def guarded(i: int) -> None:
            try:
                work(i)
            except BaseException as exc:  # stop every thread: a broken simulation must not hang
                errors.append(exc)
                claimed.value = jobs
                raise

        started = time.perf_counter()
        threads = [threading.Thread(target=guarded, args=(i,), daemon=True) for i in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seconds = time.perf_counter() - started
        if errors:
            raise RuntimeError("a simulated worker failed") from errors[0]
        counts = store.counts()
        refused = counts.refused.get("put_if_absent", 0)
        return {"workers": workers, "jobs": jobs, "claims": claimed.value, "hold_s": hold,
                "publish_every_claims": publish_every, "publishes": publishes[0], "listing": listing,
                "seconds": round(seconds, 1),
                "conflicts_per_job": round(refused / max(claimed.value, 1), 3),
                "finished_conflicts_per_job": round(leases.why["finished"] / max(claimed.value, 1), 3),
                "held_conflicts_per_job": round(leases.why["held"] / max(claimed.value, 1), 3),
                "requests_per_claim_without_queue_reads": round(counts.total / max(claimed.value, 1), 2),
                "requests_by_operation": dict(sorted(counts.requests.items())),
                "target_conflicts_per_job": TARGET_CONFLICTS,
                "meets_target": refused / max(claimed.value, 1) <= TARGET_CONFLICTS}
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _claim_keys(store: Store) -> set[str]:
    """Every key under claims/."""
    return {info.key for info in store.list("claims/")}


class _ListedClaims(CountingStore):
    """A counting store that answers `list("claims/")` from the claim keys it holds, as S3 would.

    The local store walks one directory per job ever claimed (deleting a claim leaves its
    directory), so a real walk would cost O(jobs) per listing here, where S3 pages through the
    keys that exist; and it fails when a key is deleted during the walk (reported as a bug).
    Requests are counted as S3 bills them: one per 1,000 keys.
    """

    def __init__(self, inner: Store) -> None:
        super().__init__(inner)
        self._claims: set[str] = set()
        self._claims_lock = threading.Lock()

    def put_if_absent(self, key: str, body: Any, **kwargs: Any) -> str:
        etag = super().put_if_absent(key, body, **kwargs)
        if key.startswith("claims/"):
            with self._claims_lock:
                self._claims.add(key)
        return etag

    def delete(self, key: str) -> None:
        super().delete(key)
        with self._claims_lock:
            self._claims.discard(key)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        if prefix != "claims/":
            yield from super().list(prefix)
            return
        with self._claims_lock:
            keys = sorted(self._claims)
        self._count("list", prefix, max(1, -(-len(keys) // 1000)), group=prefix)
        for key in keys:
            yield ObjectInfo(key=key, size=0)


class _Count:
    """A plain counter with the `.value` of a multiprocessing Value (threads share it under a lock)."""

    value = 0


def run(smoke: bool = False, *, s3: S3Target | None = None, endpoint: str | None = None) -> dict[str, Any]:
    """Every figure (see the module docstring); `s3` or `endpoint`: a SeaweedFS to use."""
    workers, jobs = (SMOKE["workers"], SMOKE["jobs"]) if smoke else (WORKERS, JOBS)
    sim_workers, sim_jobs = (SMOKE["sim_workers"], SMOKE["sim_jobs"]) if smoke else (SIM_WORKERS, SIM_JOBS)
    if s3 is None:
        with seaweedfs(endpoint) as target:
            return run(smoke, s3=target)
    _say(f"{workers} claim workers, {jobs} jobs on SeaweedFS")
    load = [round(x, 2) for x in os.getloadavg()]
    url = s3.url()
    many = claim_run(url, workers, jobs)
    _say(f"{many['claims_per_s']} claims/s; idle poll of the drained queue")
    idle = idle_poll(url)
    _say("1 claim worker (baseline)")
    one = claim_run(s3.url(), 1, jobs)
    _say(f"{one['claims_per_s']} claims/s; {sim_workers} simulated workers on {sim_jobs} jobs, no publish")
    drain = simulated(sim_workers, sim_jobs)
    _say(f"{drain['conflicts_per_job']} conflicts/job; with a publish every {SIM_PUBLISH_EVERY} claims")
    published = simulated(sim_workers, sim_jobs, publish_every=SIM_PUBLISH_EVERY)
    _say(f"{published['conflicts_per_job']} conflicts/job; the proposed claim listing")
    proposal = simulated(sim_workers, sim_jobs, publish_every=SIM_PUBLISH_EVERY, listing=True)
    return {
        "workers_8": many, "worker_1": one, "idle_poll": idle,
        "throughput_ratio": round(many["claims_per_s"] / one["claims_per_s"], 2),
        "simulated_no_publish": drain, "simulated_with_publish": published,
        "proposal_list_claims_then_claim": proposal,
        "target_conflicts_per_job": TARGET_CONFLICTS,
        "store": "SeaweedFS (weed mini) on loopback for 1-2; a local directory store for 3",
        "machine": {"cpus": os.cpu_count(), "loadavg_at_start": load,
                    "loadavg_at_end": [round(x, 2) for x in os.getloadavg()]},
    }


def _say(text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} claims: {text}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Print the figures as JSON, then the headline ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="40 jobs; 20 simulated workers on 300 jobs")
    parser.add_argument("--s3-endpoint", help="use this S3 server (default: start weed mini)")
    args = parser.parse_args(argv)
    figures = run(args.smoke, endpoint=args.s3_endpoint)
    print(json.dumps(figures, indent=2))
    print(f"claims/s, 8 workers / 1 worker: {figures['throughput_ratio']} "
          f"({figures['workers_8']['claims_per_s']} vs {figures['worker_1']['claims_per_s']})")
    for key in ("simulated_no_publish", "simulated_with_publish"):
        f = figures[key]
        print(f"{key}: {f['conflicts_per_job']} conflicts per job (target <= {TARGET_CONFLICTS})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
