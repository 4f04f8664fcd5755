"""The shared data model: status enum, ids, typed records and their Parquet tables.

Every process speaks these types: sync writes `PackageStateRow`s and `JobRow`s, workers
turn a `JobRow` into a `ResultRow`, publish compacts results into the history table and
queries all three with DuckDB. Nothing here does I/O except `write_parquet` /
`read_parquet` on a path or file object the caller gives.

Attributes load their submodule on first use (PEP 562), so a process that needs only `Status`
(rebuildctl) does not import pyarrow.
"""

from typing import TYPE_CHECKING

from jobs.core.lazy import lazy_attributes

if TYPE_CHECKING:
    from jobs.core.model.ids import (
        MAX_SEGMENT_BYTES,
        SegmentError,
        build_id,
        is_job_id,
        job_id,
        parse_build_id,
        safe_segment,
        unescape_segment,
    )
    from jobs.core.model.jsonform import format_timestamp, parse_timestamp, record_from_json, record_to_json
    from jobs.core.model.limits import check_result_fields, entry_problem, field_problem, fit_text, result_problem
    from jobs.core.model.parquet import (
        conform,
        from_table,
        parquet_bytes,
        read_parquet,
        read_table,
        table_schema,
        to_table,
        write_parquet,
    )
    from jobs.core.model.records import (
        Artifact,
        ArtifactResult,
        FileDigest,
        HistoryRow,
        JobRow,
        PackageStateRow,
        Record,
        ResultRow,
    )
    from jobs.core.model.schemas import (
        HISTORY,
        JOB,
        KNOWN,
        METADATA_KEY,
        PACKAGE_STATE,
        SCHEMAS,
        Column,
        SchemaError,
        TableSchema,
        schema_for,
        schema_for_tag,
        schema_markdown,
    )
    from jobs.core.model.status import Priority, Status

# name -> the submodule that defines it
_EXPORTS: dict[str, str] = {
    **dict.fromkeys(("MAX_SEGMENT_BYTES", "SegmentError", "build_id", "is_job_id", "job_id",
                     "parse_build_id", "safe_segment", "unescape_segment"), "ids"),
    **dict.fromkeys(("format_timestamp", "parse_timestamp", "record_from_json", "record_to_json"), "jsonform"),
    **dict.fromkeys(("check_result_fields", "entry_problem", "field_problem", "fit_text", "result_problem"), "limits"),
    **dict.fromkeys(("conform", "from_table", "parquet_bytes", "read_parquet", "read_table", "table_schema",
                     "to_table", "write_parquet"), "parquet"),
    **dict.fromkeys(("Artifact", "ArtifactResult", "FileDigest", "HistoryRow", "JobRow", "PackageStateRow",
                     "Record", "ResultRow"), "records"),
    **dict.fromkeys(("HISTORY", "JOB", "KNOWN", "METADATA_KEY", "PACKAGE_STATE", "SCHEMAS", "Column",
                     "SchemaError", "TableSchema", "schema_for", "schema_for_tag", "schema_markdown"), "schemas"),
    **dict.fromkeys(("Priority", "Status"), "status"),
}


__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS, globals())


__all__ = [
    "HISTORY", "JOB", "KNOWN", "MAX_SEGMENT_BYTES", "METADATA_KEY", "PACKAGE_STATE", "SCHEMAS",
    "Artifact", "ArtifactResult", "Column", "FileDigest", "HistoryRow", "JobRow", "PackageStateRow", "Priority",
    "Record", "ResultRow", "SchemaError", "SegmentError", "Status", "TableSchema",
    "build_id", "check_result_fields", "conform", "entry_problem", "field_problem", "fit_text", "result_problem", "format_timestamp", "parse_timestamp", "record_from_json", "record_to_json", "from_table", "is_job_id", "job_id", "parquet_bytes", "parse_build_id",
    "read_parquet", "read_table", "safe_segment", "schema_for", "schema_for_tag", "schema_markdown",
    "table_schema", "to_table", "unescape_segment", "write_parquet",
]
