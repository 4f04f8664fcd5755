"""The JSON feeds, made from the same rows as the pages.

v0 (rebuilderd's legacy API, what arch-repro-status, debian-repro-status, pacman-bintrans
and the Arch website read; docs/design.md#feeds-that-existing-tools-read): exactly rebuilderd's shapes, timestamps as
its `NaiveDateTime` strings (UTC, no zone), statuses through `Status.v0` (FAIL reads BAD).

v1 (our own, versioned by "schema": "rebuilder.feed/1"): RFC 3339 timestamps with "Z",
all four statuses, failure classes, and site-relative URLs of every linked file.

The contract with the readers (schema version, modes, columns, record shapes) is
`jobs.core.feeds`; this module fills it from the page rows.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from jobs.core import urls
from jobs.core.feeds import (
    ALL_COLUMNS,
    SCHEMA,
    STATIC_MODE,
    CurrentJob,
    DashboardBuild,
    QueuedJob,
    Worker,
    naive,
)
from jobs.core.model import Status, format_timestamp
from jobs.core.record import replace
from jobs.publish.site.classify import FailureClass
from jobs.publish.site.rows import (
    ActiveBuild,
    BuildLinks,
    BuildRow,
    PackagePage,
    PackageRow,
    SuiteKey,
    SuiteSummary,
)
from jobs.publish.state.verify import RejectedResult

STATUSES = (Status.GOOD, Status.BAD, Status.FAIL, Status.UNKWN)


def _ts(value: datetime | None) -> str | None:
    """`format_timestamp`, in half the time for a time already in UTC (every row's: 300,000 per 10,000 pages)."""
    if value is None:
        return None
    text = value.isoformat(timespec="microseconds")
    # An offset of zero: the time as written is UTC's (format_timestamp's text but its "+00:00").
    return text[:-6] + "Z" if text.endswith("+00:00") else format_timestamp(value)


def _url(key: str | None) -> str | None:
    return urls.href(key) if key is not None else None


# --- v0 ---------------------------------------------------------------------------------

def v0_artifact_url(url: str) -> str:
    """The artifact URL as rebuilderd writes it: sync percent-encodes the file name, rebuilderd
    appends it raw; an epoch's ":" is the difference consumers compare (`%3A` back to ":", which
    is legal in a URL path and means the same file to every server). "%2B" stays: a raw "+" in
    a path reads as a space to S3-style stores."""
    return url.replace("%3A", ":")


def pkg_release(row: PackageRow, group_architecture: str | None = None) -> dict[str, Any]:
    """One v0 PkgRelease; `architecture` is its build group's (queries.group_architectures) if known."""
    return {"name": row.name, "version": row.version, "status": row.status.v0().value, "distro": row.suite.distro,
            "suite": row.suite.component or "", "architecture": group_architecture or row.artifact_architecture,
            "artifact_url": v0_artifact_url(row.artifact_url), "build_id": row.links.v0_id, "built_at": naive(row.built_at),
            "has_diffoscope": row.links.has_diffoscope, "has_attestation": row.links.has_attestation}


def pkgs_list(rows: Iterable[PackageRow], group_architectures: Mapping[str, str] | None = None
              ) -> list[dict[str, Any]]:
    """`api/v0/pkgs/list`: every current package (a static host ignores the query, so all of them)."""
    seen, out = set(), []
    groups = group_architectures or {}
    for row in rows:
        item = pkg_release(row, groups.get(row.job_id))
        key = tuple(item.values())
        if key not in seen:  # the same binary in two releases is one v0 record (v0 has no release)
            seen.add(key)
            out.append(item)
    return out


def v0_suite_name(suite: SuiteKey) -> str:
    """The key of a suite in v0's dashboard: its component (rebuilderd ≥ 0.27), else release or distro."""
    return suite.component or suite.release or suite.distro


def queue_item(build: ActiveBuild) -> dict[str, Any]:
    """One v0 QueueItem (`jobs.core.feeds.DashboardBuild`)."""
    return DashboardBuild(build.queue_id, build.source_name, build.source_version, build.distro, build.component or "",
                          build.architecture, build.input_url, tuple(build.artifacts), build.queued_at,
                          build.worker_id, build.acquired_at, build.renewed_at).json()


def dashboard(suites: Iterable[SuiteSummary], active: list[ActiveBuild], now: datetime) -> dict[str, Any]:
    """`api/v0/dashboard` (DashboardResponse); `queue_length` counts running builds, as rebuilderd 0.27."""
    counts: dict[str, dict[str, int]] = {}
    for s in suites:
        c = counts.setdefault(v0_suite_name(s.suite), {"good": 0, "unknown": 0, "bad": 0})
        c["good"] += s.good
        c["unknown"] += s.unknown
        c["bad"] += s.bad + s.fail  # v0 knows no FAIL
    return {"suites": counts, "active_builds": [queue_item(b) for b in active], "queue_length": len(active),
            "now": naive(now)}


# --- v1 ---------------------------------------------------------------------------------

def envelope(kind: str, generated_at: datetime, **body: Any) -> dict[str, Any]:
    """A v1 feed: schema version, kind and generation time first."""
    return {"schema": SCHEMA, "kind": kind, "generated_at": format_timestamp(generated_at), **body}


def suite_json(suite: SuiteKey) -> dict[str, Any]:
    return {"distro": suite.distro, "release": suite.release, "component": suite.component,
            "architecture": suite.architecture}


_NO_FILES = {"log": None, "diffoscope": None, "diffoscope_html": None, "attestation": None}
_VALUE: dict[Any, str] = {**{s: s.value for s in Status}, **{c: c.value for c in FailureClass}}


def links_json(links: BuildLinks) -> dict[str, Any]:
    """A build's files as site-relative URLs (`urls.href` of `urls.build_file`: a build file's key has
    nothing to quote, so it is its own URL)."""
    v0 = links.v0_id
    if v0 is None:
        return dict(_NO_FILES)
    base = f"api/v0/builds/{int(v0)}/"
    return {"log": base + "log" if links.has_log else None,
            "diffoscope": base + "diffoscope" if links.has_diffoscope else None,
            "diffoscope_html": base + "diffoscope.html" if links.has_diffoscope_html else None,
            "attestation": base + "attestation" if links.has_attestation else None}


@functools.lru_cache(maxsize=4096)
def _page_href(distro: str, name: str) -> str:
    return urls.href(urls.package_page(distro, name))


def package_json(row: PackageRow) -> dict[str, Any]:
    """One current package in v1 form: `jobs.core.feeds.PackageRecord.json()` of it, written out (a record per
    row cost more than its dict)."""
    suite, links, fc = row.suite, row.links, row.failure_class
    return {"distro": suite.distro, "release": suite.release, "component": suite.component,
            "architecture": suite.architecture, "name": row.name, "version": row.version,
            "artifact_architecture": row.artifact_architecture, "artifact_url": row.artifact_url,
            "artifact_sha256": row.artifact_sha256, "source_name": row.source_name,
            "source_version": row.source_version, "status": _VALUE[row.status], "build_id": row.build_id,
            "v0_build_id": links.v0_id, "built_at": _ts(row.built_at), "has_diffoscope": links.has_diffoscope,
            "has_attestation": links.has_attestation, "reason": row.reason,
            "failure_class": _VALUE[fc] if fc else None, "worker_name": row.worker_name,
            "maintainers": list(row.maintainers), "description": row.description,
            "page": _page_href(suite.distro, row.name), "files": links_json(links)}


def build_json(build: BuildRow) -> dict[str, Any]:
    """One build attempt in v1 form."""
    fc = build.failure_class
    return {"build_id": build.build_id, "v0_build_id": build.links.v0_id, "job_id": build.job_id,
            "attempt": build.attempt, "distro": build.distro, "architecture": build.architecture,
            "source_name": build.source_name, "source_version": build.source_version, "status": _VALUE[build.status],
            "reason": build.reason, "failure_class": _VALUE[fc] if fc else None,
            "artifacts": [{"name": n, "status": _VALUE[s]} for n, s in build.artifacts],
            "worker_name": build.worker_name, "worker_key_id": build.worker_key_id,
            "started_at": _ts(build.started_at), "built_at": _ts(build.built_at), "files": links_json(build.links)}


def suite_feeds(summary: SuiteSummary) -> dict[str, str]:
    """The URLs of a suite's feeds: its summary and one list per status."""
    path = summary.suite.path
    return {"index": urls.href(urls.suite_feed(path, "index")),
            **{s.value: urls.href(urls.suite_feed(path, s.value)) for s in STATUSES}}


def lists_all(summary: SuiteSummary) -> dict[str, str]:
    """The URLs of a suite's whole status lists, one columnar feed each (`status_all`)."""
    return {s.value: urls.href(urls.status_all_feed(summary.suite.path, s)) for s in STATUSES}


def summary_json(summary: SuiteSummary) -> dict[str, Any]:
    """A suite's counts, share of GOOD, queue length, failure classes and feed URLs."""
    return {**suite_json(summary.suite),
            "counts": {"good": summary.good, "bad": summary.bad, "fail": summary.fail, "unknown": summary.unknown},
            "total": summary.total, "percent_reproducible": summary.percent, "queued": summary.queued,
            "failure_classes": {c.value: n for c, n in summary.classes}, "feeds": suite_feeds(summary),
            "lists_all": lists_all(summary), "page": urls.href(urls.suite_page(summary.suite.path))}


def status_feed(published_at: datetime, newest_result_at: datetime | None, *, rebuilder: str) -> dict[str, Any]:
    """`api/v1/status.json`, written by every publish: when it ran and how old its newest result is.

    `behind_seconds`: how long before this publish the newest published build finished
    (null with no build yet): a publish that runs but finds nothing new shows it growing.
    """
    behind = (None if newest_result_at is None
              else max(0, int((published_at - newest_result_at).total_seconds())))
    return envelope("status", published_at, rebuilder=rebuilder, published_at=format_timestamp(published_at),
                    newest_result_at=format_timestamp(newest_result_at) if newest_result_at is not None else None,
                    behind_seconds=behind)


def index_feed(suites: list[SuiteSummary], active: list[ActiveBuild], *, queue_length: int, rebuilder: str,
               generated_at: datetime, status: dict[str, Any] | None = None) -> dict[str, Any]:
    """`api/v1/index.json`: every suite and where its feeds are (and, with `status`, when publish ran)."""
    extra = {} if status is None else {"published_at": status["published_at"],
                                       "newest_result_at": status["newest_result_at"], "status": urls.STATUS_FEED}
    return envelope("index", generated_at, rebuilder=rebuilder, mode=STATIC_MODE, **extra, queue_length=queue_length,
                    active_builds=len(active), pkgs_list=urls.PKGS_LIST, public_keys=urls.PUBLIC_KEYS,
                    queue=urls.QUEUE_FEED, workers=urls.WORKERS_FEED, maintainers=urls.MAINTAINERS_FEED,
                    regressions=urls.REGRESSIONS, suites=[summary_json(s) for s in suites])


def list_feed(kind: str, summary: SuiteSummary, rows: list[PackageRow], generated_at: datetime,
              **extra: Any) -> dict[str, Any]:
    """One list of a suite (a status, a name letter or a failure class) with every package on it."""
    return envelope(kind, generated_at, suite=suite_json(summary.suite), **extra, count=len(rows),
                    packages=[package_json(r) for r in rows])


def status_all(suite: SuiteKey, status: Status, count: int, generated_at: datetime) -> dict[str, Any]:
    """A suite's whole status list but its rows, which follow as a last key "rows": one array per
    package, in `columns` order and in the list's display order (its parts' rows, concatenated).

    For clients that want the whole list (`rebuildctl pkgs ls`): one file instead of a part per
    `urls.PAGE_SIZE` rows, and no key repeated on every row.
    """
    return envelope("suite-status-all", generated_at, suite=suite_json(suite), status=status.value, count=count,
                    columns=list(ALL_COLUMNS))


def package_feed(page: PackagePage, generated_at: datetime) -> dict[str, Any]:
    """`api/v1/packages/<distro>/<name>.json`: current packages and every version and attempt of a name."""
    return envelope("package", generated_at, distro=page.distro, name=page.name,
                    packages=[package_json(r) for r in page.packages], builds=[build_json(b) for b in page.builds])


def queue_feed(entries: list[QueuedJob], generated_at: datetime) -> dict[str, Any]:
    """`api/v1/queue.json`: every queued job in claim order; `running` is its live claim, if any."""
    return envelope("queue", generated_at, count=len(entries), jobs=[e.json() for e in entries])


def workers_feed(workers: list[Worker], active: list[ActiveBuild], generated_at: datetime) -> dict[str, Any]:
    """`api/v1/workers.json`: every worker key seen, its trust, when it was last seen and what it builds now."""
    current = {b.worker_key_id: b for b in active}

    def worker(w: Worker) -> dict[str, Any]:
        b = current.get(w.key_id)
        job = None if b is None else CurrentJob(b.job_id, b.attempt, b.source_name, b.source_version, b.distro,
                                                b.architecture, b.acquired_at)
        return replace(w, current_job=job).json()
    return envelope("workers", generated_at, count=len(workers), workers=[worker(w) for w in workers])


def rejected_feed(rejected: list[RejectedResult], total: int, generated_at: datetime) -> dict[str, Any]:
    """`api/v1/rejected.json`: the most recent results publish refused, with the reason (for operators)."""
    return envelope("rejected", generated_at, count=total, shown=len(rejected), rejected=[
        {"key": r.key, "job_id": r.job_id, "attempt": r.attempt, "worker_key_id": r.worker_key_id,
         "reason": r.reason, "detail": r.detail, "at": _ts(r.at)} for r in rejected])
