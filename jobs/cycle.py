"""`rebuilder run`: one full cycle, the thing a single-machine operator schedules.

Sync every profile, let `workers` workers (threads of this process, each with its own name,
directory and key) build until nothing is claimable or the time budget is spent, then
publish. Each step is the same function the separate commands run.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from jobs.core.config import RebuilderConfig, SyncConfig, WorkerConfig
from jobs.core.errors import RebuilderError
from jobs.core.store import Store
from jobs.publish.run import PublishSummary, publish
from jobs.sync.fetch import Fetcher
from jobs.sync.job import SyncSummary, sync_profile
from jobs.work.identity import load_identity
from jobs.work.loop import Worker, WorkStats


@dataclass
class CycleSummary:
    """What one cycle did, step by step."""

    syncs: list[str] = field(default_factory=list)
    failed_syncs: list[str] = field(default_factory=list)
    work: dict[str, WorkStats] = field(default_factory=dict)
    publish: PublishSummary | None = None

    def lines(self) -> list[str]:
        """The summary lines of every step."""
        out = self.syncs + self.failed_syncs
        for name, stats in self.work.items():
            out.append(f"work {name}: built {len(stats.built)}, claims lost {len(stats.lost)}")
        if self.publish is not None:
            out.append(self.publish.line())
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
    stop = stop or threading.Event()
    pool = [Worker(store=store, config=config, worker_config=worker_config,
                   identity=load_identity(worker_config, f"worker{i + 1}"), backends=backends,
                   env=dict(env or {}), stop=stop) for i in range(workers)]
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
    summary.publish = publish(store, config, site_store=site_store, site_prefix="" if site_store else "site/")
    return summary
