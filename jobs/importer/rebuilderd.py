"""`rebuilder import-rebuilderd PATH/rebuilderd.db`: a rebuilderd database's verdicts into the store.

For an operator moving from rebuilderd: run `rebuilder sync` for the repositories the daemon
synced, then import its SQLite database (the schema of rebuilderd 0.20 to 0.25, as Debian
trixie's 0.24 writes it: `pkgbases`, `packages`, `builds`, `queue`), then `rebuilder
publish`. The site then shows the daemon's verdicts, logs, diffoscope output and attestations.

What becomes what:

- a pkgbase's built packages become one history row (`ResultRow`) of the job the synced state
  gives those packages (matched on distro, suite = our component, name, version and the
  artifact URL with percent-escapes decoded; where several jobs match, the one whose sync
  architecture equals the pkgbase's). Its status is GOOD when every artifact is GOOD, BAD
  when one is BAD, else UNKWN; each artifact keeps its own status. rebuilderd keeps only the
  latest build of each package, so that is all there is to import. The attempt is the
  pkgbase's `retries` (+1 when GOOD): the number of builds rebuilderd made;
- the build's log (zstd in 0.24, plain before) is stored gzip-encoded at
  `builds/<build id>/rebuilderd/log`, as a worker stores its own; the first artifact's
  diffoscope text and attestation become the build's, the others are kept beside them
  (`diffoscope-<n>.txt`, `attestation-<n>.json`, n = the artifact's position) and listed in
  the row's file digests (rebuilderd 0.26 and later serve the first artifact's for a build
  too). A GOOD build's attestation is also kept where publish keeps the ones it
  countersigned (`history/attestations/<build id>.json`), and published as the daemon stored
  it: it is signed by the rebuilderd worker's key, unknown here, so it is not countersigned;
- the daemon's queue becomes jobs of our queue at the same priority (a job queued already
  keeps the sooner of the two priorities).

Rows go into the history through publish's compaction (`jobs.publish.state.update.compact`), under the
publish lock, in batches: memory holds one batch and the history (as publish does), never
the database. A build id already in the history is skipped before its files are written,
so a rerun (after a kill, or of the same database) adds only what is missing. The database
is outside input: opened read-only with `trusted_schema` off, only real tables are read,
every field is checked against the model's limits, every blob against the upload limits
before it is read; a row that fails is counted and named, and the rest goes on.
"""
from __future__ import annotations

import os
import socket
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

from jobs.core.config import RebuilderConfig
from jobs.core.layout import PUBLISH_LOCK
from jobs.core.lease import Held, LeaseHeld, LeaseKeeper, Leases
from jobs.core.model import ResultRow
from jobs.core.store import Store
from jobs.importer.builds import result_row
from jobs.importer.database import Package, PkgBase, open_database, pkgbases
from jobs.importer.matching import StateIndex
from jobs.importer.queue import import_queue
from jobs.importer.summary import ImportRefused, ImportSummary
from jobs.publish.site.inputs import read_state
from jobs.publish.state.compact import read_history_state
from jobs.publish.state.update import compact

__all__ = ["ImportRefused", "ImportSummary", "import_rebuilderd"]


def import_rebuilderd(store: Store, config: RebuilderConfig, path: Path, *, batch: int = 500,
                      now: datetime | None = None, holder: str | None = None) -> ImportSummary:
    """Import the database at `path` (see the module docstring); safe to rerun, safe to kill."""
    now = now or datetime.now(timezone.utc)
    con = open_database(path)
    summary = ImportSummary()
    try:
        state = read_state(store)
        if state.num_rows == 0:
            raise ImportRefused("the store has no synced package state: run `rebuilder sync` for the "
                               "repositories the daemon synced first (verdicts are matched to its packages)")
        index = StateIndex(state)
        leases = Leases(store, ttl=config.lease.ttl, clock_skew=config.lease.clock_skew)
        holder = holder or f"import-rebuilderd@{socket.gethostname()}:{os.getpid()}"
        try:
            lock = Held(leases, PUBLISH_LOCK, holder, meta={"job": "import-rebuilderd"})
        except LeaseHeld as exc:
            summary.busy = f"{exc.holder} holds {PUBLISH_LOCK}"
            return summary
        with lock as keeper:
            _import_locked(con, store, index, summary, keeper, batch, now)
    except sqlite3.DatabaseError as exc:
        raise ImportRefused(f"{path}: the database cannot be read ({exc})") from None
    finally:
        con.close()
    return summary


def _import_locked(con: sqlite3.Connection, store: Store, index: StateIndex, summary: ImportSummary,
                   keeper: LeaseKeeper, batch: int, now: datetime) -> None:
    history = read_history_state(store)
    pending: list[ResultRow] = []
    jobs_needed: list[tuple[PkgBase, str, list[Package]]] = []

    def flush() -> None:
        nonlocal history
        keeper.check()
        rows_by_job = index.rows_of({job for _, job, _ in jobs_needed}) if jobs_needed else {}
        for base, job, packages in jobs_needed:
            row = result_row(con, store, base, job, packages, summary, history, rows_by_job)
            if row is not None:
                pending.append(row)
        jobs_needed.clear()
        if pending:
            compacted = compact(store, pending, current=history)
            summary.builds += len(compacted.added)
            history = compacted.history
            pending.clear()

    for base in pkgbases(con, summary):
        by_job: dict[str, list[Package]] = {}
        for p in base.packages:
            if p.build_id is None:
                summary.unbuilt += 1
            job = index.job_of(p)
            if job is None:
                summary.unmatched += 1
                summary.problem(f"package {p.id} ({p.name!r} {p.version!r}, {p.suite!r}): no synced state row")
                continue
            by_job.setdefault(job, []).append(p)
        for job, packages in by_job.items():
            if any(p.build_id is not None for p in packages):
                jobs_needed.append((base, job, packages))
        if len(jobs_needed) >= batch:
            flush()
    flush()
    import_queue(con, store, index, history, summary, now)
