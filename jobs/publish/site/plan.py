"""What each file of the site is made of, as digests DuckDB computes: the incremental plan.

A package page (and its feed) is made of the current packages with that binary or source
name and of every build linked to the name; a part of a suite's list is made of its rows.
`page_inputs` and `list_parts` return one digest per such file, computed over the rows
that file shows (a hash of each row, combined), without turning a single row into a
Python object. The site builder renders only the files whose
digest differs from the one the manifest kept, then fetches just their rows
(`stream_pages`, `part_rows`).

Lists are cut into parts by name prefix, not by position, so that one package changing
status rewrites the parts it left and joined, not every page after it: a list of at most
`PAGE_SIZE` rows is one part; a longer one is cut by the first character of the name (its
lowercase letter or digit, "_" for anything else), and a prefix with more than
`PAGE_SIZE` rows by one more character, down to `MAX_DEPTH`; only rows sharing a prefix
that long are paged by position within it.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta, timezone
from typing import Any

import duckdb
import pyarrow as pa

from jobs.core import urls
from jobs.core.model import Status
from jobs.publish.site import queries
from jobs.publish.site.classify import FailureClass
from jobs.publish.site.inputs import Inputs
from jobs.publish.site.queries import _BUILDS, _PACKAGE_COLUMNS, _dicts
from jobs.publish.site.rows import BuildLinks, BuildRow, PackagePage, PackageRow, SiteData, SuiteKey

MAX_DEPTH = 6

# A row's digest is DuckDB's 64-bit hash of the whole row; a file's digest combines its
# rows' as a multiset (count, sum and xor of the hashes), since the rows' order on the page
# follows from their content. Hashing strings of a million history rows took seconds.
_SETUP = """
CREATE TEMP TABLE pkgh AS SELECT row_number() OVER () AS rid, p.*, hash(p) AS h FROM pkgs p;

CREATE TEMP TABLE histh AS SELECT distro, source_name, job_id, build_id, hash(h) AS h FROM hist h;
"""

_DIGEST = ("CAST(count(*) AS VARCHAR) || ':' || CAST(sum(CAST({h} AS HUGEINT)) AS VARCHAR) || ':' "
           "|| CAST(bit_xor({h}) AS VARCHAR)")

# A build's links to names, deduplicated by its hash (distinct builds are distinct rows)
# rather than by its build id: the hash is a number, and no join back to it is needed.
_PAGE_INPUTS = """WITH links AS (
    SELECT distro, source_name AS name, h FROM histh
    UNION SELECT hh.distro, a.name, hh.h FROM histh hh JOIN art a USING (build_id)
    UNION SELECT hh.distro, c.name, hh.h FROM histh hh JOIN (SELECT DISTINCT job_id, name FROM cur) c USING (job_id)),
parts AS (
    SELECT distro, name, h FROM pkgh
    UNION ALL SELECT distro, source_name, h FROM pkgh WHERE source_name <> name
    UNION ALL SELECT distro, name, h FROM links)
SELECT n.distro, n.name, {digest} AS input
FROM names n JOIN parts p USING (distro, name) GROUP BY ALL ORDER BY n.distro, n.name""".format(
    digest=_DIGEST.format(h="p.h"))


def _members_sql(page_size: int) -> str:
    suite = "distro, release, component, architecture"
    # Prefix counts from the counts per six-character prefix (a window over the groups,
    # not six over every row).
    counts = ",\n".join(f"sum(n) OVER (PARTITION BY {suite}, list, left(p, {k})) AS c{k}"
                        for k in range(1, MAX_DEPTH + 1))
    cases = " ".join(f"WHEN c{k} <= {page_size} THEN left(p, {k})" for k in range(1, MAX_DEPTH + 1))
    return f"""
CREATE TEMP TABLE members AS
WITH m AS (
    SELECT rid, {suite}, 'status/' || status AS list, name, version, artifact_architecture, artifact_url, h
    FROM pkgh
    UNION ALL SELECT rid, {suite}, 'names', name, version, artifact_architecture, artifact_url, h FROM pkgh
    UNION ALL SELECT rid, {suite}, 'class/' || failure_class, name, version, artifact_architecture, artifact_url, h
    FROM pkgh WHERE failure_class IS NOT NULL),
n AS (SELECT *, left(regexp_replace(lower(name), '[^a-z0-9]', '_', 'g'), {MAX_DEPTH}) AS p FROM m),
g AS (SELECT {suite}, list, p, count(*) AS n FROM n GROUP BY ALL),
c AS (SELECT {suite}, list, p, sum(n) OVER (PARTITION BY {suite}, list) AS total,
{counts}
      FROM g),
k AS (SELECT {suite}, list, p, CASE WHEN total <= {page_size} THEN '' {cases} ELSE p END AS bucket FROM c),
b AS (SELECT n.rid, n.distro, n.release, n.component, n.architecture, n.list, n.name, n.version,
             n.artifact_architecture, n.artifact_url, n.h, k.bucket
      FROM n JOIN k ON n.distro = k.distro AND n.release IS NOT DISTINCT FROM k.release
          AND n.component IS NOT DISTINCT FROM k.component AND n.architecture = k.architecture
          AND n.list = k.list AND n.p = k.p)
SELECT *, CAST((row_number() OVER (PARTITION BY {suite}, list, bucket
                                   ORDER BY name, version, artifact_architecture, artifact_url, rid) - 1)
               // {page_size} AS INTEGER) + 1 AS page
FROM b"""


_PARTS = f"""SELECT distro, release, component, architecture, list, bucket, page, count(*) AS n,
    {_DIGEST.format(h="h")} AS input
FROM members GROUP BY ALL ORDER BY distro, release NULLS FIRST, component NULLS FIRST, architecture, list, bucket, page"""


@dataclass(frozen=True, slots=True)
class ListRef:
    """One list of a suite: "status/<STATUS>", "names" or "class/<slug>"."""

    suite: SuiteKey
    name: str
    # Derived once: a list's keys are asked for by each of its parts' pages.
    base: str = field(init=False, compare=False, repr=False)  # its key without ".html" (whole or index page)
    what: str = field(init=False, compare=False, repr=False)  # its feed name under the suite's feeds

    def __post_init__(self) -> None:
        kind, _, value = self.name.partition("/")
        path = self.suite.path
        if kind == "status":
            base = urls.status_base(path, Status(value))
        elif kind == "class":
            base = urls.class_base(path, value)
        else:
            base = urls.names_base(path)
        object.__setattr__(self, "base", base)
        object.__setattr__(self, "what", base.removeprefix(f"suites/{path}/"))

    @property
    def page_key(self) -> str:
        return f"{self.base}.html"

    @property
    def feed_key(self) -> str:
        return urls.suite_feed(self.suite.path, self.what)


@dataclass(frozen=True, slots=True)
class ListPart:
    """One part of a list: the rows whose names share `bucket` as prefix ("" = the whole list)."""

    ref: ListRef
    bucket: str
    page: int
    count: int
    input: str  # digest of its rows, in display order
    page_key: str = field(init=False, compare=False, repr=False)
    feed_key: str = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.split:
            page_key = f"{self.ref.base}/{self.stem}.html"
            feed_key = urls.suite_feed(self.ref.suite.path, f"{self.ref.what}/{self.stem}")
        else:
            page_key, feed_key = self.ref.page_key, self.ref.feed_key
        object.__setattr__(self, "page_key", page_key)
        object.__setattr__(self, "feed_key", feed_key)

    @property
    def split(self) -> bool:
        return self.bucket != ""

    @property
    def label(self) -> str:
        if not self.split:
            return "all"
        return self.bucket if self.page == 1 else f"{self.bucket} ({self.page})"

    @property
    def stem(self) -> str:
        return self.bucket if self.page == 1 else f"{self.bucket}-{self.page}"


def setup(con: duckdb.DuckDBPyConnection, page_size: int | None = None) -> None:
    """Add the digest tables to a connection made by `queries.connect`."""
    con.execute(_SETUP)
    con.execute(_members_sql(page_size or urls.PAGE_SIZE))


def page_inputs(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """(distro, name, input) of every package page."""
    return con.sql(_PAGE_INPUTS).to_arrow_table()


def list_parts(con: duckdb.DuckDBPyConnection, suites: list[SuiteKey]) -> dict[ListRef, list[ListPart]]:
    """Every list of every suite with its parts in display order; every status list exists, even empty."""
    lists: dict[ListRef, list[ListPart]] = {}
    for suite in suites:
        for status in (Status.GOOD, Status.BAD, Status.FAIL, Status.UNKWN):
            ref = ListRef(suite, f"status/{status.value}")
            lists[ref] = [ListPart(ref, "", 1, 0, hashlib.md5(b"").hexdigest())]
    filled: dict[ListRef, list[ListPart]] = defaultdict(list)
    refs: dict[tuple[str, str | None, str | None, str, str], ListRef] = {}
    for d in _dicts(con, _PARTS):
        at = (d["distro"], d["release"], d["component"], d["architecture"], d["list"])
        ref = refs.get(at) or refs.setdefault(at, ListRef(SuiteKey(*at[:4]), at[4]))
        filled[ref].append(ListPart(ref, d["bucket"], int(d["page"]), int(d["n"]), d["input"]))
    lists.update(filled)
    return lists


# The pages asked for, each with its current packages and every build linked to its name,
# as one row per page with two lists (a GROUP BY per table, not a row per build in Python).
_PAGE_PACKAGES = """SELECT w.distro AS page_distro, w.name AS page_name, p.* FROM wanted_pages w
    JOIN pkgh p ON p.distro = w.distro AND p.name = w.name
UNION SELECT w.distro, w.name, p.* FROM wanted_pages w JOIN pkgh p ON p.distro = w.distro AND p.source_name = w.name"""
_PAGE_BUILDS = _BUILDS.format(names="wanted_pages").rsplit("ORDER BY", 1)[0]
_PACKAGE_FIELDS = [c.strip() for c in _PACKAGE_COLUMNS.split(",")]
_BUILD_FIELDS = ["build_id", "job_id", "attempt", "distro", "architecture", "source_name", "source_version", "status",
                 "reason", "failure_class", "artifacts", "worker_name", "worker_key_id", "started_at", "built_at",
                 "v0_id", "has_log", "has_diffoscope", "has_diffoscope_html", "has_attestation"]
_STREAM = f"""WITH pk AS ({_PAGE_PACKAGES}),
pkl AS (SELECT page_distro, page_name,
               list(struct_pack({", ".join(f"{c} := {c}" for c in _PACKAGE_FIELDS)})
                    ORDER BY release NULLS FIRST, component NULLS FIRST, architecture, name, version,
                             artifact_architecture, artifact_url, rid) AS packages
        FROM pk GROUP BY page_distro, page_name),
bl AS (SELECT page_distro, page_name,
              list(struct_pack({", ".join(f"{c} := {c}" for c in _BUILD_FIELDS)})
                   ORDER BY built_at DESC, attempt DESC, build_id) AS builds
       FROM ({_PAGE_BUILDS}) GROUP BY page_distro, page_name)
SELECT pkl.page_distro AS distro, pkl.page_name AS name, pkl.packages, bl.builds
FROM pkl LEFT JOIN bl USING (page_distro, page_name) ORDER BY distro, name"""

PAGE_BATCH = 1024  # pages converted to Python objects at a time: the memory of a full publish's pages
PAGE_CHUNK = 16 * PAGE_BATCH  # pages gathered by one query: DuckDB's memory for the pages' lists


_STATUS = {s.value: s for s in Status}
_CLASS = {c.value: c for c in FailureClass}


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _pylist(column: pa.Array) -> list:
    """A column's values as Python objects, the costly types the cheap way.

    A timestamp with a zone: from its microseconds since the epoch, in UTC (`timezone.utc`; Arrow's own
    conversion, through the zone's `fromutc`, took six times as long: two per build). A list of
    (name, status) structs (a build's artifacts): tuples of (name, `Status`), as `BuildRow` keeps them,
    without a dict per artifact.
    """
    kind = column.type
    if pa.types.is_timestamp(kind) and kind.tz is not None and kind.unit == "us" \
            and kind.tz in ("UTC", "+00:00", "Etc/UTC"):
        epoch, micros = _EPOCH, timedelta
        return [None if us is None else epoch + micros(microseconds=us)
                for us in column.cast(pa.int64()).to_pylist()]
    if (pa.types.is_list(kind) and pa.types.is_struct(kind.value_type) and not column.null_count
            and [f.name for f in kind.value_type] == ["name", "status"]):
        offsets = column.offsets.to_pylist()
        base = offsets[0]
        values = column.values.slice(base, offsets[-1] - base)
        status = _STATUS
        pairs = [(name, status[value]) for name, value in zip(values.field("name").to_pylist(),
                                                               values.field("status").to_pylist())]
        return [tuple(pairs[a - base:b - base]) for a, b in zip(offsets, offsets[1:])]
    return column.to_pylist()


def _columns(lists: pa.Array, fields: list[str]) -> tuple[list[tuple[int, int]], list[tuple]]:
    """A list<struct> column as each row's (start, end) in the values (a null list: an empty range), and
    the values as tuples in `fields` order (`_pylist` of each)."""
    offsets = lists.offsets.to_pylist()  # into `lists.values`, which ignores the array's own offset
    base = offsets[0]
    values = lists.values.slice(base, offsets[-1] - base)
    nulls = lists.is_null().to_pylist() if lists.null_count else [False] * len(lists)
    ranges = [(0, 0) if null else (a - base, b - base) for a, b, null in zip(offsets, offsets[1:], nulls)]
    return ranges, list(zip(*(_pylist(values.field(f)) for f in fields)))


def _packages(values: list[tuple]) -> list[PackageRow]:
    return [_PackageRow(SuiteKey(distro, release, component, architecture), name, version, art_arch, art_url, src,
                        src_version, job_id, _STATUS[status], build_id, built_at, reason,
                        _CLASS[fc] if fc else None, worker, _BuildLinks(v0, bool(log), bool(diff), bool(html),
                                                                        bool(att)),
                        sha, tuple(maintainers or ()), description)
            for (distro, release, component, architecture, name, version, art_arch, art_url, src, src_version,
                 job_id, status, build_id, built_at, reason, fc, worker, v0, log, diff, html, att, sha, maintainers,
                 description) in values]


def _maker(cls: type) -> Any:
    """A function making a frozen, slotted dataclass's instance from all its fields by position: what calling
    the class does, without the frozen `__init__`'s `object.__setattr__` per field (a BuildRow took 5 µs,
    and a full publish makes one per build of every page)."""
    names = [f.name for f in fields(cls)]
    assert cls.__dataclass_params__.frozen and hasattr(cls, "__slots__") and not hasattr(cls, "__post_init__")
    env: dict[str, Any] = {"_new": object.__new__, "_cls": cls,
                           **{f"_set_{n}": getattr(cls, n).__set__ for n in names}}
    body = "".join(f"    _set_{n}(row, {n})\n" for n in names)
    exec(f"def make({', '.join(names)}):\n    row = _new(_cls)\n{body}    return row\n", env)  # noqa: S102
    return env["make"]


_BuildRow, _BuildLinks, _PackageRow = _maker(BuildRow), _maker(BuildLinks), _maker(PackageRow)


def _artifacts(value: Any) -> tuple[tuple[str, Status], ...]:
    """A build's artifacts as `_pylist` made them (tuples), or as dicts (a column it did not convert)."""
    if isinstance(value, tuple):
        return value
    return tuple((a["name"], _STATUS[a["status"]]) for a in value)


def _builds(values: list[tuple]) -> list[BuildRow]:
    return [_BuildRow(build_id, job_id, attempt, distro, architecture, src, src_version, _STATUS[status], reason,
                      _CLASS[fc] if fc else None, _artifacts(artifacts),
                      worker, worker_key, started_at, built_at, _BuildLinks(v0, bool(log), bool(diff), bool(html),
                                                                            bool(att)))
            for (build_id, job_id, attempt, distro, architecture, src, src_version, status, reason, fc, artifacts,
                 worker, worker_key, started_at, built_at, v0, log, diff, html, att) in values]


def stream_pages(con: duckdb.DuckDBPyConnection, wanted: list[tuple[str, str]], batch: int = PAGE_BATCH,
                 chunk: int = PAGE_CHUNK) -> Iterator[PackagePage]:
    """The package pages of these (distro, name) pairs, in (distro, name) order, made a batch at a time.

    One query per `chunk` pages gathers each page's packages and builds as lists (DuckDB holds
    one chunk's lists, sorted, not every page's); its Arrow record batches are turned into rows
    `batch` pages at a time, so a full publish holds one batch of pages as Python objects
    (`tests/publish/page_oracle.py` makes the same pages the slow way, a dict per row, for the
    tests to compare).
    """
    wanted = sorted(wanted)
    for start in range(0, len(wanted), chunk):
        yield from _stream_chunk(con, wanted[start:start + chunk], batch)


def _stream_chunk(con: duckdb.DuckDBPyConnection, wanted: list[tuple[str, str]], batch: int
                  ) -> Iterator[PackagePage]:
    con.register("wanted_pages", pa.table({"distro": [d for d, _ in wanted], "name": [n for _, n in wanted]}))
    try:
        reader = con.sql(_STREAM).to_arrow_reader(batch)
        try:
            for record_batch in reader:
                # Column by column: a dict per package and build cost more than the page it is on.
                distros = record_batch.column("distro").to_pylist()
                names = record_batch.column("name").to_pylist()
                pk_at, pk = _columns(record_batch.column("packages"), _PACKAGE_FIELDS)
                b_at, bs = _columns(record_batch.column("builds"), _BUILD_FIELDS)
                packages, builds = _packages(pk), _builds(bs)
                for distro, name, (p0, p1), (b0, b1) in zip(distros, names, pk_at, b_at):
                    yield PackagePage(distro, name, tuple(packages[p0:p1]), tuple(builds[b0:b1]))
        finally:
            reader.close()
    finally:
        con.unregister("wanted_pages")


def package_rows(con: duckdb.DuckDBPyConnection, sql: str, extra: tuple[str, ...] = ()
                 ) -> tuple[list[list], list[PackageRow]]:
    """The rows of a query selecting `_PACKAGE_COLUMNS` (and the `extra` columns), read column by column
    from Arrow rather than as a dict per row: (each extra column's values, the package rows)."""
    table = con.sql(sql).to_arrow_table()
    return ([table.column(c).to_pylist() for c in extra],
            _packages(list(zip(*(table.column(f).to_pylist() for f in _PACKAGE_FIELDS)))))


def part_rows(con: duckdb.DuckDBPyConnection, parts: list[ListPart]) -> dict[ListPart, list[PackageRow]]:
    """The rows of these list parts, in display order."""
    out: dict[ListPart, list[PackageRow]] = {p: [] for p in parts}
    if not parts:
        return out
    index = {(p.ref.suite, p.ref.name, p.bucket, p.page): p for p in parts}
    con.register("wanted_parts", pa.Table.from_pylist(
        [{"distro": p.ref.suite.distro, "release": p.ref.suite.release, "component": p.ref.suite.component,
          "architecture": p.ref.suite.architecture, "list": p.ref.name, "bucket": p.bucket, "page": p.page}
         for p in parts],
        schema=pa.schema([("distro", pa.string()), ("release", pa.string()), ("component", pa.string()),
                          ("architecture", pa.string()), ("list", pa.string()), ("bucket", pa.string()),
                          ("page", pa.int32())])))
    try:
        sql = f"""SELECT m.list AS _list, m.bucket AS _bucket, m.page AS _page, {_PACKAGE_COLUMNS}
            FROM members m JOIN wanted_parts w ON w.distro = m.distro
                AND coalesce(w.release, chr(0)) = coalesce(m.release, chr(0))
                AND coalesce(w.component, chr(0)) = coalesce(m.component, chr(0)) AND w.architecture = m.architecture
                AND w.list = m.list AND w.bucket = m.bucket AND w.page = m.page
            JOIN pkgh p ON p.rid = m.rid
            ORDER BY m.list, m.bucket, m.page, name, version, artifact_architecture, artifact_url, m.rid"""
        sql = sql.replace(f"{_PACKAGE_COLUMNS}", ", ".join(f"p.{c.strip()}" for c in _PACKAGE_COLUMNS.split(",")))
        (lists, buckets, pages), rows = package_rows(con, sql, ("_list", "_bucket", "_page"))
        for row, lst, bucket, page in zip(rows, lists, buckets, pages):
            out[index[(row.suite, lst, bucket, page)]].append(row)
    finally:
        con.unregister("wanted_parts")
    return out


def query_site(inputs: Inputs, *, now: datetime, countersigned: set[str] = frozenset(),
               trust: dict[str, str] | None = None) -> SiteData:
    """Run every query of the site over the inputs; `trust` maps worker key ids to "authorized"/"enrolled".

    Package pages are made as publish makes them (`stream_pages`), for every name (for tests).
    """
    con = queries.connect(inputs, set(countersigned), trust)
    try:
        setup(con)
        rows = queries.packages(con)
        names = con.sql("SELECT distro, name FROM names ORDER BY distro, name").fetchall()
        return SiteData(packages=rows, suites=queries.suites(con), pages=list(stream_pages(con, names)),
                        active=queries.active_builds(con, now), daily=queries.daily_counts(con, now),
                        regressions=queries.regressions(con), build_files=queries.build_files(con), queue_length=inputs.queue.num_rows,
                        workers={r["key_id"]: r["worker_id"] for r in inputs.workers.to_pylist()},
                        queue=queries.queue_entries(con), worker_rows=queries.worker_rows(con))
    finally:
        con.close()
