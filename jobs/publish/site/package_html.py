"""A package page written out in Python (the hot loop of a publish): its two tables and the page around them.

A package page lists every build of its name: a hundred thousand rows at 10,000 packages,
a million at 100,000. Rendered through Jinja2 macros each row cost about as much as
the rest of its page (a macro call, `_finalize` and `markupsafe.escape` per cell); here
each row is one f-string. The output is byte for byte what `site/templates/package.html`
rendered before (tests/publish/test_package_html.py renders both ways): every string from
outside goes through `text.printable` and `markupsafe.escape`, exactly as the
environment's `finalize` and autoescape did, and every link is relative to the page
(`urls.relative`).

`page` writes the whole page the same way: what `site/templates/package.html` (over
`base.html`) renders, byte for byte (the template stays the reference: the tests render
both ways, hostile names, descriptions and maintainers included); the Jinja2 render around
the rows (its context, blocks, filters and a `url()` call per link) cost more than the rows.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from datetime import datetime

import markupsafe
from jinja2.filters import do_urlencode

from jobs.core import urls
from jobs.core.model import Status
from jobs.publish.site.classify import FailureClass
from jobs.publish.site.rows import BuildLinks, BuildRow, PackagePage, PackageRow
from jobs.publish.site.text import NOT_XML

_escape = markupsafe.escape
_sub = NOT_XML.sub
# What either step would change: most strings have none of it and are printed as they are.
_SPECIAL = re.compile("[&<>\"'" + NOT_XML.pattern[1:])


def _t(value: str) -> str:
    """A string from outside, as the templates print it: printable, then HTML-escaped."""
    if _SPECIAL.search(value) is None:
        return value
    return _escape(_sub("\ufffd", value))


def minute(value: datetime) -> str:
    """`value.strftime("%Y-%m-%d %H:%M")`, in half the time (years before 1000: strftime's own text)."""
    if value.year < 1000:
        return value.strftime("%Y-%m-%d %H:%M")
    return "%04d-%02d-%02d %02d:%02d" % (value.year, value.month, value.day, value.hour, value.minute)


def _when(value: datetime | None) -> str:
    return f"{minute(value)} UTC" if value is not None else "never"


_STATUS = {s: f'<span class="status {_t(s.css_class)}">{_t(s.value)}</span>' for s in Status}
_FAILURE = {c: f'<span class="failure {_t(c.css_class)}">{_t(c.label)}</span>' for c in FailureClass}
_CSS = {s: _t(s.css_class) for s in Status}


def _failure(value: FailureClass | None) -> str:
    return "" if value is None else _FAILURE[value]


class Links:
    """Links from one page: `urls.relative(key, page_key)`, and the way to build files precomputed."""

    __slots__ = ("builds", "page_key")

    def __init__(self, page_key: str) -> None:
        self.page_key = page_key
        # api/v0/builds/<int>/<what>: nothing in the tail to quote, and a page outside
        # api/v0/builds/ shares none of the tail's segments, so the prefix is the same for all.
        probe = urls.build_file(0, "log")
        rel = urls.relative(probe, page_key)
        self.builds = (rel.removesuffix("0/log") if not page_key.startswith(urls.BUILDS_PREFIX)
                       and rel.endswith("/0/log") else None)

    def __call__(self, key: str) -> str:
        return urls.relative(key, self.page_key)

    def build_file(self, v0_id: int, what: str) -> str:
        if self.builds is None:
            return self(urls.build_file(v0_id, what))
        return f"{self.builds}{int(v0_id)}/{what}"


def relative_from(page_key: str) -> Links:
    """The links from the page at `page_key`."""
    return Links(page_key)


def _files(links: BuildLinks, url: Links) -> str:
    """The `files` macro of partials/macros.html: a build's log, reports and attestation."""
    v0 = links.v0_id
    if v0 is None:
        return ""
    out = []
    if links.has_log:
        out.append(f'<a href="{_t(url.build_file(v0, "log"))}" type="text/plain">log</a>')
    if links.has_diffoscope_html:
        out.append(f' <a href="{_t(url.build_file(v0, "diffoscope.html"))}">diffoscope</a>')
    if links.has_diffoscope:
        out.append(f' <a href="{_t(url.build_file(v0, "diffoscope"))}" type="text/plain">diffoscope (text)</a>')
    if links.has_attestation:
        out.append(f' <a href="{_t(url.build_file(v0, "attestation"))}" type="application/json">'
                   "attestation</a>")
    return "".join(out)


def package_rows(rows: Iterable[PackageRow], url: Links) -> markupsafe.Markup:
    """The body rows of the "Current packages" table."""
    out = []
    for row in rows:
        name = _t(row.name)
        source = (f" <small>(source {_t(row.source_name)} {_t(row.source_version)})</small>"
                  if row.source_name != row.name else "")
        out.append(f'<tr class="{_CSS[row.status]}">\n<td>{name}{source}</td>\n<td>{_t(row.version)}</td>\n'
                   f"<td>{_t(row.suite.label)}</td>\n<td>{_STATUS[row.status]}</td>\n"
                   f"<td>{_failure(row.failure_class)}</td>\n<td>{_t(row.reason or '')}</td>\n"
                   f"<td>{_when(row.built_at)}</td>\n<td>{_files(row.links, url)}</td>\n</tr>\n")
    return markupsafe.Markup("".join(out))


def build_rows(builds: Iterable[BuildRow], url: Links) -> markupsafe.Markup:
    """The body rows of the "Builds" table, newest first as given."""
    out = []
    for b in builds:
        bid = _t(b.build_id)
        v0 = b.links.v0_id
        short = f"#{v0}" if v0 is not None else _t(b.build_id[:8])
        artifacts = ", ".join(f"{_t(n)} {_STATUS[s]}" for n, s in b.artifacts)
        out.append(f'<tr class="{_CSS[b.status]}" id="build-{bid}">\n<td><code title="{bid}">{short}</code></td>\n'
                   f"<td>{_t(b.source_name)} {_t(b.source_version)}</td>\n<td>{_t(b.architecture)}</td>\n"
                   f"<td>{b.attempt}</td>\n<td>{_STATUS[b.status]}</td>\n<td>{_failure(b.failure_class)}</td>\n"
                   f"<td>{_t(b.reason or '')}</td>\n<td>{artifacts}</td>\n"
                   f"<td>{_t(b.worker_name or b.worker_key_id)}</td>\n<td>{_when(b.started_at)}</td>\n"
                   f"<td>{_when(b.built_at)}</td>\n<td>{_files(b.links, url)}</td>\n</tr>\n")
    return markupsafe.Markup("".join(out))


@functools.lru_cache(maxsize=256)
def _frame(directory: str, rebuilder: str) -> tuple[str, str, str, str, str, str]:
    """What `base.html` writes around a package page's blocks from one directory: the head up to the
    title, from the title to the feed link, from there to the crumbs, from the crumbs to the content,
    and the end of the page before and after its feed link."""
    def url(key: str) -> str:
        return _t(urls.relative(key, directory + "_"))
    head = ('<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<link rel="icon" href="data:,">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>')
    style = f'</title>\n<link rel="stylesheet" href="{url("static/style.css")}">\n' \
            '<link rel="alternate" type="application/json" href="'
    crumbs = (f'">\n<script src="{url("static/status.js")}" defer></script></head>\n<body>\n<header>\n'
              f'<nav class="crumbs" aria-label="breadcrumbs"><a class="home" href="{url("index.html")}">'
              f"{_t(rebuilder)}</a>\n")
    search = (f'</nav>\n<form class="site-search" role="search" action="{url(urls.SEARCH_PAGE)}" method="get">'
              '<input type="search" name="q" aria-label="Search packages and maintainers" '
              'placeholder="Search packages"> <button type="submit">Search</button></form>'
              f'<p class="published" id="published" data-src="{url(urls.STATUS_FEED)}" hidden></p>\n'
              "</header>\n<main>\n")
    foot = ('</main>\n<footer>\n<p>This page as <a class="json" href="', '" type="application/json">JSON</a>.\n'
            f'<a href="{url(urls.FEEDS_PAGE)}">All feeds</a> · <a href="{url(urls.MAINTAINERS_PAGE)}">Maintainers</a>'
            f' · <a href="{url(urls.SEARCH_PAGE)}">Search</a></p>\n</footer>\n</body>\n</html>\n')
    return head, style, crumbs, search, *foot


@functools.lru_cache(maxsize=1024)
def _suite_crumb(path: str, label: str, directory: str) -> str:
    return f' › <a href="{_t(urls.relative(urls.suite_page(path), directory + "_"))}">{_t(label)}</a>'


@functools.lru_cache(maxsize=1 << 14)  # a maintainer has many packages
def _maintainer_link(name: str, directory: str) -> str:
    return f'<a href="{_t(urls.relative(urls.maintainer_page(name), directory + "_"))}">{_t(name)}</a>'


def _unique(values: Iterable[str]) -> list[str]:
    """Jinja2's `unique` filter on strings: the first of each, compared without case."""
    seen: set[str] = set()
    out = []
    for v in values:
        k = v.lower()
        if k not in seen:
            seen.add(k)
            out.append(v)
    return out


_PACKAGES_HEAD = ('<table class="packages">\n<thead><tr><th>package</th><th>version</th><th>suite</th><th>status</th>'
                  "<th>failure</th><th>reason</th><th>built</th><th>files</th></tr></thead>\n<tbody>\n")
_BUILDS_HEAD = ('<table class="builds">\n<thead><tr><th>build</th><th>source</th><th>architecture</th><th>attempt</th>'
                "<th>status</th><th>failure</th><th>reason</th><th>artifacts</th><th>worker</th><th>started</th>"
                "<th>built</th><th>files</th></tr></thead>\n<tbody>\n")


def page(page: PackagePage, page_key: str, json_url: str, strip: str, rebuilder: str) -> bytes:
    """The package page at `page_key` as UTF-8 bytes: `site/templates/package.html`'s render, byte for byte."""
    directory = page_key[:page_key.rfind("/") + 1]
    head, style, nav, search, before, after = _frame(directory, rebuilder)
    name, distro, packages = _t(page.name), _t(page.distro), page.packages
    feed = _t(urls.relative(json_url, directory + "_"))
    out = [head, name, " · ", distro, " · ", _t(rebuilder), style, feed]
    out += [nav, f' › <a href="{_t(urls.relative("index.html", directory + "_"))}#distro-'
                 f'{_t(do_urlencode(page.distro))}">{distro}</a>\n']
    out += [_suite_crumb(s.path, s.label, directory) for s in dict.fromkeys(p.suite for p in packages)]
    out += [f' › <span aria-current="page">{name}</span>', search, f"<h1>{name} <small>{distro}</small></h1>\n"]
    own = _unique(p.description for p in packages if p.name == page.name and p.description)
    descriptions = own or _unique(p.description for p in packages if p.description)
    if descriptions:
        out.append(f'<p class="pkgdesc">{_t(" · ".join(descriptions[:3]))}</p>')
    maintainers = sorted(_unique(m for p in packages for m in p.maintainers), key=str.lower)
    if maintainers:
        links = ", ".join([_maintainer_link(m, directory) for m in maintainers])
    else:
        links = "nobody the index names"
    out.append(f"\n<p>Maintained by {links}.</p>\n\n<h2>Current packages</h2>\n")
    url = relative_from(page_key)
    if packages:
        out += [_PACKAGES_HEAD, package_rows(packages, url), "</tbody>\n</table>\n"]
    else:
        out.append("<p>No current package has this name.</p>\n")
    out.append(f'\n<h2>Builds</h2>\n<figure class="chart">{strip}</figure>\n')
    if page.builds:
        out += [_BUILDS_HEAD, build_rows(page.builds, url), "</tbody>\n</table>\n"]
    else:
        out.append("<p>Never built yet.</p>\n")
    out += [before, feed, after]
    return "".join(out).encode("utf-8", "replace")
