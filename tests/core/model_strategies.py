"""Hypothesis strategies for the model's records (shared by the model and Parquet tests).

They deliberately reach the awkward corners: None in every nullable field, unicode and
NUL in names, empty artifact lists, microsecond timestamps in non-UTC offsets (which
the records must normalise to UTC), and custom priorities at the int32 limits.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import strategies as st

from jobs.core.model import (
    Artifact,
    ArtifactResult,
    JobRow,
    PackageStateRow,
    ResultRow,
    Status,
    build_id,
    job_id,
)

INT32 = st.integers(-(2**31), 2**31 - 1)

# Any text a UTF-8 index can contain: everything but lone surrogates.
names = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=16)
hex64 = st.text("0123456789abcdef", min_size=64, max_size=64)


def optional(strategy: st.SearchStrategy) -> st.SearchStrategy:
    """The strategy's values or None."""
    return st.none() | strategy


offsets = st.builds(timezone, st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23)))
timestamps = st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1),
                          timezones=st.just(timezone.utc) | offsets)

artifacts = st.builds(
    Artifact, name=names, version=names, architecture=names, url=names,
    sha256=optional(hex64), size=optional(st.integers(0, 2**63 - 1)),
    filename=optional(names), component=optional(names),
)

artifact_results = st.builds(
    ArtifactResult, name=names, status=st.sampled_from([Status.GOOD, Status.BAD, Status.UNKWN]),
    sha256=optional(hex64),
)


@st.composite
def package_state_rows(draw: st.DrawFn) -> PackageStateRow:
    """A state row with a consistent job id."""
    return PackageStateRow.for_artifact(
        draw(artifacts), distro=draw(names), release=draw(optional(names)), architecture=draw(names),
        source_name=draw(names), source_version=draw(names), backend=draw(names), input_url=draw(names),
        sync_id=draw(names), seen_at=draw(timestamps), maintainers=draw(st.lists(names, max_size=3)),
        description=draw(optional(names)),
    )


@st.composite
def job_rows(draw: st.DrawFn) -> JobRow:
    """A queue row with a consistent job id."""
    backend, architecture, input_url = draw(names), draw(names), draw(names)
    return JobRow(
        job_id=job_id(backend, architecture, input_url), backend=backend, architecture=architecture,
        input_url=input_url, distro=draw(names), releases=draw(st.lists(optional(names), max_size=3)),
        source_name=draw(names), source_version=draw(names),
        artifacts=draw(st.lists(artifacts, max_size=3)), priority=draw(INT32),
        queued_at=draw(timestamps), not_before=draw(optional(timestamps)),
        attempt=draw(st.integers(1, 2**31 - 1)), retries=draw(st.integers(0, 2**31 - 1)),
    )


@st.composite
def result_rows(draw: st.DrawFn) -> ResultRow:
    """A build attempt with consistent job and build ids."""
    job = job_id(draw(names), draw(names), draw(names))
    attempt = draw(st.integers(1, 2**31 - 1))
    return ResultRow(
        build_id=build_id(job, attempt), job_id=job, attempt=attempt, distro=draw(names),
        architecture=draw(names), source_name=draw(names), source_version=draw(names),
        status=draw(st.sampled_from(Status)), reason=draw(optional(names)),
        artifacts=draw(st.lists(artifact_results, max_size=3)), worker_key_id=draw(names),
        worker_name=draw(optional(names)), started_at=draw(timestamps), built_at=draw(timestamps),
        log_key=draw(optional(names)), diffoscope_key=draw(optional(names)),
        attestation_key=draw(optional(names)),
    )


RECORD_STRATEGIES = {
    PackageStateRow: package_state_rows(),
    JobRow: job_rows(),
    ResultRow: result_rows(),
}
