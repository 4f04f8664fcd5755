"""Benchmark: claiming jobs — throughput and requests per claim on SeaweedFS, conflicts per job.

Not a test. `python -m bench.bench_claims [--smoke] [--s3-endpoint URL]` (without
an endpoint it starts its own `weed mini` on loopback). Three measurements:

1. **8 worker processes, 1,000 trivial jobs, SeaweedFS.** Each process runs the worker's
   own claim path (`read_queue` → `due_jobs` → `jobs.work.claim.claim_next`, i.e.
   `Worker.next_claim`, with `Leases` on the real store: it lists `claims/`, tries the jobs
   with no claim object, then reads the claims of the others) and releases each claim as
   done at once: no build, no result. The clock runs from a common start to the last claim;
   a worker stops as soon as every job is claimed (it does not go on scanning the drained
   queue). Figures: claims/s, S3 requests per claim (counted by `CountingStore` and checked
   against the HTTP requests boto3 sent), claim conflicts per job (create-only claims
   refused with 412), split into *finished* (the claim was already done: the queue still
   lists jobs that publish has not removed yet) and *held* (another worker held it), and
   claims only read (a claimed job looked at, not written).
2. **Baseline: the same with 1 worker process** (a fresh store, the same jobs): the
   throughput ratio is 8 workers ÷ 1 worker.
3. **100 simulated workers, 10,000 jobs**: 100 threads in one process, each running the same
   claim path against a local-directory store (real create-only files and CAS, fsync off)
   and holding each claim for a simulated 20 ms build before releasing it done, so about
   100 claims are live at any time. Threads share the GIL, but a held claim is a real
   object, which is what a contender runs into. The queue is kept in memory (the real
   worker's two queue GETs per claim are left out of this part); the listing of `claims/`
   is answered from the claims that exist, with their last write time, and counted as S3
   bills it (`bench.claims_store.ListedClaims`). Two variants:
   - *no publish*: the queue as the sync left it for the whole run; every finished job stays
     queued and keeps its claim. This is quadratic by nature: the k-th claim lists k claims
     (about 5 LIST pages a claim on average at 10,000 jobs) and a worker that finds no
     unclaimed job reads every claim before it waits. Its figures are per job at the stated
     size, not a steady state;
   - *a publish every 100 claims* (about what an hourly publish sees at 60,000 builds a
     month), which runs publish's own functions: the finished jobs' GOOD results go to the
     history, `apply_results` drops them from the queue and `prune` deletes the claims of
     builds the history holds once untouched for the lease TTL and skew (scaled: a publish
     interval stands for an hour).
   Target: ≤ 0.1 conflicts per job. Claims of jobs already finished (a worker that read the
   queue before a publish dropped the job and listed `claims/` after it pruned the claim)
   are counted too.

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

from bench.claims_store import ListedClaims
from bench.common import ARCH, BACKEND, S3Target, queue_jobs, rate, seaweedfs, trivial_job
from bench.counting import CountingStore, Counts, http_counter
from jobs.core.config import parse_rebuilder_config
from jobs.core.layout import CLAIM_KEY, CLAIMS, claim_notice_key
from jobs.core.lease import Lease, Leases, LeaseState
from jobs.core.model import JobRow, ResultRow, Status, build_id
from jobs.core.queue import read_queue
from jobs.core.store import LocalStore, Store, open_store
from jobs.publish.state.schedule import apply_results
from jobs.publish.state.update import prune
from jobs.work.claim import ClaimMemory, claim_next, due_jobs

WORKERS, JOBS = 8, 1_000
SIM_WORKERS, SIM_JOBS, SIM_HOLD, SIM_PUBLISH_EVERY = 100, 10_000, 0.02, 100
SIM_HOUR = 3600  # simulated seconds a publish interval stands for
LEASE_TTL, LEASE_SKEW = 600, 30  # the default [lease]
SMOKE = {"workers": 8, "jobs": 40, "sim_workers": 20, "sim_jobs": 300}
TARGET_CONFLICTS = 0.1


class _ConflictLeases(Leases):
    """The real `Leases`, also telling why claims were refused and how often one was only read.

    A read inside `acquire` follows a refused create (or, rarely, a refused takeover): its
    state says why (*finished*: released as done; *held*; *vanished*). A read outside it is
    the worker looking at a claim the listing showed before deciding whether to write (*probe*).
    """

    def __init__(self, store: Store, *, until: tuple[Any, int] | None = None, **kwargs: Any) -> None:
        super().__init__(store, **kwargs)
        self.why: Counter[str] = Counter()
        self.until = until
        self._lock = threading.Lock()
        self._acquiring = threading.local()

    def acquire(self, *args: Any, **kwargs: Any) -> Lease:
        self._acquiring.on = True
        try:
            return super().acquire(*args, **kwargs)
        finally:
            self._acquiring.on = False

    def read(self, key: str) -> tuple[LeaseState | None, str] | None:
        probe = not getattr(self._acquiring, "on", False)
        if probe and self.until is not None and self.until[0].value >= self.until[1]:
            raise _AllClaimed  # like `_until`: no worker goes on looking once every job is claimed
        current = super().read(key)
        state = current[0] if current else None
        if probe:
            kind = "probe"
        else:
            kind = "vanished" if current is None else "finished" if state and state.meta.get("done") else "held"
        with self._lock:
            self.why[kind] += 1
        return current


class _AllClaimed(Exception):
    """Every job has been claimed: stop looking (raised instead of reading another claim)."""


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
    leases = _ConflictLeases(store, until=(claimed, total), ttl=LEASE_TTL, clock_skew=LEASE_SKEW)
    rng = random.Random(seed)
    read_queue(store)  # connect and warm up; not counted
    store.reset()
    if sent is not None:
        sent.clear()
    ready.release()
    go.wait()
    started = time.time()
    claims, last = 0, None
    memory, queue = ClaimMemory(), None  # as `Worker.next_claim` keeps them
    while claimed.value < total:
        queue = read_queue(store, cached=queue)
        candidates = due_jobs(queue.jobs.values(), backends=[BACKEND], architectures=[ARCH],
                              now=datetime.now(timezone.utc), rng=rng)
        try:
            claim = claim_next(store, leases, name, _until(candidates, claimed, total), meta={"worker": name},
                               memory=memory)
        except _AllClaimed:
            break
        if claim is None:
            break
        memory.finished.add(claim.lease.key)
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
        "claim_reads_without_a_write_per_job": round(why["probe"] / max(claims, 1), 3),
        "claims_by_worker": sorted(r["claims"] for r in reports),
        "requests": counts.to_dict(),
        "http_requests": sum(http) if http else None,
        "http_matches_counted": (sum(http) == counts.total) if http else None,
    }


def idle_poll(url: str) -> dict[str, Any]:
    """One worker looking for work in a queue whose jobs are all finished but not yet published.

    Each finished job gets the done receipt a real worker stores as its result (written
    here uncounted: the claimers above release their claims without reporting). The first poll
    lists `claims/` and learns from the receipts; a second poll with the same memory (what the
    worker's next poll is, `Worker.next_claim`) knows every due job is finished.
    """
    inner = open_store(url)
    for info in list(inner.list(CLAIMS)):
        match = CLAIM_KEY.fullmatch(info.key)
        if match is not None:
            inner.put(claim_notice_key(match.group(1), int(match.group(2)), "done", "0" * 64), b"{}")
    store = CountingStore(inner)
    leases = Leases(store, ttl=LEASE_TTL, clock_skew=LEASE_SKEW)
    started = time.perf_counter()
    queue = read_queue(store)
    candidates = due_jobs(queue.jobs.values(), backends=[BACKEND], architectures=[ARCH],
                          now=datetime.now(timezone.utc))
    memory = ClaimMemory(probe=False)  # after a fruitless poll: listing first
    claim = claim_next(store, leases, "idle", candidates, memory=memory)
    assert claim is None, "the drained queue still had a claimable job"
    counts = store.counts()
    first = {"queued_finished_jobs": len(candidates), "requests": counts.total,
             "requests_by_class": counts.by_class(), "requests_per_finished_job": round(
                 counts.total / max(len(candidates), 1), 2), "seconds": round(time.perf_counter() - started, 2)}
    store.reset()
    queue = read_queue(store, cached=queue)
    assert claim_next(store, leases, "idle", candidates, memory=memory) is None
    again = store.counts()
    return first | {"next_poll_requests": again.total, "next_poll_requests_by_class": again.by_class()}


def simulated(workers: int, jobs: int, *, hold: float = SIM_HOLD, publish_every: int | None = None,
              seed: int = 7) -> dict[str, Any]:
    """`workers` threads claiming from `jobs` jobs on a local store (see the module docstring).

    Every `publish_every` finished jobs, a publish does what `rebuilder publish` does to the
    queue and to `claims/`, with its own functions: the finished jobs' GOOD results go into
    the history, `apply_results` drops them from the queue, and `prune` deletes the claims of
    builds the history holds once they have been untouched for the lease TTL and skew. A
    publish interval stands for an hour (`SIM_HOUR`), so that settling time is the same
    share of the interval it is of an hour (10.5 minutes): the claims released in the last
    sixth of an interval wait for the next publish, as they would.
    """
    root = Path(tempfile.mkdtemp(prefix="bench-claims-sim-"))
    try:
        store = ListedClaims(LocalStore(root, fsync=False))
        done = _Count()  # distinct jobs finished
        leases = _ConflictLeases(store, until=(done, jobs), ttl=LEASE_TTL, clock_skew=LEASE_SKEW)
        schedule = parse_rebuilder_config({}).schedule
        shared: dict[str, dict[str, JobRow]] = {"queue": {j.job_id: j for j in (trivial_job(i) for i in range(jobs))}}
        finished: dict[str, JobRow] = {}  # job id -> job, finished (released done) at least once
        history: set[str] = set()  # build ids compacted by the simulated publishes
        lock = threading.Lock()
        again = _Count()  # claims of a job already finished (a rebuild: the queue and the claim were gone)
        publishes, pruned, last_publish = _Count(), _Count(), [0.0]

        def publish() -> None:  # called with `lock` held
            now = datetime.now(timezone.utc)
            rows = [_good_result(job, now) for job in finished.values()
                    if build_id(job.job_id, job.attempt) not in history]
            history.update(r.build_id for r in rows)
            shared["queue"], _ = apply_results(shared["queue"], rows, schedule, now)
            interval, last_publish[0] = time.perf_counter() - last_publish[0], time.perf_counter()
            # publish's own listing and deletes are not counted: the figures are the workers'
            pruned.value += prune(store.uncounted(), [], history, now=now,  # type: ignore[arg-type]
                                  settle=interval * (LEASE_TTL + LEASE_SKEW) / SIM_HOUR)
            publishes.value += 1

        def work(i: int) -> None:
            rng = random.Random(seed * 1000 + i)
            while done.value < jobs:
                candidates = due_jobs(shared["queue"].values(), backends=[BACKEND], architectures=[ARCH],
                                      now=datetime.now(timezone.utc), rng=rng)
                try:
                    claim = claim_next(store, leases, f"sim{i}", _until(candidates, done, jobs))
                except _AllClaimed:
                    return
                if claim is None:
                    if done.value >= jobs:
                        return
                    time.sleep(hold)  # everything left is held: wait, as an idle worker does
                    continue
                time.sleep(hold)
                leases.release(claim.lease, {"done": True})
                with lock:
                    if claim.job.job_id in finished:
                        again.value += 1
                        continue
                    finished[claim.job.job_id] = claim.job
                    done.value += 1
                    if publish_every and done.value % publish_every == 0:
                        publish()

        errors: list[BaseException] = []

        def guarded(i: int) -> None:
            try:
                work(i)
            except BaseException as exc:  # stop every thread: a broken simulation must not hang
                errors.append(exc)
                done.value = jobs
                raise

        started = last_publish[0] = time.perf_counter()
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
        claims = done.value + again.value
        per = lambda n: round(n / max(done.value, 1), 3)  # noqa: E731
        return {"workers": workers, "jobs": jobs, "claims": claims, "claims_of_finished_jobs": again.value,
                "hold_s": hold, "publish_every_claims": publish_every, "publishes": publishes.value,
                "claims_pruned": pruned.value, "claims_left": len(store.claim_keys()),
                "seconds": round(seconds, 1), "claims_per_s": rate(claims, seconds),
                "conflicts_per_job": per(refused),
                "finished_conflicts_per_job": per(leases.why["finished"]),
                "held_conflicts_per_job": per(leases.why["held"]),
                "claim_reads_without_a_write_per_job": per(leases.why["probe"]),
                "list_requests_per_claim": round(counts.requests.get("list", 0) / max(claims, 1), 2),
                "claims_listed_per_claim": round(counts.listed.get("claims/", 0) / max(claims, 1), 1),
                "requests_per_claim_without_queue_reads": round(counts.total / max(claims, 1), 2),
                "requests_by_operation": dict(sorted(counts.requests.items())),
                "target_conflicts_per_job": TARGET_CONFLICTS,
                "meets_target": refused / max(done.value, 1) <= TARGET_CONFLICTS}
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _good_result(job: JobRow, now: datetime) -> ResultRow:
    """The GOOD result a simulated build reports (what publish compacts and schedules)."""
    return ResultRow(build_id=build_id(job.job_id, job.attempt), job_id=job.job_id, attempt=job.attempt,
                     distro=job.distro, architecture=job.architecture, source_name=job.source_name,
                     source_version=job.source_version, status=Status.GOOD, reason=None, artifacts=(),
                     worker_key_id="sim", worker_name=None, started_at=now, built_at=now, log_key=None,
                     diffoscope_key=None, attestation_key=None)


class _Count:
    """A plain counter with the `.value` of a multiprocessing Value (threads change it under a lock)."""

    def __init__(self) -> None:
        self.value = 0


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
    _say(f"{published['conflicts_per_job']} conflicts/job")
    return {
        "workers_8": many, "worker_1": one, "idle_poll": idle,
        "throughput_ratio": round(many["claims_per_s"] / one["claims_per_s"], 2),
        "simulated_no_publish": drain, "simulated_with_publish": published,
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
