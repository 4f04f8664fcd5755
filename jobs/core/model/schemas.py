"""Arrow/Parquet schemas of the three tables, each with a name and a version.

Each table is declared once, as a tuple of `Column`s; the Arrow schema, the checks on
read and the data-model tables of docs/design.md (`schema_markdown`) are all derived from that
one declaration, so the documentation cannot drift from the files.

The schema tag ("package_state/1") is stored in every Parquet file's key-value metadata
under `rebuilder.schema`. A reader refuses a file whose tag it does not know instead of
guessing, because a newer writer may have changed what a column means. Adding a
nullable column at the end keeps the version; anything else bumps it.

Column order is the order in these declarations (and in the record dataclasses).
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from jobs.core.errors import TerminalError
from jobs.core.model.records import JobRow, PackageStateRow, ResultRow

METADATA_KEY = b"rebuilder.schema"

# Microseconds: what Python datetimes hold and what DuckDB's TIMESTAMPTZ stores.
TIMESTAMP = pa.timestamp("us", tz="UTC")


class SchemaError(TerminalError):
    """A table or Parquet file does not match a schema this version knows (unknown tag, missing column, bad value)."""

    def __init__(self, message: str, *, schema: str | None = None, expected: str | None = None,
                 column: str | None = None, source: str | None = None) -> None:
        super().__init__(message, schema=schema, expected=expected, column=column, source=source)
        self.schema, self.expected, self.column, self.source = schema, expected, column, source


@dataclass(frozen=True)
class Column:
    """One column: name, Arrow type, whether null is allowed, and what it means (for the docs)."""

    name: str
    type: pa.DataType | None  # None for a list of structs, whose element is given by `fields`
    meaning: str
    nullable: bool = False
    fields: tuple[Column, ...] = ()
    added: bool = False  # a nullable column added at the end: files written before it read as null

    @property
    def arrow_type(self) -> pa.DataType:
        """The Arrow type; a list of non-null structs when the column has `fields`."""
        if not self.fields:
            assert self.type is not None
            return self.type
        element = pa.struct([f.arrow_field() for f in self.fields])
        # "element" is the Parquet spec's list-child name, so a read-back schema is identical.
        return pa.list_(pa.field("element", element, nullable=False))

    def arrow_field(self) -> pa.Field:
        """The Arrow field (non-nullable columns become REQUIRED in Parquet)."""
        return pa.field(self.name, self.arrow_type, nullable=self.nullable)


@dataclass(frozen=True)
class TableSchema:
    """A named, versioned table layout and the record type of its rows."""

    name: str
    version: int
    record: type
    description: str
    columns: tuple[Column, ...]

    @property
    def tag(self) -> str:
        """The value stored under `rebuilder.schema`, e.g. "package_state/1"."""
        return f"{self.name}/{self.version}"

    @property
    def arrow(self) -> pa.Schema:
        """The Arrow schema, carrying the tag in its metadata."""
        return pa.schema([c.arrow_field() for c in self.columns], metadata={METADATA_KEY: self.tag.encode()})


def _s(name: str, meaning: str, nullable: bool = False) -> Column:
    return Column(name, pa.string(), meaning, nullable)


_ARTIFACT_FIELDS = (
    _s("name", "binary package name"),
    _s("version", "binary package version"),
    _s("architecture", "architecture in the index (may be `any` / `all`)"),
    _s("url", "download URL of the distro's artifact"),
    _s("sha256", "hex SHA-256 from the index", nullable=True),
    Column("size", pa.int64(), "size in bytes from the index", nullable=True),
    _s("filename", "file name the backend writes to `REBUILDERD_OUTDIR`", nullable=True),
    _s("component", "Arch repository / Debian component", nullable=True),
)

PACKAGE_STATE = TableSchema(
    name="package_state", version=1, record=PackageStateRow,
    description="One row per binary artifact in one sync snapshot "
                "(`state/<profile>/<sync-id>.parquet`).",
    columns=(
        _s("distro", "distribution, as in the sync profile (`archlinux`, `debian`)"),
        _s("release", "release / suite (`sid`, `trixie`); null where rebuilderd has none (Arch, Fedora)",
           nullable=True),
        _s("architecture", "architecture the index was synced for; the build input's architecture"),
        _s("component", "Arch repository or Debian component (rebuilderd v0 `suite`)", nullable=True),
        _s("source_name", "source package: Arch pkgbase, Debian source, Fedora SRPM"),
        _s("source_version", "source version (Debian: with the binNMU suffix of its binaries)"),
        _s("artifact_name", "binary package name"),
        _s("artifact_version", "binary package version"),
        _s("artifact_architecture", "binary package architecture (may be `any` / `all`)"),
        _s("artifact_url", "download URL of the distro's artifact"),
        _s("artifact_sha256", "hex SHA-256 from the index", nullable=True),
        Column("artifact_size", pa.int64(), "size in bytes from the index", nullable=True),
        _s("artifact_filename", "file name the backend writes to `REBUILDERD_OUTDIR`", nullable=True),
        _s("backend", "backend that rebuilds it (rebuilderd: the distro name)"),
        _s("input_url", "build input URL (Arch: first package of the pkgbase; Debian: `.buildinfo`)"),
        _s("job_id", "`job_id(backend, architecture, input_url)`: joins to `job` and `history`"),
        Column("maintainers", pa.list_(pa.field("element", pa.string(), nullable=False)),
               "Arch packager / Debian uploaders, matched by profile filters"),
        _s("sync_id", "id of the sync run that wrote this snapshot"),
        Column("seen_at", TIMESTAMP, "when that sync read the index"),
        Column("description", pa.string(), "one-line description (Arch `%DESC%`, Debian `Description` synopsis), "
               "cut to the `description` limit; null in snapshots written before it", nullable=True, added=True),
    ),
)

JOB = TableSchema(
    name="job", version=1, record=JobRow,
    description="One row per queued build input (`queue/<id>.parquet`); friends share one row.",
    columns=(
        _s("job_id", "`job_id(backend, architecture, input_url)`"),
        _s("backend", "backend that rebuilds it"),
        _s("architecture", "build architecture"),
        _s("input_url", "build input URL given to the backend"),
        _s("distro", "distribution"),
        Column("releases", pa.list_(pa.field("element", pa.string(), nullable=True)),
               "every release the input was seen in (element null = no release, e.g. Arch)"),
        _s("source_name", "source package name (pkgbase)"),
        _s("source_version", "source version"),
        Column("artifacts", None, "expected artifacts", fields=_ARTIFACT_FIELDS),
        Column("priority", pa.int32(), "0 manual, 1 new, 2 retry, or custom; lower runs sooner"),
        Column("queued_at", TIMESTAMP, "when the job was (re)queued"),
        Column("not_before", TIMESTAMP, "not claimable before this (rebuilderd `next_retry`); null = now",
               nullable=True),
        Column("attempt", pa.int32(), "attempt number the next build gets (from 1)"),
        Column("retries", pa.int32(), "non-GOOD results so far"),
    ),
)

HISTORY = TableSchema(
    name="history", version=2, record=ResultRow,
    description="One row per build attempt (`history/part-<name>.parquet`, compacted from the workers' signed results).",
    columns=(
        _s("build_id", "`<job_id>-<attempt>`; `builds/<build_id>/<claim-token>/` holds log, diffoscope, attestation"),
        _s("job_id", "the job built"),
        Column("attempt", pa.int32(), "attempt number (from 1)"),
        _s("distro", "distribution"),
        _s("architecture", "build architecture"),
        _s("source_name", "source package name (pkgbase)"),
        _s("source_version", "source version"),
        _s("status", "`GOOD`, `BAD`, `FAIL` or `UNKWN`"),
        _s("reason", "why it is not GOOD, in words", nullable=True),
        Column("artifacts", None, "per-artifact outcome (empty for FAIL)", fields=(
            _s("name", "binary package name"),
            _s("status", "`GOOD`, `BAD` or `UNKWN`"),
            _s("sha256", "hex SHA-256 of the rebuilt file", nullable=True),
        )),
        _s("worker_key_id", "id of the worker key that signed the result"),
        _s("worker_name", "worker's self-chosen name", nullable=True),
        Column("started_at", TIMESTAMP, "when the build started"),
        Column("built_at", TIMESTAMP, "when the build finished"),
        _s("log_key", "object key of the build log", nullable=True),
        _s("diffoscope_key", "object key of the diffoscope output", nullable=True),
        _s("attestation_key", "object key of the in-toto attestation", nullable=True),
        Column("files", None, "every uploaded file of the build, as the worker signed it", fields=(
            _s("key", "object key under the claim's `builds/` prefix"),
            _s("sha256", "hex SHA-256 of the stored (encoded) bytes"),
            Column("size", pa.int64(), "size of the stored bytes"),
        )),
    ),
)

# Current schema per table, in documentation order.
SCHEMAS: dict[str, TableSchema] = {s.name: s for s in (PACKAGE_STATE, JOB, HISTORY)}
# Every (name, version) this code can read; older versions would map to an upgrader here.
KNOWN: dict[str, TableSchema] = {s.tag: s for s in SCHEMAS.values()}
_BY_RECORD: dict[type, TableSchema] = {s.record: s for s in SCHEMAS.values()}


def schema_for(record_type: type) -> TableSchema:
    """The current table schema whose rows are `record_type`."""
    try:
        return _BY_RECORD[record_type]
    except KeyError:
        raise TypeError(f"no table holds {record_type!r} rows") from None


def schema_for_tag(tag: str, *, source: str | None = None) -> TableSchema:
    """The schema a stored tag names; SchemaError if this version does not know it."""
    try:
        return KNOWN[tag]
    except KeyError:
        known = ", ".join(sorted(KNOWN))
        raise SchemaError(f"unknown table schema {tag!r}: written by a newer or foreign writer?",
                          schema=tag, expected=known, source=source) from None


def _type_text(column: Column) -> str:
    t = column.arrow_type
    if column.fields:
        text = "list<struct>"
    elif pa.types.is_timestamp(t):
        text = f"timestamp[{t.unit}, {t.tz}]"
    elif pa.types.is_list(t):
        text = f"list<{t.value_type}>"
    else:
        text = str(t)
    return f"`{text}` or null" if column.nullable else f"`{text}`"


def _rows(columns: tuple[Column, ...], prefix: str = "") -> list[str]:
    lines = []
    for c in columns:
        lines.append(f"| `{prefix}{c.name}` | {_type_text(c)} | {c.meaning} |")
        lines.extend(_rows(c.fields, prefix=f"{prefix}{c.name}[].") if c.fields else [])
    return lines


def schema_markdown(heading_level: int = 3) -> str:
    """All table schemas as markdown (one column | type | meaning table each) for docs/design.md."""
    hashes = "#" * heading_level
    parts = []
    for s in SCHEMAS.values():
        parts += [f"{hashes} `{s.name}` (schema `{s.tag}`)", "", s.description, "",
                  "| column | type | meaning |", "|---|---|---|", *_rows(s.columns), ""]
    return "\n".join(parts)
