"""The whole published site of one publish, computed from the store: `build_site`.

Every file is made from the rows of one `query_site` run: pages through Jinja2, feeds
through `jobs.publish.feeds`, build files as copies of the stored objects. Writing it is
`jobs.publish.sitewriter.write_site`'s job.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from jobs.core.model import Status
from jobs.core.resources import site_static
from jobs.core.store import Store
from jobs.publish import feeds, urls
from jobs.publish.classify import FailureClass
from jobs.publish.inputs import load_inputs
from jobs.publish.pages import Renderer, chart, paginate
from jobs.publish.queries import query_site
from jobs.publish.rows import PackageRow, SiteData, SuiteKey, SuiteSummary
from jobs.publish.sitewriter import ATOM, CSS, HTML, JS, JSON, TEXT, Site, SiteFile, Tier, json_bytes, json_file

STATIC = {"style.css": CSS, "filter.js": JS}


def build_site(store: Store, *, now: datetime, countersigned: Mapping[str, dict[str, Any]] | None = None,
               countersigned_keys: Mapping[str, str] | None = None, public_keys: dict[str, Any],
               rebuilder_name: str, max_log_reads: int = 2000, worker_trust: Mapping[str, str] | None = None) -> Site:
    """Every page and feed of the site as of `now`, from the store's current state and history."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"build_site: now must be timezone-aware, got {now!r}")
    countersigned = dict(countersigned or {})
    data = query_site(load_inputs(store, now=now, max_log_reads=max_log_reads), now=now,
                      countersigned=set(countersigned), trust=dict(worker_trust or {}))
    site = Site(source=store)
    renderer = Renderer(rebuilder_name)
    for name, content_type in STATIC.items():
        site.add(SiteFile.content(f"static/{name}", (site_static() / name).read_bytes(), content_type, Tier.LEAF))
    site.add(json_file(urls.PUBLIC_KEYS, public_keys, Tier.LEAF))
    site.add(json_file(urls.V1_PUBLIC_KEYS, public_keys, Tier.LEAF))
    _build_files(site, data, countersigned, dict(countersigned_keys or {}))
    _package_pages(site, renderer, data, now)
    by_suite: dict[SuiteKey, list[PackageRow]] = defaultdict(list)
    for row in data.packages:
        by_suite[row.suite].append(row)
    for summary in data.suites:
        _suite(site, renderer, summary, by_suite[summary.suite], now)
    site.add(json_file(urls.PKGS_LIST, feeds.pkgs_list(data.packages), Tier.LIST))
    _top(site, renderer, data, now, rebuilder_name)
    return site


def _build_files(site: Site, data: SiteData, countersigned: dict[str, dict[str, Any]],
                 countersigned_keys: dict[str, str]) -> None:
    for b in data.build_files:
        for what, key, content_type in (("log", b.log_key, TEXT), ("diffoscope", b.diffoscope_key, TEXT),
                                        ("diffoscope.html", b.diffoscope_html_key, HTML)):
            if key:
                site.add(SiteFile.copy(urls.build_file(b.v0_id, what), key, content_type))
        target = urls.build_file(b.v0_id, "attestation")
        if b.build_id in countersigned:
            site.add(SiteFile.content(target, json_bytes(countersigned[b.build_id]), JSON, Tier.LEAF))
        elif b.build_id in countersigned_keys:  # kept by publish under history/attestations/
            site.add(SiteFile.copy(target, countersigned_keys[b.build_id], JSON))
        elif b.attestation_key:
            site.add(SiteFile.copy(target, b.attestation_key, JSON))


def _package_pages(site: Site, renderer: Renderer, data: SiteData, now: datetime) -> None:
    for page in data.pages:
        site.add(json_file(page.feed_url, feeds.package_feed(page, now), Tier.LEAF))
        site.add(SiteFile.content(page.page_url, renderer.render("package.html", page.page_url, page=page,
                                                                 json_url=page.feed_url), HTML, Tier.LEAF))


def _lists(summary: SuiteSummary, rows: list[PackageRow]) -> list[tuple[str, str, str, dict, list[PackageRow]]]:
    """(kind, title, key base, feed extras, rows) of every list page of a suite."""
    path = summary.suite.path
    letters: dict[str, list[PackageRow]] = defaultdict(list)
    classes: dict[FailureClass, list[PackageRow]] = defaultdict(list)
    for row in rows:
        letters[urls.letter_of(row.name)].append(row)
        if row.failure_class is not None:
            classes[row.failure_class].append(row)
    out = [("suite-status", s.value, urls.status_base(path, s), {"status": s.value},
            [r for r in rows if r.status is s]) for s in feeds.STATUSES]
    out += [("suite-names", f"names: {letter}", urls.letter_base(path, letter), {"letter": letter}, letters[letter])
            for letter in sorted(letters)]
    out += [("suite-class", c.label, urls.class_base(path, c.value), {"failure_class": c.value}, classes[c])
            for c in sorted(classes)]
    return out


def _suite(site: Site, renderer: Renderer, summary: SuiteSummary, rows: list[PackageRow], now: datetime) -> None:
    path = summary.suite.path
    lists = _lists(summary, rows)
    nav = {"letters": [(extra["letter"], base, len(r)) for kind, _, base, extra, r in lists if kind == "suite-names"],
           "classes": [(FailureClass(extra["failure_class"]), base, len(r))
                       for kind, _, base, extra, r in lists if kind == "suite-class"],
           "statuses": [(Status(extra["status"]), base, len(r))
                        for kind, _, base, extra, r in lists if kind == "suite-status"]}
    for kind, title, base, extra, list_rows in lists:
        feed_key = urls.suite_feed(path, base.removeprefix(f"suites/{path}/"))
        site.add(json_file(feed_key, feeds.list_feed(kind, summary, list_rows, now, **extra), Tier.LIST))
        for pager, chunk in paginate(base, list_rows):
            site.add(SiteFile.content(pager.key, renderer.render(
                "suite_list.html", pager.key, summary=summary, title=title, rows=chunk, pager=pager,
                total=len(list_rows), nav=nav, json_url=feed_key), HTML, Tier.LIST))
    index_feed = urls.suite_feed(path, "index")
    body = feeds.summary_json(summary)
    body["lists"] = {base.removeprefix(f"suites/{path}/"): urls.href(urls.suite_feed(
        path, base.removeprefix(f"suites/{path}/"))) for _, _, base, _, _ in lists}
    site.add(json_file(index_feed, feeds.envelope("suite", now, **body), Tier.SUITE))
    key = urls.suite_page(path)
    site.add(SiteFile.content(key, renderer.render("suite.html", key, summary=summary, nav=nav, json_url=index_feed),
                              HTML, Tier.SUITE))


def _groups(suites: list[SuiteSummary]) -> list[SuiteSummary]:
    """Suites summed over components: one line per distro, release and architecture."""
    sums: dict[SuiteKey, list[int]] = {}
    for s in suites:
        key = SuiteKey(s.suite.distro, s.suite.release, None, s.suite.architecture)
        total = sums.setdefault(key, [0, 0, 0, 0, 0])
        for i, n in enumerate((s.good, s.bad, s.fail, s.unknown, s.queued)):
            total[i] += n
    return [SuiteSummary(k, *v) for k, v in sums.items()]


def _top(site: Site, renderer: Renderer, data: SiteData, now: datetime, rebuilder: str) -> None:
    by_distro = defaultdict(list)
    for day in data.daily:
        by_distro[day.distro].append(day)
    charts = [c for c in (chart(d, days) for d, days in sorted(by_distro.items())) if c is not None]
    site.add(SiteFile.content(urls.REGRESSIONS, renderer.render(
        "atom.xml", urls.REGRESSIONS, regressions=data.regressions,
        updated=max((r.built_at for r in data.regressions), default=None)), ATOM, Tier.TOP))
    site.add(json_file(urls.INDEX_FEED, feeds.index_feed(data.suites, data.active, queue_length=data.queue_length,
                                                         rebuilder=rebuilder, generated_at=now), Tier.TOP))
    site.add(json_file(urls.QUEUE_FEED, feeds.queue_feed(data.queue, now), Tier.TOP))
    site.add(json_file(urls.WORKERS_FEED, feeds.workers_feed(data.worker_rows, data.active, now), Tier.TOP))
    site.add(json_file(urls.DASHBOARD, feeds.dashboard(data.suites, data.active, now), Tier.TOP, volatile=("now",)))
    context = dict(suites=data.suites, groups=_groups(data.suites), active=data.active, charts=charts,
                   queue_length=data.queue_length, json_url=urls.INDEX_FEED)
    page = renderer.render("dashboard.html", urls.INDEX_PAGE, now=now, **context)
    stable = renderer.render("dashboard.html", urls.INDEX_PAGE, now=None, **context)
    site.add(SiteFile.content(urls.INDEX_PAGE, page, HTML, Tier.TOP, stable=stable))
