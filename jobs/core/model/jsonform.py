"""Records <-> plain JSON objects, for the JSON objects in the bucket and the feeds.

A worker's result (stored as its done receipt, `claims/<job-id>/<attempt>.done/<key-id>.json`) is a `ResultRow` in this form
before it is signed, and publish reads it back with `record_from_json` before it
compacts results into the history table; so the JSON and Parquet forms of a record
carry the same fields with the same meaning, named as in `schema_markdown()`.

Timestamps are RFC 3339 in UTC with a "Z" and microseconds, never rebuilderd's naive
`NaiveDateTime` strings, whose zone a reader would have to guess. Reading is strict
(unknown or missing keys are refused) because these objects are untrusted input.
"""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime, timezone
from enum import Enum
from typing import Any

import pyarrow as pa

from jobs.core.model.records import ELEMENT_TYPES, Record
from jobs.core.model.schemas import Column, SchemaError, schema_for


def format_timestamp(value: datetime) -> str:
    """RFC 3339 in UTC with microseconds and "Z", e.g. "2026-05-01T12:34:56.123456Z"."""
    # isoformat, unlike strftime("%Y"), pads years before 1000 to four digits.
    return value.astimezone(timezone.utc).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def parse_timestamp(text: str) -> datetime:
    """A timezone-aware UTC datetime from RFC 3339 text; ValueError if naive or malformed."""
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError(f"timestamp without a timezone: {text!r}")
    try:
        return value.astimezone(timezone.utc)
    except OverflowError:  # 0001-01-01T00:00+14:00: a date whose UTC is before year 1 (or after 9999)
        raise ValueError(f"timestamp out of range in UTC: {text!r}") from None


def _plain(value: object) -> object:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "__dataclass_fields__"):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    return value


def record_to_json(record: Record) -> dict[str, Any]:
    """The record as a JSON-ready dict (enums as wire values, timestamps as RFC 3339 text)."""
    schema_for(type(record))  # only table records have a documented JSON form
    return _plain(record)  # type: ignore[return-value]


def _keys(data: object, expected: list[str], what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise SchemaError(f"{what} must be a JSON object, got {type(data).__name__}")
    missing = [k for k in expected if k not in data]
    unknown = [k for k in data if k not in expected]
    if missing or unknown:
        raise SchemaError(f"{what} has missing keys {missing} / unknown keys {unknown}")
    return dict(data)


def _scalar(name: str, t: pa.DataType, nullable: bool, value: object) -> object:
    if value is None:
        if not nullable:
            raise ValueError(f"{name} must not be null")
        return None
    if pa.types.is_timestamp(t):
        if not isinstance(value, str):
            raise ValueError(f"{name} must be a timestamp string, got {value!r}")
        return parse_timestamp(value)
    if pa.types.is_string(t) and isinstance(value, str):
        return value
    if pa.types.is_integer(t) and isinstance(value, int) and not isinstance(value, bool):
        # Refuse here what the Parquet column could not hold later.
        if not -(2 ** (t.bit_width - 1)) <= value < 2 ** (t.bit_width - 1):
            raise ValueError(f"{name} is out of range for {t}: {value!r}")
        return value
    raise ValueError(f"{name} must be {t}, got {value!r}")


def _value(column: Column, value: object) -> object:
    t = column.arrow_type
    if not pa.types.is_list(t):
        return _scalar(column.name, t, column.nullable, value)
    if not isinstance(value, list):
        raise ValueError(f"{column.name} must be a JSON array, got {value!r}")
    item = t.value_field
    return tuple(_scalar(f"{column.name}[]", item.type, item.nullable, v) for v in value)


def _element(element_type: type, column: Column, data: object, what: str) -> object:
    item = _keys(data, [f.name for f in column.fields], what)
    return element_type(**{f.name: _value(f, item[f.name]) for f in column.fields})


def record_from_json(record_type: type, data: object) -> Record:
    """The record a `record_to_json` dict describes; SchemaError if it is not exactly one."""
    schema = schema_for(record_type)
    what = record_type.__name__
    row = _keys(data, [c.name for c in schema.columns], what)
    elements = ELEMENT_TYPES.get(record_type, {})
    try:
        for column in schema.columns:
            value = row[column.name]
            if column.fields:
                if not isinstance(value, list):
                    raise ValueError(f"{column.name} must be a JSON array, got {value!r}")
                row[column.name] = tuple(_element(elements[column.name], column, e, f"{what}.{column.name}[]")
                                         for e in value)
            else:
                row[column.name] = _value(column, value)
        return record_type(**row)
    except (TypeError, ValueError) as exc:
        raise SchemaError(f"not a valid {what}: {exc}", schema=schema.tag) from None
