"""The whole-list feeds: each status list of a suite in one slim, columnar file.

A list longer than `urls.PAGE_SIZE` rows is published in parts (`jobs.publish.site.plan`), so
that one change rewrites little; a client that wants the whole list (`rebuildctl pkgs ls`,
issue #6) would then fetch hundreds of small feeds of fat rows (the suite repeated on every
row, a page URL, a files dict). So each status list is also published whole, at
`urls.status_all_feed`: the suite and status once, the `columns` once
(`feeds.ALL_COLUMNS`), then one array per package in the list's display order (its parts'
rows, concatenated). DuckDB writes the rows' JSON itself, straight from `members` and
`pkgh`, one query for every list to render: no row becomes a Python object. Its JSON
escapes quotes, backslashes and every control character, and its tables hold only valid
UTF-8 (it refuses anything else when `queries.connect` builds them; given it, `json_array`
would write no JSON at all), so a hostile name stays data.

Incremental like the parts: a whole list's input digest combines its parts' (bucket, page
and row digest each), which cover every row of it, so a list whose parts are all unchanged
is kept, not rendered.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

import duckdb
import pyarrow as pa

from jobs.core import urls
from jobs.core.model import Status
from jobs.publish.site import feeds
from jobs.publish.site.plan import ListPart, ListRef
from jobs.publish.site.sitewriter import JSON, Site, SiteFile, Tier, json_bytes, json_safe

# Each column of `feeds.ALL_COLUMNS` as DuckDB writes it: `p` is the package's `pkgh` row.
_SQL = {"name": "p.name", "version": "p.version", "artifact_architecture": "p.artifact_architecture",
        "artifact_url": "p.artifact_url", "source_name": "p.source_name", "source_version": "p.source_version",
        "build_id": "p.build_id", "v0_build_id": "p.v0_id",
        # feeds._ts (format_timestamp): RFC 3339, microseconds, "Z"; the connection's zone is UTC
        "built_at": "strftime(p.built_at, '%Y-%m-%dT%H:%M:%S.%fZ')",
        "reason": "p.reason", "failure_class": "p.failure_class", "worker_name": "p.worker_name",
        "has_log": "p.has_log", "has_diffoscope": "p.has_diffoscope", "has_diffoscope_html": "p.has_diffoscope_html",
        "has_attestation": "p.has_attestation"}

# The rows of the lists asked for, each list's as the text of its JSON array's elements, in
# the order of `plan.part_rows`: by part (bucket, page), then as within a part.
_ROWS = """SELECT m.distro, m.release, m.component, m.architecture, m.list,
    string_agg(CAST(json_array({columns}) AS VARCHAR), ','
               ORDER BY m.bucket, m.page, m.name, m.version, m.artifact_architecture, m.artifact_url, m.rid) AS rows
FROM members m JOIN wanted_all w ON w.distro = m.distro
    AND coalesce(w.release, chr(0)) = coalesce(m.release, chr(0))
    AND coalesce(w.component, chr(0)) = coalesce(m.component, chr(0)) AND w.architecture = m.architecture
    AND w.list = m.list
JOIN pkgh p ON p.rid = m.rid
GROUP BY ALL""".format(columns=", ".join(_SQL[c] for c in feeds.ALL_COLUMNS))

_WANTED = pa.schema([("distro", pa.string()), ("release", pa.string()), ("component", pa.string()),
                     ("architecture", pa.string()), ("list", pa.string())])


@dataclass(frozen=True, slots=True)
class WholeList:
    """One status list to publish whole: which, how many rows, and the digest of its parts' inputs."""

    ref: ListRef
    count: int
    input: str

    @property
    def status(self) -> Status:
        return Status(self.ref.name.removeprefix("status/"))

    @property
    def key(self) -> str:
        return urls.status_all_feed(self.ref.suite.path, self.status)


def whole_list(ref: ListRef, parts: list[ListPart]) -> WholeList:
    """A status list as one feed, with the digest of its parts' inputs."""
    text = "\0".join(f"{p.bucket}\0{p.page}\0{p.input}" for p in parts)
    digest = hashlib.sha256(f"all\0{ref.feed_key}\0{text}".encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return WholeList(ref, sum(p.count for p in parts), digest)


def rows_json(con: duckdb.DuckDBPyConnection, lists: list[WholeList]) -> dict[ListRef, bytes]:
    """The rows of these lists, each as the comma-joined JSON arrays of its packages (b"": none)."""
    out = {w.ref: b"" for w in lists}
    if not lists:
        return out
    by_key = {(w.ref.suite.distro, w.ref.suite.release, w.ref.suite.component, w.ref.suite.architecture,
               w.ref.name): w.ref for w in lists}
    con.register("wanted_all", pa.Table.from_pylist(
        [dict(zip(_WANTED.names, key)) for key in by_key], schema=_WANTED))
    try:
        for *key, rows in con.execute(_ROWS).fetchall():
            out[by_key[tuple(key)]] = json_safe(rows.encode())
    finally:
        con.unregister("wanted_all")
    return out


def add(site: Site, con: duckdb.DuckDBPyConnection, lists: list[WholeList], now: datetime) -> None:
    """Render these whole lists into `site` (Tier.LIST, each with its input digest)."""
    rows = rows_json(con, lists)
    for w in lists:
        head = feeds.status_all(w.ref.suite, w.status, w.count, now)
        body = rows[w.ref]
        data = _with_rows(json_bytes(head), body)
        stable = _with_rows(json_bytes({k: v for k, v in head.items() if k != "generated_at"}), body)
        site.add(SiteFile.content(w.key, data, JSON, Tier.LIST, stable=stable, input=w.input))


def _with_rows(head: bytes, rows: bytes) -> bytes:
    # `head` is a compact JSON object; "rows" goes last, so a reader meets the columns first.
    return b"".join((head[:-1], b',"rows":[', rows, b"]}"))
