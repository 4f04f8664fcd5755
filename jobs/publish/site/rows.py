"""The page contexts: plain frozen rows that DuckDB queries produce and both templates and feeds read.

Links are properties computed from `jobs.core.urls`, so a page and a feed can never
disagree about where a log or a package page lives.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from jobs.core import urls
from jobs.core.feeds import QueuedJob, Worker
from jobs.core.model import Status
from jobs.publish.site.classify import FailureClass


@dataclass(frozen=True, slots=True)
class SuiteKey:
    """One list of packages: a distro's release, component (Arch repo) and architecture."""

    distro: str
    release: str | None
    component: str | None
    architecture: str

    @property
    def path(self) -> str:
        return urls.suite_path(self.distro, self.release, self.component, self.architecture)

    @property
    def label(self) -> str:
        return " / ".join(v for v in (self.distro, self.release, self.component, self.architecture) if v)


@dataclass(frozen=True, slots=True)
class BuildLinks:
    """Where one build's published files are (None: the build has no such file)."""

    v0_id: int | None
    has_log: bool
    has_diffoscope: bool
    has_diffoscope_html: bool
    has_attestation: bool

    def _file(self, what: str, present: bool) -> str | None:
        return urls.build_file(self.v0_id, what) if present and self.v0_id is not None else None

    @property
    def log_url(self) -> str | None:
        return self._file("log", self.has_log)

    @property
    def diffoscope_url(self) -> str | None:
        return self._file("diffoscope", self.has_diffoscope)

    @property
    def diffoscope_html_url(self) -> str | None:
        return self._file("diffoscope.html", self.has_diffoscope_html)

    @property
    def attestation_url(self) -> str | None:
        return self._file("attestation", self.has_attestation)


@dataclass(frozen=True, slots=True)
class PackageRow:
    """One binary package of a current snapshot, with the outcome of its job's latest build."""

    suite: SuiteKey
    name: str
    version: str
    artifact_architecture: str
    artifact_url: str
    source_name: str
    source_version: str
    job_id: str
    status: Status  # UNKWN if never built
    build_id: str | None
    built_at: datetime | None
    reason: str | None  # only for BAD and FAIL
    failure_class: FailureClass | None
    worker_name: str | None
    links: BuildLinks
    artifact_sha256: str | None = None  # what the synced index records: a GOOD means this digest
    maintainers: tuple[str, ...] = ()  # as the index names them (Arch %PACKAGER%, Debian Maintainer/Uploaders)
    description: str | None = None  # one line, bounded at sync (Arch %DESC%, Debian Description synopsis)

    @property
    def page_url(self) -> str:
        return urls.package_page(self.suite.distro, self.name)

    @property
    def feed_url(self) -> str:
        return urls.package_feed(self.suite.distro, self.name)

    @property
    def class_url(self) -> str | None:
        """The suite's page of this package's failure class."""
        if self.failure_class is None:
            return None
        return urls.paged(urls.class_base(self.suite.path, self.failure_class.value), 1)


@dataclass(frozen=True, slots=True)
class BuildRow:
    """One build attempt, as a package page lists it."""

    build_id: str
    job_id: str
    attempt: int
    distro: str
    architecture: str
    source_name: str
    source_version: str
    status: Status
    reason: str | None
    failure_class: FailureClass | None
    artifacts: tuple[tuple[str, Status], ...]
    worker_name: str | None
    worker_key_id: str
    started_at: datetime
    built_at: datetime
    links: BuildLinks


@dataclass(frozen=True, slots=True)
class PackagePage:
    """Everything known about one source or binary name of a distro."""

    distro: str
    name: str
    packages: tuple[PackageRow, ...]  # current packages with this binary or source name
    builds: tuple[BuildRow, ...]  # newest first

    @property
    def page_url(self) -> str:
        return urls.package_page(self.distro, self.name)

    @property
    def feed_url(self) -> str:
        return urls.package_feed(self.distro, self.name)


class StatusCounts:
    """Derived figures of anything counting GOOD, BAD, FAIL and UNKWN (`good` … `unknown` fields)."""

    __slots__ = ()
    good: int
    bad: int
    fail: int
    unknown: int

    @property
    def total(self) -> int:
        return self.good + self.bad + self.fail + self.unknown

    @property
    def percent(self) -> float:
        """Share of GOOD packages, as the Arch website shows it (unknown counts against)."""
        return round(100.0 * self.good / self.total, 1) if self.total else 0.0

    def count(self, status: Status) -> int:
        return {Status.GOOD: self.good, Status.BAD: self.bad, Status.FAIL: self.fail,
                Status.UNKWN: self.unknown}[status]


@dataclass(frozen=True, slots=True)
class SuiteSummary(StatusCounts):
    """Counts of one suite by status (packages), its queue length and its failure classes."""

    suite: SuiteKey
    good: int
    bad: int
    fail: int
    unknown: int
    queued: int
    classes: tuple[tuple[FailureClass, int], ...] = ()



@dataclass(frozen=True, slots=True)
class ActiveBuild:
    """A build running now: a live claim on the current attempt of a queued job."""

    queue_id: int  # v0 QueueItem id: position in the queue order (priority, queued_at, job id)
    worker: str  # as the claim says (untrusted)
    worker_key_id: str  # the claim's holder
    worker_id: int | None  # v0 integer id: position of the worker's key in the enrolment list
    job_id: str
    attempt: int
    distro: str
    architecture: str
    component: str | None
    source_name: str
    source_version: str
    input_url: str
    artifacts: tuple[tuple[str, str, str], ...]  # (name, version, url)
    queued_at: datetime
    acquired_at: datetime
    renewed_at: datetime
    age_seconds: int


@dataclass(frozen=True, slots=True)
class DailyCount:
    """How many current packages of a distro had each status at the end of one day (UTC)."""

    distro: str
    day: date
    good: int
    bad: int
    fail: int
    unknown: int


@dataclass(frozen=True, slots=True)
class Regression:
    """A build that turned a GOOD source BAD or FAIL, or a source's first build that is BAD."""

    distro: str
    architecture: str
    source_name: str
    source_version: str
    build_id: str
    status: Status
    previous: Status | None
    built_at: datetime
    reason: str | None
    failure_class: FailureClass | None
    has_page: bool
    links: BuildLinks

    @property
    def page_url(self) -> str | None:
        return urls.package_page(self.distro, self.source_name) if self.has_page else None


@dataclass(frozen=True, slots=True)
class BuildFiles:
    """The stored files of one build, to publish under api/v0/builds/<v0 id>/."""

    v0_id: int
    build_id: str
    log_key: str | None
    diffoscope_key: str | None
    diffoscope_html_key: str | None
    attestation_key: str | None
    digests: dict[str, str] = field(default_factory=dict)  # object key -> the SHA-256 its result signed


@dataclass(frozen=True)
class SiteData:
    """Every query's rows: what the pages and feeds of one publish are made of."""

    packages: list[PackageRow]
    suites: list[SuiteSummary]
    pages: list[PackagePage]
    active: list[ActiveBuild]
    daily: list[DailyCount]
    regressions: list[Regression]
    build_files: list[BuildFiles]
    queue_length: int
    workers: dict[str, int] = field(default_factory=dict)
    queue: list[QueuedJob] = field(default_factory=list)
    worker_rows: list[Worker] = field(default_factory=list)  # without current_job (feeds.workers_feed adds it)
