"""Reading the build history that publish compacts (`history/`).

Layout: `history/HEAD.json` is a pointer whose target is an immutable manifest
`history/manifest-<name>.json` = `{"parts": ["history/part-<name>.parquet", ...]}`; each
part is a `history/2` Parquet file of `HistoryRow`s. Publish appends a part and advances
the pointer; sync reads the history to decide whether a job it sees was built before.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pyarrow as pa

from jobs.core.config import ScheduleConfig
from jobs.core.layout import HISTORY
from jobs.core.model import HistoryRow, Status, read_table, to_table
from jobs.core.pointer import Pointer
from jobs.core.store import Store

PREFIX = HISTORY


@dataclass(frozen=True)
class BuildSummary:
    """What the history says about one job: its latest result and how often it failed."""

    job_id: str
    status: Status
    attempt: int  # the latest attempt that has a result
    retries: int  # non-GOOD results so far
    built_at: datetime


def retry_due(summary: BuildSummary, schedule: ScheduleConfig) -> datetime:
    """When a job whose last result was not GOOD may run again (rebuilderd's code formula)."""
    try:
        return summary.built_at + timedelta(hours=(summary.retries + 1) * schedule.retry_delay_base)
    except OverflowError:  # a worker's built_at near 9999-12-31: due at the end of time, not an error every run
        return datetime.max.replace(tzinfo=timezone.utc)


def history_parts(store: Store) -> list[str]:
    """The Parquet parts the current history manifest lists (none before the first publish)."""
    value, _ = Pointer(store, PREFIX).read()
    if value is None:
        return []
    manifest = json.loads(store.get(value.target).data)
    parts = [str(p) for p in manifest.get("parts", [])]
    if any(not p.startswith(PREFIX + "/") for p in parts):
        raise ValueError("history manifest names a part outside history/")
    return parts


def read_history(store: Store) -> pa.Table:
    """Every history row as one Arrow table (empty table before the first publish)."""
    tables = [read_table(store.get(key).data) for key in history_parts(store)]
    return pa.concat_tables(tables) if tables else to_table([], HistoryRow)


def build_summaries(store: Store) -> dict[str, BuildSummary]:
    """Latest result and failure count per job, from the compacted history."""
    table = read_history(store)
    if table.num_rows == 0:
        return {}
    import duckdb  # only with a history to summarise: a first sync never loads it

    con = duckdb.connect()
    con.register("history", table)
    rows = con.execute("""
        SELECT job_id,
               arg_max(status, (built_at, attempt)) AS status,
               max(attempt) AS attempt,
               count(*) FILTER (WHERE status <> 'GOOD') AS retries,
               max(built_at) AS built_at
        FROM history GROUP BY job_id
    """).fetchall()
    return {r[0]: BuildSummary(r[0], Status(r[1]), int(r[2]), int(r[3]), r[4]) for r in rows}
