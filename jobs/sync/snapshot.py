"""A sync's package-state snapshot as Parquet bytes, written a slice of rows at a time.

`jobs.sync.records.state_table` followed by `parquet_bytes` holds the whole snapshot as one
Arrow table and then the Parquet writer's buffers for all of it at once, on top of the parsed
index: for bookworm main amd64 (82,000 artifacts) that was 100 MiB of the sync's peak. Here
the rows, in the snapshot's order, are made into a table `rows_per_group` at a time, each
written as its own row group and dropped: the same rows, columns, types and schema tag (a
reader sees the same table), with Arrow memory for one slice.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import datetime, timezone

import pyarrow.parquet as pq

from jobs.core.model import PACKAGE_STATE
from jobs.core.model.parquet import conform
from jobs.sync.records import BuildInput, state_columns, state_pairs

ROWS_PER_GROUP = 16_384


def snapshot_parquet(inputs: Sequence[BuildInput], sync_id: str, seen_at: datetime, *,
                     rows_per_group: int = ROWS_PER_GROUP) -> bytes:
    """The Parquet file of `state_table(inputs, sync_id, seen_at)`, one row group per `rows_per_group` rows."""
    if seen_at.tzinfo is None or seen_at.utcoffset() is None:
        raise ValueError(f"seen_at must be timezone-aware (UTC), got naive {seen_at!r}")
    utc = seen_at.astimezone(timezone.utc)
    pairs = state_pairs(inputs)
    sink = io.BytesIO()
    writer = None
    for start in range(0, max(len(pairs), 1), rows_per_group):
        table = conform(state_columns(pairs[start:start + rows_per_group], sync_id, utc), PACKAGE_STATE)
        if writer is None:
            writer = pq.ParquetWriter(sink, table.schema, compression="zstd")
        writer.write_table(table)
        del table
    writer.close()
    return sink.getvalue()
