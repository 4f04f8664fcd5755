"""`rebuilder work`: claim due jobs, rebuild them, upload signed results, repeat.

Many workers on many machines share one store and nothing else. While a build runs, its
claim is looked at every third of the lease TTL (a read; a renewal every other time); if it
was replaced, or a renewal is refused, the job was taken over: the build is killed (its whole process group) and nothing is reported. On SIGTERM or
SIGINT the worker stops the build, releases its claim so another worker can start at once,
and exits. With nothing to do it sleeps `idle_delay` seconds (with jitter) and looks again.

Each job is two lines for the operator (`jobs.core.progress.line`): `claimed <pkg> <version>
(<job id>, attempt N)` and `<pkg> <version>: GOOD in 12.3 s` (BAD or FAIL with the reason).
A store nothing was ever synced into is said once (`no package state in <store>: run
`rebuilder sync` first`); with `once` it is a `NothingSynced` error (transient: exit 75).
A worker that was SIGKILLed cannot remove its build directory; the next worker of that name
removes what it left under `<work_dir>/<name>/builds/` when it starts (holding a lock there
while it runs, so two processes with one name never remove each other's builds).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import math
import os
import random
import shutil
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from jobs.core import progress
from jobs.core.config import RebuilderConfig, WorkerConfig
from jobs.core.errors import ConfigError, RebuilderError, TransientError
from jobs.core.layout import STATE, claim_key, state_head_profile
from jobs.core.lease import LeaseKeeper, LeaseLost, Leases
from jobs.core.queue import QueueState, read_queue
from jobs.core.store import Store
from jobs.work.build import BackendSetupError, BuildCancelled, rebuild
from jobs.work.claim import Claim, ClaimMemory, announce_start, claim_next, due_jobs, report_lost
from jobs.work.identity import WorkerIdentity, enrol
from jobs.work.report import upload

log = logging.getLogger(__name__)


@dataclass
class WorkStats:
    """What a worker did before it stopped."""

    built: list[str] = field(default_factory=list)  # "<build-id> <status>"
    lost: list[str] = field(default_factory=list)  # build ids whose claim was taken over
    cancelled: list[str] = field(default_factory=list)  # stopped by a signal, claim released


class NothingSynced(TransientError):
    """The store has no package state: no sync has run against it yet."""

    def __init__(self, store: Store) -> None:
        super().__init__(f"no package state in {store.url}: run `rebuilder sync` first")


def has_package_state(store: Store) -> bool:
    """Whether any sync profile's state pointer exists (one listing; only asked when the queue is empty)."""
    return any(state_head_profile(info.key) is not None for info in store.list(STATE))


def check_backends(backends: Mapping[str, Path], *, path: str | None = None, missing: bool = False) -> None:
    """Refuse to start without usable backend scripts (a setup error, not a package's FAIL).

    ``path`` is the worker config file the backends came from; ``missing``: it does not exist.
    """
    if not backends:
        why = "; the file does not exist: pass --worker-config FILE or set REBUILDER_WORKER_CONFIG" if missing else ""
        raise ConfigError(f"this worker has no backends{why}", path=path, key="backend",
                          expected='[backend."<name>"] path = ...')
    for name, script in backends.items():
        if not Path(script).is_file():
            raise ConfigError(f"backend script {str(script)!r} does not exist", path=path,
                              key=f'backend."{name}".path', expected="the path of an executable backend script")


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
    announce: str = ""  # put before each line for the operator ("worker1: " when several share a terminal)

    def __post_init__(self) -> None:
        check_backends(self.backends)
        self.leases = Leases(self.store, ttl=self.config.lease.ttl, clock_skew=self.config.lease.clock_skew)
        self._queue_missing = False  # the last queue read found no queue at all
        self._builds_lock: int | None = None
        self._queue: QueueState | None = None  # the last queue read: reused while the pointer names it
        self._claims = ClaimMemory()
        self._idle: tuple[str | None, frozenset[str]] | None = None  # what the last fruitless poll saw
        self._look_at = 0.0  # before this (time.time()), a poll that saw the same finds nothing either

    def run(self, *, once: bool = False, until_idle: bool = False, max_jobs: int | None = None) -> WorkStats:
        """Work until stopped; `once`: one job at most; `until_idle`: until nothing is claimable."""
        stats = WorkStats()
        enrol(self.store, self.identity, self.worker_config.signup_secret)
        said = False
        self._remove_stale_builds()
        while not self.stop.is_set():
            claim = self.next_claim()
            if claim is None:
                unsynced = self._queue_missing and not until_idle and not has_package_state(self.store)
                if unsynced and once:
                    raise NothingSynced(self.store)
                if once or until_idle:
                    break
                delay = self.worker_config.idle_delay * self.rng.uniform(0.8, 1.2)
                if unsynced and not said:
                    progress.line(f"{self.announce}{NothingSynced(self.store)}; looking again every "
                                  f"{self.worker_config.idle_delay} s")
                said = said or unsynced
                log.info("no due job; looking again in %.0f s", delay)
                self.stop.wait(delay)
                continue
            self.build_one(claim, stats)
            # One GET: repairs a record overwritten since, before publish looks at this result.
            enrol(self.store, self.identity, self.worker_config.signup_secret)
            if once or (max_jobs is not None and len(stats.built) + len(stats.lost) >= max_jobs):
                break
        return stats

    def next_claim(self) -> Claim | None:
        """Claim a due job this worker can build, or None.

        A poll costs one GET when nothing changed since the last one that found nothing: the
        same queue version, the same due jobs, and no claim it saw held could have expired
        yet. It looks at `claims/` again once one could have, when the queue or the due jobs
        change, and at least once a lease TTL (a claim released by a stopped worker is
        taken within that).
        """
        queue = self._queue = read_queue(self.store, cached=self._queue)
        self._queue_missing = queue.pointer is None
        candidates = due_jobs(queue.jobs.values(), backends=list(self.backends),
                              architectures=self.worker_config.supported_architectures,
                              now=datetime.now(timezone.utc), rng=self.rng)
        # The queue version the claim was taken from: signed into the result, shown to operators.
        version = queue.pointer.target if queue.pointer is not None else None
        keys = frozenset(claim_key(j.job_id, j.attempt) for j in candidates)
        self._claims.finished &= keys  # forget what the queue no longer lists
        seen = (version, keys)
        if not candidates or (seen == self._idle and time.time() < self._look_at):
            return None
        claim = claim_next(self.store, self.leases, self.identity.key_id, candidates,
                           meta={"worker": self.identity.name, "queue": version}, identity=self.identity,
                           memory=self._claims)
        if claim is not None:
            self._claims.probe, self._idle = True, None
            return claim
        self._claims.probe, self._idle = False, seen
        held = self._claims.held_until
        self._look_at = min(held if held is not None else math.inf, time.time() + self.leases.ttl)
        return None

    def build_one(self, claim: Claim, stats: WorkStats) -> None:
        """Build one claimed job and report it, unless the claim is lost or the worker stops."""
        job = claim.job
        bid = f"{job.job_id}-{job.attempt}"
        workdir = self.identity.directory / "builds" / bid
        keeper = LeaseKeeper(self.leases, claim.lease)
        cancel = threading.Event()
        watcher = threading.Thread(target=self._watch, args=(keeper, cancel), daemon=True)
        log.info("building %s %s (%s) attempt %d", job.source_name, job.source_version, bid, job.attempt)
        what = f"{self.announce}{job.source_name} {job.source_version}"
        progress.line(f"{self.announce}claimed {job.source_name} {job.source_version} ({job.job_id}, "
                      f"attempt {job.attempt})")
        progress.begin(f"build {bid}", f"{self.announce}building {job.source_name} {job.source_version}", quiet=True)
        started = time.monotonic()

        def took() -> str:
            return f"{time.monotonic() - started:.1f} s"

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
                row, _ = upload(self.store, keeper, job, outcome, self.identity)
            # The claim is not released: the done receipt (`upload`) says the attempt is reported,
            # and a worker takes an expired claim over only if its attempt has no result, so a
            # release would be one more write that nothing needs.
            stats.built.append(f"{bid} {row.status.value}")
            self._claims.finished.add(claim.lease.key)
            reason = f" ({_short(row.reason)})" if row.reason else ""
            progress.line(f"{what}: {row.status.value} in {took()}{reason}")
        except LeaseLost as exc:
            stats.lost.append(bid)
            progress.line(f"{what}: claim lost after {took()} ({_short(exc.reason)}); nothing reported")
            if keeper.taken_while_live:
                self._report_takeover(keeper, bid)
            else:  # our lease ran out before we could renew it: a takeover now is fair, say so
                try:
                    self._withdraw(job.job_id, job.attempt)
                except (OSError, RebuilderError) as again:
                    log.warning("%s: could not withdraw the start marker: %s", bid, again)
        except (OSError, RebuilderError) as exc:
            # The store or the disk failed while reporting, or the backend says this host cannot build:
            # let another worker take the job at once instead of after the lease expires, then stop as
            # the error says.
            if isinstance(exc, BackendSetupError):
                progress.line(f"{what}: not built, the worker is not set up ({_short(str(exc))}); "
                              "nothing reported, releasing the claim")
            else:
                progress.line(f"{what}: could not report after {took()} ({_short(str(exc))}); releasing the claim")
            try:
                self.leases.release(keeper.lease)
                self._withdraw(job.job_id, job.attempt)
            except (LeaseLost, RebuilderError) as again:
                log.warning("%s: could not release the claim: %s", bid, again)
            raise
        finally:
            cancel.set()  # ends the watcher
            progress.end(f"build {bid}")
            if bid in stats.cancelled:
                progress.line(f"{what}: stopped after {took()}, claim released")
            shutil.rmtree(workdir, ignore_errors=True)

    def __del__(self) -> None:
        if getattr(self, "_builds_lock", None) is not None:
            with contextlib.suppress(OSError):
                os.close(self._builds_lock)  # type: ignore[arg-type]

    def _remove_stale_builds(self) -> None:
        """Remove build directories a killed run of this worker left, unless another process runs it."""
        if self._builds_lock is not None:
            return  # done when this worker object first ran; it holds the lock
        builds = self.identity.directory / "builds"
        try:
            fd = os.open(self.identity.directory / "builds.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            log.warning("cannot lock %s: %s; stale builds are kept", builds, exc)
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)  # another process runs a worker of this name: those builds may be live
            return
        self._builds_lock = fd  # held until the process exits
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            for entry in os.scandir(builds):
                log.info("removing %s, left by a worker that was killed", entry.path)
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)

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
            meta = keeper.lease.state.meta
            self._withdraw(str(meta.get("job_id")), int(meta.get("attempt", 0)))
        except (LeaseLost, RebuilderError) as exc:
            log.warning("%s: could not release the claim: %s", bid, exc)
        stats.cancelled.append(bid)

    def _withdraw(self, job_id: str, attempt: int) -> None:
        """After releasing a claim unfinished: our start marker no longer holds back whoever builds it next."""
        announce_start(self.store, self.identity, job_id, attempt, withdrawn=True)


def _short(text: str | None, limit: int = 200) -> str:
    """A reason from a build or the store, cut for one line (`progress.line` escapes the rest)."""
    text = " ".join(str(text or "").split())
    return text if len(text) <= limit else text[:limit] + "…"
