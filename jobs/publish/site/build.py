"""The published site of one publish, computed from the store: `build_site`.

Every file is made from the rows of one DuckDB connection over the store's tables: pages
through Jinja2, feeds through `jobs.publish.site.feeds`, build files as copies of the stored
objects. Given the manifest of the last publish, only what changed is rendered:

- package pages and feeds, and the parts of suite lists, carry a digest of their inputs
  (`jobs.publish.site.plan`), as does each status list published whole for clients
  (`jobs.publish.site.allfeeds`, from its parts' digests); one whose digest (and the render
  salt: the code and templates) matches the manifest is kept, not rendered;
- build files are immutable: only those of builds after the manifest's watermark (and
  copies to retry) are added;
- the small files that show counts (suite pages, list indexes, the queue and workers
  feeds, the v0 list) are rendered every run; the writer skips those whose content did
  not change;
- the few files that say when publish ran (`api/v1/status.json`, `api/v1/index.json` and
  the dashboard `index.html`) are written by every run and kept out of the manifest
  (`SiteFile.every_run`): a publish that changed nothing writes these three and nothing
  else, and every page's "last published" banner reads the status file.

Writing it is `jobs.publish.site.sitewriter.write_site`'s job.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from importlib.abc import Traversable
from pathlib import Path
from typing import Any

import duckdb

from jobs.core import feeds as feeds_contract
from jobs.core import progress, urls
from jobs.core.layout import ATTESTATIONS, BUILDS
from jobs.core.model import Status
from jobs.core.resources import site_static, site_templates
from jobs.core.store import Reads
from jobs.publish.site import allfeeds, feeds, maintainers, package_html, plan, queries, search, svg
from jobs.publish.site.classify import FailureClass
from jobs.publish.site.inputs import Inputs, load_inputs
from jobs.publish.site.package_html import minute
from jobs.publish.site.pages import Renderer
from jobs.publish.site.plan import ListPart, ListRef
from jobs.publish.site.rows import BuildFiles, SiteData, SuiteKey, SuiteSummary
from jobs.publish.site.sitewriter import (
    ATOM,
    CSS,
    HTML,
    JS,
    JSON,
    TEXT,
    Entry,
    Manifest,
    Site,
    SiteFile,
    Tier,
    batched_source,
    json_bytes,
    json_file,
)
from jobs.publish.site.streaming import SiteStream
from jobs.publish.state.verify import RejectedResult

STATIC = {"style.css": CSS, "filter.js": JS, "list.js": JS, "status.js": JS, "diffoscope.css": CSS, "search.js": JS}
STATUS_LISTS = (Status.GOOD, Status.BAD, Status.FAIL, Status.UNKWN)
_VALUE = {s: s.value for s in Status}  # an enum's .value is a property call
MAX_REJECTED = 200  # the rejected-results list shows the most recent ones; the feed counts them all


def _files(node: Traversable, path: str = "") -> list[tuple[str, Traversable]]:
    out = []
    for child in sorted(node.iterdir(), key=lambda c: c.name):
        if child.is_dir():
            out += _files(child, f"{path}{child.name}/")
        elif not child.name.endswith(".pyc"):
            out.append((path + child.name, child))
    return out


def render_salt(rebuilder_name: str) -> str:
    """A digest of everything that renders the site besides its rows: code, templates, assets, name."""
    digest = hashlib.sha256(f"{rebuilder_name}\0{duckdb.__version__}\0".encode())
    # The site half's code, and the contracts of core it renders by (site paths, feed shapes).
    code = sorted(Path(__file__).parent.glob("*.py")) + [Path(urls.__file__), Path(feeds_contract.__file__)]
    sources = [(f"code/{p.name}", p.read_bytes()) for p in code]
    sources += [(f"templates/{n}", f.read_bytes()) for n, f in _files(site_templates())]
    sources += [(f"static/{n}", f.read_bytes()) for n, f in _files(site_static())]
    for name, data in sources:
        digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    return digest.hexdigest()[:32]


def _combine(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode("utf-8", "surrogatepass")).hexdigest()[:32]


class _Builder:
    """One run of `build_site`: the connection, the previous manifest and the site being filled."""

    def __init__(self, site: Site, con: duckdb.DuckDBPyConnection, previous: Manifest, renderer: Renderer,
                 now: datetime) -> None:
        self.site, self.con, self.previous, self.renderer, self.now = site, con, previous, renderer, now

    def keep_if_unchanged(self, keys: tuple[str, ...], digest: str) -> bool:
        if all(self.previous.unchanged(k, digest, self.site.salt) for k in keys):
            for k in keys:
                self.site.keep(k, self.previous.files[k])
            return True
        return False


def build_site(store: Reads, *, now: datetime, countersigned: Mapping[str, dict[str, Any]] | None = None,
               countersigned_keys: Mapping[str, str] | None = None, public_keys: dict[str, Any],
               rebuilder_name: str, max_log_reads: int = 2000, worker_trust: Mapping[str, str] | None = None,
               previous: Manifest | None = None, inputs: Inputs | None = None,
               rejected: Sequence[RejectedResult] = (), write_to: SiteStream | None = None) -> Site:
    """The site as of `now`: every file whose inputs changed since `previous` (None: every file).

    `write_to`: package pages and feeds (and the leaves before them) are written by it as they
    are rendered, a batch at a time (`jobs.publish.site.streaming`), not held in the site.

    `rejected`: the results publish refused; the most recent `MAX_REJECTED` are listed for
    operators (`api/v1/rejected.json`, `rejected.html`) and change nothing else.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"build_site: now must be timezone-aware, got {now!r}")
    countersigned = dict(countersigned or {})
    countersigned_keys = dict(countersigned_keys or {})
    inputs = inputs if inputs is not None else load_inputs(store, now=now, max_log_reads=max_log_reads)
    con = queries.connect(inputs, set(countersigned) | set(countersigned_keys), dict(worker_trust or {}))
    try:
        plan.setup(con)
        site = Site(source=store, salt=render_salt(rebuilder_name), builds_upto=queries.last_build(con),
                    stream=write_to)
        b = _Builder(site, con, previous or Manifest(), Renderer(rebuilder_name), now)
        for name, content_type in STATIC.items():
            site.add(SiteFile.content(f"static/{name}", (site_static() / name).read_bytes(), content_type,
                                      Tier.LEAF))
        site.add(json_file(urls.PUBLIC_KEYS, public_keys, Tier.LEAF))
        site.add(json_file(urls.V1_PUBLIC_KEYS, public_keys, Tier.LEAF))
        _build_files(b, countersigned, countersigned_keys)
        _package_pages(b)
        maintainers.add(b, con)
        summaries = queries.suites(con)
        lists = plan.list_parts(con, [s.suite for s in summaries])
        suite_days = queries.suite_daily_counts(con, now)
        _suites(b, summaries, lists, suite_days)
        search.add(b, con, summaries)
        site.add(json_file(urls.PKGS_LIST, queries.pkgs_list_v0(con), Tier.LIST))
        active = queries.active_builds(con, now)
        data = SiteData(packages=[], suites=summaries, pages=[], active=active,
                        daily=queries.distro_daily_counts(suite_days),  # the suites' days, summed: one query
                        regressions=queries.regressions(con), build_files=[], queue_length=inputs.queue.num_rows,
                        queue=queries.queue_entries(con), worker_rows=queries.worker_rows(con))
        _top(b, data, rebuilder_name, queries.newest_result(con))
        _rejected(b, list(rejected))
    finally:
        con.close()
    return site


def _batched(con: duckdb.DuckDBPyConnection, build_ids: list[str]) -> dict[str, str]:
    """Build id -> the copy source of its countersigned link, for those kept in a run's batch (site facts)."""
    if not build_ids:
        return {}
    found = con.execute("SELECT build_id, attestation_object FROM facts WHERE attestation_object IS NOT NULL "
                        "AND list_contains($ids, build_id)", {"ids": build_ids}).fetchall()
    return {build_id: batched_source(batch, build_id) for build_id, batch in found}


def _build_files(b: _Builder, countersigned: dict[str, dict[str, Any]], countersigned_keys: dict[str, str]) -> None:
    retry = b.previous.retry_build_ids()
    files = queries.build_files(b.con, after=b.previous.builds_upto, also=retry)
    countersigned_keys = {**_batched(b.con, [f.build_id for f in files if f.build_id not in countersigned
                                             and (f.attestation_key or "").startswith(ATTESTATIONS)]),
                          **countersigned_keys}
    for f in files:
        for what, key, content_type in (("log", f.log_key, TEXT), ("diffoscope", f.diffoscope_key, TEXT),
                                        ("diffoscope.html", f.diffoscope_html_key, HTML)):
            if key:
                b.site.add(SiteFile.copy(urls.build_file(f.v0_id, what), key, content_type,
                                         sanitize=content_type == HTML, sha256=_signed(f, key)))
        target = urls.build_file(f.v0_id, "attestation")
        if f.build_id in countersigned:
            b.site.add(SiteFile.content(target, json_bytes(countersigned[f.build_id]), JSON, Tier.LEAF,
                                        listed=False))
        elif f.build_id in countersigned_keys:  # kept by publish in its run's batch (history/attestations/)
            b.site.add(SiteFile.copy(target, countersigned_keys[f.build_id], JSON))
        elif f.attestation_key:
            b.site.add(SiteFile.copy(target, f.attestation_key, JSON, sha256=_signed(f, f.attestation_key)))


def _signed(f: BuildFiles, key: str) -> str | None:
    """The SHA-256 a worker's file must have ("" if unsigned: not published); None for publish's own objects."""
    return f.digests.get(key, "") if key.startswith(BUILDS) else None


def _package_pages(b: _Builder) -> None:
    table = plan.page_inputs(b.con)
    wanted: dict[tuple[str, str], tuple[str, str, str]] = {}  # (distro, name) -> (digest, page key, feed key)
    # Most pages are unchanged in an incremental publish: one pass over them, with keep_if_unchanged's
    # test inlined and their entries kept at once (a package key is no other file's).
    files = b.previous.files if b.previous.salt == b.site.salt else {}
    kept: dict[str, Entry] = {}
    for distro, name, digest in zip(*(table.column(c).to_pylist() for c in ("distro", "name", "input"))):
        page, feed = urls.package_page(distro, name), urls.package_feed(distro, name)
        old_page, old_feed = files.get(page), files.get(feed)
        if old_page is not None and old_feed is not None and digest and old_page.input == digest == old_feed.input \
                and old_page.digest and old_feed.digest:
            kept[page], kept[feed] = old_page, old_feed
        else:
            wanted[(distro, name)] = (digest, page, feed)
    del table
    clash = kept.keys() & (b.site.files.keys() | b.site.kept.keys())
    if clash:
        raise ValueError(f"site keys {sorted(clash)[:3]} added twice")
    b.site.kept.update(kept)
    progress.advance("render", len(kept))
    stream = b.site.stream  # None: the pages are held until write_site
    if stream is not None:  # the leaves so far (build files the pages link) go first
        stream.flush(b.site, then=[k for _, page_key, feed_key in wanted.values() for k in (page_key, feed_key)])
    batch: list[SiteFile] = []
    for page in plan.stream_pages(b.con, sorted(wanted)):
        digest, page_key, feed_key = wanted[(page.distro, page.name)]
        files = (json_file(feed_key, feeds.package_feed(page, b.now), Tier.LEAF, input=digest),
                 SiteFile.content(page_key, package_html.page(page, page_key, feed_key, _strip(page),
                                                              b.renderer.rebuilder),
                                  HTML, Tier.LEAF, input=digest))
        if stream is None:
            for f in files:
                b.site.add(f)
            continue
        batch += files
        if len(batch) >= stream.batch:
            stream.write(b.site, batch)
            batch = []
    if stream is not None and batch:
        stream.write(b.site, batch)


def _strip(page: Any) -> Any:
    """A package's verdict history: one mark per build (its own verdict), over time."""
    marks = [svg.Mark(b.built_at, b.status, f"{short_id(b)} {_VALUE[b.status]} {b.source_name} {b.source_version} "
                                            f"{b.architecture} {minute(b.built_at)} UTC")
             for b in page.builds]
    return svg.history_strip(f"{page.name} ({page.distro})", marks)


def short_id(build: Any) -> str:
    """What a page shows of a build id: its v0 number "#2" (the full id is in its title and the JSON)."""
    v0 = build.links.v0_id
    return f"#{v0}" if v0 is not None else build.build_id[:8]


def _title(ref: ListRef) -> tuple[str, str, dict[str, str]]:
    """(feed kind, title, feed extras) of a list."""
    kind, _, value = ref.name.partition("/")
    if kind == "status":  # "all": the whole list in one feed (jobs.publish.site.allfeeds)
        return "suite-status", value, {"status": value,
                                       "all": urls.href(urls.status_all_feed(ref.suite.path, Status(value)))}
    if kind == "class":
        return "suite-class", FailureClass(value).label, {"failure_class": value}
    return "suite-names", "all packages by name", {}


def _nav(summary: SuiteSummary, refs: list[ListRef]) -> dict[str, Any]:
    """The suite's lists for its navigation (counts are shown on the suite page only)."""
    path = summary.suite.path
    classes = dict(summary.classes)
    return {"statuses": [(s, f"{urls.status_base(path, s)}.html", summary.count(s)) for s in STATUS_LISTS],
            "classes": [(FailureClass(r.name.partition("/")[2]), r.page_key,
                         classes.get(FailureClass(r.name.partition("/")[2]), 0))
                        for r in refs if r.name.startswith("class/")],
            "names": (f"{urls.names_base(path)}.html", summary.total)}


def _days(rows: Sequence[Any]) -> list[svg.Day]:
    return [svg.Day(r.day, r.good, r.bad, r.fail, r.unknown) for r in rows]


def _suites(b: _Builder, summaries: list[SuiteSummary], lists: dict[ListRef, list[ListPart]],
            suite_days: Mapping[SuiteKey, Sequence[Any]]) -> None:
    by_suite: dict[SuiteKey, list[ListRef]] = defaultdict(list)
    for ref in lists:
        by_suite[ref.suite].append(ref)
    order = {"status": 0, "names": 1, "class": 2}
    todo: list[tuple[ListPart, str, SuiteSummary]] = []
    whole: list[allfeeds.WholeList] = []
    for summary in summaries:
        refs = sorted(by_suite[summary.suite], key=lambda r: (order[r.name.partition("/")[0]],
                                                                [s.value for s in STATUS_LISTS].index(
                                                                    r.name.partition("/")[2])
                                                                if r.name.startswith("status/") else 0, r.name))
        nav = _nav(summary, refs)
        # List pages are shells whose navigation names no list that may come or go (the
        # failure classes are on the suite's page), so a class list appearing rewrites none.
        shell_nav = {**nav, "classes": None}
        suite_digest = _combine(summary.suite.label, "shell")
        for ref in refs:
            parts = lists[ref]
            split = parts[0].split
            if ref.name.startswith("status/"):
                w = allfeeds.whole_list(ref, parts)
                if not b.keep_if_unchanged((w.key,), w.input):
                    whole.append(w)
            # A part page links the list's index and its neighbours only, so a part appearing
            # or going (a prefix cut one character deeper) rewrites its neighbours, not the list.
            # The page is a static shell (static/list.js fills it from the part's feed): it is
            # rewritten when the parts around it change, the feed when its rows do.
            for i, part in enumerate(parts):
                around = (parts[i - 1] if i > 0 else None, parts[i + 1] if i + 1 < len(parts) else None)
                shell = _combine(suite_digest, ref.name, part.page_key, "shell",
                                 *(p.page_key if p is not None else "" for p in around))
                if not b.keep_if_unchanged((part.page_key,), shell):
                    _list_shell(b, part, shell, summary, shell_nav, around)
                digest = _combine(summary.suite.label, ref.name, part.feed_key, part.bucket, str(part.page),
                                  part.input)
                if not b.keep_if_unchanged((part.feed_key,), digest):
                    todo.append((part, digest, summary))
            if split:
                _list_index(b, summary, ref, parts, shell_nav, suite_digest)
        _suite_page(b, summary, refs, nav, svg.share_chart(summary.suite.label,
                                                           _days(suite_days.get(summary.suite, ()))))
    allfeeds.add(b.site, b.con, whole, b.now)
    rows = plan.part_rows(b.con, [t[0] for t in todo])
    for part, digest, summary in todo:
        kind, _title_text, extra = _title(part.ref)
        if part.split:
            kind, extra = f"{kind}-part", {**extra, "prefix": part.bucket, "page": part.page,
                                           "list": urls.href(part.ref.feed_key)}
        body = feeds.list_feed(kind, summary, rows[part], b.now, **extra)
        b.site.add(json_file(part.feed_key, body, Tier.LIST, input=digest))


def _classes(summary: SuiteSummary) -> dict[str, tuple[str, str]]:
    """Every failure class's label and list page in this suite, for static/list.js (site-relative paths)."""
    path = summary.suite.path
    return {c.value: (c.label, urls.href(urls.paged(urls.class_base(path, c.value), 1))) for c in FailureClass}


def _list_shell(b: _Builder, part: ListPart, digest: str, summary: SuiteSummary, nav: dict[str, Any],
                around: tuple[ListPart | None, ListPart | None]) -> None:
    """A list's page (or a part's): the shell static/list.js fills from `part.feed_key`."""
    _kind, title, _extra = _title(part.ref)
    before, after = around
    b.site.add(SiteFile.content(part.page_key, b.renderer.render(
        "suite_list.html", part.page_key, summary=summary, title=title, nav=nav, parts=[],
        part=part if part.split else None, before=before, after=after, list_key=part.ref.page_key,
        json_url=part.feed_key, classes=_classes(summary)), HTML, Tier.LIST, input=digest))


def _list_index(b: _Builder, summary: SuiteSummary, ref: ListRef, parts: list[ListPart], nav: dict[str, Any],
                suite_digest: str) -> None:
    """The index of a list cut into parts: its feed with each part's count (rendered every run), its
    page a shell that links the parts (static/list.js shows their counts from the feed)."""
    kind, title, extra = _title(ref)
    total = sum(p.count for p in parts)
    body = feeds.envelope(kind, b.now, suite=feeds.suite_json(summary.suite), **extra, count=total,
                          parts=[{"prefix": p.bucket, "page": p.page, "count": p.count,
                                  "feed": urls.href(p.feed_key), "page_url": urls.href(p.page_key)} for p in parts])
    b.site.add(json_file(ref.feed_key, body, Tier.SUITE))
    digest = _combine(suite_digest, ref.name, "index", *(f"{p.page_key}\0{p.label}" for p in parts))
    if b.keep_if_unchanged((ref.page_key,), digest):
        return
    b.site.add(SiteFile.content(ref.page_key, b.renderer.render(
        "suite_list.html", ref.page_key, summary=summary, title=title, nav=nav, parts=parts, part=None,
        before=None, after=None, list_key=ref.page_key, json_url=ref.feed_key, classes={}),
        HTML, Tier.SUITE, input=digest))


def _suite_page(b: _Builder, summary: SuiteSummary, refs: list[ListRef], nav: dict[str, Any], chart: Any) -> None:
    path = summary.suite.path
    index_feed = urls.suite_feed(path, "index")
    body = feeds.summary_json(summary)
    body["lists"] = {r.what: urls.href(r.feed_key) for r in refs}
    b.site.add(json_file(index_feed, feeds.envelope("suite", b.now, **body), Tier.SUITE))
    key = urls.suite_page(path)
    b.site.add(SiteFile.content(key, b.renderer.render("suite.html", key, summary=summary, nav=nav, chart=chart,
                                                       json_url=index_feed), HTML, Tier.SUITE))


def _groups(suites: list[SuiteSummary]) -> list[SuiteSummary]:
    """Suites summed over components: one line per distro, release and architecture."""
    sums: dict[SuiteKey, list[int]] = {}
    for s in suites:
        key = SuiteKey(s.suite.distro, s.suite.release, None, s.suite.architecture)
        total = sums.setdefault(key, [0, 0, 0, 0, 0])
        for i, n in enumerate((s.good, s.bad, s.fail, s.unknown, s.queued)):
            total[i] += n
    return [SuiteSummary(k, *v) for k, v in sums.items()]


def _top(b: _Builder, data: SiteData, rebuilder: str, newest: datetime | None) -> None:
    site, renderer, now = b.site, b.renderer, b.now
    by_distro = defaultdict(list)
    for day in data.daily:
        by_distro[day.distro].append(day)
    charts = [svg.share_chart(d, _days(days)) for d, days in sorted(by_distro.items())]
    status = feeds.status_feed(now, newest, rebuilder=rebuilder)
    site.add(json_file(urls.STATUS_FEED, status, Tier.TOP, every_run=True))
    site.add(SiteFile.content(urls.REGRESSIONS, renderer.render(
        "atom.xml", urls.REGRESSIONS, regressions=data.regressions,
        updated=max((r.built_at for r in data.regressions), default=None)), ATOM, Tier.TOP))
    site.add(json_file(urls.INDEX_FEED, feeds.index_feed(data.suites, data.active, queue_length=data.queue_length,
                                                         rebuilder=rebuilder, generated_at=now, status=status),
                       Tier.TOP, every_run=True))
    site.add(json_file(urls.QUEUE_FEED, feeds.queue_feed(data.queue, now), Tier.TOP))
    site.add(json_file(urls.WORKERS_FEED, feeds.workers_feed(data.worker_rows, data.active, now), Tier.TOP))
    site.add(json_file(urls.DASHBOARD, feeds.dashboard(data.suites, data.active, now), Tier.TOP, volatile=("now",)))
    context = dict(suites=data.suites, groups=_groups(data.suites), active=data.active, charts=charts,
                   queue_length=data.queue_length, json_url=urls.INDEX_FEED)
    page = renderer.render("dashboard.html", urls.INDEX_PAGE, now=now, published=status, **context)
    site.add(SiteFile.content(urls.INDEX_PAGE, page, HTML, Tier.TOP, every_run=True))
    site.add(SiteFile.content(urls.FEEDS_PAGE, renderer.render("feeds.html", urls.FEEDS_PAGE, json_url=urls.INDEX_FEED),
                              HTML, Tier.TOP))


def _rejected(b: _Builder, rejected: list[RejectedResult]) -> None:
    recent = sorted(rejected, key=lambda r: (r.at is not None, r.at or b.now, r.key), reverse=True)[:MAX_REJECTED]
    b.site.add(json_file(urls.REJECTED_FEED, feeds.rejected_feed(recent, len(rejected), b.now), Tier.TOP))
    context = dict(rejected=recent, total=len(rejected), json_url=urls.REJECTED_FEED)
    page = b.renderer.render("rejected.html", urls.REJECTED_PAGE, now=b.now, **context)
    stable = b.renderer.render("rejected.html", urls.REJECTED_PAGE, now=None, **context)
    b.site.add(SiteFile.content(urls.REJECTED_PAGE, page, HTML, Tier.TOP, stable=stable))


__all__ = ["MAX_REJECTED", "Entry", "build_site", "render_salt"]
