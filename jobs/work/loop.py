"""`rebuilder work`: claim due jobs, rebuild them, upload signed results, repeat.

Many workers on many machines share one store and nothing else. While a build runs, its
claim is renewed every third of the lease TTL; if a renewal is refused the job was taken
over: the build is killed (its whole process group) and nothing is reported. On SIGTERM or
SIGINT the worker stops the build, releases its claim so another worker can start at once,
and exits. With nothing to do it sleeps `idle_delay` seconds (with jitter) and looks again.
"""

from __future__ import annotations

import logging
import random
import shutil
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from jobs.core.config import RebuilderConfig, WorkerConfig
from jobs.core.errors import ConfigError, RebuilderError
from jobs.core.lease import LeaseKeeper, LeaseLost, Leases
from jobs.core.queue import read_queue
from jobs.core.store import Store
from jobs.work.build import BuildCancelled, rebuild
from jobs.work.claim import Claim, claim_next, due_jobs, report_lost
from jobs.work.identity import WorkerIdentity, enrol
from jobs.work.report import upload

log = logging.getLogger(__name__)


@dataclass
class WorkStats:
    """What a worker did before it stopped."""

    built: list[str] = field(default_factory=list)  # "<build-id> <status>"
    lost: list[str] = field(default_factory=list)  # build ids whose claim was taken over
    cancelled: list[str] = field(default_factory=list)  # stopped by a signal, claim released


def check_backends(backends: Mapping[str, Path]) -> None:
    """Refuse to start without usable backend scripts (a setup error, not a package's FAIL)."""
    if not backends:
        raise ConfigError("this worker has no backends", key="backend", expected='[backend."<name>"] path = ...')
    for name, path in backends.items():
        if not Path(path).is_file():
            raise ConfigError(f"backend script {str(path)!r} does not exist", key=f'backend."{name}".path',
                              expected="the path of an executable backend script")


@dataclass
class Worker:
    """One worker process: its store, configs, identity and backends."""

    store: Store
    config: RebuilderConfig
    worker_config: WorkerConfig
    identity: WorkerIdentity
    backends: Mapping[str, Path]
    stop: threading.Event = field(default_factory=threading.Event)
    env: Mapping[str, str] = field(default_factory=dict)
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        check_backends(self.backends)
        self.leases = Leases(self.store, ttl=self.config.lease.ttl, clock_skew=self.config.lease.clock_skew)

    def run(self, *, once: bool = False, until_idle: bool = False, max_jobs: int | None = None) -> WorkStats:
        """Work until stopped; `once`: one job at most; `until_idle`: until nothing is claimable."""
        stats = WorkStats()
        enrol(self.store, self.identity, self.worker_config.signup_secret)
        while not self.stop.is_set():
            claim = self.next_claim()
            if claim is None:
                if once or until_idle:
                    break
                delay = self.worker_config.idle_delay * self.rng.uniform(0.8, 1.2)
                log.info("no due job; looking again in %.0f s", delay)
                self.stop.wait(delay)
                continue
            self.build_one(claim, stats)
            if once or (max_jobs is not None and len(stats.built) + len(stats.lost) >= max_jobs):
                break
        return stats

    def next_claim(self) -> Claim | None:
        """Claim a due job this worker can build, or None."""
        queue = read_queue(self.store)
        candidates = due_jobs(queue.jobs.values(), backends=list(self.backends),
                              architectures=self.worker_config.supported_architectures,
                              now=datetime.now(timezone.utc), rng=self.rng)
        # The queue version the claim was taken from: signed into the result, shown to operators.
        version = queue.pointer.target if queue.pointer is not None else None
        return claim_next(self.store, self.leases, self.identity.key_id, candidates,
                          meta={"worker": self.identity.name, "queue": version})

    def build_one(self, claim: Claim, stats: WorkStats) -> None:
        """Build one claimed job and report it, unless the claim is lost or the worker stops."""
        job = claim.job
        bid = f"{job.job_id}-{job.attempt}"
        workdir = self.identity.directory / "builds" / bid
        keeper = LeaseKeeper(self.leases, claim.lease)
        cancel = threading.Event()
        watcher = threading.Thread(target=self._watch, args=(keeper, cancel), daemon=True)
        log.info("building %s %s (%s) attempt %d", job.source_name, job.source_version, bid, job.attempt)
        try:
            with keeper:
                watcher.start()
                try:
                    outcome = rebuild(job, backend=self.backends[job.backend], config=self.worker_config,
                                      key=self.identity.key, workdir=workdir, cancel=cancel, env=self.env)
                except BuildCancelled:
                    self._abandon(keeper, bid, stats)
                    return
                if self.stop.is_set() or keeper.lost.is_set():
                    self._abandon(keeper, bid, stats)
                    return
                row, final = upload(self.store, keeper, job, outcome, self.identity)
            stats.built.append(f"{bid} {row.status.value}")
            log.info("%s: %s%s", bid, row.status.value, f" ({row.reason})" if row.reason else "")
            self.leases.release(final, {"done": True})
        except LeaseLost as exc:
            stats.lost.append(bid)
            log.warning("%s: claim lost (%s); nothing reported", bid, exc.reason)
            if keeper.taken_while_live:
                self._report_takeover(keeper, bid)
        except (OSError, RebuilderError) as exc:
            # The store or the disk failed while reporting: let another worker take the job at
            # once instead of after the lease expires, then stop as the error says.
            log.error("%s: could not report (%s); releasing the claim", bid, exc)
            try:
                self.leases.release(keeper.lease)
            except (LeaseLost, RebuilderError) as again:
                log.warning("%s: could not release the claim: %s", bid, again)
            raise
        finally:
            cancel.set()  # ends the watcher
            shutil.rmtree(workdir, ignore_errors=True)

    def _report_takeover(self, keeper: LeaseKeeper, bid: str) -> None:
        # Taken over while our lease was live: no polite worker does that (docs/trust.md).
        try:
            key = report_lost(self.store, self.leases, keeper.lease, self.identity)
            log.error("%s: the claim was taken over before it expired; notice for publish in %s", bid, key)
        except (OSError, RebuilderError, ValueError) as exc:
            log.error("%s: the claim was taken over before it expired; could not store a notice: %s", bid, exc)

    def _watch(self, keeper: LeaseKeeper, cancel: threading.Event) -> None:
        # proc.run watches one event: fire it when the claim is lost or the worker must stop.
        while not cancel.is_set():
            if keeper.lost.is_set() or self.stop.is_set():
                cancel.set()
                return
            cancel.wait(0.2)

    def _abandon(self, keeper: LeaseKeeper, bid: str, stats: WorkStats) -> None:
        keeper.stop()
        if keeper.lost.is_set():
            raise LeaseLost(keeper.lease.key, keeper.reason or "lost during the build")
        try:
            self.leases.release(keeper.lease)  # let another worker start at once
        except (LeaseLost, RebuilderError) as exc:
            log.warning("%s: could not release the claim: %s", bid, exc)
        stats.cancelled.append(bid)
