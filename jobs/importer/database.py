"""A rebuilderd database (SQLite, the schema of rebuilderd 0.20 to 0.25), read as untrusted input.

Opened read-only with `trusted_schema` off; only real tables are read; every field is checked
against the model's limits and every blob against the upload limits before it is read. A row
that fails is counted and named in the summary, and the rest goes on.
"""

from __future__ import annotations

import io
import re
import sqlite3
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import zstandard

from jobs.core.bounded import cap
from jobs.core.model import Status, field_problem
from jobs.core.model.limits import NAME_MAX, URL_MAX, VERSION_MAX
from jobs.importer.summary import ImportRefused, ImportSummary

BLOB_MAX = cap("upload")  # one blob as stored in the database, and one file as we store it

# Tables and the columns read from each (rebuilderd 0.20 to 0.25).
TABLES = {
    "pkgbases": ("id", "name", "version", "distro", "suite", "architecture", "retries"),
    "packages": ("id", "pkgbase_id", "name", "version", "status", "distro", "suite", "architecture",
                 "artifact_url", "build_id", "built_at", "has_diffoscope", "has_attestation"),
    "builds": ("id", "build_log", "diffoscope", "attestation"),
    "queue": ("id", "pkgbase_id", "priority", "queued_at"),
}
_TIMESTAMP = re.compile(r"(\d{4}-\d\d-\d\d)[ T](\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z?")
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def open_database(path: Path) -> sqlite3.Connection:
    """The database, read-only, with its schema checked; ImportRefused naming what is wrong."""
    if not path.is_file():
        raise ImportRefused(f"{path}: no such file")
    uri = "file:" + urllib.parse.quote(str(path.absolute())) + "?mode=ro"
    try:
        con = sqlite3.connect(uri, uri=True)
        con.execute("PRAGMA trusted_schema = OFF")  # no SQL functions run from the file's own schema
        con.execute("PRAGMA query_only = ON")
        kinds = dict(con.execute("SELECT name, type FROM sqlite_master WHERE type IN ('table', 'view')"))
    except sqlite3.DatabaseError as exc:
        raise ImportRefused(f"{path}: not an SQLite database ({exc})") from None
    if "build_inputs" in kinds or "rebuilds" in kinds:
        raise ImportRefused(f"{path}: a rebuilderd 0.26 or later database (build_inputs, rebuilds); "
                           "only the schema of 0.20 to 0.25 is read")
    for table, columns in TABLES.items():
        if kinds.get(table) != "table":
            raise ImportRefused(f"{path}: not a rebuilderd database: no table {table!r}"
                               + (" (a view)" if kinds.get(table) else ""))
        have = {row[1] for row in con.execute(f"PRAGMA table_info({table})")}
        lacking = [c for c in columns if c not in have]
        if lacking:
            raise ImportRefused(f"{path}: table {table!r} lacks the columns {', '.join(lacking)}")
    return con


def parse_time(value: object) -> datetime | None:
    """A diesel `Timestamp` column (naive UTC, up to 9 fractional digits) as an aware datetime."""
    if not isinstance(value, str) or len(value) > 40:
        return None
    match = _TIMESTAMP.fullmatch(value)
    if match is None:
        return None
    try:
        at = datetime.fromisoformat(f"{match.group(1)}T{match.group(2)}")
    except ValueError:
        return None
    micros = int((match.group(3) or "0").ljust(9, "0")[:6])
    return at.replace(microsecond=micros, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Package:
    id: int
    pkgbase_id: int
    name: str
    version: str
    status: Status
    distro: str
    suite: str
    architecture: str  # the pkgbase's (rebuilderd gives every artifact the group's)
    artifact_url: str
    build_id: int | None
    built_at: datetime | None


@dataclass(frozen=True)
class PkgBase:
    id: int
    name: str
    version: str
    architecture: str
    retries: int
    packages: tuple[Package, ...]


def count_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**62 else None


def package_row(row: tuple) -> tuple[Package | None, str | None]:
    pid, base, name, version, status, distro, suite, architecture, url, build, built_at = row
    if count_or_none(pid) is None or count_or_none(base) is None:
        return None, "id is not an integer"
    checks = (field_problem("name", name, NAME_MAX), field_problem("version", version, VERSION_MAX),
              field_problem("distro", distro, NAME_MAX), field_problem("suite", suite, NAME_MAX),
              field_problem("architecture", architecture, NAME_MAX),
              field_problem("artifact_url", url, URL_MAX, ascii_only=True))
    problem = next((p for p in checks if p), None)
    if problem:
        return None, problem
    if status not in ("GOOD", "BAD", "UNKWN"):
        return None, f"status is not GOOD, BAD or UNKWN: {str(status)[:20]!r}"
    if build is not None and count_or_none(build) is None:
        return None, "build_id is not an integer"
    when = parse_time(built_at) if built_at is not None else None
    if build is not None and when is None:
        return None, f"built_at is not a timestamp: {str(built_at)[:40]!r}"
    return Package(pid, base, name, version, Status(status), distro, suite, architecture, url, build, when), None


def pkgbases(con: sqlite3.Connection, summary: ImportSummary, *, batch: int = 1000) -> Iterator[PkgBase]:
    """Every pkgbase with its packages, streamed in id order (one pkgbase in memory at a time)."""
    cursor = con.execute(
        "SELECT b.id, b.name, b.version, b.architecture, b.retries, p.id, p.pkgbase_id, p.name, p.version, p.status, "
        "p.distro, p.suite, b.architecture, p.artifact_url, p.build_id, p.built_at "
        "FROM packages AS p JOIN pkgbases AS b ON b.id = p.pkgbase_id ORDER BY p.pkgbase_id, p.id")
    current: list = []
    head: tuple | None = None
    while rows := cursor.fetchmany(batch):
        for row in rows:
            if head is not None and row[0] != head[0]:
                yield from _base(head, current, summary)
                current = []
            head = row[:5]
            current.append(row[5:])
    if head is not None:
        yield from _base(head, current, summary)


def _base(head: tuple, rows: list, summary: ImportSummary) -> Iterator[PkgBase]:
    bid, name, version, architecture, retries = head
    problem = (field_problem("pkgbase name", name, NAME_MAX) or field_problem("pkgbase version", version, VERSION_MAX)
               or field_problem("pkgbase architecture", architecture, NAME_MAX)
               or (None if count_or_none(retries) is not None and retries < 1_000_000 else "retries is not a count"))
    if problem:
        summary.rejected += len(rows)
        summary.problem(f"pkgbase {bid}: {problem}")
        return
    packages = []
    for row in rows:
        package, problem = package_row(row)
        if package is None:
            summary.rejected += 1
            summary.problem(f"package {row[0]} of pkgbase {bid}: {problem}")
            continue
        packages.append(package)
    if packages:
        yield PkgBase(bid, name, version, architecture, retries, tuple(packages))


class BlobRefused(Exception):
    pass


def blob(con: sqlite3.Connection, build: int, column: str, limit: int) -> bytes | None:
    """One blob of a build, decompressed (zstd as 0.24 stores it, or as it is), at most `limit` bytes."""
    (size,) = con.execute(f"SELECT length({column}) FROM builds WHERE id = ?", (build,)).fetchone() or (None,)
    if size is None:
        return None
    if size > BLOB_MAX:
        raise BlobRefused(f"build {build}: {column} is {size} bytes stored (more than {BLOB_MAX})")
    (data,) = con.execute(f"SELECT {column} FROM builds WHERE id = ?", (build,)).fetchone()
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    if not isinstance(data, bytes):
        raise BlobRefused(f"build {build}: {column} is not a blob")
    if data.startswith(_ZSTD_MAGIC):
        try:
            chunks, size = [], 0
            with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)) as reader:
                while size <= limit and (chunk := reader.read(1 << 20)):  # read(n) would allocate n bytes
                    chunks.append(chunk)
                    size += len(chunk)
            data = b"".join(chunks)
        except zstandard.ZstdError as exc:
            raise BlobRefused(f"build {build}: {column} is not valid zstd ({exc})") from None
    if len(data) > limit:
        raise BlobRefused(f"build {build}: {column} is more than {limit} bytes")
    return data
