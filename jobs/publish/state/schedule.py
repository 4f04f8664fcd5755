"""How results change the queue (rebuilderd's report handling, docs/design.md#report-handling-and-retries).

- a GOOD result removes its job from the queue (GOOD is never retried);
- a BAD or FAIL result counts one more retry; once `max_retries` is set and reached the
  job leaves the queue, otherwise it stays as the next attempt with priority RETRY (2),
  due `(retries + 1) * retry_delay_base` hours after the build finished.

The delay is rebuilderd's *code* (`daemon/src/api/v1/build.rs`: `retries += 1`, then
`next_retry = now + (retries + 1) * retry_delay_base`), so with the default base of 24 the
first retry waits 48 h, the second 72 h, the third 96 h. rebuilderd's config comments and
man page say "24h, 48h, 72h"; we follow the code, as `rebuilder sync` does for retries of
dropped jobs (`jobs.core.history.retry_due`, the one implementation of the formula).

Pure functions, applied again and again safely: a result whose job is not queued changes
nothing, and neither does a result for an attempt older than the queued one (it was applied
before; the job moved on to the next attempt).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from jobs.core.config import ScheduleConfig
from jobs.core.history import BuildSummary, retry_due
from jobs.core.model import JobRow, Priority, ResultRow, Status


@dataclass
class ResultChanges:
    """What results did to the queue, by build id."""

    done: list[str] = field(default_factory=list)  # GOOD: job removed
    retried: list[str] = field(default_factory=list)  # queued again as the next attempt
    exhausted: list[str] = field(default_factory=list)  # max_retries reached: job removed
    ignored: list[str] = field(default_factory=list)  # job not queued, or already applied

    def count(self) -> int:
        """How many results changed the queue."""
        return len(self.done) + len(self.retried) + len(self.exhausted)


def apply_results(jobs: Mapping[str, JobRow], rows: Iterable[ResultRow], schedule: ScheduleConfig,
                  now: datetime) -> tuple[dict[str, JobRow], ResultChanges]:
    """The queue after these results, and what changed; `now` is the retried rows' queued_at."""
    out = dict(jobs)
    changes = ResultChanges()
    for row in sorted(rows, key=lambda r: (r.job_id, r.attempt)):
        job = out.get(row.job_id)
        if job is None or row.attempt < job.attempt:
            changes.ignored.append(row.build_id)
            continue
        if row.status is Status.GOOD:
            del out[row.job_id]
            changes.done.append(row.build_id)
            continue
        retries = job.retries + 1
        if schedule.max_retries is not None and retries >= schedule.max_retries:
            del out[row.job_id]
            changes.exhausted.append(row.build_id)
            continue
        summary = BuildSummary(row.job_id, row.status, row.attempt, retries, row.built_at)
        out[row.job_id] = replace(job, attempt=row.attempt + 1, retries=retries, priority=Priority.RETRY,
                                  not_before=retry_due(summary, schedule), queued_at=now)
        changes.retried.append(row.build_id)
    return out, changes


def next_queue(jobs: Mapping[str, JobRow], accepted_rows: Iterable[ResultRow], schedule: ScheduleConfig,
               now: datetime) -> dict[str, JobRow]:
    """The queue after these results (see the module docstring)."""
    return apply_results(jobs, accepted_rows, schedule, now)[0]
