"""The daemon's queue into ours: each queued pkgbase's jobs, at its priority."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc

from jobs.core.model import JobRow
from jobs.core.queue import update_queue
from jobs.core.store import Store
from jobs.importer.database import count_or_none, package_row, parse_time
from jobs.importer.matching import StateIndex
from jobs.importer.summary import ImportSummary
from jobs.publish.state.compact import HistoryState


def import_queue(con: sqlite3.Connection, store: Store, index: StateIndex, history: HistoryState,
           summary: ImportSummary, now: datetime) -> None:
    """The daemon's queue into ours: each queued pkgbase's jobs at its priority."""
    wanted: dict[str, tuple[int, datetime]] = {}
    cursor = con.execute("SELECT q.pkgbase_id, q.priority, q.queued_at FROM queue AS q ORDER BY q.id")
    while rows := cursor.fetchmany(1000):
        for base_id, priority, queued_at in rows:
            when = parse_time(queued_at)
            if count_or_none(base_id) is None or not isinstance(priority, int) or not -2**31 <= priority < 2**31 or when is None:
                summary.rejected += 1
                summary.problem(f"queue item of pkgbase {str(base_id)[:20]}: priority or queued_at out of bounds")
                continue
            packages = con.execute(
                "SELECT p.id, p.pkgbase_id, p.name, p.version, p.status, p.distro, p.suite, b.architecture, "
                "p.artifact_url, p.build_id, p.built_at FROM packages AS p JOIN pkgbases AS b ON b.id = p.pkgbase_id "
                "WHERE p.pkgbase_id = ? LIMIT 10000", (base_id,)).fetchall()
            for row in packages:
                package, _ = package_row(row)
                job = index.job_of(package) if package is not None else None
                if job is not None:
                    old = wanted.get(job)
                    wanted[job] = (min(priority, old[0]), min(when, old[1])) if old else (priority, when)
    if not wanted:
        return
    rows = index.rows_of(set(wanted))
    attempts: dict[str, int] = {}
    if history.table.num_rows:
        table = history.table.select(["job_id", "attempt"])
        table = table.filter(pc.is_in(table.column("job_id"), value_set=pa.array(sorted(wanted))))
        for job, attempt in zip(table.column("job_id").to_pylist(), table.column("attempt").to_pylist()):
            attempts[job] = max(attempts.get(job, 0), attempt)
    changed: list[str] = []

    def change(jobs: dict[str, JobRow]) -> dict[str, JobRow]:
        changed.clear()
        out = dict(jobs)
        for job, (priority, when) in sorted(wanted.items()):
            current = out.get(job)
            if current is not None:
                # queued again after its imported build: the next attempt, not the imported one
                after = max(current.attempt, attempts.get(job, 0) + 1)
                if priority < current.priority or after != current.attempt:
                    out[job] = replace(current, priority=min(priority, current.priority), attempt=after)
                    changed.append(job)
                continue
            first = rows[job][0]
            out[job] = JobRow(job_id=job, backend=first.backend, architecture=first.architecture,
                              input_url=first.input_url, distro=first.distro,
                              releases=tuple(dict.fromkeys(r.release for r in rows[job])),
                              source_name=first.source_name, source_version=first.source_version,
                              artifacts=tuple(dict.fromkeys(r.artifact for r in rows[job])), priority=priority,
                              queued_at=min(when, now), not_before=None, attempt=attempts.get(job, 0) + 1, retries=0)
            changed.append(job)
        return out

    update_queue(store, change, meta={"job": "import-rebuilderd"})
    summary.queued = len(changed)
