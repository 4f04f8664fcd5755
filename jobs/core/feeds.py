"""The feeds' contract: what `rebuilder publish` writes and rebuildctl and `rebuilder serve` read.

One module for both sides: the schema version, the modes, the columns of a whole list, the
shapes of every feed a reader checks, and the typed records the feeds are made of: the queue
and workers feeds (`QueuedJob`, `Running`, `Worker`, `CurrentJob`), the v1 per-package objects
of the lists and package feeds (`PackageRecord`) and the v0 dashboard's running builds
(`DashboardBuild`). `json()` is what publish writes, `from_json` what rebuildctl reads back. Publish writes them (`jobs.publish.site.feeds`), rebuildctl reads them
(`jobs.ctl`), so neither can change a field without the other seeing it. A change that old
readers would misread needs a new `SCHEMA` version.

Shapes: a wrong-typed feed is one FeedInvalid, never a traceback.

A spec is a type (or tuple of types) a value must be, a dict of the keys an object must have
(`Optional` for keys that may be missing or null), a one-element list (every element of an
array), `MapOf` (an object of any keys, each value of one spec) or `ANY`. Keys a spec does not
name are allowed: newer sites may add fields.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from jobs.core.errors import TerminalError
from jobs.core.record import record

SCHEMA = "rebuilder.feed/1"
# The index's "mode": "static" as published (files only: a static host ignores queries, so
# `api/v0/pkgs/list` is the whole list and no admin endpoint exists); `rebuilder serve` answers
# the same index with "api" (filtered lists, queue/list, workers, admin requests: docs/api.md).
STATIC_MODE, API_MODE = "static", "api"
# The columns of a whole status list (`jobs.publish.site.feeds.status_all`), in order: a
# `jobs.publish.site.feeds.package_json` row without what the feed says once (suite, status) or
# what a client derives: `page` is
# urls.package_page(distro, name), and each of `files` is urls.build_file(v0_build_id, what)
# where its has_* flag is true.
ALL_COLUMNS = ("name", "version", "artifact_architecture", "artifact_url", "source_name", "source_version",
               "build_id", "v0_build_id", "built_at", "reason", "failure_class", "worker_name", "has_log",
               "has_diffoscope", "has_diffoscope_html", "has_attestation")


def naive(value: datetime | None) -> str | None:
    """rebuilderd's NaiveDateTime form: "2026-05-01T12:34:56.123456", UTC, no zone."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value.isoformat(timespec="microseconds")


class FeedInvalid(TerminalError):
    """A file was fetched but is not what the site layout promises (e.g. not JSON)."""


ANY = object()
STR, INT, NUM, BOOL = str, int, (int, float), bool
_NAMES = {str: "text", int: "a number", float: "a number", bool: "true or false", list: "an array",
          dict: "an object", type(None): "null"}


@record(frozen=True)
class Optional:
    """A key that may be missing or null."""

    spec: Any


@record(frozen=True)
class MapOf:
    """An object whose values all follow `spec`."""

    spec: Any


def check(value: Any, spec: Any, *, url: str, what: str) -> Any:
    """`value` if it follows `spec`, else FeedInvalid naming the feed, the path and the expectation."""
    problem = _problem(value, spec, "")
    if problem is not None:
        path, expected, got = problem
        raise FeedInvalid(f"malformed {what} feed: {path or 'the document'} is {_NAMES.get(type(got), 'something else')}"
                          f", not {expected}", url=url)
    return value


def _problem(value: Any, spec: Any, path: str) -> tuple[str, str, Any] | None:
    if spec is ANY:
        return None
    if isinstance(spec, Optional):
        return None if value is None else _problem(value, spec.spec, path)
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            return path, "an object", value
        for key, sub in spec.items():
            if key not in value:
                if isinstance(sub, Optional):
                    continue
                return f"{path}.{key}".lstrip("."), "present", None
            found = _problem(value[key], sub, f"{path}.{key}".lstrip("."))
            if found:
                return found
        return None
    if isinstance(spec, MapOf):
        if not isinstance(value, dict):
            return path, "an object", value
        for key, item in value.items():
            found = _problem(item, spec.spec, f"{path}.{key}"[:120].lstrip("."))
            if found:
                return found
        return None
    if isinstance(spec, list):
        if not isinstance(value, list):
            return path, "an array", value
        if _leaf_types_ok(value, spec[0]):
            return None  # items of plain types (a whole list's 100,000 rows), checked a type at a time
        for i, item in enumerate(value):
            found = _problem(item, spec[0], f"{path}[{i}]")
            if found:
                return found
        return None
    types = spec if isinstance(spec, tuple) else (spec,)
    if isinstance(value, bool) and bool not in types:
        return path, " or ".join(dict.fromkeys(_NAMES[t] for t in types)), value
    if not isinstance(value, types):
        return path, " or ".join(dict.fromkeys(_NAMES[t] for t in types)), value
    return None


def _leaf_types_ok(items: list[Any], spec: Any) -> bool:
    """True if `spec` is a type (or tuple of types) that every item is, as `_problem` checks one."""
    types = spec if isinstance(spec, tuple) else (spec,)
    if not all(isinstance(t, type) for t in types):
        return False
    return all(issubclass(kind, types) and (kind is not bool or bool in types) for kind in set(map(type, items)))


OSTR = Optional(STR)
SUITE = {"distro": STR, "release": OSTR, "component": OSTR, "architecture": STR}
INDEX = {"suites": [{**SUITE, "counts": {"good": INT, "bad": INT, "fail": INT, "unknown": INT}, "total": INT,
                     "percent_reproducible": NUM, "queued": INT, "feeds": MapOf(STR),
                     "lists_all": Optional(MapOf(STR))}],
         "queue_length": Optional(INT)}
DASHBOARD = {"active_builds": Optional([{"pkgbase": {"name": STR, "distro": STR, "suite": OSTR, "architecture": STR},
                                         "version": STR, "worker_id": Optional((int, str)),
                                         "started_at": OSTR}])}
FILES = MapOf(OSTR)
PACKAGE = {**SUITE, "status": STR, "name": STR, "version": STR, "artifact_architecture": STR,
           "artifact_url": OSTR, "build_id": OSTR, "files": Optional(FILES)}
LIST = {"packages": Optional([PACKAGE]), "parts": Optional([{"feed": STR}])}
WHOLE = {"suite": SUITE, "status": STR, "columns": [STR], "rows": [list]}
PACKAGE_FEED = {"packages": [PACKAGE]}
_JOB_RUNNING = {"worker_name": OSTR, "worker_key_id": OSTR, "started_at": STR, "renewed_at": OSTR,
                "expires_at": OSTR}
QUEUE = {"generated_at": STR, "jobs": [{"job_id": STR, "attempt": INT, "priority": INT, "not_before": OSTR,
                                        "queued_at": STR, "distro": STR, "release": OSTR, "component": OSTR,
                                        "architecture": STR, "source_name": STR, "source_version": STR,
                                        "backend": OSTR, "artifacts": Optional([{"name": OSTR}]),
                                        "running": Optional(_JOB_RUNNING)}]}
WORKERS = {"generated_at": STR, "workers": [{"key_id": STR, "name": OSTR, "worker_id": Optional(INT), "trust": STR,
                                             "last_seen": OSTR, "builds": Optional(INT),
                                             "current_job": Optional({"job_id": STR, "attempt": INT,
                                                                      "source_name": STR, "source_version": STR,
                                                                      "distro": STR, "architecture": STR,
                                                                      "started_at": OSTR})}]}


# --- typed records of the queue and workers feeds ---------------------------------------------

# jobs.core.model is imported where a record is made, not here: it loads pyarrow, and rebuildctl
# imports this module for its shapes on every start.

def _ts(value: datetime | None) -> str | None:
    from jobs.core.model import format_timestamp
    return format_timestamp(value) if value is not None else None


def parse_timestamp(value: str) -> datetime:
    from jobs.core.model import parse_timestamp as parse
    return parse(value)


def _parsed(value: Any) -> datetime | None:
    return parse_timestamp(value) if value else None


@record(frozen=True)
class Running:
    """The live claim on a queued job's current attempt (`running` of a queue-feed job)."""

    worker_name: str | None  # as the claim says (untrusted)
    worker_key_id: str | None
    started_at: datetime
    renewed_at: datetime | None
    expires_at: datetime | None

    def json(self) -> dict[str, Any]:
        return {"worker_name": self.worker_name, "worker_key_id": self.worker_key_id,
                "started_at": _ts(self.started_at), "renewed_at": _ts(self.renewed_at),
                "expires_at": _ts(self.expires_at)}

    @classmethod
    def from_json(cls, r: dict[str, Any]) -> Running:
        return cls(r.get("worker_name"), r.get("worker_key_id"), parse_timestamp(r["started_at"]),
                   _parsed(r.get("renewed_at")), _parsed(r.get("expires_at")))


@record(frozen=True, uncompared=("raw",))  # raw: not compared, not in the repr
class QueuedJob:
    """One job of `api/v1/queue.json`, in claim order, with the live claim on its current attempt if any.

    `raw`: the feed's own object when read back (rebuildctl's --json prints it as the site has it).
    """

    job_id: str
    attempt: int
    priority: int
    not_before: datetime | None
    queued_at: datetime
    distro: str
    releases: tuple[str | None, ...]
    component: str | None
    architecture: str
    source_name: str
    source_version: str
    backend: str
    input_url: str | None
    artifacts: tuple[tuple[str, str, str, str], ...]  # (name, version, url, architecture)
    running: Running | None  # None: nobody builds it now
    raw: dict[str, Any] | None = None

    @property
    def release(self) -> str | None:
        return self.releases[0] if self.releases else None

    def due(self, now: datetime) -> bool:
        return self.not_before is None or self.not_before <= now

    def running_for(self, now: datetime) -> int | None:
        """Seconds since the running build started, at `now`; None if nobody builds it."""
        return None if self.running is None else max(0, int((now - self.running.started_at).total_seconds()))

    def json(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "attempt": self.attempt, "priority": self.priority,
                "not_before": _ts(self.not_before), "queued_at": _ts(self.queued_at), "distro": self.distro,
                "release": self.release, "releases": list(self.releases), "component": self.component,
                "architecture": self.architecture, "source_name": self.source_name,
                "source_version": self.source_version, "backend": self.backend, "input_url": self.input_url,
                "artifacts": [{"name": n, "version": v, "url": u, "architecture": a} for n, v, u, a in self.artifacts],
                "running": None if self.running is None else self.running.json()}

    @classmethod
    def from_json(cls, j: dict[str, Any]) -> QueuedJob:
        """The job a queue feed's object describes (checked against `QUEUE` first); older sites lack
        `releases`, `input_url` and an artifact's version, url and architecture."""
        release, listed = j.get("release"), j.get("releases")
        same = isinstance(listed, list) and (listed[:1] == [release] or (not listed and release is None))
        releases = tuple(listed) if same and all(r is None or isinstance(r, str) for r in listed) else (release,)
        artifacts = tuple((a.get("name"), a.get("version"), a.get("url"), a.get("architecture"))
                          for a in j.get("artifacts") or () if isinstance(a, dict))
        r = j.get("running")
        return cls(j["job_id"], int(j["attempt"]), int(j["priority"]), _parsed(j.get("not_before")),
                   parse_timestamp(j["queued_at"]), j["distro"], releases, j.get("component"), j["architecture"],
                   j["source_name"], j["source_version"], j.get("backend", ""), j.get("input_url"), artifacts,
                   Running.from_json(r) if r else None, j)


@record(frozen=True)
class CurrentJob:
    """What a worker builds now (`current_job` of a workers-feed worker)."""

    job_id: str
    attempt: int
    source_name: str
    source_version: str
    distro: str
    architecture: str
    started_at: datetime | None

    def json(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "attempt": self.attempt, "source_name": self.source_name,
                "source_version": self.source_version, "distro": self.distro, "architecture": self.architecture,
                "started_at": _ts(self.started_at)}

    @classmethod
    def from_json(cls, c: dict[str, Any]) -> CurrentJob:
        return cls(c["job_id"], int(c["attempt"]), c["source_name"], c["source_version"], c["distro"],
                   c["architecture"], _parsed(c.get("started_at")))


@record(frozen=True, uncompared=("raw",))  # raw: not compared, not in the repr
class Worker:
    """A worker key seen anywhere (`api/v1/workers.json`): enrolled, authorized, in the history or holding a claim."""

    key_id: str
    name: str | None  # its enrolment record's, else the claim's or the latest result's (untrusted)
    worker_id: int | None  # v0 integer id (enrolled workers only)
    trust: str  # "authorized", "enrolled" or "untrusted"
    last_seen: datetime | None
    builds: int
    current_job: CurrentJob | None = None
    raw: dict[str, Any] | None = None

    def json(self) -> dict[str, Any]:
        return {"key_id": self.key_id, "name": self.name, "worker_id": self.worker_id, "trust": self.trust,
                "last_seen": _ts(self.last_seen), "builds": self.builds,
                "current_job": None if self.current_job is None else self.current_job.json()}

    @classmethod
    def from_json(cls, w: dict[str, Any]) -> Worker:
        """The worker a workers feed's object describes (checked against `WORKERS` first)."""
        c = w.get("current_job")
        return cls(w["key_id"], w.get("name"), w.get("worker_id"), w["trust"], _parsed(w.get("last_seen")),
                   int(w.get("builds") or 0), CurrentJob.from_json(c) if c else None, w)


# --- typed records of the per-package feeds and the v0 dashboard ---------------------------

def _instant(value: Any) -> datetime | None:
    """An RFC 3339 timestamp (as `_ts` writes it) as an aware UTC datetime; None for null or "".

    What `jobs.core.model.parse_timestamp` does, without loading the model (a list feed reads
    one a package: 100,000 of them)."""
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp without a timezone: {value[:40]!r}")
    return _utc(parsed, value)


def _from_naive(value: Any) -> datetime | None:
    """A v0 timestamp (`naive`: UTC without a zone) as an aware datetime; None for null or ""."""
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed.replace(tzinfo=timezone.utc) if parsed.tzinfo is None else _utc(parsed, value)


def _utc(parsed: datetime, value: str) -> datetime:
    try:
        return parsed.astimezone(timezone.utc)
    except OverflowError:  # 0001-01-01T00:00+14:00: a date whose UTC is before year 1 (or after 9999)
        raise ValueError(f"timestamp out of range in UTC: {value[:40]!r}") from None


# A package's `files`: where its log, diffoscope (text and HTML) and attestation are; None: not published.
FILE_NAMES = ("log", "diffoscope", "diffoscope_html", "attestation")


@record(frozen=True)
class PackageRecord:
    """One current package in v1 form: an element of `packages` in the per-suite status lists,
    their parts, the package feeds and the maintainer feeds (`PACKAGE` is its shape).

    Publish writes it (`jobs.publish.site.feeds.package_json`); rebuildctl reads it back
    (`jobs.ctl.commands.ListedPackage.from_record`). Sites older than a field lack it:
    `from_json` gives None, False or empty for every field `PACKAGE` does not require.
    """

    distro: str
    release: str | None
    component: str | None
    architecture: str  # the suite's
    name: str
    version: str
    artifact_architecture: str
    artifact_url: str | None
    artifact_sha256: str | None
    source_name: str | None
    source_version: str | None
    status: str  # a jobs.core.model.Status value
    build_id: str | None
    v0_build_id: int | None
    built_at: datetime | None
    has_diffoscope: bool
    has_attestation: bool
    reason: str | None
    failure_class: str | None
    worker_name: str | None
    maintainers: tuple[str, ...]
    description: str | None  # one line, bounded and cleaned at sync
    page: str | None
    files: dict[str, str | None]  # FILE_NAMES -> URL

    def json(self) -> dict[str, Any]:
        return {"distro": self.distro, "release": self.release, "component": self.component,
                "architecture": self.architecture, "name": self.name, "version": self.version,
                "artifact_architecture": self.artifact_architecture, "artifact_url": self.artifact_url,
                "artifact_sha256": self.artifact_sha256, "source_name": self.source_name,
                "source_version": self.source_version, "status": self.status, "build_id": self.build_id,
                "v0_build_id": self.v0_build_id, "built_at": _ts(self.built_at),
                "has_diffoscope": self.has_diffoscope, "has_attestation": self.has_attestation,
                "reason": self.reason, "failure_class": self.failure_class, "worker_name": self.worker_name,
                "maintainers": list(self.maintainers), "description": self.description, "page": self.page,
                "files": dict(self.files)}

    @classmethod
    def from_json(cls, p: dict[str, Any]) -> PackageRecord:
        """The package a feed's object describes (checked against `PACKAGE` first); ValueError,
        TypeError or KeyError if a field `PACKAGE` does not check is unusable."""
        get = p.get
        files, maintainers = get("files"), get("maintainers")
        return cls(p["distro"], get("release"), get("component"), p["architecture"], p["name"], p["version"],
                   p["artifact_architecture"], get("artifact_url"), get("artifact_sha256"), get("source_name"),
                   get("source_version"), p["status"], get("build_id"), get("v0_build_id"),
                   _instant(get("built_at")), bool(get("has_diffoscope")), bool(get("has_attestation")),
                   get("reason"), get("failure_class"), get("worker_name"),
                   tuple(m for m in maintainers if type(m) is str) if type(maintainers) is list else (),
                   get("description"), get("page"), files if type(files) is dict else dict(files or {}))


@record(frozen=True)
class DashboardBuild:
    """One build running now, as `api/v0/dashboard` lists it (rebuilderd's QueueItem; `DASHBOARD`
    is what a reader checks). Publish writes it (`jobs.publish.site.feeds.queue_item`);
    rebuildctl's `status` reads it back (`jobs.ctl.commands.BuildInProgress`)."""

    id: int
    name: str  # the source package (pkgbase)
    version: str
    distro: str
    suite: str  # v0's suite: the component, "" for none
    architecture: str
    input_url: str | None
    artifacts: tuple[tuple[str, str, str], ...]  # (name, version, url)
    queued_at: datetime | None
    worker_id: int | str | None
    started_at: datetime | None
    last_ping: datetime | None

    def json(self) -> dict[str, Any]:
        pkgbase = {"name": self.name, "version": self.version, "distro": self.distro, "suite": self.suite,
                   "architecture": self.architecture, "input_url": self.input_url,
                   "artifacts": [{"name": n, "version": v, "url": u} for n, v, u in self.artifacts]}
        return {"id": self.id, "pkgbase": pkgbase, "version": self.version, "queued_at": naive(self.queued_at),
                "worker_id": self.worker_id, "started_at": naive(self.started_at), "last_ping": naive(self.last_ping)}

    @classmethod
    def from_json(cls, b: dict[str, Any]) -> DashboardBuild:
        """The build a dashboard's `active_builds` object describes (checked against `DASHBOARD` first);
        ValueError if a timestamp is not one."""
        base = b["pkgbase"]
        artifacts = tuple((a.get("name"), a.get("version"), a.get("url"))
                          for a in base.get("artifacts") or () if isinstance(a, dict))
        return cls(b.get("id") or 0, base["name"], b["version"], base["distro"], base.get("suite") or "",
                   base["architecture"], base.get("input_url"), artifacts, _from_naive(b.get("queued_at")),
                   b.get("worker_id"), _from_naive(b.get("started_at")), _from_naive(b.get("last_ping")))
