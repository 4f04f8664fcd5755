"""`rebuilder run`: one full cycle, the thing a single-machine operator schedules.

Sync every profile, let `workers` workers (threads of this process, each with its own name,
directory and key) build until nothing is claimable or the time budget is spent, then
publish. Each step is the same function the separate commands run. The last summary line
is the verdict breakdown of the builds of this cycle (`run: GOOD 3, BAD 1, FAIL 1, UNKWN 0`).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from jobs.core.config import RebuilderConfig, SyncConfig, WorkerConfig
from jobs.core.errors import RebuilderError
from jobs.core.layout import SITE
from jobs.core.store import Store
from jobs.publish.run import PublishSummary, publish
from jobs.sync.fetch import Fetcher
from jobs.sync.run import SyncSummary, sync_profile
from jobs.work.identity import load_identity
from jobs.work.run import NothingSynced, Worker, WorkStats, has_package_state

VERDICTS = ("GOOD", "BAD", "FAIL", "UNKWN")


@dataclass
class CycleSummary:
    """What one cycle did, step by step."""

    syncs: list[str] = field(default_factory=list)
    failed_syncs: list[str] = field(default_factory=list)
    failed_transient: bool = True  # every failed sync may succeed when retried later (exit 75, not 1)
    work: dict[str, WorkStats] = field(default_factory=dict)
    not_synced: str = ""  # why no worker ran: nothing was ever synced into the store
    publish: PublishSummary | None = None

    def verdicts(self) -> dict[str, int]:
        """How many builds of this cycle ended in each status."""
        statuses = [b.split()[-1] for stats in self.work.values() for b in stats.built]
        return {v: statuses.count(v) for v in VERDICTS}

    def lines(self) -> list[str]:
        """The summary lines of every step, the verdict breakdown last."""
        out = self.syncs + self.failed_syncs
        if self.not_synced:
            out.append(f"work: {self.not_synced}")
        for name, stats in self.work.items():
            out.append(f"work {name}: built {len(stats.built)}, claims lost {len(stats.lost)}")
        if self.publish is not None:
            out.append(self.publish.line())
        out.append("run: " + ", ".join(f"{v} {n}" for v, n in self.verdicts().items()))
        return out


def run_cycle(store: Store, config: RebuilderConfig, sync_config: SyncConfig, worker_config: WorkerConfig,
              backends: Mapping[str, Path], *, workers: int = 2, budget: float | None = None,
              env: Mapping[str, str] | None = None, stop: threading.Event | None = None,
              site_store: Store | None = None) -> CycleSummary:
    """Sync all profiles, work until idle (or `budget` seconds), publish."""
    summary = CycleSummary()
    fetcher = Fetcher()
    for profile in sync_config.profiles.values():
        try:
            result: SyncSummary = sync_profile(store, config, profile, fetcher=fetcher)
            summary.syncs.append(result.line())
        except RebuilderError as exc:
            summary.failed_syncs.append(f"sync {profile.name}: failed, nothing changed: {exc}")
            summary.failed_transient = summary.failed_transient and exc.transient
    stop = stop or threading.Event()
    if not has_package_state(store):
        summary.not_synced = str(NothingSynced(store))
        workers = 0
    pool = [Worker(store=store, config=config, worker_config=worker_config,
                   identity=load_identity(worker_config, f"worker{i + 1}"), backends=backends,
                   env=dict(env or {}), stop=stop, announce=f"worker{i + 1}: " if workers > 1 else "")
            for i in range(workers)]
    timer = threading.Timer(budget, stop.set) if budget else None
    if timer:
        timer.start()
    threads = [threading.Thread(target=lambda w=w: summary.work.__setitem__(w.identity.name, w.run(until_idle=True)),
                                name=w.identity.name) for w in pool]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if timer:
        timer.cancel()
    summary.publish = publish(store, config, site_store=site_store, site_prefix="" if site_store else SITE)
    return summary
