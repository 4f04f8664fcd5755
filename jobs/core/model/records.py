"""Typed records: the rows of the package-state, queue and history tables.

Plain frozen dataclasses of plain types, so they compare by value, hash, and cross
process boundaries as Parquet rows without a mapping layer. Construction normalises
what would otherwise make two equal records compare unequal: sequences become tuples,
timestamps must be timezone-aware and are converted to UTC, statuses become `Status`.
Ids are checked against the fields they are derived from, because these rows are read
back from a bucket that anyone with a leaked credential could have written.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone

from jobs.core.model import ids
from jobs.core.model.status import Priority, Status


def _utc(field: str, value: datetime | None, *, optional: bool = False) -> datetime | None:
    if value is None and optional:
        return None
    if not isinstance(value, datetime):
        raise TypeError(f"{field} must be a datetime, got {value!r}")
    # A naive datetime is ambiguous (rebuilderd's NaiveDateTime caused exactly this);
    # refuse it rather than guess the machine's local zone.
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{field} must be timezone-aware (UTC), got naive {value!r}")
    return value.astimezone(timezone.utc)


def _set(record: object, field: str, value: object) -> None:
    object.__setattr__(record, field, value)  # frozen: normalise once, in __post_init__


def _count(field: str, value: int, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{field} must be an int >= {minimum}, got {value!r}")


@dataclass(frozen=True, slots=True)
class Artifact:
    """One expected binary package (a downloadable file) of a build input."""

    name: str
    version: str
    architecture: str  # as the index says: may be "any" (Arch) or "all" (Debian)
    url: str
    sha256: str | None = None  # hex digest from the index, when it publishes one
    size: int | None = None  # bytes, when the index says
    filename: str | None = None  # the name the backend writes into REBUILDERD_OUTDIR
    component: str | None = None  # Arch repo, Debian component ("main/debian-installer")


@dataclass(frozen=True, slots=True)
class ArtifactResult:
    """The outcome for one artifact of one build attempt."""

    name: str
    status: Status  # GOOD, BAD or UNKWN; FAIL is a build-level outcome only (docs/design.md#statuses)
    sha256: str | None = None  # hex digest of the rebuilt file, None if none was produced

    def __post_init__(self) -> None:
        status = Status(self.status)
        if status is Status.FAIL:
            raise ValueError(f"artifact {self.name!r}: FAIL is not an artifact status (use BAD)")
        _set(self, "status", status)


@dataclass(frozen=True, slots=True)
class FileDigest:
    """One file a worker uploaded for a build, as it signed it: object key, SHA-256 and size of the stored bytes."""

    key: str
    sha256: str
    size: int

    def __post_init__(self) -> None:
        if not isinstance(self.sha256, str) or len(self.sha256) != 64 or \
                any(c not in "0123456789abcdef" for c in self.sha256):
            raise ValueError(f"file {self.key!r}: sha256 must be 64 lowercase hex digits, got {self.sha256!r}")
        _count("size", self.size, 0)


@dataclass(frozen=True, slots=True)
class PackageStateRow:
    """One binary artifact as one sync saw it in a distro index (one row per artifact per snapshot)."""

    distro: str
    release: str | None  # None where the distro has none in rebuilderd (Arch, Fedora)
    architecture: str  # the architecture the index was synced for (the build input's)
    component: str | None  # Arch repo / Debian component / rebuilderd v0 "suite"
    source_name: str  # pkgbase, Debian source package, Fedora SRPM
    source_version: str
    artifact_name: str
    artifact_version: str
    artifact_architecture: str
    artifact_url: str
    artifact_sha256: str | None
    artifact_size: int | None
    artifact_filename: str | None
    backend: str
    input_url: str
    job_id: str
    maintainers: tuple[str, ...]  # Arch %PACKAGER%, Debian Uploaders; profile filters match these
    sync_id: str
    seen_at: datetime
    description: str | None = None  # one line, bounded (limits.clean_description); null in older snapshots

    def __post_init__(self) -> None:
        _set(self, "maintainers", tuple(self.maintainers))
        _set(self, "seen_at", _utc("seen_at", self.seen_at))
        expected = ids.job_id(self.backend, self.architecture, self.input_url)
        if self.job_id != expected:
            raise ValueError(f"job_id {self.job_id!r} does not match its build input (expected {expected!r})")

    @classmethod
    def for_artifact(cls, artifact: Artifact, *, distro: str, release: str | None, architecture: str,
                     source_name: str, source_version: str, backend: str, input_url: str,
                     sync_id: str, seen_at: datetime, maintainers: Iterable[str] = (),
                     description: str | None = None) -> PackageStateRow:
        """The state row of one artifact, with its job id computed from the build input."""
        return cls(
            distro=distro, release=release, architecture=architecture, component=artifact.component,
            source_name=source_name, source_version=source_version,
            artifact_name=artifact.name, artifact_version=artifact.version,
            artifact_architecture=artifact.architecture, artifact_url=artifact.url,
            artifact_sha256=artifact.sha256, artifact_size=artifact.size, artifact_filename=artifact.filename,
            backend=backend, input_url=input_url, job_id=ids.job_id(backend, architecture, input_url),
            maintainers=tuple(maintainers), sync_id=sync_id, seen_at=seen_at, description=description,
        )

    @property
    def artifact(self) -> Artifact:
        """This row's artifact as an `Artifact` (what a job lists as expected output)."""
        return Artifact(name=self.artifact_name, version=self.artifact_version,
                        architecture=self.artifact_architecture, url=self.artifact_url,
                        sha256=self.artifact_sha256, size=self.artifact_size,
                        filename=self.artifact_filename, component=self.component)


@dataclass(frozen=True, slots=True)
class JobRow:
    """One queued build input (a row of the queue table): due at `not_before`, run in priority order."""

    job_id: str
    backend: str
    architecture: str
    input_url: str
    distro: str
    releases: tuple[str | None, ...]  # every release this input was seen in ("friends")
    source_name: str
    source_version: str
    artifacts: tuple[Artifact, ...]
    priority: int  # Priority.MANUAL/NEW/RETRY or any custom int; lower runs sooner
    queued_at: datetime
    not_before: datetime | None  # rebuilderd next_retry: not claimable before this; None = now
    attempt: int  # the attempt number the next build of this job will get (from 1)
    retries: int  # non-GOOD results so far (rebuilderd build_inputs.retries)

    def __post_init__(self) -> None:
        # Each field is set again only when normalising changed it (a sync makes 10,000 rows).
        if type(self.releases) is not tuple:
            _set(self, "releases", tuple(self.releases))
        if type(self.artifacts) is not tuple:
            _set(self, "artifacts", tuple(self.artifacts))
        if type(self.priority) is not Priority:
            if isinstance(self.priority, bool) or not isinstance(self.priority, int):
                raise ValueError(f"priority must be an int, got {self.priority!r}")
            _set(self, "priority", Priority.of(self.priority))
        queued_at, not_before = self.queued_at, self.not_before
        if queued_at.__class__ is not datetime or queued_at.tzinfo is not timezone.utc:  # else already UTC
            _set(self, "queued_at", _utc("queued_at", queued_at))
        if not_before is not None and (not_before.__class__ is not datetime or not_before.tzinfo is not timezone.utc):
            _set(self, "not_before", _utc("not_before", not_before, optional=True))
        if self.attempt.__class__ is not int or self.attempt < 1:
            _count("attempt", self.attempt, 1)
        if self.retries.__class__ is not int or self.retries < 0:
            _count("retries", self.retries, 0)
        expected = ids.job_id(self.backend, self.architecture, self.input_url)
        if self.job_id != expected:
            raise ValueError(f"job_id {self.job_id!r} does not match its build input (expected {expected!r})")


@dataclass(frozen=True, slots=True)
class ResultRow:
    """One build attempt's outcome: what a worker reports and what the history table keeps."""

    build_id: str
    job_id: str
    attempt: int
    distro: str
    architecture: str
    source_name: str
    source_version: str
    status: Status
    reason: str | None  # why the attempt is not GOOD, in words (e.g. "download failed: 404")
    artifacts: tuple[ArtifactResult, ...]  # empty for FAIL, as in rebuilderd
    worker_key_id: str  # id of the ed25519 key that signed the result
    worker_name: str | None
    started_at: datetime
    built_at: datetime
    log_key: str | None  # object keys under builds/<build-id>/, None when not stored
    diffoscope_key: str | None
    attestation_key: str | None
    # Every file uploaded for the build (log, diffoscope text and HTML, attestation) with the
    # digest of its stored bytes: the worker signs them, publish refuses files that differ.
    files: tuple[FileDigest, ...] = ()

    def __post_init__(self) -> None:
        _set(self, "status", Status(self.status))
        _set(self, "artifacts", tuple(self.artifacts))
        _set(self, "files", tuple(self.files))
        _set(self, "started_at", _utc("started_at", self.started_at))
        _set(self, "built_at", _utc("built_at", self.built_at))
        _count("attempt", self.attempt, 1)
        expected = ids.build_id(self.job_id, self.attempt)
        if self.build_id != expected:
            raise ValueError(f"build_id {self.build_id!r} does not match job and attempt (expected {expected!r})")


# The history table is the compacted union of all results: same row, one per attempt.
HistoryRow = ResultRow

Record = PackageStateRow | JobRow | ResultRow

# Element record type of each list-of-records field, per record type.
ELEMENT_TYPES: dict[type, dict[str, type]] = {
    JobRow: {"artifacts": Artifact},
    ResultRow: {"artifacts": ArtifactResult, "files": FileDigest},
}
