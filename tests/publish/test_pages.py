"""Rendered pages: well-formed, linked to their JSON, every link resolving, hostile names escaped."""

from __future__ import annotations

import dataclasses
import json
import posixpath
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from jobs.core import urls
from jobs.core.model import Status
from jobs.core.store import open_store
from jobs.core.store.base import check_key
from jobs.publish.site.build import build_site
from jobs.publish.site.sitewriter import read_manifest, write_site
from tests.publish.sitefix import NOW, Results, arch_world, enrol_worker, state_row, write_state

VOID = {"meta", "link", "br", "img", "input", "hr", "wbr", "source", "col", "area", "base", "embed", "track"}
SVG_SELF_CLOSING = {"polygon", "rect", "path", "line", "circle"}
HOSTILE = ["<script>alert(1)</script>", "\"q'uote\"", "../../etc/passwd", "%2e%2e", "$(touch pwned)", "..", "-",
           "a/b\\c", "x" * 300, "ünï cödé & <b>", "javascript:alert(1)"]


class Page(HTMLParser):
    """Checks tag balance and collects links, JSON alternates and visible JSON links."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.links: list[str] = []
        self.alternates: list[str] = []
        self.visible_json: list[str] = []
        self.errors: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "link" and a.get("rel") == "alternate" and a.get("type") == "application/json":
            self.alternates.append(a["href"])
        if tag == "a" and a.get("class") == "json":
            self.visible_json.append(a["href"])
        for name in ("href", "src"):
            if a.get(name) is not None:
                self.links.append(a[name])
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        if tag not in VOID and tag not in SVG_SELF_CLOSING:
            self.errors.append(f"self-closing <{tag}/>")
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.stack.pop()

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def parse(text: str) -> Page:
    page = Page()
    page.feed(text)
    page.close()
    assert not page.errors and not page.stack, (page.errors, page.stack)
    return page


def resolve(page_key: str, href: str) -> str | None:
    """The site key a relative link points at (None for absolute URLs)."""
    parts = urlsplit(href)
    if parts.scheme or parts.netloc or href.startswith("/"):
        return None
    return posixpath.normpath(posixpath.join(posixpath.dirname(page_key), unquote(parts.path)))


def targets(key: str, text: str) -> set[str]:
    """The site keys a page links to."""
    return {resolve(key, href) for href in parse(text).links} - {None}


def html_files(site):
    return {k: f.data.decode() for k, f in site.files.items() if f.content_type.startswith("text/html") and f.data}


def check_site(site) -> dict[str, Page]:
    pages = {}
    for key, text in html_files(site).items():
        page = parse(text)
        assert text.startswith("<!doctype html>"), key
        assert len(page.alternates) == 1 and page.alternates == page.visible_json, key
        assert resolve(key, page.alternates[0]) in site.files, key
        for href in page.links:
            target = resolve(key, href)
            assert target is None or target in site.files, f"{key} links {href} -> {target}"
        pages[key] = page
    return pages


@pytest.fixture
def world(tmp_path):
    return arch_world(tmp_path)


def render(world, **kw):
    return build_site(world.store, now=NOW, public_keys={"current": []}, rebuilder_name="test <rebuilder>", **kw)


def test_every_page_is_well_formed_links_its_json_and_every_link_resolves(world):
    site = render(world)
    pages = check_site(site)
    assert {"index.html", "packages/archlinux/bar.html", "suites/archlinux/-/core/x86_64/index.html",
            "suites/archlinux/-/core/x86_64/BAD.html", "suites/archlinux/-/core/x86_64/names.html",
            "suites/archlinux/-/core/x86_64/class/ftbfs.html"} <= set(pages)
    assert pages["packages/archlinux/bar.html"].alternates == ["../../api/v1/packages/archlinux/bar.json"]
    assert "test &lt;rebuilder&gt;" in site.files["index.html"].data.decode()


def test_dashboard(world):
    text = render(world).files["index.html"].data.decode()
    assert "28.6%" in text and "builder-1" in text and "5 min" in text
    assert '<polygon class="area status-good"' in text and "<svg" in text and "<script" not in text
    assert 'type="application/atom+xml"' in text


def test_package_page_shows_every_attempt_with_its_files(world):
    text = render(world).files["packages/archlinux/regress.html"].data.decode()
    page = parse(text)
    assert "../../api/v0/builds/6/log" in page.links and "../../api/v0/builds/1/attestation" in page.links
    assert text.count('<tr class="status-') == 3  # one current package, two builds
    assert 'class="status status-bad">BAD' in text and 'class="status status-good">GOOD' in text
    bar = parse(render(world).files["packages/archlinux/bar.html"].data.decode())
    assert {"../../api/v0/builds/3/diffoscope.html", "../../api/v0/builds/3/diffoscope"} <= set(bar.links)
    assert "not reproducible: bar differs" in "".join(bar.text)


def test_suite_lists_show_the_failure_class_and_filter_progressively(world):
    site = render(world)
    suite = "suites/archlinux/-/core/x86_64"
    text = site.files[f"{suite}/FAIL.html"].data.decode()
    # A shell: static/list.js shows the rows of its feed, each with its class linked (data-classes).
    rows = json.loads(site.files["api/v1/suites/archlinux/-/core/x86_64/FAIL.json"].data)["packages"]
    assert "ftbfs" in {r["failure_class"] for r in rows}
    assert "fails to build" in text and "class/ftbfs.html" in text.replace("&#34;", '"')
    assert "data-filterable" in text and "static/filter.js" in targets(f"{suite}/FAIL.html", text)
    assert "static/list.js" in targets(f"{suite}/FAIL.html", text)
    assert f"{suite}/index.html" in targets(f"{suite}/FAIL.html", text)  # the failure classes are there
    nav = targets(f"{suite}/index.html", site.files[f"{suite}/index.html"].data.decode())
    assert {f"{suite}/names.html", f"{suite}/class/not-reproducible.html", f"{suite}/GOOD.html"} <= nav


def test_long_lists_are_cut_by_name_prefix(world, monkeypatch):
    monkeypatch.setattr(urls, "PAGE_SIZE", 3)
    names = ["a1", "A2", "b1", "b2", "b3", "b4", "c-1", "samepre1", "samepre2", "samepre3", "samepre4", "samepre5"]
    write_state(world.store, "more", [state_row(n, component="extra") for n in names])
    site = render(world)
    base = "suites/archlinux/-/extra/x86_64/UNKWN"
    parts = sorted(k for k in site.files if k.startswith(f"{base}/") and k.endswith(".html"))
    # "b" has 4 names: cut one character deeper; 5 names share 6 characters: paged within
    assert parts == sorted(f"{base}/{p}.html" for p in ("a", "b1", "b2", "b3", "b4", "c", "samepr", "samepr-2"))
    index = site.files[f"{base}.html"].data.decode()
    assert set(targets(f"{base}.html", index)) >= {f"{base}/{p}.html" for p in ("a", "b1", "samepr-2")}
    # Pages are static shells: the counts and rows come from the feeds (static/list.js).
    assert "data-index=" in index and "<table" not in index
    a = site.files[f"{base}/a.html"].data.decode()
    assert 'data-list="../../../../../../api/v1/suites/archlinux/-/extra/x86_64/UNKWN/a.json"' in a
    assert f"{base}.html" in targets(f"{base}/a.html", a)
    samepr2 = json.loads(site.files["api/v1/suites/archlinux/-/extra/x86_64/UNKWN/samepr-2.json"].data)
    assert len(samepr2["packages"]) == 2
    feed = json.loads(site.files["api/v1/suites/archlinux/-/extra/x86_64/UNKWN.json"].data)
    assert [p["prefix"] for p in feed["parts"]] == ["a", "b1", "b2", "b3", "b4", "c", "samepr", "samepr"]
    assert "packages" not in feed and sum(p["count"] for p in feed["parts"]) == 12 == feed["count"]
    part = json.loads(site.files["api/v1/suites/archlinux/-/extra/x86_64/UNKWN/a.json"].data)
    assert [r["name"] for r in part["packages"]] == ["A2", "a1"] and part["kind"] == "suite-status-part"
    # A part links the list's index and its neighbours, not every other part.
    b2 = site.files[f"{base}/b2.html"].data.decode()
    assert {k for k in targets(f"{base}/b2.html", b2) if k.startswith(base)} == \
        {f"{base}.html", f"{base}/b1.html", f"{base}/b3.html"}
    first = site.files[f"{base}/a.html"].data.decode()
    assert {k for k in targets(f"{base}/a.html", first) if k.startswith(base)} == {f"{base}.html", f"{base}/b1.html"}
    check_site(site)

    # A new part rewrites itself and its neighbours; the other parts are not even rendered.
    write_site(world.store, site)
    write_state(world.store, "more", [state_row(n, component="extra") for n in [*names, "d1"]])
    again = render(world, previous=read_manifest(world.store))
    rendered = {k for k in again.files if k.startswith(f"{base}/")}
    assert rendered == {f"{base}/{p}.html" for p in ("c", "d", "samepr")} | {f"{base}/d.html"}
    feeds_rendered = {k for k in again.files if k.startswith("api/v1/suites/archlinux/-/extra/x86_64/UNKWN/")}
    assert feeds_rendered == {"api/v1/suites/archlinux/-/extra/x86_64/UNKWN/d.json"}
    published = set(again.files) | set(again.kept)
    for key in rendered:
        assert targets(key, again.files[key].data.decode()) <= published, key


def hostile_world(tmp_path: Path):
    store = open_store((tmp_path / "store").as_uri())
    rows = [dataclasses.replace(state_row(name, source=name), maintainers=(name, "Jane <j@example.org>"))
            for name in HOSTILE]
    rows.append(state_row("evil-bin", source="<script>alert(2)</script>"))
    write_state(store, "hostile", rows)
    results = Results(store)
    for row in rows[:4]:
        results.add(row, 1, Status.BAD, built_at=NOW, reason="not reproducible: <img src=x onerror=alert(1)> differs"
                    "\x01\x0b", worker="<b>worker</b>", diffoscope="<script>alert(3)</script>", html=True)
    results.add(rows[4], 1, Status.FAIL, built_at=NOW, reason="</summary><script>alert(4)</script>")
    results.compact()
    enrol_worker(store, "<i>evil worker</i>")
    return store


def test_hostile_names_are_escaped_and_never_paths(tmp_path):
    store = hostile_world(tmp_path)
    site = build_site(store, now=NOW, public_keys={"current": []}, rebuilder_name="r")
    pages = check_site(site)
    for key in site.files:
        check_key("site/" + key, op="test")  # the store would refuse anything else
        assert "<" not in key and ".." not in key.split("/") and "$(" not in key
    package_pages = [k for k in site.files if k.startswith("packages/")]
    assert all(k.count("/") == 2 for k in package_pages)
    # A page per maintainer, named through urls.segment like package pages, linked from theirs.
    maintainer_pages = {k for k in site.files if k.startswith("maintainers/") and k.endswith(".html")}
    assert maintainer_pages == {urls.maintainer_page(m) for m in [*HOSTILE, "Jane <j@example.org>"]} | {
        urls.MAINTAINERS_PAGE}
    assert {k for k in site.files if k.startswith("maintainers/") and not k.endswith(".html")} == {
        urls.maintainer_atom(m) for m in [*HOSTILE, "Jane <j@example.org>"]}
    assert all(k.count("/") == 1 for k in maintainer_pages)
    evil = urls.maintainer_page("<script>alert(1)</script>")
    # The page is a shell (static/list.js): its feed links the package page.
    assert [p["page"] for p in json.loads(site.files[urls.maintainer_feed("<script>alert(1)</script>")].data)[
        "packages"]] == [urls.href("packages/archlinux/%3Cscript%3Ealert%281%29%3C%2Fscript%3E.html")]
    assert urls.maintainer_feed("<script>alert(1)</script>") in targets(evil, site.files[evil].data.decode())
    assert evil in targets("packages/archlinux/%3Cscript%3Ealert%281%29%3C%2Fscript%3E.html", site.files[
        "packages/archlinux/%3Cscript%3Ealert%281%29%3C%2Fscript%3E.html"].data.decode())
    feed = json.loads(site.files[urls.maintainer_feed("<script>alert(1)</script>")].data)
    assert feed["name"] == "<script>alert(1)</script>" and feed["bad"] == 1 and feed["total"] == 1
    assert urls.maintainer_page("index") != urls.MAINTAINERS_PAGE
    assert len(package_pages) == len(HOSTILE) + 2  # every name, plus the source of evil-bin
    for key, file in site.files.items():
        if file.data is None or key.startswith("api/"):
            continue
        text = file.data.decode()
        for raw in ("<script>alert", "<img src=x", "<b>worker", "<i>evil", "<b>\n", "\x01"):
            assert raw not in text, (key, raw)
    page = pages["packages/archlinux/" + urls.segment("<script>alert(1)</script>") + ".html"]
    assert "<script>alert(1)</script>" in "".join(page.text)  # shown, as text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in site.files[
        "packages/archlinux/%3Cscript%3Ealert%281%29%3C%2Fscript%3E.html"].data.decode()
    # the names travel as data in the feeds
    names = {r["name"] for r in json.loads(site.files["api/v0/pkgs/list"].data)}
    assert set(HOSTILE) <= names
    # Atom: well-formed XML whatever the reasons contain
    feed = ET.fromstring(site.files["regressions.atom"].data)
    titles = [e.findtext("{http://www.w3.org/2005/Atom}title") for e in feed.iter("{http://www.w3.org/2005/Atom}entry")]
    assert any("<script>alert(1)</script>" in t for t in titles)
    # written to a local store, every file stays inside the site directory
    stats = write_site(store, site)
    assert stats.written == len(site.files)
    root = (tmp_path / "store" / "site").resolve()
    for path in root.rglob("*"):
        assert path.resolve().is_relative_to(root)
    assert not any(p.name == "pwned" for p in tmp_path.rglob("*"))


def test_atom_feed(world):
    site = render(world)
    feed = ET.fromstring(site.files["regressions.atom"].data)
    ns = "{http://www.w3.org/2005/Atom}"
    entries = feed.findall(f"{ns}entry")
    assert [e.findtext(f"{ns}title").split(" ")[0] for e in entries] == ["regress", "splitbase", "bar"]
    assert "GOOD → BAD" in entries[0].findtext(f"{ns}title")
    assert entries[0].find(f"{ns}link[@rel='alternate']").get("href") == "packages/archlinux/regress.html"
    assert feed.findtext(f"{ns}updated") == "2026-05-01T00:00:00.000000Z"
    assert site.files["regressions.atom"].content_type == "application/atom+xml"


def test_status_css_classes_come_from_the_enum(world):
    css = (Path(__file__).parents[2] / "site" / "static" / "style.css").read_text()
    text = render(world).files["suites/archlinux/-/core/x86_64/BAD.html"].data.decode()
    for status in Status:
        assert f".{status.css_class}" in css
    assert f'class="{Status.BAD.css_class}"' in text


def test_small_cuts_typo_breadcrumbs_short_build_ids_and_the_feeds_page(world):
    site = render(world)
    pages = check_site(site)
    suite = "suites/archlinux/-/core/x86_64/index.html"
    text = site.files[suite].data.decode()
    shown = " ".join("".join(pages[suite].text).split())
    assert "1 UNKWN of 7 packages" in shown and "UNKWNof" not in shown
    # Breadcrumbs are links: the distro (the dashboard's line for it) and the suite.
    assert "index.html" in targets(suite, text)
    assert 'href="../../../../../index.html#distro-archlinux"' in text
    bar = site.files["packages/archlinux/bar.html"].data.decode()
    assert suite in targets("packages/archlinux/bar.html", bar)
    assert 'id="distro-archlinux"' in site.files["index.html"].data.decode()
    # Short build ids: "#<v0 id>" shown, the full id in title= and in the JSON.
    feed = json.loads(site.files["api/v1/packages/archlinux/bar.json"].data)
    build = feed["builds"][0]
    assert f'<code title="{build["build_id"]}">#{build["v0_build_id"]}</code>' in bar
    assert f">{build['build_id']}<" not in bar
    # The feeds page: every feed family described, linked from every page's footer.
    feeds_page = site.files[urls.FEEDS_PAGE].data.decode()
    for what in ("api/v1/status.json", "api/v1/index.json", "api/v0/pkgs/list", "regressions.atom",
                 "api/v1/maintainers/index.json", "<pre class=\"example\">"):
        assert what in feeds_page, what
    assert urls.FEEDS_PAGE in targets("packages/archlinux/bar.html", bar)


def test_charts_are_svg_with_axes_and_legends_and_the_banner_is_there(world):
    site = render(world)
    suite = site.files["suites/archlinux/-/core/x86_64/index.html"].data.decode()
    dashboard = site.files["index.html"].data.decode()
    bar = site.files["packages/archlinux/bar.html"].data.decode()
    for text in (suite, dashboard):
        assert 'class="axis"' in text and ">100%</text>" in text and ">GOOD " in text and 'role="img"' in text
    assert 'class="mark status-' in bar and 'class="legend"' in bar
    # Every page but the dashboard fills its banner from the status file; the dashboard has it rendered.
    assert 'id="published"' in bar and "static/status.js" in bar and "../../api/v1/status.json" in bar
    assert "Last published 2026-05-01 12:00 UTC" in dashboard and "static/status.js" not in dashboard
    status = json.loads(site.files[urls.STATUS_FEED].data)
    assert status["published_at"] == "2026-05-01T12:00:00.000000Z" and status["kind"] == "status"
    assert status["behind_seconds"] is not None and status["behind_seconds"] >= 0
