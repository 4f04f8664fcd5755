"""A Debian sync's build inputs as columns: the snapshot and the new queue rows made from them directly.

`debian.read_index(..., columns=True)` keeps each build input as a plain tuple (release,
architecture, source, source version, input URL, its `BinaryEntry`s in the order first read)
instead of a `BuildInput`, and the sync job writes its snapshot and the queue rows of its new
jobs column by column from them: no `BuildInput`, `PackageStateRow`, `JobRow` or `Artifact`
per package (the Arch twin is `jobs.sync.columns.InputColumns`; the object this one stands
in for has the same methods). The bytes are those of the object path
(`snapshot.snapshot_parquet`, `plan.job_rows`, `queue.update_queue`;
`tests/sync/test_debian_columns.py` compares them). Where the columns cannot stand for the
inputs (two inputs with one job id: the same source version in two releases, which
`plan.job_rows` merges into one job listing both) `plain` is False and the job takes the
object path (`build_inputs`).
"""

from __future__ import annotations

import io
from datetime import datetime, timezone
from functools import cached_property
from itertools import accumulate, chain, repeat

import pyarrow as pa
import pyarrow.parquet as pq

from jobs.core.model import PACKAGE_STATE, Artifact, JobRow, Priority, SchemaError, job_id
from jobs.core.model.parquet import conform
from jobs.core.model.schemas import schema_for
from jobs.sync.records import BinaryEntry, BuildInput
from jobs.sync.snapshot import ROWS_PER_GROUP

# (release, architecture, source name, source version, input URL, artifacts)
Input = tuple[str, str, str, str, str, list[BinaryEntry]]

# BinaryEntry's positions of Artifact's fields: name, version, architecture, url, sha256, size, filename, component.
_ARTIFACT_FIELDS = (0, 1, 2, 5, 7, 8, 6, 9)


class DebianColumns:
    """The build inputs of one Debian profile, sorted as `debian.read_index` lists them."""

    def __init__(self, inputs: list[Input], *, distro: str, backend: str) -> None:
        self.distro, self.backend = distro, backend
        self.listed = inputs

    @property
    def inputs(self) -> int:
        """How many build inputs."""
        return len(self.listed)

    @property
    def rows(self) -> int:
        """How many artifacts (snapshot rows)."""
        return sum(len(i[5]) for i in self.listed)

    def build_inputs(self) -> list[BuildInput]:
        """The same inputs as `BuildInput`s, in the same order."""
        return [BuildInput(distro=self.distro, release=release, architecture=arch, backend=self.backend,
                           source_name=src, source_version=version, input_url=url, artifacts=tuple(artifacts))
                for release, arch, src, version, url, artifacts in self.listed]

    @cached_property
    def job_ids(self) -> list[str]:
        """Each input's job id, in order (what `plan.job_rows` keys its rows by)."""
        backend = self.backend
        return [job_id(backend, i[1], i[4]) for i in self.listed]

    @cached_property
    def releases(self) -> list[tuple[str]]:
        """Each input's releases as its queue row lists them (one: `plain` inputs have no friends)."""
        return [(i[0],) for i in self.listed]

    @cached_property
    def plain(self) -> bool:
        """Whether the columns stand for the inputs: no two share a job id."""
        return len(set(self.job_ids)) == len(self.job_ids)

    def snapshot_parquet(self, sync_id: str, seen_at: datetime, *, rows_per_group: int = ROWS_PER_GROUP) -> bytes:
        """The bytes `snapshot.snapshot_parquet(self.build_inputs(), ...)` writes (needs `plain`)."""
        if not self.plain:
            raise ValueError("these inputs need the object path (DebianColumns.plain is False)")
        if seen_at.tzinfo is None or seen_at.utcoffset() is None:
            raise ValueError(f"seen_at must be timezone-aware (UTC), got naive {seen_at!r}")
        utc = seen_at.astimezone(timezone.utc)
        listed, ids = self.listed, self.job_ids
        # `records.state_pairs`'s order: (distro, release, architecture, component, source, name, version),
        # stable, from the inputs in order and each one's artifacts in order.
        owner = list(chain.from_iterable(map(repeat, range(len(listed)), (len(i[5]) for i in listed))))
        entries = list(chain.from_iterable(i[5] for i in listed))
        keys = [(listed[k][0] or "", listed[k][1], e.component or "", listed[k][2], e.name, e.version)
                for k, e in zip(owner, entries)]
        order = sorted(range(len(entries)), key=keys.__getitem__)
        del keys
        owner = [owner[k] for k in order]
        entries = [entries[k] for k in order]
        n = len(entries)
        fields = list(zip(*entries)) if entries else [[] for _ in BinaryEntry._fields]

        def per_row(position: int) -> list:
            column = [i[position] for i in listed]
            return [column[k] for k in owner]

        values = {
            "distro": lambda: [self.distro] * n, "release": lambda: per_row(0),
            "architecture": lambda: per_row(1), "component": lambda: fields[9],
            "source_name": lambda: per_row(2), "source_version": lambda: per_row(3),
            "artifact_name": lambda: fields[0], "artifact_version": lambda: fields[1],
            "artifact_architecture": lambda: fields[2], "artifact_url": lambda: fields[5],
            "artifact_sha256": lambda: fields[7], "artifact_size": lambda: fields[8],
            "artifact_filename": lambda: fields[6], "backend": lambda: [self.backend] * n,
            "input_url": lambda: per_row(4), "job_id": lambda: [ids[k] for k in owner],
            "maintainers": lambda: fields[10], "sync_id": lambda: [sync_id] * n, "seen_at": lambda: [utc] * n,
            "description": lambda: fields[11],
        }
        arrays = []
        for column in PACKAGE_STATE.columns:
            arrays.append(pa.array(values[column.name](), type=column.arrow_type))
            if not column.nullable and arrays[-1].null_count:
                raise SchemaError("null in a non-nullable column", column=column.name)
        values.clear()  # the lists the columns were made from go before the Parquet writer's buffers
        fields = entries = owner = []
        table = pa.Table.from_arrays(arrays, schema=PACKAGE_STATE.arrow)
        del arrays
        sink = io.BytesIO()
        writer = None
        for start in range(0, max(n, 1), rows_per_group):
            part = conform(table.slice(start, rows_per_group), PACKAGE_STATE)
            if writer is None:
                writer = pq.ParquetWriter(sink, part.schema, compression="zstd")
            writer.write_table(part)
        writer.close()
        return sink.getvalue()

    def job_row(self, index: int, now: datetime, not_before: datetime | None) -> JobRow:
        """The new queue row of input `index`, as `plan.job_rows` makes it."""
        release, arch, src, version, url, artifacts = self.listed[index]
        return JobRow(job_id=self.job_ids[index], backend=self.backend, architecture=arch, input_url=url,
                      distro=self.distro, releases=(release,), source_name=src, source_version=version,
                      artifacts=tuple(Artifact(*(e[f] for f in _ARTIFACT_FIELDS)) for e in artifacts),
                      priority=Priority.NEW, queued_at=now, not_before=not_before, attempt=1, retries=0)

    def queue_table(self, indices: list[int], now: datetime, not_before: datetime | None) -> pa.Table:
        """The new queue rows of inputs `indices` as a JobRow table, in that order."""
        rows = list(map(self.listed.__getitem__, indices))
        schema = schema_for(JobRow)
        m = len(rows)
        utc = now.astimezone(timezone.utc)
        due = not_before.astimezone(timezone.utc) if not_before is not None else None
        flat = list(chain.from_iterable(r[5] for r in rows))
        offsets = [0, *accumulate(len(r[5]) for r in rows)]
        kind = schema.arrow.field("artifacts").type
        fields = list(zip(*flat)) if flat else [[] for _ in BinaryEntry._fields]
        children = [pa.array(fields[f], type=t.type) for f, t in zip(_ARTIFACT_FIELDS, kind.value_type, strict=True)]
        for child, t in zip(children, kind.value_type, strict=True):
            if not t.nullable and child.null_count:
                raise SchemaError("null in a non-nullable field", column=f"artifacts.{t.name}")
        struct = pa.StructArray.from_arrays(children, fields=list(kind.value_type))
        ids = self.job_ids
        values = {
            "job_id": [ids[i] for i in indices], "backend": [self.backend] * m, "architecture": [r[1] for r in rows],
            "input_url": [r[4] for r in rows], "distro": [self.distro] * m, "releases": [[r[0]] for r in rows],
            "source_name": [r[2] for r in rows], "source_version": [r[3] for r in rows],
            "artifacts": pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), struct, type=kind),
            "priority": [int(Priority.NEW)] * m, "queued_at": [utc] * m, "not_before": [due] * m,
            "attempt": [1] * m, "retries": [0] * m,
        }
        arrays = [v if isinstance(v := values[c.name], pa.Array) else pa.array(v, type=c.arrow_type)
                  for c in schema.columns]
        return pa.Table.from_arrays(arrays, schema=schema.arrow)
