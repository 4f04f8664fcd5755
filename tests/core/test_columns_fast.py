"""The fast ways of the sync's hot paths give exactly what the plain ways give.

- `to_table` builds a list-of-records column (a job's artifacts, a result's files) field by
  field instead of a dict per element: the same Arrow table and the same Parquet bytes;
- `entry_problem` accepts the usual entry in one pass: the same answer, to the letter, as
  checking each field on its own.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobs.core.model import (
    Artifact,
    JobRow,
    ResultRow,
    SchemaError,
    field_problem,
    job_id,
    limits,
    parquet_bytes,
    to_table,
)
from jobs.core.model import parquet as parquet_module
from tests.core.model_strategies import RECORD_STRATEGIES

job_rows, result_rows = RECORD_STRATEGIES[JobRow], RECORD_STRATEGIES[ResultRow]


def _plain_table(rows: list, record_type: type) -> pa.Table:
    schema = parquet_module.schema_for(record_type)
    arrays = [pa.array(parquet_module._column_values(rows, c), type=c.arrow_type) for c in schema.columns]
    return pa.Table.from_arrays(arrays, schema=schema.arrow)


@settings(max_examples=30, deadline=None)
@given(rows=st.lists(job_rows, max_size=6))
def test_job_tables_are_the_plain_conversion(rows: list[JobRow]) -> None:
    table = to_table(rows, JobRow)
    assert table.equals(_plain_table(rows, JobRow), check_metadata=True)
    assert parquet_bytes(table) == parquet_bytes(_plain_table(rows, JobRow))


@settings(max_examples=30, deadline=None)
@given(rows=st.lists(result_rows, max_size=6))
def test_result_tables_are_the_plain_conversion(rows: list[ResultRow]) -> None:
    assert to_table(rows, ResultRow).equals(_plain_table(rows, ResultRow), check_metadata=True)


def test_a_null_where_none_may_be_is_refused_as_before() -> None:
    url = "https://m/extra/os/x86_64/zstd-1.5.6-1-x86_64.pkg.tar.zst"
    bad = JobRow(job_id=job_id("archlinux", "x86_64", url), backend="archlinux", architecture="x86_64",
                 input_url=url, distro="archlinux", releases=(None,), source_name="zstd", source_version="1.5.6-1",
                 artifacts=(Artifact(name=None, version="1.5.6-1", architecture="x86_64", url=url),),
                 priority=1, queued_at=datetime(2026, 1, 1, tzinfo=timezone.utc), not_before=None, attempt=1,
                 retries=0)
    with pytest.raises(SchemaError, match=r"artifacts\[\]\.name"):
        to_table([bad], JobRow)


def _field_by_field(**kw) -> str | None:
    checks = (("name", kw["name"], limits.NAME_MAX), ("version", kw["version"], limits.VERSION_MAX),
              ("architecture", kw["architecture"], limits.NAME_MAX), ("source name", kw["source_name"], limits.NAME_MAX),
              ("source version", kw["source_version"], limits.VERSION_MAX))
    for what, value, maximum in checks:
        problem = field_problem(what, value, maximum)
        if problem:
            return problem
    return (field_problem("URL", kw["url"], limits.URL_MAX, ascii_only=True)
            or field_problem("component", kw["component"], limits.NAME_MAX, optional=True)
            or field_problem("file name", kw["filename"], limits.NAME_MAX, spaces=True, optional=True)
            or next((p for m in kw["maintainers"]
                     if (p := field_problem("maintainer", m, limits.REASON_MAX, spaces=True))), None))


_USUAL = dict(name="zstd", version="1.5.6-1", architecture="x86_64", source_name="zstd", source_version="1.5.6-1",
              url="https://mirror/extra/os/x86_64/zstd-1.5.6-1-x86_64.pkg.tar.zst", component="extra",
              filename="zstd-1.5.6-1-x86_64.pkg.tar.zst", maintainers=("A Packager <a@example.org>",))
_PIECES = ["pkg", "1.0-1", " ", "\n", "\u200f", "é", "", "\x00", "\u00a0", "x" * 300, "ü" * 200, "x" * 5000]
_ODD = [None, 7, b"zstd", *_PIECES, *(f"zstd{p}" for p in _PIECES), *(f"{p}-1" for p in _PIECES)]
_values = st.lists(st.sampled_from(_PIECES), max_size=3).map("".join) | st.sampled_from(_ODD)


def _change(key: str, value: object) -> object:
    return (value,) if key == "maintainers" and not isinstance(value, int) else value


def _compare(kw: dict) -> None:
    try:
        expected: object = _field_by_field(**kw)
    except Exception as exc:  # noqa: BLE001 - the same exception either way
        expected = type(exc)
    try:
        got: object = limits.entry_problem(**kw)
    except Exception as exc:  # noqa: BLE001
        got = type(exc)
    assert got == expected, kw


@pytest.mark.parametrize("key", sorted(_USUAL))
def test_each_field_odd_alone_gets_the_same_answer(key: str) -> None:
    for value in _ODD:
        _compare({**_USUAL, key: _change(key, value)})


@settings(max_examples=300, deadline=None)
@given(changes=st.lists(st.tuples(st.sampled_from(sorted(_USUAL)), _values), max_size=2))
def test_entry_problem_says_what_the_checks_one_by_one_say(changes: list[tuple[str, object]]) -> None:
    _compare({**_USUAL, **{key: _change(key, value) for key, value in changes}})


def test_a_usual_entry_passes_and_a_long_one_is_named() -> None:
    entry = _USUAL
    assert limits.entry_problem(**entry) is None
    assert limits.entry_problem(**{**entry, "url": entry["url"] + "é"}).startswith("URL is not ASCII")
    assert limits.entry_problem(**{**entry, "maintainers": ("",)}) == "maintainer is empty"
