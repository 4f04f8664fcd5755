"""The site's search: a prebuilt index a static host serves, fetched in small shards on demand.

What is searched: every package page (a binary or source name of a distro, all its suites)
and every maintainer page. A record is found by a *key*: its name, its source name (pkgbase)
and, for a maintainer, the maintainer's name and address; each key also from every word in
it (the suffix after each separator, so "foo" finds "python-foo" and "doe" finds "Jane Doe
<jane@example.org>"). Keys are compared by prefix, lowercased (ASCII letters only: the same
rule in Python and in `site/static/search.js`).

Layout (keys in `jobs.core.urls`):

- `api/v1/search/index.json` (kind "search-index"): the distros and the shard list,
  `[bucket, pages, records]`;
- `api/v1/search/k-<bucket>[.<page>].json` (kind "search-shard"): the `records` with a key
  in that bucket.

A key's bucket is the prefix of its *shard form* (each character a-z or 0-9, anything else
"_"): all keys to begin with, cut one character deeper wherever a bucket holds more than
`SHARD_RECORDS` records (the same prefix tree as the suite lists), down to `MAX_DEPTH`; a
bucket still larger there is paged. Keys ending at a cut prefix form the bucket of that
prefix. So every key lies in exactly one bucket, a prefix of it, and a query needs only the
buckets that are prefixes of its shard form or that begin with it: one or two small files
for any query of two characters or more, whatever the size of the site.

Records are arrays (compact at 100,000 packages):
`[0, distro, name, source, versions, url]` a binary package, `[1, distro, name, "", versions,
url]` a source package with no binary of that name, `[2, -1, name, "", packages, url]` a
maintainer; `distro` indexes the index's distro list and `url` is "" when it is the plain
`packages/<distro>/<name>.html` (else the escaped key `jobs.core.urls` made).

Bounded: keys are cut to `KEY_CHARS` characters and at most `KEY_WORDS` words of each;
each shard file holds at most `SHARD_RECORDS` records; versions shown are at most
`MAX_VERSIONS` per record. The index changes only with the package set (names, sources,
versions, maintainers), not with verdicts: a publish whose package set did not change keeps
every search file without computing anything but one digest (`input`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb

from jobs.core import urls
from jobs.publish.site import feeds
from jobs.publish.site.sitewriter import HTML, SiteFile, Tier, json_file

SHARD_RECORDS = 1000  # most records in one shard file (about 40 KB of JSON, 10 KB gzipped)
MAX_DEPTH = 8  # deepest bucket prefix; a bucket still larger is paged
KEY_CHARS = 64  # a key's characters that count
KEY_WORDS = 8  # words of one name that are keys of their own
MAX_VERSIONS = 3
SEPARATORS = frozenset(" -_.+@<>/:,()")
BINARY, SOURCE, MAINTAINER = 0, 1, 2
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_NOT_SHARD = re.compile("[^a-z0-9]")
_WORD_START = re.compile(r"(?<=[ \-_.+@<>/:,()])[^ \-_.+@<>/:,()]")  # a character after SEPARATORS

_INPUT = """SELECT CAST(count(*) AS VARCHAR) || ':' || CAST(sum(CAST(h AS HUGEINT)) AS VARCHAR) || ':'
    || CAST(bit_xor(h) AS VARCHAR) AS input
FROM (SELECT hash(distro, name, version, source_name, source_version, maintainers) AS h
      FROM (SELECT DISTINCT distro, name, version, source_name, source_version, maintainers FROM cur))"""

_BINARIES = """SELECT distro, name, list_sort(list_distinct(list(source_name))) AS sources,
    list_sort(list_distinct(list(version))) AS versions
FROM cur GROUP BY distro, name ORDER BY distro, name"""

_SOURCES = """SELECT distro, source_name AS name, list_sort(list_distinct(list(source_version))) AS versions
FROM cur c WHERE NOT EXISTS (SELECT 1 FROM cur b WHERE b.distro = c.distro AND b.name = c.source_name)
GROUP BY distro, source_name ORDER BY distro, source_name"""

_MAINTAINERS = """SELECT maintainer, count(*) AS n FROM (
    SELECT DISTINCT distro, name, unnest(maintainers) AS maintainer FROM cur)
WHERE maintainer IS NOT NULL AND maintainer <> '' GROUP BY maintainer ORDER BY maintainer"""


def lower(text: str) -> str:
    """ASCII letters lowercased, every other character as it is (search.js does the same)."""
    return text.translate(_ASCII_LOWER)


def keys(text: str) -> list[str]:
    """The search keys of one name: all of it and what follows each separator, lowercased and cut."""
    text = lower(text[:KEY_CHARS * 4])
    out = [text[:KEY_CHARS]] if text else []
    for match in _WORD_START.finditer(text):
        if len(out) > KEY_WORDS:  # the whole name and KEY_WORDS words
            break
        out.append(text[match.start():match.start() + KEY_CHARS])
    return out


def shard_form(key: str) -> str:
    """What decides a key's bucket: a-z and 0-9 kept, every other character "_"."""
    return _NOT_SHARD.sub("_", key[:MAX_DEPTH])


def bucket_key(bucket: str, page: int = 1) -> str:
    """The site key of one shard file (a bucket is [a-z0-9_]*, so always a plain segment)."""
    return f"{urls.SEARCH_PREFIX}k-{bucket}.json" if page == 1 else f"{urls.SEARCH_PREFIX}k-{bucket}.{page}.json"


@dataclass(frozen=True, slots=True)
class Record:
    kind: int
    distro: str  # "" for a maintainer
    name: str
    source: str = ""
    versions: tuple[str, ...] = ()
    count: int = 0  # a maintainer's packages

    def href(self) -> str:
        if self.kind == MAINTAINER:
            return urls.href(urls.maintainer_page(self.name))
        return urls.href(urls.package_page(self.distro, self.name))

    def keys(self) -> set[str]:
        found = set(keys(self.name))
        if self.source and self.source != self.name:
            found.update(keys(self.source))
        return found

    def json(self, distros: dict[str, int]) -> list[Any]:
        href = self.href()
        if self.kind == MAINTAINER:
            plain = f"maintainers/{self.name}.html"
            return [MAINTAINER, -1, self.name, "", self.count, "" if href == plain else href]
        plain = f"packages/{self.distro}/{self.name}.html"
        return [self.kind, distros[self.distro], self.name, self.source if self.source != self.name else "",
                ", ".join(self.versions[:MAX_VERSIONS]) + (", …" if len(self.versions) > MAX_VERSIONS else ""),
                "" if href == plain else href]


def records(con: duckdb.DuckDBPyConnection) -> list[Record]:
    """Every package page's and maintainer page's record, from the current packages (`cur`)."""
    out: list[Record] = []
    for distro, name, sources, versions in con.execute(_BINARIES).fetchall():
        out.append(Record(BINARY, distro, name, sources[0] if sources else "", tuple(versions)))
    for distro, name, versions in con.execute(_SOURCES).fetchall():
        out.append(Record(SOURCE, distro, name, "", tuple(versions)))
    for name, count in con.execute(_MAINTAINERS).fetchall():
        out.append(Record(MAINTAINER, "", name, count=int(count)))
    return out


def buckets(pairs: Sequence[tuple[str, int]]) -> list[tuple[str, list[int]]]:
    """(shard form, record) pairs → buckets in order, each with its records (each once, in pair order).

    `pairs` must be sorted by shard form.
    """
    out: list[tuple[str, list[int]]] = []

    def emit(prefix: str, lo: int, hi: int) -> None:
        seen: dict[int, None] = {}
        for _, rec in pairs[lo:hi]:
            seen.setdefault(rec)
        out.append((prefix, list(seen)))

    def split(prefix: str, lo: int, hi: int) -> None:
        depth = len(prefix)
        if hi - lo <= SHARD_RECORDS or depth >= MAX_DEPTH:
            emit(prefix, lo, hi)
            return
        i = lo
        while i < hi and len(pairs[i][0]) == depth:  # keys that end here sort first
            i += 1
        if i > lo:
            emit(prefix, lo, i)
        while i < hi:
            char = pairs[i][0][depth]
            j = i
            while j < hi and pairs[j][0][depth] == char:
                j += 1
            split(prefix + char, i, j)
            i = j

    if pairs:
        split("", 0, len(pairs))
    return out


def index_files(recs: Sequence[Record], now: datetime, *, input: str = "") -> tuple[dict[str, Any], dict[str, Any]]:
    """(the index, shard key → shard) for these records: v1 feeds (`feeds.envelope`), generated `now`."""
    distros = {d: i for i, d in enumerate(sorted({r.distro for r in recs if r.kind != MAINTAINER}))}
    # Records in the order a shard lists them; each turned into JSON once (it may sit in several shards).
    ordered = sorted(recs, key=lambda r: (lower(r.name), r.name, r.distro, r.kind))
    rows = [r.json(distros) for r in ordered]
    pairs = sorted({(shard_form(k), i) for i, r in enumerate(ordered) for k in r.keys()})
    shards: dict[str, Any] = {}
    listed = []
    for bucket, members in buckets(pairs):
        members.sort()
        pages = [members[i:i + SHARD_RECORDS] for i in range(0, len(members), SHARD_RECORDS)]
        for n, page in enumerate(pages, 1):
            shards[bucket_key(bucket, n)] = feeds.envelope("search-shard", now, bucket=bucket, page=n,
                                                           records=[rows[i] for i in page])
        listed.append([bucket, len(pages), len(members)])
    index = feeds.envelope("search-index", now, input=input, distros=list(distros), records=len(recs),
                           shard_records=SHARD_RECORDS, max_depth=MAX_DEPTH, key_chars=KEY_CHARS, shards=listed)
    return index, shards


def digest(con: duckdb.DuckDBPyConnection) -> str:
    """A digest of everything the index is made of (and of this module's layout)."""
    rows = con.execute(_INPUT).fetchall()
    value = rows[0][0] if rows else ""
    layout = f"{SHARD_RECORDS}:{MAX_DEPTH}:{KEY_CHARS}:{KEY_WORDS}:{MAX_VERSIONS}"
    return hashlib.sha256(f"{value}\0{layout}".encode()).hexdigest()[:32]


def add(b: Any, con: duckdb.DuckDBPyConnection, suites: Iterable[Any]) -> None:
    """The search index (only when the package set changed) and the search page (every run)."""
    input = digest(con)
    previous = tuple(k for k in b.previous.files if k.startswith(urls.SEARCH_PREFIX))
    if not (previous and urls.SEARCH_INDEX in previous and b.keep_if_unchanged(previous, input)):
        index, shards = index_files(records(con), b.now, input=input)
        for key, body in shards.items():
            b.site.add(json_file(key, body, Tier.LIST, input=input))
        b.site.add(json_file(urls.SEARCH_INDEX, index, Tier.SUITE, input=input))
    b.site.add(SiteFile.content(urls.SEARCH_PAGE, b.renderer.render(
        "search.html", urls.SEARCH_PAGE, suites=list(suites), json_url=urls.SEARCH_INDEX), HTML, Tier.TOP))


__all__ = ["Record", "add", "bucket_key", "buckets", "index_files", "keys", "lower", "records", "shard_form"]
