"""The feeds' contract: what `rebuilder publish` writes and rebuildctl and `rebuilder serve` read.

One module for both sides: the schema version, the modes, the columns of a whole list and the
shapes of every feed a reader checks. Publish writes them (`jobs.publish.feeds`), rebuildctl
reads them (`jobs.ctl`), so neither can change a field without the other seeing it.

Shapes: a wrong-typed feed is one FeedInvalid, never a traceback.

A spec is a type (or tuple of types) a value must be, a dict of the keys an object must have
(`Optional` for keys that may be missing or null), a one-element list (every element of an
array), `MapOf` (an object of any keys, each value of one spec) or `ANY`. Keys a spec does not
name are allowed: newer sites may add fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from jobs.core.errors import TerminalError
from jobs.core.model.status import Status

SCHEMA = "rebuilder.feed/1"
# The index's "mode": "static" as published (files only: a static host ignores queries, so
# `api/v0/pkgs/list` is the whole list and no admin endpoint exists); `rebuilder serve` answers
# the same index with "api" (filtered lists, queue/list, workers, admin requests: docs/api.md).
STATIC_MODE, API_MODE = "static", "api"
STATUSES = (Status.GOOD, Status.BAD, Status.FAIL, Status.UNKWN)
# The columns of a whole status list (`jobs.publish.feeds.status_all`), in order: a
# `jobs.publish.feeds.package_json` row without what the feed says once (suite, status) or
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


@dataclass(frozen=True)
class Optional:
    """A key that may be missing or null."""

    spec: Any


@dataclass(frozen=True)
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
