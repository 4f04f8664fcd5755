"""The normalised record every distro parser returns (rebuilderd's SourcePackageReport).

A parser turns one distro's index into `BinaryEntry` rows, hands them to
`jobs.sync.filters.select`, and groups the survivors into `BuildInput`s: one per
pkgbase (Arch) or source package (Debian), each with the artifacts it must reproduce.
Everything after that (snapshot, queue) is distro-agnostic.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from typing import NamedTuple

import pyarrow as pa

from jobs.core.model import PACKAGE_STATE, Artifact, PackageStateRow, SchemaError, entry_problem, job_id
from jobs.sync.fetch import Validator


class BinaryEntry(NamedTuple):  # a tuple: made 15,000 to 70,000 times a sync, 3x faster than a frozen dataclass
    """One binary package as an index lists it, before filtering and grouping."""

    name: str
    version: str
    architecture: str  # as listed: x86_64, any, amd64, all
    source_name: str  # Arch %BASE%, Debian Source: (or the package name)
    source_version: str  # Debian: with the binNMU suffix; Arch: the package version
    url: str
    filename: str
    sha256: str | None
    size: int | None
    component: str | None  # Arch repo, Debian component
    maintainers: tuple[str, ...] = ()
    description: str | None = None  # one line, already cleaned (jobs.core.model.limits.clean_description)

    def problem(self) -> str | None:
        """Why this entry breaks a field limit (`jobs.core.model.limits`): the sync skips and counts it."""
        return entry_problem(name=self.name, version=self.version, url=self.url, architecture=self.architecture,
                             source_name=self.source_name, source_version=self.source_version,
                             component=self.component, filename=self.filename, maintainers=self.maintainers)

    def artifact(self) -> Artifact:
        """The expected artifact this entry describes."""
        return Artifact(name=self.name, version=self.version, architecture=self.architecture, url=self.url,
                        sha256=self.sha256, size=self.size, filename=self.filename, component=self.component)


@dataclass(frozen=True)
class BuildInput:
    """One thing to rebuild: a build input URL and the artifacts it must reproduce."""

    distro: str
    release: str | None
    architecture: str  # the build architecture (the report's, as in rebuilderd)
    backend: str
    source_name: str
    source_version: str
    input_url: str
    artifacts: tuple[BinaryEntry, ...]

    @cached_property
    def job_id(self) -> str:
        """The id of this input's job (made once: the snapshot and the queue both need it)."""
        return job_id(self.backend, self.architecture, self.input_url)

    @cached_property
    def expected(self) -> tuple[Artifact, ...]:
        """The artifacts as a job lists them (made once: the snapshot and the queue both need them)."""
        return tuple([Artifact(e.name, e.version, e.architecture, e.url, e.sha256, e.size, e.filename, e.component)
                      for e in self.artifacts])  # positional: Artifact's field order

    def state_rows(self, sync_id: str, seen_at: datetime) -> Iterator[PackageStateRow]:
        """One package-state row per artifact."""
        for entry, artifact in zip(self.artifacts, self.expected, strict=True):
            yield PackageStateRow.for_artifact(
                artifact, distro=self.distro, release=self.release, architecture=self.architecture,
                source_name=self.source_name, source_version=self.source_version, backend=self.backend,
                input_url=self.input_url, sync_id=sync_id, seen_at=seen_at, maintainers=entry.maintainers,
                description=entry.description)


@dataclass(frozen=True)
class Skipped:
    """A malformed entry that was left out: where it was and why (counted, reported)."""

    location: str  # e.g. "core.db: foo-1.0-1/desc" or "Packages.xz: stanza 1234"
    reason: str


@dataclass
class IndexResult:
    """What one profile's indexes yielded."""

    inputs: list[BuildInput] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    # Fingerprints (URL → sha256 or ETag) of every index file read, so an unchanged
    # index can be recognised and the sync can stop without rewriting anything.
    sources: dict[str, str] = field(default_factory=dict)
    # The root indexes (an Arch database, a Debian InRelease: the files that vouch for every
    # other one) → their HTTP validator, or None when the server gave none worth keeping.
    # All roots unchanged means the whole profile is (`jobs.sync.revalidate`).
    validators: dict[str, Validator | None] = field(default_factory=dict)
    valid_until: datetime | None = None  # the earliest Debian Valid-Until of the roots read
    # The inputs as columns instead of `inputs` (an Arch sync job: `jobs.sync.columns.InputColumns`).
    columns: object | None = None

    def extend(self, other: IndexResult) -> None:
        """Merge another result into this one."""
        self.inputs.extend(other.inputs)
        self.skipped.extend(other.skipped)
        self.sources.update(other.sources)
        self.validators.update(other.validators)
        self.expires(other.valid_until)

    def expires(self, when: datetime | None) -> None:
        """Note a root's Valid-Until: the result is only good until the earliest one."""
        if when is not None and (self.valid_until is None or when < self.valid_until):
            self.valid_until = when


def state_table(inputs: Sequence[BuildInput], sync_id: str, seen_at: datetime) -> pa.Table:
    """The package-state snapshot of a sync as an Arrow table, built column by column from the inputs.

    The same rows, in the same order, as `to_table(rows_of(...))`, without a `PackageStateRow`
    per artifact (70,000 objects for a Debian release and their per-column copies): a job id
    per build input, the (input, artifact) pairs sorted once, each column's list made and converted in turn.
    """
    if seen_at.tzinfo is None or seen_at.utcoffset() is None:
        raise ValueError(f"seen_at must be timezone-aware (UTC), got naive {seen_at!r}")
    return state_columns(state_pairs(inputs), sync_id, seen_at.astimezone(timezone.utc))


def state_pairs(inputs: Sequence[BuildInput]) -> list[tuple[BuildInput, BinaryEntry, str]]:
    """(build input, artifact, job id) for every artifact, in the snapshot's row order."""
    pairs = [(bi, e, jid) for bi in inputs for jid in (bi.job_id,) for e in bi.artifacts]
    pairs.sort(key=lambda p: (p[0].distro, p[0].release or "", p[0].architecture, p[1].component or "",
                              p[0].source_name, p[1].name, p[1].version))
    return pairs


def state_columns(pairs: Sequence[tuple[BuildInput, BinaryEntry, str]], sync_id: str, utc: datetime) -> pa.Table:
    """The snapshot rows of `pairs` (from `state_pairs`, or a slice of them) as a table; `utc` is `seen_at`."""
    n = len(pairs)
    # Each column's values are made, converted and dropped in turn: one column's list at a time.
    values: dict[str, Callable[[], list]] = {
        "distro": lambda: [p[0].distro for p in pairs], "release": lambda: [p[0].release for p in pairs],
        "architecture": lambda: [p[0].architecture for p in pairs],
        "component": lambda: [p[1].component for p in pairs],
        "source_name": lambda: [p[0].source_name for p in pairs],
        "source_version": lambda: [p[0].source_version for p in pairs],
        "artifact_name": lambda: [p[1].name for p in pairs], "artifact_version": lambda: [p[1].version for p in pairs],
        "artifact_architecture": lambda: [p[1].architecture for p in pairs],
        "artifact_url": lambda: [p[1].url for p in pairs], "artifact_sha256": lambda: [p[1].sha256 for p in pairs],
        "artifact_size": lambda: [p[1].size for p in pairs],
        "artifact_filename": lambda: [p[1].filename for p in pairs],
        "backend": lambda: [p[0].backend for p in pairs], "input_url": lambda: [p[0].input_url for p in pairs],
        "job_id": lambda: [p[2] for p in pairs], "maintainers": lambda: [p[1].maintainers for p in pairs],
        "sync_id": lambda: [sync_id] * n, "seen_at": lambda: [utc] * n,
        "description": lambda: [p[1].description for p in pairs],
    }
    arrays = []
    for column in PACKAGE_STATE.columns:
        arrays.append(pa.array(values[column.name](), type=column.arrow_type))
        if not column.nullable and arrays[-1].null_count:
            raise SchemaError("null in a non-nullable column", column=column.name)
    return pa.Table.from_arrays(arrays, schema=PACKAGE_STATE.arrow)


def rows_of(inputs: Iterable[BuildInput], sync_id: str, seen_at: datetime) -> list[PackageStateRow]:
    """All package-state rows of a sync, in a stable order."""
    rows = [row for bi in inputs for row in bi.state_rows(sync_id, seen_at)]
    rows.sort(key=lambda r: (r.distro, r.release or "", r.architecture, r.component or "", r.source_name,
                             r.artifact_name, r.artifact_version))
    return rows
