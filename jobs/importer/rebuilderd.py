"""`rebuilder import-rebuilderd PATH/rebuilderd.db`: a rebuilderd database's verdicts into the store.

For an operator moving from rebuilderd: run `rebuilder sync` for the repositories the daemon
synced, then import its SQLite database (the schema of rebuilderd 0.20 to 0.25, as Debian
trixie's 0.24 writes it: `pkgbases`, `packages`, `builds`, `queue`), then `rebuilder
publish`. The site then shows the daemon's verdicts, logs, diffoscope output and attestations.

What becomes what:

- a pkgbase's built packages become one history row (`ResultRow`) of the job the synced state
  gives those packages (matched on distro, suite = our component, name, version and the
  artifact URL with percent-escapes decoded; where several jobs match, the one whose sync
  architecture equals the pkgbase's). Its status is GOOD when every artifact is GOOD, BAD
  when one is BAD, else UNKWN; each artifact keeps its own status. rebuilderd keeps only the
  latest build of each package, so that is all there is to import. The attempt is the
  pkgbase's `retries` (+1 when GOOD): the number of builds rebuilderd made;
- the build's log (zstd in 0.24, plain before) is stored gzip-encoded at
  `builds/<build id>/rebuilderd/log`, as a worker stores its own; the first artifact's
  diffoscope text and attestation become the build's, the others are kept beside them
  (`diffoscope-<n>.txt`, `attestation-<n>.json`, n = the artifact's position) and listed in
  the row's file digests (rebuilderd 0.26 and later serve the first artifact's for a build
  too). A GOOD build's attestation is also kept where publish keeps the ones it
  countersigned (`history/attestations/<build id>.json`), and published as the daemon stored
  it: it is signed by the rebuilderd worker's key, unknown here, so it is not countersigned;
- the daemon's queue becomes jobs of our queue at the same priority (a job queued already
  keeps the sooner of the two priorities).

Rows go into the history through publish's compaction (`jobs.publish.state.update.compact`), under the
publish lock, in batches: memory holds one batch and the history (as publish does), never
the database. A build id already in the history is skipped before its files are written,
so a rerun (after a kill, or of the same database) adds only what is missing. The database
is outside input: opened read-only with `trusted_schema` off, only real tables are read,
every field is checked against the model's limits, every blob against the upload limits
before it is read; a row that fails is counted and named, and the rest goes on.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import os
import re
import socket
import sqlite3
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import zstandard

from jobs.core.bounded import cap
from jobs.core.config import RebuilderConfig
from jobs.core.errors import TerminalError
from jobs.core.layout import PUBLISH_LOCK, build_prefix
from jobs.core.lease import LeaseHeld, LeaseKeeper, LeaseLost, Leases
from jobs.core.model import (
    ArtifactResult,
    FileDigest,
    JobRow,
    PackageStateRow,
    ResultRow,
    Status,
    build_id,
    field_problem,
    from_table,
)
from jobs.core.model.limits import NAME_MAX, URL_MAX, VERSION_MAX, result_problem
from jobs.core.queue import update_queue
from jobs.core.store import Store
from jobs.publish.site.facts import attestation_key as published_attestation
from jobs.publish.site.inputs import read_state
from jobs.publish.state.compact import HistoryState, read_history_state
from jobs.publish.state.update import compact

log = logging.getLogger(__name__)

TOKEN = "rebuilderd"  # the claim-token segment of imported builds' file keys
WORKER_KEY_ID = "rebuilderd"  # no worker key signed these: the row says where it came from
WORKER_NAME = "rebuilderd (imported)"
TEXT = "text/plain; charset=utf-8"
BLOB_MAX = cap("upload")  # one blob as stored in the database, and one file as we store it
LOG_MAX = cap("log_decoded")  # one log or diffoscope text decompressed
ATTESTATION_MAX = cap("attestation")
SHOWN = 20  # problems named in the summary

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


class ImportRefused(TerminalError):
    """The database cannot be imported at all (not SQLite, not rebuilderd's schema)."""


@dataclass
class ImportSummary:
    """What one import did."""

    builds: int = 0  # history rows added
    packages: int = 0  # packages those rows carry a verdict for
    present: int = 0  # builds whose row the history held already
    unbuilt: int = 0  # packages rebuilderd has no build of (UNKWN there and here)
    unmatched: int = 0  # packages no synced state row matches
    rejected: int = 0  # packages or builds refused for a field or blob out of bounds
    files: int = 0  # build files written
    queued: int = 0  # jobs queued or made sooner from the daemon's queue
    busy: str = ""  # another publish or import held the lock: nothing was done
    problems: list[str] = field(default_factory=list)

    def problem(self, text: str) -> None:
        if len(self.problems) < SHOWN:
            self.problems.append(text)

    def line(self) -> str:
        if self.busy:
            return f"import-rebuilderd: nothing done: {self.busy}"
        return (f"import-rebuilderd: {self.builds} builds imported ({self.packages} packages, {self.files} files), "
                f"{self.present} already in the history, {self.unbuilt} packages never built, "
                f"{self.unmatched} packages not in the synced state, {self.rejected} rejected; "
                f"{self.queued} jobs queued")


# --- the database ------------------------------------------------------------------------

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


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**62 else None


def _package(row: tuple) -> tuple[Package | None, str | None]:
    pid, base, name, version, status, distro, suite, architecture, url, build, built_at = row
    if _int(pid) is None or _int(base) is None:
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
    if build is not None and _int(build) is None:
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
               or (None if _int(retries) is not None and retries < 1_000_000 else "retries is not a count"))
    if problem:
        summary.rejected += len(rows)
        summary.problem(f"pkgbase {bid}: {problem}")
        return
    packages = []
    for row in rows:
        package, problem = _package(row)
        if package is None:
            summary.rejected += 1
            summary.problem(f"package {row[0]} of pkgbase {bid}: {problem}")
            continue
        packages.append(package)
    if packages:
        yield PkgBase(bid, name, version, architecture, retries, tuple(packages))


class BlobRefused(Exception):
    pass


def _blob(con: sqlite3.Connection, build: int, column: str, limit: int) -> bytes | None:
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


# --- matching the synced state ----------------------------------------------------------

class StateIndex:
    """The synced state's artifacts by (distro, component, name, version, decoded URL)."""

    def __init__(self, state: pa.Table) -> None:
        self.state = state
        self.by_key: dict[tuple, list[tuple[str, str]]] = {}
        columns = [state.column(c).to_pylist() for c in ("distro", "component", "artifact_name", "artifact_version",
                                                          "artifact_url", "job_id", "architecture")]
        for distro, component, name, version, url, job, arch in zip(*columns):
            entry = self.by_key.setdefault((distro, component, name, version, urllib.parse.unquote(url)), [])
            if (job, arch) not in entry:
                entry.append((job, arch))

    def job_of(self, p: Package) -> str | None:
        found = self.by_key.get((p.distro, p.suite, p.name, p.version, urllib.parse.unquote(p.artifact_url)), [])
        if len(found) > 1:
            found = [f for f in found if f[1] == p.architecture]
        return found[0][0] if len(found) == 1 else None

    def rows_of(self, job_ids: set[str]) -> dict[str, list[PackageStateRow]]:
        table = self.state.filter(pc.is_in(self.state.column("job_id"), value_set=pa.array(sorted(job_ids))))
        out: dict[str, list[PackageStateRow]] = {}
        for row in from_table(table, PackageStateRow, source="state"):
            out.setdefault(row.job_id, []).append(row)
        return out


# --- writing ------------------------------------------------------------------------------

def _gzip_file(store: Store, key: str, data: bytes) -> FileDigest:
    import hashlib

    body = gzip.compress(data, mtime=0)
    if len(body) > BLOB_MAX:
        raise BlobRefused(f"{key}: {len(body)} bytes gzip-encoded (more than {BLOB_MAX})")
    store.put(key, body, content_type=TEXT, content_encoding="gzip")
    return FileDigest(key=key, sha256=hashlib.sha256(body).hexdigest(), size=len(body))


def _json_file(store: Store, key: str, data: bytes) -> FileDigest:
    import hashlib

    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        raise BlobRefused(f"{key}: the attestation is not JSON") from None
    if not isinstance(doc, dict):
        raise BlobRefused(f"{key}: the attestation is not a JSON object")
    body = json.dumps(doc, sort_keys=True).encode()
    store.put(key, body, content_type="application/json")
    return FileDigest(key=key, sha256=hashlib.sha256(body).hexdigest(), size=len(body))


def _result(con: sqlite3.Connection, store: Store, base: PkgBase, job: str, packages: list[Package],
            summary: ImportSummary, history: HistoryState, state_rows: dict) -> ResultRow | None:
    """The history row of one job's built packages, its files written (None: nothing to add)."""
    built = [p for p in packages if p.build_id is not None]
    if not built:
        return None
    statuses = [p.status for p in packages]
    status = (Status.BAD if Status.BAD in statuses else
              Status.GOOD if all(s is Status.GOOD for s in statuses) else Status.UNKWN)
    attempt = max(1, base.retries + (1 if status is Status.GOOD else 0))
    bid = build_id(job, attempt)
    if history.holding([bid]):
        summary.present += 1
        return None
    first = state_rows[job][0]
    prefix = build_prefix(job, attempt, TOKEN)
    files: list[FileDigest] = []
    keys: dict[str, str | None] = {"log": None, "diffoscope": None, "attestation": None}
    try:
        log_text = _blob(con, min(p.build_id for p in built), "build_log", LOG_MAX)
        if log_text is not None:
            files.append(_gzip_file(store, f"{prefix}/log", log_text))
            keys["log"] = files[-1].key
        for index, p in enumerate(built, 1):
            for column, what, limit, write, suffix in (
                    ("diffoscope", "diffoscope", LOG_MAX, _gzip_file, "txt"),
                    ("attestation", "attestation", ATTESTATION_MAX, _json_file, "json")):
                data = _blob(con, p.build_id, column, limit)
                if data is None:
                    continue
                name = f"{what}.{suffix}" if keys[what] is None else f"{what}-{index}.{suffix}"
                files.append(write(store, f"{prefix}/{name}", data))
                if keys[what] is None and what == "attestation" and status is Status.GOOD:
                    # Published as the daemon kept it (signed by rebuilderd-worker's key, which
                    # is not known here, so publish cannot countersign it): publish's own copy.
                    store.put(published_attestation(bid), store.get(files[-1].key).data,
                              content_type="application/json")
                keys[what] = keys[what] or files[-1].key
    except BlobRefused as exc:
        summary.rejected += len(packages)
        summary.problem(f"pkgbase {base.id}: {exc}")
        return None
    summary.files += len(files)
    times = [p.built_at for p in built if p.built_at is not None]
    row = ResultRow(build_id=bid, job_id=job, attempt=attempt, distro=first.distro, architecture=first.architecture,
                    source_name=first.source_name, source_version=first.source_version, status=status, reason=None,
                    artifacts=tuple(ArtifactResult(p.name, p.status) for p in packages),
                    worker_key_id=WORKER_KEY_ID, worker_name=WORKER_NAME, started_at=min(times), built_at=max(times),
                    log_key=keys["log"], diffoscope_key=keys["diffoscope"], attestation_key=keys["attestation"],
                    files=tuple(files))
    problem = result_problem(row)
    if problem:
        summary.rejected += len(packages)
        summary.problem(f"pkgbase {base.id}: {problem}")
        return None
    summary.packages += len(packages)
    return row


def _queue(con: sqlite3.Connection, store: Store, index: StateIndex, history: HistoryState,
           summary: ImportSummary, now: datetime) -> None:
    """The daemon's queue into ours: each queued pkgbase's jobs at its priority."""
    wanted: dict[str, tuple[int, datetime]] = {}
    cursor = con.execute("SELECT q.pkgbase_id, q.priority, q.queued_at FROM queue AS q ORDER BY q.id")
    while rows := cursor.fetchmany(1000):
        for base_id, priority, queued_at in rows:
            when = parse_time(queued_at)
            if _int(base_id) is None or not isinstance(priority, int) or not -2**31 <= priority < 2**31 or when is None:
                summary.rejected += 1
                summary.problem(f"queue item of pkgbase {str(base_id)[:20]}: priority or queued_at out of bounds")
                continue
            packages = con.execute(
                "SELECT p.id, p.pkgbase_id, p.name, p.version, p.status, p.distro, p.suite, b.architecture, "
                "p.artifact_url, p.build_id, p.built_at FROM packages AS p JOIN pkgbases AS b ON b.id = p.pkgbase_id "
                "WHERE p.pkgbase_id = ? LIMIT 10000", (base_id,)).fetchall()
            for row in packages:
                package, _ = _package(row)
                job = index.job_of(package) if package is not None else None
                if job is not None:
                    old = wanted.get(job)
                    wanted[job] = (min(priority, old[0]), min(when, old[1])) if old else (priority, when)
    if not wanted:
        return
    rows = index.rows_of(set(wanted))
    attempts: dict[str, int] = {}
    if history.table.num_rows:
        table = history.table.select(["job_id", "attempt"])
        table = table.filter(pc.is_in(table.column("job_id"), value_set=pa.array(sorted(wanted))))
        for job, attempt in zip(table.column("job_id").to_pylist(), table.column("attempt").to_pylist()):
            attempts[job] = max(attempts.get(job, 0), attempt)
    changed: list[str] = []

    def change(jobs: dict[str, JobRow]) -> dict[str, JobRow]:
        changed.clear()
        out = dict(jobs)
        for job, (priority, when) in sorted(wanted.items()):
            current = out.get(job)
            if current is not None:
                # queued again after its imported build: the next attempt, not the imported one
                after = max(current.attempt, attempts.get(job, 0) + 1)
                if priority < current.priority or after != current.attempt:
                    out[job] = replace(current, priority=min(priority, current.priority), attempt=after)
                    changed.append(job)
                continue
            first = rows[job][0]
            out[job] = JobRow(job_id=job, backend=first.backend, architecture=first.architecture,
                              input_url=first.input_url, distro=first.distro,
                              releases=tuple(dict.fromkeys(r.release for r in rows[job])),
                              source_name=first.source_name, source_version=first.source_version,
                              artifacts=tuple(dict.fromkeys(r.artifact for r in rows[job])), priority=priority,
                              queued_at=min(when, now), not_before=None, attempt=attempts.get(job, 0) + 1, retries=0)
            changed.append(job)
        return out

    update_queue(store, change, meta={"job": "import-rebuilderd"})
    summary.queued = len(changed)


def import_rebuilderd(store: Store, config: RebuilderConfig, path: Path, *, batch: int = 500,
                      now: datetime | None = None, holder: str | None = None) -> ImportSummary:
    """Import the database at `path` (see the module docstring); safe to rerun, safe to kill."""
    now = now or datetime.now(timezone.utc)
    con = open_database(path)
    summary = ImportSummary()
    try:
        state = read_state(store)
        if state.num_rows == 0:
            raise ImportRefused("the store has no synced package state: run `rebuilder sync` for the "
                               "repositories the daemon synced first (verdicts are matched to its packages)")
        index = StateIndex(state)
        leases = Leases(store, ttl=config.lease.ttl, clock_skew=config.lease.clock_skew)
        holder = holder or f"import-rebuilderd@{socket.gethostname()}:{os.getpid()}"
        try:
            lease = leases.acquire(PUBLISH_LOCK, holder, meta={"job": "import-rebuilderd"})
        except LeaseHeld as exc:
            summary.busy = f"{exc.holder} holds {PUBLISH_LOCK}"
            return summary
        keeper = LeaseKeeper(leases, lease)
        try:
            with keeper:
                _import_locked(con, store, index, summary, keeper, batch, now)
        finally:
            if not keeper.lost.is_set():
                leases.release(keeper.lease)
    except sqlite3.DatabaseError as exc:
        raise ImportRefused(f"{path}: the database cannot be read ({exc})") from None
    finally:
        con.close()
    return summary


def _import_locked(con: sqlite3.Connection, store: Store, index: StateIndex, summary: ImportSummary,
                   keeper: LeaseKeeper, batch: int, now: datetime) -> None:
    history = read_history_state(store)
    pending: list[ResultRow] = []
    jobs_needed: list[tuple[PkgBase, str, list[Package]]] = []

    def flush() -> None:
        nonlocal history
        if keeper.lost.is_set():
            raise LeaseLost(keeper.lease.key, keeper.reason or "lost")
        rows_by_job = index.rows_of({job for _, job, _ in jobs_needed}) if jobs_needed else {}
        for base, job, packages in jobs_needed:
            row = _result(con, store, base, job, packages, summary, history, rows_by_job)
            if row is not None:
                pending.append(row)
        jobs_needed.clear()
        if pending:
            compacted = compact(store, pending, current=history)
            summary.builds += len(compacted.added)
            history = compacted.history
            pending.clear()

    for base in pkgbases(con, summary):
        by_job: dict[str, list[Package]] = {}
        for p in base.packages:
            if p.build_id is None:
                summary.unbuilt += 1
            job = index.job_of(p)
            if job is None:
                summary.unmatched += 1
                summary.problem(f"package {p.id} ({p.name!r} {p.version!r}, {p.suite!r}): no synced state row")
                continue
            by_job.setdefault(job, []).append(p)
        for job, packages in by_job.items():
            if any(p.build_id is not None for p in packages):
                jobs_needed.append((base, job, packages))
        if len(jobs_needed) >= batch:
            flush()
    flush()
    _queue(con, store, index, history, summary, now)
