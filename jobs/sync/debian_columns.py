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

from datetime import datetime, timezone
from functools import cached_property
from itertools import chain, repeat

import pyarrow as pa

from jobs.core.model import JobRow, job_id
from jobs.sync.columns import new_job_row, new_queue_table, state_arrays, state_parquet
from jobs.sync.records import BinaryEntry, BuildInput
from jobs.sync.snapshot import ROWS_PER_GROUP

# (release, architecture, source name, source version, input URL, artifacts)
Input = tuple[str, str, str, str, str, list[BinaryEntry]]


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
        arrays = state_arrays(values)
        values.clear()  # the lists the columns were made from go before the Parquet writer's buffers
        fields = entries = owner = []
        return state_parquet(arrays, n, rows_per_group)

    def job_row(self, index: int, now: datetime, not_before: datetime | None) -> JobRow:
        """The new queue row of input `index`, as `plan.job_rows` makes it."""
        release, arch, src, version, url, artifacts = self.listed[index]
        return new_job_row(self.job_ids[index], self.backend, self.distro, (arch, url, release, src, version, artifacts),
                           now, not_before)

    def queue_table(self, indices: list[int], now: datetime, not_before: datetime | None) -> pa.Table:
        """The new queue rows of inputs `indices` as a JobRow table, in that order."""
        listed, ids = self.listed, self.job_ids
        return new_queue_table([ids[i] for i in indices],
                               [(r[1], r[4], r[0], r[2], r[3], r[5]) for r in map(listed.__getitem__, indices)],
                               backend=self.backend, distro=self.distro, now=now, not_before=not_before)
