"""`queue ls` and `workers ls`: the queue and worker feeds publish writes (`api/v1/queue.json`, `workers.json`).

The feeds are a snapshot taken at their `generated_at`, so "due" and "running for" are
computed against that time, not the reader's clock: a feed read an hour later must not show
a job as running an hour longer than it had. The plain `queue ls` line is rebuilderd's
(`tools/src/main.rs`), Rust Debug quotes and `Some(..)` included, so scripts written for it
keep working.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jobs.core.errors import TerminalError
from jobs.core.model import parse_timestamp
from jobs.ctl.feeds import FeedInvalid, FeedNotFound, Site
from jobs.publish import urls

HEAD = 25  # rebuilderd's `queue ls --head`


class FeedMissing(TerminalError):
    """The site predates a feed: it was published by an older `rebuilder publish`."""

    def __init__(self, what: str, url: str) -> None:
        super().__init__(f"{url} is not published: this site was published by a `rebuilder publish` that "
                         f"does not write the {what} feed yet (update the rebuilder, or read `rebuildctl status`)")
        self.url = url


@dataclass(frozen=True)
class Running:
    worker_name: str | None
    worker_key_id: str | None
    started_at: datetime
    renewed_at: datetime | None
    expires_at: datetime | None


@dataclass(frozen=True)
class QueuedJob:
    """One job of the queue feed, in claim order; `raw` is the feed's own object (for --json)."""

    job_id: str
    attempt: int
    priority: int
    not_before: datetime | None
    queued_at: datetime
    distro: str
    release: str | None
    component: str | None
    architecture: str
    source_name: str
    source_version: str
    backend: str
    running: Running | None
    raw: dict[str, Any]

    def due(self, now: datetime) -> bool:
        return self.not_before is None or self.not_before <= now

    def running_for(self, now: datetime) -> int | None:
        """Seconds since the running build started, at `now`; None if nobody builds it."""
        return None if self.running is None else max(0, int((now - self.running.started_at).total_seconds()))


@dataclass(frozen=True)
class QueueListing:
    generated_at: datetime
    total: int  # every job in the feed
    jobs: list[QueuedJob]  # those listed (due unless --planned; the first 25 with --head)
    planned: int  # jobs hidden because they are not due yet


def _ts(value: Any) -> datetime | None:
    return parse_timestamp(value) if value else None


def _feed(site: Site, key: str, what: str) -> dict[str, Any]:
    try:
        doc = site.json(key)
    except FeedNotFound:
        raise FeedMissing(what, site.url(key)) from None
    if not isinstance(doc, dict) or doc.get("kind") != what:
        raise FeedInvalid(f"not a {what} feed", url=site.url(key))
    return doc


def _job(j: dict[str, Any]) -> QueuedJob:
    r = j.get("running")
    running = None if not r else Running(r.get("worker_name"), r.get("worker_key_id"), parse_timestamp(r["started_at"]),
                                         _ts(r.get("renewed_at")), _ts(r.get("expires_at")))
    return QueuedJob(j["job_id"], int(j["attempt"]), int(j["priority"]), _ts(j.get("not_before")),
                     parse_timestamp(j["queued_at"]), j["distro"], j.get("release"), j.get("component"),
                     j["architecture"], j["source_name"], j["source_version"], j.get("backend", ""), running, j)


def list_queue(site: Site, *, planned: bool = False, head: bool = False) -> QueueListing:
    """The queued jobs in claim order: due ones (all with `planned`), the first 25 with `head`."""
    doc = _feed(site, urls.QUEUE_FEED, "queue")
    try:
        now = parse_timestamp(doc["generated_at"])
        jobs = [_job(j) for j in doc["jobs"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise FeedInvalid(f"malformed queue feed: {exc!r}", url=site.url(urls.QUEUE_FEED)) from None
    shown = [j for j in jobs if planned or j.due(now)]
    return QueueListing(now, len(jobs), shown[:HEAD] if head else shown, len(jobs) - len([j for j in jobs if j.due(now)]))


def secs_to_human(secs: int) -> str:
    """rebuilderd's `utils::secs_to_human`: " 1h  2m  3s", hours and minutes only when non-zero."""
    hours, rest = divmod(secs, 3600)
    mins, secs = divmod(rest, 60)
    out = []
    if hours > 0:
        out.append(f"{hours:2}h")
    if mins > 0 or hours > 0:
        out.append(f"{mins:2}m")
    out.append(f"{secs:2}s")
    return " ".join(out)


def _debug(value: str | None, optional: bool = False) -> str:
    """Rust's `{:?}` of a String (or of an Option<String> when `optional`)."""
    if value is None:
        return "None"
    text = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"Some({text})" if optional else text


def _clock(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else ""


def queue_line(job: QueuedJob, now: datetime) -> str:
    """rebuilderd's `queue ls` line: queued_at, name version, running for, started_at, distro, release, arch."""
    running = job.running_for(now)
    started = job.running.started_at if job.running else None
    return (f"{_clock(job.queued_at)} {job.source_name + ' ' + job.source_version:<60} "
            f"{secs_to_human(running) if running is not None else '':>11} {_clock(started):<19} "
            f"{_debug(job.distro)} {_debug(job.release, optional=True)} {_debug(job.architecture)}")


# --- workers --------------------------------------------------------------------------------

@dataclass(frozen=True)
class CurrentJob:
    job_id: str
    attempt: int
    source_name: str
    source_version: str
    distro: str
    architecture: str
    started_at: datetime | None


@dataclass(frozen=True)
class Worker:
    key_id: str
    name: str | None
    worker_id: int | None
    trust: str  # "authorized", "enrolled" or "untrusted"
    last_seen: datetime | None
    builds: int
    current_job: CurrentJob | None
    raw: dict[str, Any]


def list_workers(site: Site) -> tuple[datetime, list[Worker]]:
    """Every worker key the rebuilder has seen, as of the feed's `generated_at`."""
    doc = _feed(site, urls.WORKERS_FEED, "workers")
    try:
        out = []
        for w in doc["workers"]:
            c = w.get("current_job")
            job = None if not c else CurrentJob(c["job_id"], int(c["attempt"]), c["source_name"], c["source_version"],
                                                c["distro"], c["architecture"], _ts(c.get("started_at")))
            out.append(Worker(w["key_id"], w.get("name"), w.get("worker_id"), w["trust"], _ts(w.get("last_seen")),
                              int(w.get("builds") or 0), job, w))
        return parse_timestamp(doc["generated_at"]), out
    except (KeyError, TypeError, ValueError) as exc:
        raise FeedInvalid(f"malformed workers feed: {exc!r}", url=site.url(urls.WORKERS_FEED)) from None
