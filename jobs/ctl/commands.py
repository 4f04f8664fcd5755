"""rebuildctl's commands as functions: read the published feeds, return plain rows.

Reads use only the v1 index and the per-suite per-status feeds they need (never the
whole v0 list): each status list in one columnar file where the site publishes it so,
else its feed and parts. The admin verbs' requests are written by `jobs.ctl.admin`.
"""

from __future__ import annotations

import gc
import os
import re
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from fnmatch import fnmatchcase
from itertools import chain
from operator import attrgetter, itemgetter
from typing import Any

from jobs.core import feeds as schema
from jobs.core import urls
from jobs.core.errors import TerminalError, TransientError
from jobs.core.model import Status
from jobs.core.record import asdict, record, replace
from jobs.ctl.feeds import DEFAULT_ENDPOINT, FeedInvalid, FeedNotFound, Limits, Site, cache_dir

FILES = ("log", "diffoscope", "attestation")
# A row's files: its key in a list feed's `files`, and the file's name under urls.build_file.
_FILES = (("log", "log"), ("diffoscope", "diffoscope"), ("diffoscope_html", "diffoscope.html"),
          ("attestation", "attestation"))
ARCH_INDEPENDENT = ("any", "all", "noarch")  # pacman, dpkg, rpm


class NoMatch(TerminalError):
    """No published package matches the filters."""


class Ambiguous(TerminalError):
    """Several published builds match; `candidates` lists them for a narrower filter."""

    def __init__(self, message: str, candidates: list[ListedPackage]) -> None:
        super().__init__(message)
        self.candidates = candidates


class ListPartMissing(TransientError):
    """A list's index names a part that is not there: a publish replaced the list while it was read."""


@record(frozen=True)
class Filters:
    """The package filters shared by ls, log/diffoscope/attestation and requeue."""

    distro: str | None = None
    release: str | None = None
    component: str | None = None
    architecture: str | None = None
    name: str | None = None  # fnmatch glob
    version: str | None = None


@record(frozen=True)
class SuiteStatus:
    distro: str
    release: str | None
    component: str | None
    architecture: str
    good: int
    bad: int
    fail: int
    unknown: int
    total: int
    percent_reproducible: float
    queued: int


@record(frozen=True)
class BuildInProgress:
    """A build running now, as `status` prints it: made from the dashboard's `jobs.core.feeds.DashboardBuild`."""

    name: str
    version: str
    distro: str
    component: str | None
    architecture: str
    worker_id: Any
    started_at: str | None  # v0's form (`jobs.core.feeds.naive`), as the dashboard says it

    @classmethod
    def from_record(cls, b: schema.DashboardBuild) -> BuildInProgress:
        return cls(b.name, b.version, b.distro, b.suite or None, b.architecture, b.worker_id, schema.naive(b.started_at))


@record(frozen=True)
class StatusReport:
    suites: list[SuiteStatus]
    queue_length: int
    active_builds: list[BuildInProgress]
    workers: list[Any] | None = None  # jobs.ctl.queue.Worker rows; None: the site has no workers feed
    workers_missing: str | None = None  # then the URL that is not published

    def json(self) -> dict[str, Any]:
        """The report as `status --json` prints it (workers as the feed gives them, null if not published)."""
        return {"suites": [asdict(s) for s in self.suites], "queue_length": self.queue_length,
                "active_builds": [asdict(b) for b in self.active_builds],
                "workers": None if self.workers is None else [w.raw for w in self.workers]}


@record  # not frozen: a frozen record costs 4 µs more per row, 0.4 s on 100,000 rows
class ListedPackage:
    """A package as `pkgs ls` shows it: from a list feed's `jobs.core.feeds.PackageRecord`
    (`from_record`), from a whole list's columns (`jobs.core.feeds.ALL_COLUMNS`, read without a
    record a row: 100,000 rows) or from a daemon's answer (`jobs.ctl.daemon`)."""

    status: str
    name: str
    version: str
    distro: str
    release: str | None
    component: str | None
    architecture: str  # the artifact's (e.g. "any"), as rebuildctl shows it
    suite_architecture: str
    url: str | None
    build_id: str | None
    # A list feed's `files` as it is; from a whole list, (v0 id, has log, diffoscope,
    # diffoscope.html, attestation), made into that dict only when asked for: four URLs a row
    # were two thirds of the time to read a whole list, and `pkgs ls` prints none of them.
    links: dict[str, str | None] | tuple[int | None, bool, bool, bool, bool]

    @property
    def files(self) -> dict[str, str | None]:
        """Where the build's log, diffoscope (text and HTML) and attestation are; None: not published."""
        links = self.links
        if type(links) is dict:
            return links
        v0_id, *present = links
        return {name: urls.build_file(v0_id, what) if has and v0_id is not None else None  # as publish's links_json
                for (name, what), has in zip(_FILES, present)}

    @classmethod
    def from_record(cls, p: schema.PackageRecord) -> ListedPackage:
        return cls(p.status, p.name, p.version, p.distro, p.release, p.component, p.artifact_architecture,
                   p.architecture, p.artifact_url, p.build_id, p.files)

    def json(self) -> dict[str, Any]:
        """The row as `pkgs ls --json` prints it."""
        return {"status": self.status, "name": self.name, "version": self.version, "distro": self.distro,
                "release": self.release, "component": self.component, "architecture": self.architecture,
                "suite_architecture": self.suite_architecture, "url": self.url, "build_id": self.build_id,
                "files": dict(self.files)}

    def line(self) -> str:
        """rebuildctl's `pkgs ls` line: `[STATUS] name version (distro, release, component, arch) "url"`."""
        from jobs.ctl.escape import clean

        return clean(self.raw_line())

    def raw_line(self) -> str:
        """`line` before its characters are made safe for a terminal (`jobs.ctl.escape`)."""
        return (f"[{self.status:<5}] {self.name} {self.version} ({self.distro}, {self.release or '<none>'}, "
                f"{self.component or '<none>'}, {self.architecture}) {_quoted(self.url or '')}")


def lines(rows: list[ListedPackage]) -> str:
    """Each row's `line`, joined by newlines (the characters of all of them made safe at once)."""
    from jobs.ctl.escape import clean_lines

    return clean_lines([r.raw_line() for r in rows])


def _quoted(text: str) -> str:
    # rebuildctl prints the URL with Rust's Debug formatting: quotes and backslashes escaped.
    if '"' in text or "\\" in text:
        text = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def open_site(endpoint: str | None, config: Any = None, env: Mapping[str, str] | None = None) -> Site:
    """The site at -H, else `[http] endpoint`, else rebuilderd's default, with the ETag cache."""
    env = os.environ if env is None else env
    base = endpoint or (config.http.endpoint if config is not None else None) or DEFAULT_ENDPOINT
    return Site(base, cache=cache_dir(dict(env)), limits=Limits.from_env(env))


def _feed(site: Site, key: str, spec: Any, what: str) -> Any:
    """One feed, checked against its shape (`jobs.core.feeds`)."""
    return schema.check(site.json(key), spec, url=site.url(key), what=what)


def _index(site: Site) -> dict[str, Any]:
    return _feed(site, urls.INDEX_FEED, schema.INDEX, "index")


# --- reads -------------------------------------------------------------------------------

def status(site: Site) -> StatusReport:
    """Per-suite counts and share reproducible, queue length, active builds and the workers.

    A site published before the workers feed still gets its status, with `workers` None.
    """
    from jobs.ctl.queue import FeedMissing, list_workers

    index = _index(site)
    suites = [SuiteStatus(s["distro"], s["release"], s["component"], s["architecture"], s["counts"]["good"],
                          s["counts"]["bad"], s["counts"]["fail"], s["counts"]["unknown"], s["total"],
                          s["percent_reproducible"], s["queued"]) for s in index["suites"]]
    try:
        dashboard = _feed(site, urls.DASHBOARD, schema.DASHBOARD, "dashboard")
    except FeedNotFound:
        dashboard = {"active_builds": []}
    try:
        active = [BuildInProgress.from_record(schema.DashboardBuild.from_json(b))
                  for b in dashboard.get("active_builds") or []]
    except ValueError as exc:
        raise FeedInvalid(f"malformed dashboard feed: a running build's time is not a timestamp ({str(exc)[:100]})",
                          url=site.url(urls.DASHBOARD)) from None
    try:
        workers, missing = list_workers(site)[1], None
    except FeedMissing as exc:
        workers, missing = None, exc.url
    return StatusReport(suites, int(index.get("queue_length", 0)), active, workers, missing)


def _suite_matches(s: Mapping[str, Any], f: Filters) -> bool:
    return ((f.distro is None or s["distro"] == f.distro) and (f.release is None or s["release"] == f.release)
            and (f.component is None or s["component"] == f.component))


# Each ListedPackage field and the types a feed may give it (checked a column at a time, in C).
_ROW_TYPES = (("status", (str,)), ("name", (str,)), ("version", (str,)), ("distro", (str,)),
              ("release", (str, type(None))), ("component", (str, type(None))), ("architecture", (str,)),
              ("suite_architecture", (str,)), ("url", (str, type(None))), ("build_id", (str, type(None))))


# What a whole list's row gives a ListedPackage (the rest is its suite and status, checked with the feed);
# a list feed's, a part's and a package feed's packages are checked whole (`jobs.core.feeds.PACKAGE`).
_WHOLE_ROW_TYPES = tuple((name, types) for name, types in _ROW_TYPES
                         if name in ("name", "version", "architecture", "url", "build_id"))


def _check_rows(site: Site, rows: list[ListedPackage], fields: tuple[tuple[str, tuple[type, ...]], ...] = _ROW_TYPES
                ) -> None:
    """FeedInvalid if a list gave a field of the wrong type (a name that is a number, a URL that is a list)."""
    for name, types in fields:
        found = set(map(type, map(attrgetter(name), rows)))
        if not found <= set(types):
            wrong = next(t for t in found if t not in types).__name__
            raise FeedInvalid(f"malformed package list: a package's {name} is {wrong}, not text", url=site.base)


def _rows(site: Site, key: str, packages: list[dict[str, Any]]) -> list[ListedPackage]:
    """The rows of a list feed's (or part's) `packages`, each read as its `jobs.core.feeds.PackageRecord`."""
    try:
        return [ListedPackage.from_record(record) for record in map(schema.PackageRecord.from_json, packages)]
    except (KeyError, TypeError, ValueError) as exc:
        raise FeedInvalid(f"malformed list feed: a package's fields are not as published ({str(exc)[:100]})",
                          url=site.url(key)) from None


def _row_matches(r: ListedPackage, f: Filters) -> bool:
    return ((f.architecture is None or f.architecture in (r.architecture, r.suite_architecture))
            and (f.name is None or fnmatchcase(r.name, f.name))
            and (f.version is None or r.version == f.version)
            and (f.distro is None or r.distro == f.distro) and (f.release is None or r.release == f.release)
            and (f.component is None or r.component == f.component))


def _row_order(r: ListedPackage) -> tuple[str, ...]:
    return r.name, r.version, r.distro, r.release or "", r.component or "", r.architecture


def list_packages(site: Site, filters: Filters, statuses: list[Status] | None = None, *,
                  architectures: Collection[str] | None = None) -> list[ListedPackage]:
    """Current packages matching `filters`, read from only the per-suite status lists asked for.

    Each list is read whole where the index advertises it (`lists_all`: one columnar file per
    suite and status), else from its feed and the parts it names (sites published before the
    whole lists). A `name` that is one name, not a pattern, is read from its package feeds
    instead (one small file per distro). `architectures`, if given, also limits the suites read to
    those of these architectures.
    """
    lists, listed = lists_to_read(site, filters, statuses, architectures=architectures)
    return rows_of(site, filters, lists, listed)


def rows_of(site: Site, filters: Filters, lists: list[tuple[str | None, str | None]],
            listed: set[tuple[Any, ...]], found: dict[str, Any] | None = None) -> list[ListedPackage]:
    """`list_packages`' rows once the lists to read are known (`lists_to_read`); `found`: the whole lists
    already read (None: not published), not read again."""
    if filters.name is not None and not _GLOB.search(filters.name):
        rows = _named_packages(site, filters.name, listed)  # checked with their feeds
        return sorted([row for row in rows if _row_matches(row, filters)], key=_row_order)
    with collector_paused():
        rows = list(chain.from_iterable(_list_packages(site, lists, found)))  # checked as each list was read
        unlisted(site, {(r.distro, r.release, r.component, r.suite_architecture, r.status) for r in rows}, listed)
        if filters.architecture is not None or filters.name is not None or filters.version is not None:
            rows = [row for row in rows if _row_matches(row, filters)]  # the suites read match the rest
        return sorted(rows, key=_row_order)


def unlisted(site: Site, claimed: set[tuple[Any, ...]], listed: set[tuple[Any, ...]]) -> None:
    """Refuse lists that claim a suite or status the index did not list them under (a `--status BAD` listing
    showing GOOD rows): FeedInvalid naming one such claim."""
    for distro, release, component, arch, status in claimed - listed:
        where = f"{distro}/{release or '-'}/{component or '-'}/{arch}"
        raise FeedInvalid(f"malformed site: a list read for the index's entries holds {status} rows of {where}, "
                          "which the index does not list there", url=site.base)


def lists_to_read(site: Site, filters: Filters, statuses: list[Status] | None = None, *,
                  architectures: Collection[str] | None = None
                  ) -> tuple[list[tuple[str | None, str | None]], set[tuple[Any, ...]]]:
    """The status lists `list_packages` reads, from the index: (whole list, list feed) of each in order, and
    (distro, release, component, architecture, status) of each."""
    wanted = [s.value for s in statuses] if statuses else [s.value for s in Status]
    lists: list[tuple[str | None, str | None]] = []  # (whole list, list feed) of each list, in order
    listed: set[tuple[Any, ...]] = set()  # (distro, release, component, architecture, status) of each list
    for suite in _index(site)["suites"]:
        if not _suite_matches(suite, filters):
            continue
        if architectures is not None and suite["architecture"] not in architectures:
            continue
        if (filters.architecture is not None and suite["architecture"] != filters.architecture
                and filters.architecture not in ARCH_INDEPENDENT):
            continue  # only an architecture-independent artifact can match outside its suite
        whole, feeds = suite.get("lists_all") or {}, suite["feeds"]
        lists += [(whole.get(st), feeds.get(st)) for st in wanted if whole.get(st) or feeds.get(st)]
        listed.update((suite["distro"], suite["release"], suite["component"], suite["architecture"], st)
                      for st in wanted if whole.get(st) or feeds.get(st))
    return lists, listed


_GLOB = re.compile(r"[*?[]")  # what makes a --name a pattern (fnmatch) rather than one name


def _named_packages(site: Site, name: str, listed: set[tuple[Any, ...]]) -> list[ListedPackage]:
    """The current packages called `name` in the lists `listed` (suite and status), from the name's package feed
    in each distro: a few small files instead of every list of every suite.

    Publish writes a package feed per binary and source name of a distro, listing the current
    packages with that name in every suite of it, as the lists do (`jobs.core.feeds.PackageRecord`).
    """
    keys = [urls.package_feed(distro, name) for distro in sorted({suite[0] for suite in listed})]
    rows: list[ListedPackage] = []
    for key, feed in zip(keys, site.json_each(keys, missing_ok=True)):
        if feed is None:
            continue  # no package or source of that name in this distro
        named = [p for p in schema.check(feed, schema.PACKAGE_FEED, url=site.url(key), what="package")["packages"]
                 if p.get("name") == name]
        rows += [r for r in _rows(site, key, named)
                 if (r.distro, r.release, r.component, r.suite_architecture, r.status) in listed]
    return rows


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while a list is read and built.

    Its feeds and rows are tens of thousands of new objects that all live on, so every pass of
    the collector over them is wasted: a sixth of the CPU time of a 6,700-row list.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _list_packages(site: Site, lists: list[tuple[str | None, str | None]], found: dict[str, Any] | None = None
                   ) -> Iterator[list[ListedPackage]]:
    """The rows of each list in order: from its whole-list feed, else (not published) from its list feed.

    The whole lists are fetched together, a few at a time (unless `found` has them); the lists read the old
    way after them.
    """
    if found is None:
        keys = [whole for whole, _ in lists if whole is not None]
        found = dict(zip(keys, site.json_each(keys, missing_ok=True)))
    for key, feed in found.items():
        if feed is not None:
            schema.check(feed, schema.WHOLE, url=site.url(key), what="whole-list")
    parted = _parted_lists(site, [key for whole, key in lists if found.get(whole) is None and key is not None])
    for whole, key in lists:
        if whole is not None and (feed := found[whole]) is not None:
            yield _whole_rows(site, whole, feed)
        elif key is not None:
            yield next(parted)


# The columns of a whole list that a ListedPackage is made of, in the order `_whole_rows` takes them.
_WHOLE_COLUMNS = ("name", "version", "artifact_architecture", "artifact_url", "build_id")
_WHOLE_LINKS = ("v0_build_id", "has_log", "has_diffoscope", "has_diffoscope_html", "has_attestation")
_LINK_TYPES = ({int, type(None)}, {bool}, {bool}, {bool}, {bool})


def _whole_rows(site: Site, key: str, feed: Mapping[str, Any]) -> list[ListedPackage]:
    """The rows of a whole-list feed (`jobs.publish.site.allfeeds`): columns named once, one array per package."""
    try:
        columns = feed["columns"]
        pick = itemgetter(*(columns.index(c) for c in _WHOLE_COLUMNS))
        links = itemgetter(*(columns.index(c) for c in _WHOLE_LINKS))
        suite, status = feed["suite"], feed["status"]
        distro, release, component, architecture = (suite["distro"], suite["release"], suite["component"],
                                                    suite["architecture"])
        out = []
        append = out.append
        for row in feed["rows"]:
            name, version, artifact_architecture, url, build_id = pick(row)
            append(ListedPackage(status, name, version, distro, release, component, artifact_architecture,
                              architecture, url, build_id, links(row)))
    except (KeyError, IndexError, TypeError, ValueError):
        raise FeedInvalid("not a whole-list feed: its suite, status, columns or rows are not as published",
                          url=site.url(key)) from None
    _check_rows(site, out, _WHOLE_ROW_TYPES)
    for i, (column, types) in enumerate(zip(_WHOLE_LINKS, _LINK_TYPES)):
        if not set(map(type, map(itemgetter(i), map(attrgetter("links"), out)))) <= types:
            raise FeedInvalid(f"malformed whole-list feed: a row's {column} is of the wrong type", url=site.url(key))
    return out


def _parted_lists(site: Site, keys: list[str]) -> Iterator[list[ListedPackage]]:
    """The rows of these list feeds in order: inline, or (a long list) from each of its parts.

    A list that is not published is empty (publish may skip an empty one). The parts of every
    list are fetched together, a few at a time, while the ones already there are read.
    """
    lists = list(zip(keys, site.json_each(keys, missing_ok=True)))
    for key, feed in lists:
        if feed is not None:
            schema.check(feed, schema.LIST, url=site.url(key), what="list")
    parts = site.json_each([part["feed"] for _, feed in lists if feed is not None for part in feed.get("parts") or ()])
    for key, feed in lists:
        if feed is None:
            yield []
        elif feed.get("parts") is None:
            yield _rows(site, key, feed.get("packages") or [])
        else:
            rows: list[ListedPackage] = []
            for _ in feed["parts"]:
                try:
                    body = next(parts)
                except FeedNotFound as exc:
                    raise ListPartMissing("a part of a list is not published; if the site was being republished, "
                                          "run the command again", list=site.url(key), part=exc.url) from None
                rows += _rows(site, key, schema.check(body, schema.LIST, url=site.url(key), what="list part"
                                                      ).get("packages") or [])
            yield rows


def find_build(site: Site, name: str, filters: Filters, what: str) -> ListedPackage:
    """The one current build of `name` (within `filters`) whose `what` file is published.

    `name` is a binary package name or a source name (pkgbase): publish writes one package
    feed per name of either kind, listing the current packages with that binary or source
    name. The packages of one build share its files, so a source name whose packages all come
    from one build (a split package) is one match; several builds are Ambiguous.
    """
    distros = [filters.distro] if filters.distro else sorted({s["distro"] for s in _index(site)["suites"]})
    rest = replace(filters, name=None)
    found: list[ListedPackage] = []
    for distro in distros:
        try:
            feed = _feed(site, urls.package_feed(distro, name), schema.PACKAGE_FEED, "package")
        except FeedNotFound:
            continue
        key = urls.package_feed(distro, name)
        named = [p for p in feed.get("packages", []) if name in (p.get("name"), p.get("source_name"))]
        found.extend(r for r in _rows(site, key, named) if _row_matches(r, rest))
    if not found:
        given = _given(filters)
        raise NoMatch(f"no published package or source is called {name}" + (f" with {given}" if given else ""))
    # The same build listed in two releases (or two split packages) is one file, not a choice.
    by_file: dict[str, ListedPackage] = {}
    for r in sorted(found, key=_row_order):
        by_file.setdefault(r.files.get(what) or f"-{r.build_id}-{r.distro}-{r.version}", r)
    if len(by_file) > 1:
        raise Ambiguous(f"{len(by_file)} builds match {name}; narrow it with --version, --distro, "
                        "--suite, --release or --architecture", sorted(by_file.values(), key=lambda r: r.line()))
    row = next(iter(by_file.values()))
    if not row.files.get(what):
        raise NoMatch(f"{row.name} {row.version} ({row.status}) has no published {what}")
    return row


def build_file(site: Site, row: ListedPackage, what: str) -> str:
    """The text of a build's log, diffoscope report or attestation."""
    key = row.files.get(what)
    if not key:
        raise NoMatch(f"{row.name} {row.version} has no published {what}")
    return site.text(key)


def _given(f: Filters) -> str:
    """The filters given besides the name, as flags: "--distro archlinux --version 9"."""
    flags = {"distro": "--distro", "release": "--release", "component": "--suite", "architecture": "--architecture",
             "version": "--version"}
    return " ".join(f"{flag} {getattr(f, field)}" for field, flag in flags.items() if getattr(f, field) is not None)
