"""The synced state's artifacts, to match a rebuilderd package to the job that builds it."""

from __future__ import annotations

import urllib.parse

import pyarrow as pa
import pyarrow.compute as pc

from jobs.core.model import PackageStateRow, from_table
from jobs.importer.database import Package


class StateIndex:
    """The synced state's artifacts by (distro, component, name, version, decoded URL)."""

    def __init__(self, state: pa.Table) -> None:
        self.state = state
        self.by_key: dict[tuple, list[tuple[str, str]]] = {}
        columns = [state.column(c).to_pylist() for c in ("distro", "component", "artifact_name", "artifact_version",
                                                          "artifact_url", "job_id", "architecture")]
        for distro, component, name, version, url, job, arch in zip(*columns):
            entry = self.by_key.setdefault((distro, component, name, version, urllib.parse.unquote(url)), [])
            if (job, arch) not in entry:
                entry.append((job, arch))

    def job_of(self, p: Package) -> str | None:
        found = self.by_key.get((p.distro, p.suite, p.name, p.version, urllib.parse.unquote(p.artifact_url)), [])
        if len(found) > 1:
            found = [f for f in found if f[1] == p.architecture]
        return found[0][0] if len(found) == 1 else None

    def rows_of(self, job_ids: set[str]) -> dict[str, list[PackageStateRow]]:
        table = self.state.filter(pc.is_in(self.state.column("job_id"), value_set=pa.array(sorted(job_ids))))
        out: dict[str, list[PackageStateRow]] = {}
        for row in from_table(table, PackageStateRow, source="state"):
            out.setdefault(row.job_id, []).append(row)
        return out
