"""rebuildctl against a real rebuilderd: its v0 API, for one client during a migration.

A rebuilderd daemon publishes no `api/v1/index.json` (ours always does) but answers
`GET /api/v0/dashboard` with its suite counts; that pair is how `detect` tells one (asked
only after the index was not found, so reading our sites costs nothing more). Then:

- `pkgs ls` is `GET /api/v0/pkgs/list` with upstream's query (distro, suite, architecture,
  one status, an exact name); globs, versions, several statuses and `--release` are then
  filtered here, as for our sites;
- `pkgs log/diffoscope/attestation` find the package in that list and read
  `/api/v0/builds/<id>/<file>`;
- `status` reads `/api/v0/dashboard` and, with the admin cookie, `/api/v0/workers`;
  `queue ls` is `POST /api/v0/queue/list`;
- `pkgs requeue`, `queue push`, `queue drop` POST `/api/v0/pkg/requeue`, `/api/v0/queue/push`,
  `/api/v0/queue/drop` with the cookie as `X-Auth-Cookie`, as upstream's rebuildctl does.

Everything the daemon answers is untrusted like a site's feeds: read with the same caps,
checked for shape (`FeedInvalid` naming the URL), escaped when printed (`jobs.ctl.terminal`).
Written for the v0 of rebuilderd 0.23 to 0.27 (0.26 and later answer the writers with 501,
said as such).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import urlencode, urlsplit

from jobs.core.bounded import Deadline
from jobs.core.errors import TerminalError
from jobs.core.model import Status
from jobs.ctl.feeds import FeedInvalid, FeedNotFound, FeedUnavailable, Site, loads

INDEX = "api/v1/index.json"
DASHBOARD = "api/v0/dashboard"
LIST = "api/v0/pkgs/list"
GLOB = frozenset("*?[")
ANSWER_MAX = 64 * 1024  # an admin POST's answer (upstream's is `null`)
_V0_STATUSES = ("GOOD", "BAD", "UNKWN")


class DaemonRefused(TerminalError):
    """The daemon answered an admin request with an error (a wrong cookie, a 501 of a read-only v0)."""


@dataclass(frozen=True)
class Daemon:
    """A rebuilderd daemon at `site.base`, read and written through its v0 API."""

    site: Site

    # --- reads ---------------------------------------------------------------------------

    def packages(self, *, distro: str | None, component: str | None, architecture: str | None,
                 name: str | None, statuses: list[Status] | None) -> list[dict[str, Any]]:
        """The daemon's package records for these filters (its query where it has one)."""
        query = {"distro": distro, "suite": component, "architecture": architecture}
        if name is not None and not GLOB & set(name):
            query["name"] = name
        if statuses is not None and len(statuses) == 1:
            if statuses[0].value not in _V0_STATUSES:
                return []  # rebuilderd has no FAIL: its failed builds are BAD
            query["status"] = statuses[0].value
        key = LIST + ("?" + urlencode({k: v for k, v in query.items() if v is not None}) if any(query.values()) else "")
        records = self.site.json(key)
        if not isinstance(records, list):
            raise FeedInvalid("not a rebuilderd package list", url=self.site.url(key))
        out = []
        for r in records:
            if not _record(r):
                raise FeedInvalid("a package record lacks a field or has one of the wrong type", url=self.site.url(key))
            if name is not None and not fnmatchcase(r["name"], name):
                continue
            if statuses is not None and r["status"] not in {s.value for s in statuses}:
                continue
            out.append(r)
        return out

    def dashboard(self) -> dict[str, Any]:
        doc = self.site.json(DASHBOARD)
        if not isinstance(doc, dict) or not isinstance(doc.get("suites"), dict):
            raise FeedInvalid("not a rebuilderd dashboard", url=self.site.url(DASHBOARD))
        return doc

    def text(self, key: str) -> str:
        return self.site.text(key)

    def queue(self, limit: int | None) -> dict[str, Any]:
        doc = self._post("api/v0/queue/list", {"limit": limit}, cookie=None)
        if not isinstance(doc, dict) or not isinstance(doc.get("queue"), list):
            raise FeedInvalid("not a rebuilderd queue", url=self.site.url("api/v0/queue/list"))
        return doc

    def workers(self, cookie: str) -> list[dict[str, Any]]:
        doc = self._request("GET", "api/v0/workers", None, cookie)
        if not isinstance(doc, list) or not all(isinstance(w, dict) for w in doc):
            raise FeedInvalid("not a rebuilderd worker list", url=self.site.url("api/v0/workers"))
        return doc

    # --- admin ---------------------------------------------------------------------------

    def requeue(self, cookie: str, *, name: str | None, status: str | None, priority: int, distro: str | None,
                component: str | None, architecture: str | None, reset: bool) -> None:
        self._post("api/v0/pkg/requeue", {"name": name, "status": _v0_status(status), "priority": priority,
                                          "distro": distro, "suite": component, "architecture": architecture,
                                          "reset": reset}, cookie)

    def push(self, cookie: str, *, name: str, version: str | None, priority: int, distro: str, component: str,
             architecture: str | None) -> None:
        self._post("api/v0/queue/push", {"name": name, "version": version, "priority": priority, "distro": distro,
                                         "suite": component, "architecture": architecture}, cookie)

    def drop(self, cookie: str, *, name: str, version: str | None, distro: str, component: str,
             architecture: str | None) -> None:
        self._post("api/v0/queue/drop", {"name": name, "version": version, "distro": distro, "suite": component,
                                         "architecture": architecture}, cookie)

    # --- transport -----------------------------------------------------------------------

    def _post(self, key: str, body: dict[str, Any], cookie: str | None) -> Any:
        return self._request("POST", key, body, cookie)

    def _request(self, method: str, key: str, body: dict[str, Any] | None, cookie: str | None) -> Any:
        from jobs.ctl.transport import TransportError

        url = self.site.url(key)
        headers = {"Content-Type": "application/json", "Accept-Encoding": "identity"}
        if cookie is not None:
            headers["X-Auth-Cookie"] = cookie
        deadline = Deadline(self.site.limits.deadline, url)
        limit = self.site.limits.feed_bytes if method == "GET" or key.endswith("/queue/list") else ANSWER_MAX
        try:
            resp = self.site.transport().request(method, url, limit=limit, deadline=deadline, headers=headers,
                                             body=None if body is None else json.dumps(body).encode(), redirects=0)
        except TransportError as exc:
            raise FeedUnavailable(f"cannot reach the daemon: {exc.reason}", url=url) from None
        data = resp.body
        if resp.status_code == 403:
            raise DaemonRefused("the daemon refused the admin cookie (403)", url=url)
        if resp.status_code == 501:
            raise DaemonRefused("the daemon does not implement this (501: rebuilderd 0.26 and later made v0 "
                                "read-only)", url=url)
        if resp.status_code >= 500:
            raise FeedUnavailable(f"HTTP {resp.status_code}", url=url)
        if resp.status_code != 200:
            text = data[:200].decode("utf-8", "replace").strip()
            raise DaemonRefused(f"HTTP {resp.status_code}" + (f": {text}" if text else ""), url=url)
        try:
            return loads(data) if data.strip() else None  # as a site's feed: no NaN, no lone surrogate
        except (ValueError, RecursionError):
            raise FeedInvalid("the daemon's answer is not JSON", url=url) from None


def _v0_status(status: str | None) -> str | None:
    if status is not None and status not in _V0_STATUSES:
        raise TerminalError(f"rebuilderd has no {status} status (its failed builds are BAD)")
    return status


def _record(r: Any) -> bool:
    if not isinstance(r, dict):
        return False
    text = all(isinstance(r.get(k), str) for k in ("name", "version", "status", "distro", "suite", "architecture",
                                                       "artifact_url"))
    build = r.get("build_id")
    return text and (build is None or (isinstance(build, int) and not isinstance(build, bool))) \
        and isinstance(r.get("has_diffoscope", False), bool) and isinstance(r.get("has_attestation", False), bool)


def detect(site: Site, missing: FeedNotFound) -> Daemon:
    """The daemon at `site`, if the missing file was our index and the site is a rebuilderd; else `missing`."""
    if missing.url != site.url(INDEX) or urlsplit(site.base).scheme not in ("http", "https"):
        raise missing
    try:
        doc = site.json(DASHBOARD)
    except (FeedNotFound, FeedInvalid):
        raise missing from None
    if not isinstance(doc, dict) or not isinstance(doc.get("suites"), dict) or "queue_length" not in doc:
        raise missing
    return Daemon(site)


def probe(site: Site) -> Daemon | None:
    """A daemon at `site` (an admin verb asks before it writes a request into a store), else None."""
    if urlsplit(site.base).scheme not in ("http", "https"):
        return None
    try:
        site.json(INDEX)
        return None
    except FeedNotFound as exc:
        try:
            return detect(site, exc)
        except FeedNotFound:
            return None
    except (FeedUnavailable, FeedInvalid, TerminalError):
        return None


def parse_naive(value: Any) -> datetime | None:
    """rebuilderd's `NaiveDateTime` (UTC, up to 9 fractional digits) as an aware datetime."""
    if not isinstance(value, str) or len(value) > 40:
        return None
    head, _, frac = value.rstrip("Z").partition(".")
    try:
        at = datetime.fromisoformat(head)
    except ValueError:
        return None
    digits = "".join(c for c in frac if "0" <= c <= "9")[:6].ljust(6, "0") if frac else "0"
    return at.replace(microsecond=int(digits), tzinfo=timezone.utc)


# --- our rows from the daemon's answers (printed by the same code as a site's) ---------------

def _package_row(r: dict[str, Any]) -> Any:
    from jobs.ctl.commands import ListedPackage

    build = r.get("build_id")
    base = f"api/v0/builds/{build}" if build is not None else None
    links = {"log": base and f"{base}/log", "diffoscope": base and r.get("has_diffoscope") and f"{base}/diffoscope",
             "diffoscope_html": None, "attestation": base and r.get("has_attestation") and f"{base}/attestation"}
    return ListedPackage(r["status"], r["name"], r["version"], r["distro"], None, r["suite"] or None, r["architecture"],
                      r["architecture"], r["artifact_url"], None if build is None else str(build),
                      {k: v or None for k, v in links.items()})


def list_packages(daemon: Daemon, filters: Any, statuses: list[Status] | None) -> list[Any]:
    """`pkgs ls` rows (`jobs.ctl.commands.ListedPackage`) from the daemon's list."""
    from jobs.ctl.commands import _row_matches, _row_order

    records = daemon.packages(distro=filters.distro, component=filters.component, architecture=filters.architecture,
                              name=filters.name, statuses=statuses)
    return sorted((row for row in map(_package_row, records) if _row_matches(row, filters)), key=_row_order)


def find_build(daemon: Daemon, name: str, filters: Any, what: str) -> Any:
    """The one package called `name` (within `filters`) whose `what` the daemon has; NoMatch or Ambiguous."""
    from jobs.core.record import replace
    from jobs.ctl.commands import Ambiguous, NoMatch, _given

    rows = list_packages(daemon, replace(filters, name=name), None)
    if not rows:
        given = _given(filters)
        raise NoMatch(f"the daemon has no package called {name}" + (f" with {given}" if given else ""))
    if len(rows) > 1:
        raise Ambiguous(f"{len(rows)} packages match {name}; narrow it with --version, --distro, --suite or "
                        "--architecture", rows)
    row = rows[0]
    if not row.files.get(what):
        raise NoMatch(f"{row.name} {row.version} ({row.status}) has no {what} on the daemon")
    return row
