"""`queue ls` and `workers ls`: the queue and worker feeds publish writes (`api/v1/queue.json`, `workers.json`).

The feeds are a snapshot taken at their `generated_at`, so "due" and "running for" are
computed against that time, not the reader's clock: a feed read an hour later must not show
a job as running an hour longer than it had. Piped, `queue ls` prints a header line and
tab-separated rows (cli.py), not rebuilderd's Rust-Debug line (`"debian" Some("sid")`):
a missing value is "-", never a language's notation for nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

from jobs.core import feeds, urls
from jobs.core.errors import TerminalError
from jobs.core.feeds import QueuedJob, Worker
from jobs.core.model import parse_timestamp
from jobs.ctl.feeds import FeedInvalid, FeedNotFound, Site

if TYPE_CHECKING:
    from jobs.ctl.commands import Filters

HEAD = 25  # rebuilderd's `queue ls --head`


class FeedMissing(TerminalError):
    """The site predates a feed: it was published by an older `rebuilder publish`."""

    def __init__(self, what: str, url: str) -> None:
        super().__init__(f"{url} is not published: this site was published by a `rebuilder publish` that "
                         f"does not write the {what} feed yet (update the rebuilder, or read `rebuildctl status`)")
        self.url = url


@dataclass(frozen=True)
class QueueListing:
    generated_at: datetime
    total: int  # every job in the feed
    jobs: list[QueuedJob]  # those listed (due unless --planned; the first 25 with --head)
    planned: int  # jobs hidden because they are not due yet


def _feed(site: Site, key: str, what: str) -> dict[str, Any]:
    try:
        doc = site.json(key)
    except FeedNotFound:
        raise FeedMissing(what, site.url(key)) from None
    if not isinstance(doc, dict) or doc.get("kind") != what:
        raise FeedInvalid(f"not a {what} feed", url=site.url(key))
    return feeds.check(doc, feeds.QUEUE if what == "queue" else feeds.WORKERS, url=site.url(key), what=what)


def _matches(job: QueuedJob, f: Filters) -> bool:
    names = [job.source_name, *(name for name, *_ in job.artifacts)]
    return ((f.distro is None or job.distro == f.distro) and (f.release is None or job.release == f.release)
            and (f.component is None or job.component == f.component)
            and (f.architecture is None or job.architecture == f.architecture)
            and (f.name is None or any(isinstance(n, str) and fnmatchcase(n, f.name) for n in names)))


def _malformed(what: str, exc: Exception) -> str:
    """What is wrong with a feed, in words (no Python repr of the exception)."""
    if isinstance(exc, KeyError):
        return f"malformed {what} feed: a field is missing: {exc.args[0]}"
    return f"malformed {what} feed: {str(exc)[:100]}"  # the error may hold the whole value (a 30 MB "time")


def list_queue(site: Site, *, planned: bool = False, head: bool = False, filters: Filters | None = None) -> QueueListing:
    """The queued jobs in claim order that match `filters`: due ones (all with `planned`), the first 25 with `head`."""
    doc = _feed(site, urls.QUEUE_FEED, "queue")
    try:
        now = parse_timestamp(doc["generated_at"])
        jobs = [QueuedJob.from_json(j) for j in doc["jobs"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise FeedInvalid(_malformed("queue", exc), url=site.url(urls.QUEUE_FEED)) from None
    if filters is not None:
        jobs = [j for j in jobs if _matches(j, filters)]
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


# --- workers --------------------------------------------------------------------------------

def list_workers(site: Site) -> tuple[datetime, list[Worker]]:
    """Every worker key the rebuilder has seen, as of the feed's `generated_at`."""
    doc = _feed(site, urls.WORKERS_FEED, "workers")
    try:
        out = [Worker.from_json(w) for w in doc["workers"]]
        return parse_timestamp(doc["generated_at"]), out
    except (KeyError, TypeError, ValueError) as exc:
        raise FeedInvalid(_malformed("workers", exc), url=site.url(urls.WORKERS_FEED)) from None
