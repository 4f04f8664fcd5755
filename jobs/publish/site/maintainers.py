"""A page and a feed per maintainer: their current packages and verdicts.

Who maintains a package is what sync read from the index (the state's `maintainers`
column: Arch's `%PACKAGER%`, Debian's `Maintainer` and `Uploaders`), the way
arch-repro-status users look for "my packages". Names are untrusted: they are escaped
where shown and become keys only through `urls.maintainer_page` (`urls.segment`).

Each maintainer also has an Atom feed (`maintainers/<name>.atom`): their packages' latest
verdicts, the `MAX_ATOM_ENTRIES` most recently built first, for a feed reader.

Maintainer pages link package pages only (tier LEAF, as package pages link them). Incremental like package pages: each maintainer's feed and Atom feed carry a digest of the
rows they show (`plan`'s row hashes), and only those whose rows changed are rendered. The
page is a static shell (`static/list.js` fills it from the feed), written when the
maintainer first appears. The
index (`maintainers/index.html`, `api/v1/maintainers/index.json`) lists every maintainer
with their counts and is rendered every run (the writer skips it when nothing changed).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

from jobs.core import urls
from jobs.publish.site import feeds
from jobs.publish.site.classify import FailureClass
from jobs.publish.site.plan import _DIGEST, package_rows
from jobs.publish.site.queries import _PACKAGE_COLUMNS, _dicts
from jobs.publish.site.rows import PackageRow, StatusCounts
from jobs.publish.site.sitewriter import ATOM, HTML, SiteFile, Tier, json_file

MAX_ATOM_ENTRIES = 100  # a maintainer's Atom feed: their most recently built packages

_SETUP = """
CREATE TEMP TABLE maint AS
SELECT DISTINCT rid, maintainer FROM (SELECT rid, unnest(maintainers) AS maintainer FROM pkgh)
WHERE maintainer IS NOT NULL AND maintainer <> ''
"""

_INPUTS = f"""SELECT m.maintainer, {_DIGEST.format(h="p.h")} AS input,
    count(*) FILTER (WHERE p.status = 'GOOD') AS good, count(*) FILTER (WHERE p.status = 'BAD') AS bad,
    count(*) FILTER (WHERE p.status = 'FAIL') AS fail, count(*) FILTER (WHERE p.status = 'UNKWN') AS unknown
FROM maint m JOIN pkgh p USING (rid) GROUP BY m.maintainer ORDER BY m.maintainer"""


@dataclass(frozen=True, slots=True)
class Maintainer(StatusCounts):
    """One maintainer's counts over their current packages (every suite)."""

    name: str
    good: int
    bad: int
    fail: int
    unknown: int
    input: str = ""


    @property
    def page_url(self) -> str:
        return urls.maintainer_page(self.name)

    @property
    def feed_url(self) -> str:
        return urls.maintainer_feed(self.name)

    @property
    def atom_url(self) -> str:
        return urls.maintainer_atom(self.name)

    def json(self) -> dict[str, Any]:
        return {"name": self.name, "good": self.good, "bad": self.bad, "fail": self.fail, "unknown": self.unknown,
                "total": self.total, "feed": urls.href(self.feed_url), "page": urls.href(self.page_url),
                "atom": urls.href(self.atom_url)}


def maintainers(con: duckdb.DuckDBPyConnection) -> list[Maintainer]:
    """Every maintainer named by a current package, with counts and the digest of their rows."""
    con.execute(_SETUP)
    return [Maintainer(d["maintainer"], int(d["good"]), int(d["bad"]), int(d["fail"]), int(d["unknown"]),
                       d["input"]) for d in _dicts(con, _INPUTS)]


def rows_for(con: duckdb.DuckDBPyConnection, names: list[str]) -> dict[str, list[PackageRow]]:
    """The current packages of these maintainers, in list order."""
    out: dict[str, list[PackageRow]] = {n: [] for n in names}
    if not names:
        return out
    con.register("wanted_maint", pa.table({"maintainer": pa.array(names, pa.string())}))
    try:
        columns = ", ".join(f"p.{c.strip()}" for c in _PACKAGE_COLUMNS.split(","))
        (owners,), rows = package_rows(con, f"""SELECT m.maintainer AS _maintainer, {columns}
                FROM maint m SEMI JOIN wanted_maint w USING (maintainer) JOIN pkgh p USING (rid)
                ORDER BY m.maintainer, p.name, p.distro, p.release NULLS FIRST, p.component NULLS FIRST,
                         p.architecture, p.version, p.artifact_architecture, p.artifact_url""", ("_maintainer",))
        for name, row in zip(owners, rows):
            out[name].append(row)
    finally:
        con.unregister("wanted_maint")
    return out


def add(b: Any, con: duckdb.DuckDBPyConnection) -> None:
    """Every maintainer's page and feed whose rows changed, and the maintainers' index (every run)."""
    everyone = maintainers(con)
    classes = {c.value: (c.label, None) for c in FailureClass}
    for m in everyone:  # the page is a shell static/list.js fills from the feed: written once
        shell = hashlib.sha256(f"maintainer-shell\0{m.name}".encode("utf-8", "surrogatepass")).hexdigest()[:32]
        if not b.keep_if_unchanged((m.page_url,), shell):
            b.site.add(SiteFile.content(m.page_url, b.renderer.render(
                "maintainer.html", m.page_url, maintainer=m, json_url=m.feed_url, classes=classes), HTML,
                Tier.LEAF, input=shell))
    wanted = [m for m in everyone if not b.keep_if_unchanged((m.feed_url, m.atom_url), m.input)]
    rows = rows_for(con, [m.name for m in wanted])
    for m in wanted:
        mine = rows[m.name]
        b.site.add(json_file(m.feed_url, feeds.envelope("maintainer", b.now, **m.json(),
                                                        packages=[feeds.package_json(r) for r in mine]),
                             Tier.LEAF, input=m.input))
        built = sorted((r for r in mine if r.built_at is not None), key=lambda r: r.built_at, reverse=True)
        b.site.add(SiteFile.content(m.atom_url, b.renderer.render(
            "maintainer.atom", m.atom_url, maintainer=m, rows=built[:MAX_ATOM_ENTRIES],
            updated=built[0].built_at if built else None), ATOM, Tier.LEAF, input=m.input))
    b.site.add(json_file(urls.MAINTAINERS_FEED, feeds.envelope("maintainers", b.now, count=len(everyone),
                                                               maintainers=[m.json() for m in everyone]),
                         Tier.SUITE))
    b.site.add(SiteFile.content(urls.MAINTAINERS_PAGE, b.renderer.render(
        "maintainers.html", urls.MAINTAINERS_PAGE, maintainers=everyone, json_url=urls.MAINTAINERS_FEED),
        HTML, Tier.SUITE))
