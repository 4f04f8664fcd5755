"""The package pages made the slow, obvious way: the oracle `plan.stream_pages` is checked against.

Publish and `plan.query_site` make pages with `plan.stream_pages` (one query, lists read
as Arrow record batches, rows built column by column). This makes the same pages from a dict
per package row and per build row, grouped in Python, so a test can compare the two.
"""

from __future__ import annotations

from collections import defaultdict

import duckdb
import pyarrow as pa

from jobs.core.model import Status
from jobs.publish.site.queries import _BUILDS, _PACKAGE_COLUMNS, _class, _dicts, _links, package_row
from jobs.publish.site.rows import BuildRow, PackagePage, PackageRow


def packages(con: duckdb.DuckDBPyConnection, names_table: str = "names") -> list[PackageRow]:
    """The current packages listed on the pages of `names_table` (by their name or source name)."""
    # Two semi-joins, not one EXISTS with an OR.
    return [package_row(d) for d in _dicts(con, f"""SELECT {_PACKAGE_COLUMNS} FROM (
            SELECT p.* FROM pkgs p SEMI JOIN {names_table} w ON w.distro = p.distro AND w.name = p.name
            UNION ALL
            SELECT p.* FROM pkgs p SEMI JOIN {names_table} w ON w.distro = p.distro AND w.name = p.source_name
                AND p.source_name <> p.name)
        ORDER BY distro, release NULLS FIRST, component NULLS FIRST, architecture, name, version,
                 artifact_architecture, artifact_url""")]


def package_pages(con: duckdb.DuckDBPyConnection, rows: list[PackageRow], *, names_table: str = "names"
                  ) -> list[PackagePage]:
    """One page per source or binary name of each distro among `rows`: its current packages and every build."""
    builds: dict[tuple[str, str], list[BuildRow]] = defaultdict(list)
    for d in _dicts(con, _BUILDS.format(names=names_table)):
        key = (d.pop("page_distro"), d.pop("page_name"))
        links = _links(d)
        d["artifacts"] = tuple((a["name"], Status(a["status"])) for a in d["artifacts"])
        builds[key].append(BuildRow(links=links, **{**d, "status": Status(d["status"]),
                                                     "failure_class": _class(d["failure_class"])}))
    current: dict[tuple[str, str], list[PackageRow]] = defaultdict(list)
    for row in rows:
        current[(row.suite.distro, row.name)].append(row)
        if row.source_name != row.name:
            current[(row.suite.distro, row.source_name)].append(row)
    return [PackagePage(distro, name, tuple(current[(distro, name)]), tuple(builds.get((distro, name), ())))
            for distro, name in sorted(current)]


def pages_for(con: duckdb.DuckDBPyConnection, wanted: list[tuple[str, str]]) -> list[PackagePage]:
    """The pages of these (distro, name) pairs only (a connection made by `queries.connect`)."""
    if not wanted:
        return []
    con.register("wanted_pages", pa.table({"distro": [d for d, _ in wanted], "name": [n for _, n in wanted]}))
    try:
        pages = package_pages(con, packages(con, "wanted_pages"), names_table="wanted_pages")
    finally:
        con.unregister("wanted_pages")
    want = set(wanted)
    return [p for p in pages if (p.distro, p.name) in want]
