"""`rebuildctl pkgs ls` piped: its lines made from the whole lists' columns, without an object a row.

`package_lines` gives exactly what `jobs.ctl.commands.lines` makes of `list_packages`' rows
(the same lines in the same order, the same errors for a malformed list), faster where it
matters: a listing of whole lists (`lists_all`) with no filter on the rows themselves (the
name, version or architecture). Each list's columns are taken out of its rows in C
(`map(itemgetter(i), rows)`), checked a column at a time, and the lines formatted from them
with the list's status and suite once; the listing is sorted by `commands._row_order`'s key,
made by `zip` over the columns (ties keep the lists' order, as the rows' sort does). For
15,000 rows, a third of the CPU time of building a `ListedPackage` a row, ordering and
formatting them. Anything else (a name, a pattern, a site without whole lists) reads the rows.
"""

from __future__ import annotations

from itertools import repeat
from operator import itemgetter
from typing import Any

from jobs.core import feeds as schema
from jobs.ctl.commands import (
    _LINK_TYPES,
    _WHOLE_COLUMNS,
    _WHOLE_LINKS,
    _WHOLE_ROW_TYPES,
    Filters,
    _quoted,
    collector_paused,
    lines,
    lists_to_read,
    rows_of,
    unlisted,
)
from jobs.ctl.feeds import FeedInvalid, Site


def package_lines(site: Site, filters: Filters, statuses: list[Any] | None = None) -> tuple[int, str]:
    """(how many packages, their `pkgs ls` lines joined by newlines): `len(rows)` and `commands.lines(rows)` of
    `commands.list_packages(site, filters, statuses)`."""
    lists, listed = lists_to_read(site, filters, statuses)
    read = None  # the whole lists read here, if one of them is not there (as list_packages reads them)
    if (filters.name is None and filters.architecture is None and filters.version is None and lists
            and all(whole is not None for whole, _ in lists)):
        keys = [whole for whole, _ in lists]
        with collector_paused():  # tens of thousands of new objects that all live on (commands.collector_paused)
            found = list(site.json_each(keys, missing_ok=True))  # type: ignore[arg-type]
            if all(feed is not None for feed in found):
                for key, feed in zip(keys, found):
                    schema.check(feed, schema.WHOLE, url=site.url(key), what="whole-list")
                return _whole_lines(site, keys, found, listed)  # type: ignore[arg-type]
            read = dict(zip(keys, found))  # not read (nor counted against the memory budget) a second time
    rows = rows_of(site, filters, lists, listed, read)  # a list the index names is not there: as list_packages
    return len(rows), lines(rows) if rows else ""


def _whole_lines(site: Site, keys: list[str], feeds: list[dict[str, Any]], listed: set[tuple[Any, ...]]
                 ) -> tuple[int, str]:
    order: list[tuple[str, ...]] = []  # each row's sort key (commands._row_order)
    text: list[str] = []  # each row's line before `clean`
    for key, feed in zip(keys, feeds):
        try:
            columns, rows = feed["columns"], feed["rows"]
            name, version, arch, url, build_id = (list(map(itemgetter(columns.index(c)), rows))
                                                  for c in _WHOLE_COLUMNS)
            links = [list(map(itemgetter(columns.index(c)), rows)) for c in _WHOLE_LINKS]
            suite, status = feed["suite"], feed["status"]
            distro, release, component = suite["distro"], suite["release"], suite["component"]
            unlisted(site, {(distro, release, component, suite["architecture"], status)}, listed)
        except (KeyError, IndexError, TypeError, ValueError):
            raise FeedInvalid("not a whole-list feed: its suite, status, columns or rows are not as published",
                              url=site.url(key)) from None
        for (field, types), column in zip(_WHOLE_ROW_TYPES, (name, version, arch, url, build_id)):
            found = set(map(type, column))
            if not found <= set(types):
                wrong = next(t for t in found if t not in types).__name__
                raise FeedInvalid(f"malformed package list: a package's {field} is {wrong}, not text", url=site.base)
        for field, types, column in zip(_WHOLE_LINKS, _LINK_TYPES, links):
            if not set(map(type, column)) <= types:
                raise FeedInvalid(f"malformed whole-list feed: a row's {field} is of the wrong type", url=site.url(key))
        n = len(rows)
        order += zip(name, version, repeat(distro, n), repeat(release or "", n), repeat(component or "", n), arch)
        head, where = f"[{status:<5}] ", f"({distro}, {release or '<none>'}, {component or '<none>'}, "
        plain = "".join(filter(None, url))
        if '"' in plain or "\\" in plain:
            text += [f"{head}{p} {v} {where}{a}) {_quoted(u or '')}" for p, v, a, u in zip(name, version, arch, url)]
        else:
            text += [f'{head}{p} {v} {where}{a}) "{u or ""}"' for p, v, a, u in zip(name, version, arch, url)]
    if not text:
        return 0, ""
    return len(text), lines_text([text[i] for i in sorted(range(len(order)), key=order.__getitem__)])


def lines_text(raw: list[str]) -> str:
    """Lines before `clean`, made safe and joined (`jobs.ctl.escape.clean_lines`)."""
    from jobs.ctl.escape import clean_lines

    return clean_lines(raw)
