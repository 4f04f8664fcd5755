"""How one sync changes the queue (rebuilderd's import semantics, docs/design.md#sync-import-and-friends).

A pure function of what is queued, what the index now lists, what it listed before, what
other profiles list, and what was built: easy to test, and safe to apply again after a
killed run (applying the same plan twice changes nothing the second time).

- a build input seen for the first time is queued with priority 1 (NEW), due after
  `initial_delay`;
- one that was built before keeps its result: GOOD is never rebuilt; a non-GOOD one
  (dropped earlier and now listed again) is queued as a retry (priority 2) unless
  `max_retries` is reached, due `(retries + 1) * retry_delay_base` hours after its last build;
- one that disappeared from the index (and is not listed by another profile) loses its
  *pending* job; a job whose claim is live keeps running and publish records its result.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from jobs.core.config import ScheduleConfig
from jobs.core.history import BuildSummary, retry_due
from jobs.core.model import JobRow, Priority, Status
from jobs.sync.columns import InputColumns, not_before_of
from jobs.sync.records import BuildInput


@dataclass
class QueuePlan:
    """What the sync did to the queue, for its summary line."""

    added: list[str] = field(default_factory=list)
    retried: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    kept_running: list[str] = field(default_factory=list)
    refreshed: list[str] = field(default_factory=list)


def job_rows(inputs: Iterable[BuildInput], *, now: datetime, schedule: ScheduleConfig) -> dict[str, JobRow]:
    """The queue row each build input would get if it were new; friends share one row."""
    not_before = not_before_of(now, schedule.initial_delay)
    rows: dict[str, JobRow] = {}
    for bi in inputs:
        row = _new_row(bi, now, not_before)
        known = rows.get(row.job_id)
        rows[row.job_id] = row if known is None else _with_releases(known, row.releases)
    return rows


def _new_row(bi: BuildInput, now: datetime, not_before: datetime | None) -> JobRow:
    return JobRow(
        job_id=bi.job_id, backend=bi.backend,
        architecture=bi.architecture, input_url=bi.input_url, distro=bi.distro, releases=(bi.release,),
        source_name=bi.source_name, source_version=bi.source_version,
        artifacts=bi.expected, priority=Priority.NEW, queued_at=now,
        not_before=not_before, attempt=1, retries=0)


def _with_releases(row: JobRow, releases: Iterable[str | None]) -> JobRow:
    merged = tuple(dict.fromkeys((*row.releases, *releases)))
    return row if merged == row.releases else replace(row, releases=merged)


def plan_queue(jobs: dict[str, JobRow], *, listed: Mapping[str, JobRow], previous: set[str],
               elsewhere: set[str], built: Mapping[str, BuildSummary], running: Callable[[JobRow], bool],
               schedule: ScheduleConfig) -> tuple[dict[str, JobRow], QueuePlan]:
    """The next queue after a sync that found `listed`; `previous` = what it found last time."""
    plan = QueuePlan()
    for jid, row in listed.items():
        if _refresh(jobs, plan, jid, row.releases):
            continue
        summary = built.get(jid)
        if summary is None:
            jobs[jid] = row
            plan.added.append(jid)
        elif _retried(summary, schedule):
            jobs[jid] = replace(row, priority=Priority.RETRY, attempt=summary.attempt + 1,
                                retries=summary.retries, not_before=retry_due(summary, schedule))
            plan.retried.append(jid)
    _drop_unlisted(jobs, plan, sorted(previous - listed.keys() - elsewhere), running)
    return jobs, plan


def plan_columns(jobs: dict[str, JobRow], *, listed: InputColumns, now: datetime, previous: set[str],
                 elsewhere: set[str], built: Mapping[str, BuildSummary], running: Callable[[JobRow], bool],
                 schedule: ScheduleConfig) -> tuple[dict[str, JobRow], list[int], QueuePlan]:
    """`plan_queue` for inputs as columns (`listed.plain`): the next queue's rows other than the new
    jobs, the new jobs (indices of `listed`'s inputs, whose rows `listed.queue_table` makes) and the plan.

    The same decisions, in the same order, as `plan_queue(jobs, listed=job_rows(listed.build_inputs()), ...)`.
    """
    plan = QueuePlan()
    added: list[int] = []
    not_before = not_before_of(now, schedule.initial_delay)
    releases = getattr(listed, "releases", None)  # per input (Debian's columns); Arch lists none
    for index, jid in enumerate(listed.job_ids):
        if _refresh(jobs, plan, jid, (None,) if releases is None else releases[index]):
            continue
        summary = built.get(jid)
        if summary is None:
            added.append(index)
            plan.added.append(jid)
        elif _retried(summary, schedule):
            jobs[jid] = replace(listed.job_row(index, now, not_before), priority=Priority.RETRY,
                                attempt=summary.attempt + 1, retries=summary.retries,
                                not_before=retry_due(summary, schedule))
            plan.retried.append(jid)
    _drop_unlisted(jobs, plan, sorted(previous - set(listed.job_ids) - elsewhere), running)
    return jobs, added, plan


def _refresh(jobs: dict[str, JobRow], plan: QueuePlan, jid: str, releases: tuple) -> bool:
    """Whether the job is queued already; if so, the listed releases are merged into it (refreshed if new)."""
    queued = jobs.get(jid)
    if queued is None:
        return False
    merged = _with_releases(queued, releases)
    if merged is not queued:
        jobs[jid] = merged
        plan.refreshed.append(jid)
    return True


def _retried(summary: BuildSummary, schedule: ScheduleConfig) -> bool:
    """Whether a job built before, listed again, is queued for another attempt."""
    return summary.status is not Status.GOOD and (schedule.max_retries is None or summary.retries < schedule.max_retries)


def _drop_unlisted(jobs: dict[str, JobRow], plan: QueuePlan, unlisted: list[str],
                   running: Callable[[JobRow], bool]) -> None:
    """Jobs the index no longer lists leave the queue, unless a worker is building them now."""
    for jid in unlisted:
        queued = jobs.get(jid)
        if queued is None:
            continue
        if running(queued):
            plan.kept_running.append(jid)
        else:
            del jobs[jid]
            plan.dropped.append(jid)
