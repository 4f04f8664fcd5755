"""Records <-> Arrow tables <-> Parquet files, checked against the versioned schemas.

Writers always go through `to_table`, so every file carries its schema tag. Readers
check the tag before touching any row group and then check every column, because the
bytes come from a shared bucket: a file this version cannot interpret is refused with a
`SchemaError` (terminal: reading it again will not help) rather than half-understood.

`from_table` also accepts tables without a tag, such as DuckDB query results, when the
caller names the record type; columns are found by name and cast to the schema's types,
so DuckDB's own spellings (large strings, "Etc/UTC", list child names) are accepted.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Sequence
from enum import Enum
from operator import attrgetter
from typing import BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from jobs.core.model.records import ELEMENT_TYPES, Record
from jobs.core.model.schemas import METADATA_KEY, Column, SchemaError, TableSchema, schema_for, schema_for_tag

Source = str | os.PathLike[str] | bytes | bytearray | memoryview | BinaryIO
Sink = str | os.PathLike[str] | BinaryIO


def _plain(value: object) -> object:
    # Status / Priority members: store the wire value, not the Python enum.
    return value.value if isinstance(value, Enum) else value


def _has_enums(values: Sequence[object]) -> bool:
    return any(issubclass(t, Enum) for t in set(map(type, values)))


def _column_values(records: Sequence[Record], column: Column) -> list[object]:
    values = list(map(attrgetter(column.name), records))
    if column.fields:
        names = [f.name for f in column.fields]
        return [[{n: _plain(getattr(e, n)) for n in names} for e in v] for v in values]
    if pa.types.is_list(column.arrow_type):
        return [list(v) for v in values]
    return [_plain(v) for v in values] if _has_enums(values) else values


def _column_array(records: Sequence[Record], column: Column) -> pa.Array:
    """One column as an Arrow array; a list of records (a job's artifacts) is built field by field.

    The same array as `pa.array(_column_values(...))`, which makes a dict per element first
    (a queue of 10,000 jobs has 15,000 artifacts). Whatever that fast way cannot take as is (a
    null where none may be, a value of the wrong type) is converted the plain way, which gives
    the same error as before.
    """
    kind = column.arrow_type
    if column.fields and pa.types.is_list(kind) and not any(f.fields for f in column.fields):
        lists = list(map(attrgetter(column.name), records))
        try:
            flat = [e for v in lists for e in v]
            offsets = [0]
            for v in lists:
                offsets.append(offsets[-1] + len(v))
            names = [f.name for f in column.fields]
            fields = zip(*map(attrgetter(*names), flat)) if len(names) > 1 and flat else \
                ([getattr(e, n) for e in flat] for n in names)
            children = [pa.array([_plain(v) for v in values] if _has_enums(values) else values, type=f.arrow_type)
                        for f, values in zip(column.fields, fields, strict=True)]
            if all(f.nullable or not a.null_count for f, a in zip(column.fields, children, strict=True)):
                struct = pa.StructArray.from_arrays(children, fields=list(kind.value_type))
                return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), struct, type=kind)
        except (TypeError, AttributeError, pa.ArrowException):
            pass
    return pa.array(_column_values(records, column), type=kind)


def to_table(records: Iterable[Record], record_type: type | None = None) -> pa.Table:
    """An Arrow table of the records, tagged with their schema (record_type needed only when empty)."""
    rows = list(records)
    if record_type is None:
        if not rows:
            raise TypeError("to_table: pass record_type for an empty list of records")
        record_type = type(rows[0])
    schema = schema_for(record_type)
    for row in rows:
        if type(row) is not record_type:
            raise TypeError(f"to_table: mixed record types {record_type.__name__} and {type(row).__name__}")
    arrays = [_column_array(rows, c) for c in schema.columns]
    for array, column in zip(arrays, schema.columns, strict=True):
        _check_nulls(array, column, column.name, None)  # Arrow itself does not check nullability
    return pa.Table.from_arrays(arrays, schema=schema.arrow)


def table_schema(table: pa.Table | pa.Schema, *, source: str | None = None) -> TableSchema | None:
    """The known schema a table's metadata names, None if it has no tag; SchemaError if the tag is unknown."""
    metadata = (table if isinstance(table, pa.Schema) else table.schema).metadata or {}
    tag = metadata.get(METADATA_KEY)
    if tag is None:
        return None
    return schema_for_tag(tag.decode("utf-8", "replace"), source=source)


def _check_nulls(array: pa.Array, column: Column, path: str, source: str | None) -> None:
    if not column.nullable and array.null_count:
        raise SchemaError("null in a non-nullable column", column=path, source=source)
    if column.fields and not pa.types.is_null(array.type):
        # The list's elements (null lists skipped), then each field with the element's own
        # validity merged in, as pyarrow.compute's list_flatten and struct_field give them;
        # without null lists, without pyarrow.compute (40 ms to import, which a sync does not need).
        if array.null_count or not pa.types.is_list(array.type):
            elements = array.flatten()
        else:
            offsets = array.offsets
            start = offsets[0].as_py() if len(array) else 0
            elements = array.values.slice(start, (offsets[-1].as_py() if len(array) else 0) - start)
        children = elements.flatten()
        for field in column.fields:
            child = children[elements.type.get_field_index(field.name)]
            _check_nulls(child, field, f"{path}[].{field.name}", source)


def _kind(t: pa.DataType) -> object:
    # Families a cast may move within (int32 -> int64, string -> large_string, any UTC
    # spelling of a timestamp); a cast across families (int -> string) would silently
    # reinterpret data, so it is refused.
    if pa.types.is_dictionary(t):
        return _kind(t.value_type)
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "string"
    if pa.types.is_timestamp(t):
        return ("timestamp", t.tz is not None)
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return ("list", _kind(t.value_type))
    if pa.types.is_struct(t):
        return ("struct", tuple((t.field(i).name, _kind(t.field(i).type)) for i in range(t.num_fields)))
    return str(t)


def conform(table: pa.Table, schema: TableSchema, *, source: str | None = None) -> pa.Table:
    """The table's columns of `schema`, by name, cast to its types and tagged; SchemaError if impossible."""
    arrays = []
    for column in schema.columns:
        if column.name not in table.column_names and column.added:  # written before the column was
            arrays.append(pa.nulls(table.num_rows, column.arrow_type))
            continue
        if column.name not in table.column_names:
            raise SchemaError("missing column", schema=schema.tag, column=column.name, source=source)
        if table.column_names.count(column.name) > 1:
            raise SchemaError("ambiguous column (appears twice)", schema=schema.tag, column=column.name,
                              source=source)
        found = table.schema.field(column.name).type
        # An all-null column (DuckDB types a bare NULL as "null") fits any nullable type.
        if not pa.types.is_null(found) and _kind(found) != _kind(column.arrow_type):
            raise SchemaError(f"column has type {found}", schema=schema.tag, column=column.name,
                              expected=str(column.arrow_type), source=source)
        array = table.column(column.name).combine_chunks()
        # Before the cast, which would also refuse nested nulls but without naming the field.
        _check_nulls(array, column, column.name, source)
        try:
            if not array.type.equals(column.arrow_type):  # a cast loads pyarrow.compute, even to the same type
                array = array.cast(column.arrow_type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            raise SchemaError(f"column has the wrong type: {exc}", schema=schema.tag, column=column.name,
                              expected=str(column.arrow_type), source=source) from None
        arrays.append(array)
    return pa.Table.from_arrays(arrays, schema=schema.arrow)


def from_table(table: pa.Table, record_type: type | None = None, *, source: str | None = None) -> list[Record]:
    """The records in a table; the type comes from its schema tag or, for untagged tables, `record_type`."""
    schema = table_schema(table, source=source)
    if schema is None:
        if record_type is None:
            raise SchemaError("table has no schema tag: pass record_type", source=source)
        schema = schema_for(record_type)
    elif record_type is not None and schema.record is not record_type:
        raise SchemaError(f"table holds {schema.record.__name__} rows, not {record_type.__name__}",
                          schema=schema.tag, expected=schema_for(record_type).tag, source=source)
    table = conform(table, schema, source=source)
    nested = ELEMENT_TYPES.get(schema.record, {})
    records = []
    for index, row in enumerate(table.to_pylist()):
        try:
            for name, element in nested.items():
                row[name] = tuple(element(**e) for e in row[name])
            records.append(schema.record(**row))
        except (TypeError, ValueError) as exc:
            raise SchemaError(f"row {index} is not a valid {schema.record.__name__}: {exc}",
                              schema=schema.tag, source=source) from None
    return records


def write_parquet(data: pa.Table | Iterable[Record], sink: Sink, record_type: type | None = None) -> None:
    """Write records (or a tagged table) as zstd-compressed Parquet to a path or binary file."""
    if isinstance(data, pa.Table):
        schema = table_schema(data)
        if schema is None:
            raise SchemaError("refusing to write a table without a schema tag (build it with to_table)")
        table = conform(data, schema)
    else:
        table = to_table(data, record_type)
    pq.write_table(table, sink, compression="zstd")


def parquet_bytes(data: pa.Table | Iterable[Record], record_type: type | None = None) -> bytes:
    """The Parquet file of `write_parquet` as bytes, ready for a store `put`."""
    buffer = io.BytesIO()
    write_parquet(data, buffer, record_type)
    return buffer.getvalue()


def _describe(source: Source) -> str:
    return os.fspath(source) if isinstance(source, (str, os.PathLike)) else f"<{type(source).__name__}>"


def _unreadable(exc: Exception, name: str) -> SchemaError:
    # Arrow reports corrupt content as ArrowInvalid or as an OSError without an errno;
    # a real I/O failure (missing file, permissions, disk) carries an errno and is
    # re-raised by the caller instead, since it says nothing about the bytes.
    if isinstance(exc, OSError) and not isinstance(exc, pa.ArrowException) and exc.errno is not None:
        raise exc
    return SchemaError(f"not a readable Parquet file: {exc}", source=name)


def read_table(source: Source) -> pa.Table:
    """A Parquet file (path, bytes or binary file) as a checked, tagged table; SchemaError if unknown."""
    name = _describe(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = pa.BufferReader(bytes(source))
    try:
        parquet = pq.ParquetFile(source)
        # Check the tag from the footer before reading any data.
        schema = table_schema(parquet.schema_arrow, source=name)
        if schema is None:
            raise SchemaError("Parquet file has no rebuilder.schema tag", source=name)
        table = parquet.read()
    except (pa.ArrowInvalid, OSError) as exc:
        raise _unreadable(exc, name) from None
    return conform(table, schema, source=name)


def read_parquet(source: Source) -> list[Record]:
    """The records of a Parquet file written by `write_parquet`; SchemaError for unknown schemas."""
    return from_table(read_table(source), source=_describe(source))
