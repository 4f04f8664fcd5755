"""An Arch sync's build inputs as columns: the snapshot and the new queue rows made from them directly.

`archlinux.read_index(..., columns=True)` keeps each repository's pkgbases (`archlinux.bases`:
the pkgbase, its first package, its packages) instead of a `BuildInput` per pkgbase, and the
sync job writes its snapshot and the queue rows of new jobs column by column from them:
no `BuildInput`, `PackageStateRow`, `JobRow` or `Artifact` per package. The bytes are those
of the object path (`snapshot.snapshot_parquet`, `plan.job_rows`, `queue.update_queue`;
`tests/sync/test_input_columns.py` compares them). Each input's job id is hashed once
(`job_id`), and the queue writer checks every written row's id against its build input
(`jobs.core.queue.check_job_ids`). Where the columns cannot stand for the inputs as they are
(two inputs with one job id, the same repository twice in a profile) `plain` is False and
the job takes the object path (`build_inputs`).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from functools import cached_property
from itertools import accumulate, chain, repeat
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from jobs.core.model import PACKAGE_STATE, Artifact, JobRow, Priority, SchemaError, job_id
from jobs.core.model.parquet import conform
from jobs.core.model.schemas import schema_for
from jobs.sync.records import BinaryEntry, BuildInput
from jobs.sync.snapshot import ROWS_PER_GROUP

Bases = list[tuple[str, BinaryEntry, list[BinaryEntry]]]

# BinaryEntry's positions of Artifact's fields: name, version, architecture, url, sha256, size, filename, component.
_ARTIFACT_FIELDS = (0, 1, 2, 5, 7, 8, 6, 9)


class InputColumns:
    """The build inputs of one profile, repository by repository, as `archlinux.bases` gave them."""

    def __init__(self, *, distro: str, backend: str) -> None:
        self.distro, self.backend = distro, backend
        self.pieces: list[tuple[str, str, Bases]] = []  # (architecture, repository, pkgbases), as read

    def add(self, architecture: str, repo: str, bases: Bases) -> None:
        """One repository database's pkgbases (invalidates nothing: call before anything is read)."""
        self.pieces.append((architecture, repo, bases))

    @property
    def inputs(self) -> int:
        """How many build inputs (one per pkgbase and repository)."""
        return sum(len(b) for _, _, b in self.pieces)

    @property
    def rows(self) -> int:
        """How many artifacts (snapshot rows)."""
        return sum(len(a) for _, _, b in self.pieces for _, _, a in b)

    def build_inputs(self) -> list[BuildInput]:
        """The same inputs as `BuildInput`s, in the order `archlinux.group` makes them."""
        return [BuildInput(distro=self.distro, release=None, architecture=arch, backend=self.backend,
                           source_name=base, source_version=first.version, input_url=first.url,
                           artifacts=tuple(artifacts))
                for arch, _, bases in self.pieces for base, first, artifacts in bases]

    @cached_property
    def job_ids(self) -> list[str]:
        """Each input's job id, in read order (what `plan.job_rows` keys its rows by)."""
        backend = self.backend
        return [job_id(backend, arch, first.url) for arch, _, bases in self.pieces for _, first, _ in bases]

    @cached_property
    def plain(self) -> bool:
        """Whether the columns stand for the inputs: no two share a job id, no repository is read twice."""
        keys = [(arch, repo) for arch, repo, _ in self.pieces]
        return len(set(keys)) == len(keys) and len(set(self.job_ids)) == len(self.job_ids)

    def snapshot_parquet(self, sync_id: str, seen_at: datetime, *, rows_per_group: int = ROWS_PER_GROUP) -> bytes:
        """The bytes `snapshot.snapshot_parquet(self.build_inputs(), ...)` writes (needs `plain`)."""
        if not self.plain:
            raise ValueError("these inputs need the object path (InputColumns.plain is False)")
        if seen_at.tzinfo is None or seen_at.utcoffset() is None:
            raise ValueError(f"seen_at must be timezone-aware (UTC), got naive {seen_at!r}")
        utc = seen_at.astimezone(timezone.utc)
        # The snapshot's order (architecture, component, pkgbase, name, version): repositories
        # sorted, each one's pkgbases already in order with their packages by (name, version, url).
        order = sorted(range(len(self.pieces)), key=lambda i: self.pieces[i][:2])
        ids = dict(zip(map(id, self._firsts), self.job_ids))  # by each input's first entry
        bases = [b for i in order for b in self.pieces[i][2]]
        archs = [arch for i in order for arch in repeat(self.pieces[i][0], len(self.pieces[i][2]))]
        counts = [len(artifacts) for _, _, artifacts in bases]
        entries = list(chain.from_iterable(artifacts for _, _, artifacts in bases))
        n = len(entries)
        fields = list(zip(*entries)) if entries else [[] for _ in BinaryEntry._fields]

        def per_input(values) -> list:  # each input's value on each of its rows
            return list(chain.from_iterable(map(repeat, values, counts)))

        values = {
            "distro": lambda: [self.distro] * n, "release": lambda: [None] * n,
            "architecture": lambda: per_input(archs), "component": lambda: fields[9],
            "source_name": lambda: per_input([b for b, _, _ in bases]),
            "source_version": lambda: per_input([f.version for _, f, _ in bases]),
            "artifact_name": lambda: fields[0], "artifact_version": lambda: fields[1],
            "artifact_architecture": lambda: fields[2], "artifact_url": lambda: fields[5],
            "artifact_sha256": lambda: fields[7], "artifact_size": lambda: fields[8],
            "artifact_filename": lambda: fields[6], "backend": lambda: [self.backend] * n,
            "input_url": lambda: per_input([f.url for _, f, _ in bases]),
            "job_id": lambda: per_input([ids[id(f)] for _, f, _ in bases]),
            "maintainers": lambda: fields[10], "sync_id": lambda: [sync_id] * n, "seen_at": lambda: [utc] * n,
            "description": lambda: fields[11],
        }
        return state_parquet(state_arrays(values), n, rows_per_group)

    @cached_property
    def _inputs(self) -> list[tuple[str, str, BinaryEntry, list[BinaryEntry]]]:
        """(architecture, pkgbase, first package, packages) of each input, in read order."""
        return [(arch, base, first, artifacts) for arch, _, bases in self.pieces for base, first, artifacts in bases]

    @property
    def _firsts(self) -> list[BinaryEntry]:
        return [first for _, _, first, _ in self._inputs]

    def _input(self, index: int) -> tuple[str, str, BinaryEntry, list[BinaryEntry]]:
        return self._inputs[index]

    def job_row(self, index: int, now: datetime, not_before: datetime | None) -> JobRow:
        """The new queue row of input `index` (read order), as `plan.job_rows` makes it."""
        arch, base, first, artifacts = self._input(index)
        return new_job_row(self.job_ids[index], self.backend, self.distro, (arch, first.url, None, base, first.version,
                                                                           artifacts), now, not_before)

    def queue_table(self, indices: list[int], now: datetime, not_before: datetime | None) -> pa.Table:
        """The new queue rows of inputs `indices` (read order) as a JobRow table, in that order."""
        inputs, ids = self._inputs, self.job_ids
        return new_queue_table([ids[i] for i in indices],
                               [(r[0], r[2].url, None, r[1], r[2].version, r[3]) for r in map(inputs.__getitem__, indices)],
                               backend=self.backend, distro=self.distro, now=now, not_before=not_before)


# One new job: (architecture, input URL, release, source name, source version, its artifacts).
NewJob = tuple[str, str, "str | None", str, str, list[BinaryEntry]]


def new_job_row(job: str, backend: str, distro: str, new: NewJob, now: datetime,
                not_before: datetime | None) -> JobRow:
    """The queue row `plan.job_rows` makes for one new job."""
    arch, url, release, source, version, artifacts = new
    return JobRow(job_id=job, backend=backend, architecture=arch, input_url=url, distro=distro, releases=(release,),
                  source_name=source, source_version=version,
                  artifacts=tuple(Artifact(*(e[f] for f in _ARTIFACT_FIELDS)) for e in artifacts),
                  priority=Priority.NEW, queued_at=now, not_before=not_before, attempt=1, retries=0)


def new_queue_table(ids: list[str], rows: list[NewJob], *, backend: str, distro: str, now: datetime,
                    not_before: datetime | None) -> pa.Table:
    """New jobs' queue rows as a JobRow table, column by column (the rows `new_job_row` makes, in order)."""
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
    values = {
        "job_id": ids, "backend": [backend] * m, "architecture": [r[0] for r in rows],
        "input_url": [r[1] for r in rows], "distro": [distro] * m, "releases": [[r[2]] for r in rows],
        "source_name": [r[3] for r in rows], "source_version": [r[4] for r in rows],
        "artifacts": pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), struct, type=kind),
        "priority": [int(Priority.NEW)] * m, "queued_at": [utc] * m, "not_before": [due] * m,
        "attempt": [1] * m, "retries": [0] * m,
    }
    arrays = [v if isinstance(v := values[c.name], pa.Array) else pa.array(v, type=c.arrow_type)
              for c in schema.columns]
    return pa.Table.from_arrays(arrays, schema=schema.arrow)


def state_arrays(values: dict[str, Callable[[], list[Any]]]) -> list[pa.Array]:
    """The snapshot's columns, each made by its function in `values` (by column name) and checked for nulls."""
    arrays = []
    for column in PACKAGE_STATE.columns:
        arrays.append(pa.array(values[column.name](), type=column.arrow_type))
        if not column.nullable and arrays[-1].null_count:
            raise SchemaError("null in a non-nullable column", column=column.name)
    return arrays


def state_parquet(arrays: list[pa.Array], n: int, rows_per_group: int) -> bytes:
    """The snapshot's Parquet bytes from its `n` rows' columns, `rows_per_group` rows a row group."""
    table = pa.Table.from_arrays(arrays, schema=PACKAGE_STATE.arrow)
    arrays.clear()  # the columns now live in the table only
    sink = io.BytesIO()
    writer = None
    for start in range(0, max(n, 1), rows_per_group):
        part = conform(table.slice(start, rows_per_group), PACKAGE_STATE)
        if writer is None:
            writer = pq.ParquetWriter(sink, part.schema, compression="zstd")
        writer.write_table(part)
    writer.close()
    return sink.getvalue()


def not_before_of(now: datetime, initial_delay: float | int) -> datetime | None:
    """When a new job becomes due (`plan.job_rows`'s rule)."""
    return now + timedelta(seconds=initial_delay) if initial_delay else None
