"""The two tables of a package page, their rows written out in Python (the hot loop of a publish).

A package page lists every build of its name: a hundred thousand rows at 10,000 packages,
a million at 100,000. Rendered through Jinja2 macros each row cost about as much as
the rest of its page (a macro call, `_finalize` and `markupsafe.escape` per cell); here
each row is one f-string. The output is byte for byte what `site/templates/package.html`
rendered before (tests/publish/test_package_html.py renders both ways): every string from
outside goes through `text.printable` and `markupsafe.escape`, exactly as the
environment's `finalize` and autoescape did, and every link is relative to the page
(`urls.relative`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime

import markupsafe

from jobs.core import urls
from jobs.core.model import Status
from jobs.publish.site.classify import FailureClass
from jobs.publish.site.rows import BuildLinks, BuildRow, PackageRow
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
