"""Records -> Parquet -> DuckDB -> records, schema tags, and refusal of unknown files."""

from __future__ import annotations

import io
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobs.core.errors import TerminalError
from jobs.core.model import (
    HISTORY,
    METADATA_KEY,
    SCHEMAS,
    Artifact,
    ArtifactResult,
    JobRow,
    PackageStateRow,
    ResultRow,
    SchemaError,
    Status,
    build_id,
    from_table,
    job_id,
    parquet_bytes,
    read_parquet,
    read_table,
    schema_for,
    schema_markdown,
    to_table,
    write_parquet,
)
from tests.core.model_strategies import RECORD_STRATEGIES

RECORD_TYPES = list(RECORD_STRATEGIES)
UTC = timezone.utc
T0 = datetime(2026, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)

# DuckDB runs are slower than pure-Python examples; fewer still cover the corners.
duck_settings = settings(max_examples=25, deadline=None,
                         suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def record_lists(record_type: type) -> st.SearchStrategy:
    """Lists of 0..5 records of one type."""
    return st.lists(RECORD_STRATEGIES[record_type], max_size=5)


def duckdb_file_rows(path: Path) -> pa.Table:
    """All rows of a Parquet file as DuckDB returns them, in file order."""
    # file_row_number is an extra column; from_table picks its columns by name.
    return duckdb.connect().sql("select * from read_parquet(?, file_row_number = true) order by file_row_number",
                                params=[str(path)]).to_arrow_table()


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("record_type", RECORD_TYPES, ids=lambda t: t.__name__)
@settings(max_examples=50, deadline=None)
@given(data=st.data())
def test_round_trip_through_parquet_bytes(record_type: type, data: st.DataObject) -> None:
    records = data.draw(record_lists(record_type))
    blob = parquet_bytes(records, record_type)
    assert read_parquet(blob) == records
    assert read_parquet(io.BytesIO(blob)) == records


@pytest.mark.parametrize("record_type", RECORD_TYPES, ids=lambda t: t.__name__)
@duck_settings
@given(data=st.data())
def test_round_trip_through_a_file_read_by_duckdb(record_type: type, data: st.DataObject,
                                                    tmp_path: Path) -> None:
    records = data.draw(record_lists(record_type))
    path = tmp_path / "table.parquet"
    write_parquet(records, path, record_type)
    assert read_parquet(path) == records
    # DuckDB's result carries no schema tag and its own type spellings; naming the
    # record type is enough to get the same records back.
    assert from_table(duckdb_file_rows(path), record_type) == records


@pytest.mark.parametrize("record_type", RECORD_TYPES, ids=lambda t: t.__name__)
@duck_settings
@given(data=st.data())
def test_round_trip_through_an_arrow_table_registered_in_duckdb(record_type: type,
                                                                 data: st.DataObject) -> None:
    records = data.draw(record_lists(record_type))
    con = duckdb.connect()
    con.register("t", to_table(records, record_type))
    # preserve_insertion_order is DuckDB's default, but compare as multisets so the
    # test does not depend on it.
    assert Counter(from_table(con.sql("select * from t").to_arrow_table(), record_type)) == Counter(records)


def test_duckdb_execute_with_a_placeholder_reads_the_file(tmp_path: Path) -> None:
    records = [_result(job_id("archlinux", "x86_64", "https://a.example/acl.pkg.tar.zst"), 1, Status.GOOD)]
    path = tmp_path / "h.parquet"
    write_parquet(records, path)
    rows = duckdb.connect().execute("select * from read_parquet(?)", [str(path)]).fetchall()
    assert len(rows) == 1 and rows[0][0] == records[0].build_id and rows[0][7] == "GOOD"


@pytest.mark.parametrize("record_type", RECORD_TYPES, ids=lambda t: t.__name__)
def test_empty_tables_keep_their_schema(record_type: type) -> None:
    table = to_table([], record_type)
    assert table.num_rows == 0
    assert table.schema.metadata[METADATA_KEY] == schema_for(record_type).tag.encode()
    assert read_parquet(parquet_bytes(table)) == []
    with pytest.raises(TypeError):
        to_table([])


def test_files_are_tagged_and_zstd_compressed(tmp_path: Path) -> None:
    path = tmp_path / "h.parquet"
    write_parquet([_result(job_id("a", "b", "c"), 1, Status.GOOD)], path)
    meta = pq.ParquetFile(path).metadata
    assert meta.metadata[METADATA_KEY] == b"history/2"
    assert {meta.row_group(0).column(i).compression for i in range(meta.num_columns)} == {"ZSTD"}
    assert read_table(path).schema == HISTORY.arrow


def test_tables_have_the_documented_column_order() -> None:
    for schema in SCHEMAS.values():
        fields = list(schema.record.__dataclass_fields__)
        assert [c.name for c in schema.columns] == fields, schema.tag


# ---------------------------------------------------------------- query-friendliness


def _result(job: str, attempt: int, status: Status, *, built: int = 0, distro: str = "debian",
            arch: str = "amd64") -> ResultRow:
    artifacts = [] if status is Status.FAIL else [ArtifactResult("libacl1", Status.BAD if status is Status.BAD
                                                                 else status, None)]
    return ResultRow(build_id=build_id(job, attempt), job_id=job, attempt=attempt, distro=distro,
                     architecture=arch, source_name="acl", source_version="1", status=status,
                     reason=None if status is Status.GOOD else "differs", artifacts=artifacts,
                     worker_key_id="k", worker_name="w1", started_at=T0 + timedelta(hours=built),
                     built_at=T0 + timedelta(hours=built, minutes=5), log_key=None, diffoscope_key=None,
                     attestation_key=None)


def _state(job_input: str, distro: str, release: str | None, arch: str) -> PackageStateRow:
    artifact = Artifact("libacl1", "1", arch, f"{job_input}.deb")
    return PackageStateRow.for_artifact(artifact, distro=distro, release=release, architecture=arch,
                                        source_name="acl", source_version="1", backend=distro,
                                        input_url=job_input, sync_id="s", seen_at=T0)


def test_duckdb_counts_latest_status_per_distro_release_architecture(tmp_path: Path) -> None:
    # Three Debian inputs (one a friend in sid and forky) and one Arch input (no release).
    a, b, c = (f"https://buildinfos.example/{n}.buildinfo" for n in "abc")
    d = "https://arch.example/d.pkg.tar.zst"
    state = [_state(a, "debian", "sid", "amd64"), _state(a, "debian", "forky", "amd64"),
             _state(b, "debian", "sid", "amd64"), _state(c, "debian", "sid", "arm64"),
             _state(d, "archlinux", None, "x86_64")]
    ja, jb, jc, jd = (job_id(r.backend, r.architecture, r.input_url) for r in (state[0], state[2], state[3], state[4]))
    history = [_result(ja, 1, Status.BAD, built=0), _result(ja, 2, Status.GOOD, built=50),
               _result(jb, 1, Status.FAIL), _result(jc, 1, Status.BAD, arch="arm64"),
               _result(jd, 1, Status.GOOD, distro="archlinux", arch="x86_64")]
    write_parquet(state, tmp_path / "state.parquet")
    write_parquet(history, tmp_path / "history.parquet")

    con = duckdb.connect()
    rows = con.execute("""
        with latest as (  -- rebuilderd's "latest rebuild": max built_at, then max attempt
            select * from read_parquet(?)
            qualify row_number() over (partition by job_id order by built_at desc, attempt desc) = 1
        ), inputs as (
            select distinct job_id, distro, release, architecture from read_parquet(?)
        )
        select i.distro, i.release, i.architecture, coalesce(l.status, 'UNKWN') as status, count(*) as n
        from inputs i left join latest l using (job_id)
        group by all order by all
    """, [str(tmp_path / "history.parquet"), str(tmp_path / "state.parquet")]).fetchall()
    assert rows == [
        ("archlinux", None, "x86_64", "GOOD", 1),
        ("debian", "forky", "amd64", "GOOD", 1),
        ("debian", "sid", "amd64", "FAIL", 1),
        ("debian", "sid", "amd64", "GOOD", 1),
        ("debian", "sid", "arm64", "BAD", 1),
    ]

    # The history table alone answers per-attempt and per-artifact questions too.
    con.register("history", to_table(history))
    assert con.sql("select status, count(*) from history group by status order by status").fetchall() == [
        ("BAD", 2), ("FAIL", 1), ("GOOD", 2)]
    assert con.sql("""select a.status, count(*) from history, unnest(artifacts) as u(a)
                      group by all order by all""").fetchall() == [("BAD", 2), ("GOOD", 2)]


# ---------------------------------------------------------------- refusal


def _tagged(tag: bytes) -> bytes:
    table = to_table([_result(job_id("a", "b", "c"), 1, Status.GOOD)])
    buffer = io.BytesIO()
    pq.write_table(table.replace_schema_metadata({METADATA_KEY: tag}), buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("tag", [b"history/3", b"history/1", b"history/0", b"queue/1", b"", b"\xff"])
def test_unknown_schema_tag_is_refused(tag: bytes) -> None:
    with pytest.raises(SchemaError, match="unknown table schema") as caught:
        read_parquet(_tagged(tag))
    assert isinstance(caught.value, TerminalError) and not caught.value.transient
    assert caught.value.schema == tag.decode("utf-8", "replace")
    assert "history/2" in caught.value.expected


def test_untagged_and_foreign_files_are_refused(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    pq.write_table(pa.table({"x": [1]}), buffer)
    with pytest.raises(SchemaError, match="no rebuilder.schema tag"):
        read_parquet(buffer.getvalue())
    with pytest.raises(SchemaError, match="not a readable Parquet file"):
        read_parquet(b"PAR1 but not really")
    with pytest.raises(FileNotFoundError):
        read_parquet(tmp_path / "missing.parquet")


def test_tagged_file_with_bad_columns_is_refused() -> None:
    good = to_table([_result(job_id("a", "b", "c"), 1, Status.GOOD)])
    cases = {
        "missing column": good.drop_columns(["status"]),
        "column has type": good.set_column(good.schema.get_field_index("attempt"), "attempt",
                                           pa.array(["1"])),
        "null in a non-nullable column": good.set_column(good.schema.get_field_index("worker_key_id"),
                                                         "worker_key_id", pa.array([None], pa.string())),
        "not a valid ResultRow": good.set_column(good.schema.get_field_index("status"), "status",
                                                 pa.array(["good"])),
    }
    for message, table in cases.items():
        buffer = io.BytesIO()
        pq.write_table(table.replace_schema_metadata(good.schema.metadata), buffer)
        with pytest.raises(SchemaError, match=message):
            read_parquet(buffer.getvalue())


def test_null_inside_a_nested_required_field_is_refused() -> None:
    good = to_table([_result(job_id("a", "b", "c"), 1, Status.BAD)])
    struct = pa.struct([("name", pa.string()), ("status", pa.string()), ("sha256", pa.string())])
    bad = pa.array([[{"name": None, "status": "BAD", "sha256": None}]], pa.list_(struct))
    table = good.set_column(good.schema.get_field_index("artifacts"), "artifacts", bad)
    with pytest.raises(SchemaError, match="non-nullable") as caught:
        from_table(table, ResultRow)
    assert caught.value.column == "artifacts[].name"


def test_from_table_refuses_the_wrong_record_type() -> None:
    table = to_table([_result(job_id("a", "b", "c"), 1, Status.GOOD)])
    with pytest.raises(SchemaError, match="not JobRow"):
        from_table(table, JobRow)
    with pytest.raises(SchemaError, match="pass record_type"):
        from_table(table.replace_schema_metadata(None))


def test_write_refuses_untagged_tables() -> None:
    with pytest.raises(SchemaError):
        parquet_bytes(pa.table({"x": [1]}))


# ---------------------------------------------------------------- documentation


def test_schema_markdown_documents_every_column() -> None:
    text = schema_markdown()
    for schema in SCHEMAS.values():
        assert f"(schema `{schema.tag}`)" in text
        for column in schema.columns:
            assert f"| `{column.name}` |" in text
            for field in column.fields:
                assert f"| `{column.name}[].{field.name}` |" in text
    assert all(line.count("|") == 4 for line in text.splitlines() if line.startswith("|"))
