"""Store states for the site tests: a real sync of a generated Arch db, results in the history layout.

`arch_world` syncs a small repository database (tests/sync/alpm_builders) into a local
store with the real sync job, then writes build results the way workers and publish
leave them: gzip logs and reports under `builds/<build-id>/<token>/`, history parts behind
`history/HEAD.json`, a live claim under `claims/` and a worker enrolment record.
"""

from __future__ import annotations

import gzip
import json
import tomllib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from jobs.core.config import RebuilderConfig, parse_sync_config
from jobs.core.history import PREFIX as HISTORY
from jobs.core.history import history_parts
from jobs.core.lease import Leases
from jobs.core.model import (
    Artifact,
    ArtifactResult,
    HistoryRow,
    PackageStateRow,
    ResultRow,
    Status,
    build_id,
    parquet_bytes,
    read_parquet,
)
from jobs.core.pointer import Pointer, unique_name
from jobs.core.queue import read_queue
from jobs.core.store import Store, open_store
from jobs.sync.run import sync_profile
from jobs.work.report import digest_of
from tests.sync import alpm_builders as alpm

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)
DAY = timedelta(days=1)
WORKER_KEY = "a1b2c3d4e5f60718"
TEXT = "text/plain; charset=utf-8"


def snapshot(store: Store, profile: str = "fixture") -> list[PackageStateRow]:
    value, _ = Pointer(store, f"state/{profile}").read()
    return read_parquet(store.get(value.target).data)


def sync_arch(store: Store, mirror_root: Path, packages: list, *, repo: str = "core", arch: str = "x86_64") -> None:
    """Write a repo db of `packages` (alpm.package(...) members) and run the real sync on it."""
    directory = mirror_root / repo / "os" / arch
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{repo}.db").write_bytes(alpm.db([m for p in packages for m in p]))
    text = "\n".join(['[profile."fixture"]', 'distro = "archlinux"', f'components = ["{repo}"]',
                      f'architectures = ["{arch}"]', f'source = "{mirror_root.as_uri()}/$repo/os/$arch"'])
    sync_profile(store, RebuilderConfig(), parse_sync_config(tomllib.loads(text)).profile("fixture"))


def write_state(store: Store, profile: str, rows: list[PackageStateRow]) -> None:
    """A snapshot written by hand (for names no real index parser would accept)."""
    pointer = Pointer(store, f"state/{profile}")
    current, etag = pointer.read()
    key = f"state/{profile}/{unique_name('.parquet')}"
    store.put(key, parquet_bytes(rows, PackageStateRow))
    pointer.advance(key, {}, current, etag)


def state_row(name: str, version: str = "1-1", *, source: str | None = None, distro: str = "archlinux",
              component: str | None = "core", arch: str = "x86_64", release: str | None = None) -> PackageStateRow:
    source = source or name
    artifact = Artifact(name=name, version=version, architecture=arch, url=f"https://mirror.example/{name}.pkg",
                        component=component)
    return PackageStateRow.for_artifact(artifact, distro=distro, release=release, architecture=arch,
                                        source_name=source, source_version=version, backend="archlinux",
                                        input_url=f"https://mirror.example/{source}-{version}.pkg.tar.zst",
                                        sync_id="hand", seen_at=NOW)


def put_gzip(store: Store, key: str, text: str, content_type: str = TEXT) -> str:
    store.put(key, gzip.compress(text.encode(), mtime=0), content_type=content_type, content_encoding="gzip")
    return key


@dataclass
class Results:
    """Builds a history the way workers and publish leave it."""

    store: Store
    rows: list[ResultRow] = field(default_factory=list)

    def add(self, job: PackageStateRow, attempt: int, status: Status, *, built_at: datetime,
            artifacts: dict[str, Status] | None = None, reason: str | None = None, log: str = "build log\n",
            diffoscope: str | None = None, html: bool = False, attestation: dict | None = None,
            worker: str | None = "builder-1", job_artifacts: list[str] | None = None) -> ResultRow:
        bid = build_id(job.job_id, attempt)
        prefix = f"builds/{bid}/tok{attempt}"
        names = job_artifacts or [job.artifact_name]
        if artifacts is None:
            artifacts = {} if status is Status.FAIL else {n: status for n in names}
        diffoscope_key = put_gzip(self.store, f"{prefix}/diffoscope.txt", diffoscope) if diffoscope else None
        if html:
            put_gzip(self.store, f"{prefix}/diffoscope.html", f"<html><body>{diffoscope}</body></html>",
                     "text/html; charset=utf-8")
        attestation_key = None
        if attestation is not None:
            attestation_key = f"{prefix}/attestation.json"
            self.store.put(attestation_key, json.dumps(attestation).encode(), content_type="application/json")
        log_key = put_gzip(self.store, f"{prefix}/log", log)
        files = tuple(digest_of(info.key, self.store.get(info.key).data)
                      for info in self.store.list(prefix + "/"))  # as a worker signs them
        row = ResultRow(build_id=bid, job_id=job.job_id, attempt=attempt, distro=job.distro,
                        architecture=job.architecture, source_name=job.source_name, source_version=job.source_version,
                        status=status, reason=reason,
                        artifacts=tuple(ArtifactResult(n, s, "0" * 64) for n, s in artifacts.items()),
                        worker_key_id=WORKER_KEY, worker_name=worker, started_at=built_at - timedelta(minutes=5),
                        built_at=built_at, log_key=log_key,
                        diffoscope_key=diffoscope_key, attestation_key=attestation_key, files=files)
        self.rows.append(row)
        return row

    def compact(self) -> None:
        """Append the added rows as one new history part (manifest order = row order = v0 ids)."""
        if not self.rows:
            return
        parts = history_parts(self.store)
        name = unique_name("")
        part = f"{HISTORY}/part-{name}.parquet"
        self.store.put(part, parquet_bytes(self.rows, HistoryRow))
        manifest = f"{HISTORY}/manifest-{name}.json"
        self.store.put(manifest, json.dumps({"schema": "rebuilder.history-manifest/1",
                                             "parts": [*parts, part]}).encode())
        pointer = Pointer(self.store, HISTORY)
        current, etag = pointer.read()
        pointer.advance(manifest, {}, current, etag)
        self.rows = []


def enrol_worker(store: Store, name: str = "builder-1", key_id: str = WORKER_KEY) -> None:
    store.put(f"workers/{key_id}.json", json.dumps({"signed": {"name": name, "key_id": key_id},
                                                    "signatures": []}).encode())


def claim(store: Store, job_id: str, *, worker: str = "builder-1", age: timedelta = timedelta(minutes=5)) -> None:
    """A live claim on the queued job's current attempt, taken `age` before NOW."""
    job = read_queue(store).jobs[job_id]
    leases = Leases(store, ttl=3600, clock=lambda: (NOW - age).timestamp())
    leases.acquire(f"claims/{job_id}/{job.attempt}.json", WORKER_KEY, meta={"worker": worker,
                                                                          "job_id": job_id, "attempt": job.attempt})


@dataclass
class World:
    """A store after a sync and some builds, with the rows it was made of."""

    store: Store
    rows: dict[str, PackageStateRow]  # by artifact name
    results: Results


def arch_world(tmp_path: Path) -> World:
    """foo GOOD, bar BAD (diffoscope), baz FAIL (FTBFS in the log), qux never built (and building now),
    split-a/split-b of pkgbase splitbase BAD with one GOOD artifact, regress GOOD then BAD."""
    store = open_store((tmp_path / "store").as_uri())
    sync_arch(store, tmp_path / "mirror", [
        alpm.package("foo", "1.0-1"), alpm.package("bar", "2.0-1"), alpm.package("baz", "1-1"),
        alpm.package("qux", "3-1"), alpm.package("split-a", "1-1", base="splitbase"),
        alpm.package("split-b", "1-1", base="splitbase"), alpm.package("regress", "5-1"),
    ])
    rows = {r.artifact_name: r for r in snapshot(store)}
    results = Results(store)
    results.add(rows["regress"], 1, Status.GOOD, built_at=NOW - 3 * DAY, attestation={"signed": {"_type": "link"}})
    results.add(rows["foo"], 1, Status.GOOD, built_at=NOW - 2 * DAY, attestation={"signed": {"_type": "link"}})
    results.add(rows["bar"], 1, Status.BAD, built_at=NOW - 2 * DAY, reason="not reproducible: bar differs",
                diffoscope="--- a\n+++ b\n", html=True)
    results.add(rows["baz"], 1, Status.FAIL, built_at=NOW - DAY, reason="backend exited with status 1",
                log="==> Starting build()...\n==> ERROR: A failure occurred in build().\n    Aborting...\n")
    results.add(rows["split-a"], 1, Status.BAD, built_at=NOW - DAY, reason="not reproducible: split-b differs",
                artifacts={"split-a": Status.GOOD, "split-b": Status.BAD}, diffoscope="diff")
    results.compact()
    results.add(rows["regress"], 2, Status.BAD, built_at=NOW - DAY / 2, reason="not reproducible: regress differs")
    results.compact()
    enrol_worker(store)
    claim(store, rows["qux"].job_id)
    return World(store, rows, results)
