"""A synthetic store for the publish benchmark: N packages, M builds, written directly.

Nothing runs sync or workers here: the snapshots, the history parts and the queue are
written as Parquet with the model's own schemas, behind their pointers, the way
`tests/publish/sitefix.py` writes a history. Shape:

- four suites in three profiles (Arch core and extra, Debian bookworm and trixie main);
  85% of sources build one binary package, 15% two to four (split packages / pkgbases);
- every build row belongs to a source, spread unevenly (exponential weights); a source's
  rows are attempts of its current version and of older versions that are no longer in
  any snapshot (their builds still show on the package's page); every attempt but the
  last of a job is BAD or FAIL (a GOOD result ends a job), the last is 85% GOOD, 8% BAD,
  7% FAIL; 3% of current versions were never built (UNKWN);
- the queue holds what the scheduler would keep: never-built and BAD/FAIL current jobs;
- stored build files exist only for a fraction of the builds (`log_fraction`): a gzip log,
  a diffoscope report for BAD ones (half with the HTML report), a worker-signed in-toto
  attestation for GOOD ones. Every other history row names no file at all, so publish
  neither copies nor retries anything for it (a missing file would be retried every run);
- failure reasons are the worker's precise one-liners, except 2% vague ones whose class
  comes from the log tail (read only for builds that have a log);
- a few live claims on queued jobs, so the dashboard lists running builds.

`add_results` then writes real signed results (claim, log, result carrying its
attestation) for queued jobs, exactly what `publish_state` verifies and compacts.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from jobs.core.config import RebuilderConfig, parse_rebuilder_config
from jobs.core.layout import build_prefix, claim_key, claim_notice_key
from jobs.core.lease import Leases
from jobs.core.model import (
    HISTORY,
    PACKAGE_STATE,
    Artifact,
    ArtifactResult,
    FileDigest,
    JobRow,
    Priority,
    ResultRow,
    Status,
    job_id,
    parquet_bytes,
    record_to_json,
)
from jobs.core.pointer import Pointer, unique_name
from jobs.core.queue import PREFIX as QUEUE
from jobs.core.signing import ensure_key, generate_key, key_id, make_link, public_key_b64, sign_document, sign_link
from jobs.core.store import LocalStore, Store
from jobs.publish.state.compact import MANIFEST_SCHEMA, PARQUET
from jobs.publish.state.verify import RESULT_SCHEMA

# (profile, distro, release, component, architecture, backend, share of the packages)
SUITES = (("arch", "archlinux", None, "core", "x86_64", "archlinux", 0.05),
          ("arch", "archlinux", None, "extra", "x86_64", "archlinux", 0.45),
          ("bookworm", "debian", "bookworm", "main", "amd64", "debian", 0.30),
          ("trixie", "debian", "trixie", "main", "amd64", "debian", 0.20))
WORDS = ("lib python perl haskell qt6 kde gnome rust go node ruby font texlive xorg gst mesa "
         "java php lua ocaml r zsh vim emacs").split()
FAIL_REASONS = ("backend exited with status 2: ==> ERROR: A failure occurred in build().",
                "download failed: 404 Not Found", "build timed out after 7200 s",
                "target not found: libfoo-ng", "sha256 mismatch for the source tarball",
                "dpkg-buildpackage: error: debian/rules build subprocess returned exit status 2")
VAGUE = "backend exited with status 1"
HISTORY_PART_ROWS = 100_000
LOG_TAIL = ("==> Starting build()...\n" + "cc -O2 -c src/file.c -o src/file.o\n" * 40
            + "==> ERROR: A failure occurred in build().\n    Aborting...\n")


@dataclass(frozen=True)
class Source:
    """One source package of one suite and the binary names it builds."""

    suite: int
    name: str
    version: str
    binaries: tuple[str, ...]

    def input_url(self, version: str) -> str:
        profile, distro, release, component, arch, backend, _ = SUITES[self.suite]
        if distro == "archlinux":
            return f"https://mirror.example/{component}/os/{arch}/{self.binaries[0]}-{version}-{arch}.pkg.tar.zst"
        return f"https://buildinfos.example/{release}/{self.name}_{version}_{arch}.buildinfo"

    def job(self, version: str) -> str:
        _, _, _, _, arch, backend, _ = SUITES[self.suite]
        return job_id(backend, arch, self.input_url(version))


@dataclass
class World:
    """The synthetic store, the config and worker key that trust its results, and what it holds."""

    root: Path
    config: RebuilderConfig
    worker: Ed25519PrivateKey
    now: datetime
    queued: list[JobRow]  # jobs a new result may be written for (no live claim on them)
    counts: dict[str, int] = field(default_factory=dict)

    def store(self, *, fsync: bool = True) -> LocalStore:
        return LocalStore(self.root / "store", fsync=fsync)


def _sources(rnd: random.Random, packages: int) -> list[Source]:
    out: list[Source] = []
    seen: set[tuple[str, str]] = set()
    left = packages
    for index, suite in enumerate(SUITES):
        distro, want = suite[1], round(packages * suite[6]) if index < len(SUITES) - 1 else left
        have = 0
        while have < want:
            name = f"{rnd.choice(WORDS)}-{rnd.getrandbits(32):08x}"
            count = 1 if rnd.random() < 0.85 else rnd.randint(2, 4)
            count = min(count, want - have)
            binaries = (name,) + tuple(f"{name}-{rnd.choice(WORDS)}{k}" for k in range(1, count))
            if any((distro, b) in seen for b in binaries):
                continue
            seen.update((distro, b) for b in binaries)
            version = f"{rnd.randint(0, 30)}.{rnd.randint(0, 99)}.{rnd.randint(0, 9)}-{rnd.randint(1, 5)}"
            out.append(Source(index, name, version, binaries))
            have += count
        left -= want
    return out


def _state_table(sources: list[Source], profile: str, now: datetime) -> pa.Table:
    cols: dict[str, list] = {c.name: [] for c in PACKAGE_STATE.columns}
    for s in sources:
        prof, distro, release, component, arch, backend, _ = SUITES[s.suite]
        if prof != profile:
            continue
        url, jid = s.input_url(s.version), s.job(s.version)
        for b in s.binaries:
            values = dict(distro=distro, release=release, architecture=arch, component=component,
                          source_name=s.name, source_version=s.version, artifact_name=b, artifact_version=s.version,
                          artifact_architecture=arch, artifact_url=f"https://mirror.example/pool/{b}_{s.version}",
                          artifact_sha256=None, artifact_size=None, artifact_filename=None, backend=backend,
                          input_url=url, job_id=jid, maintainers=[f"Packager <{s.name[:3]}@example.org>"],
                          sync_id="bench", seen_at=now, description=f"The {b} package")
            for k, v in values.items():
                cols[k].append(v)
    return pa.Table.from_pydict(cols, schema=PACKAGE_STATE.arrow)


def _point(store: Store, prefix: str, key: str, body: bytes) -> None:
    store.put(key, body, content_type=PARQUET)
    pointer = Pointer(store, prefix)
    current, etag = pointer.read()
    pointer.advance(key, {}, current, etag)


@dataclass
class _Build:
    source: Source
    version: str
    attempt: int
    status: Status
    built_at: datetime


def _plan_builds(rnd: random.Random, sources: list[Source], builds: int, now: datetime
                 ) -> tuple[list[_Build], dict[str, tuple[Source, int, Status | None]]]:
    """Every build row (in time order) and, per current job, (source, attempts, last status)."""
    per_source = [0] * len(sources)
    weights = [rnd.expovariate(1.0) for _ in sources]
    for i in rnd.choices(range(len(sources)), weights, k=builds):
        per_source[i] += 1
    rows: list[_Build] = []
    current: dict[str, tuple[Source, int, Status | None]] = {}
    for s, n in zip(sources, per_source):
        cur = 0 if rnd.random() < 0.03 else min(n, 1 + int(rnd.expovariate(1.2)))
        jobs: list[tuple[str, int]] = []  # (version, attempts), oldest first
        rest, old = n - cur, 0
        while rest > 0:
            k = min(rest, rnd.randint(1, 3))
            old += 1
            jobs.append((f"{s.version}~old{old}", k))
            rest -= k
        jobs.reverse()
        jobs.append((s.version, cur))
        times = iter(sorted(now - timedelta(seconds=rnd.uniform(3600, 720 * 86400)) for _ in range(n)))
        last: Status | None = None
        for version, attempts in jobs:
            for a in range(1, attempts + 1):
                if a < attempts:
                    status = Status.BAD if rnd.random() < 0.4 else Status.FAIL
                else:
                    r = rnd.random()
                    status = Status.GOOD if r < 0.85 else Status.BAD if r < 0.93 else Status.FAIL
                rows.append(_Build(s, version, a, status, next(times)))
                last = status
        current[s.job(s.version)] = (s, cur, last if cur else None)
    rows.sort(key=lambda b: b.built_at)
    return rows, current


def _history_columns(rnd: random.Random, rows: list[_Build], store: Store, worker: Ed25519PrivateKey,
                     log_fraction: float, counts: dict[str, int], attestation: bytes) -> pa.Table:
    cols: dict[str, list] = {c.name: [] for c in HISTORY.columns}
    kid = key_id(worker.public_key())
    for b in rows:
        s = b.source
        _, distro, _, _, arch, _, _ = SUITES[s.suite]
        jid = s.job(b.version)
        bid = f"{jid}-{b.attempt}"
        reason = None
        if b.status is Status.BAD:
            reason = f"not reproducible: {s.binaries[0]} differs"
        elif b.status is Status.FAIL:
            reason = VAGUE if rnd.random() < 0.02 else rnd.choice(FAIL_REASONS)
        artifacts = [] if b.status is Status.FAIL else [
            {"name": n, "status": (Status.BAD if b.status is Status.BAD and i == 0 else Status.GOOD).value,
             "sha256": "0" * 64} for i, n in enumerate(s.binaries)]
        log_key = diffoscope_key = attestation_key = None
        files = []
        if rnd.random() < log_fraction:
            prefix = f"builds/{bid}/tok{b.attempt}"
            log_key = f"{prefix}/log"
            files.append(_gzip(store, log_key, f"build of {s.name} {b.version}\n" + LOG_TAIL))
            counts["logs"] += 1
            if b.status is Status.BAD:
                diffoscope_key = f"{prefix}/diffoscope.txt"
                files.append(_gzip(store, diffoscope_key,
                                   f"--- a/{s.binaries[0]}\n+++ b/{s.binaries[0]}\n@@ -1 +1 @@\n"))
                counts["diffoscope"] += 1
                if rnd.random() < 0.5:
                    files.append(_gzip(store, f"{prefix}/diffoscope.html", "<html><body>diff</body></html>"))
                    counts["diffoscope_html"] += 1
            elif b.status is Status.GOOD:
                attestation_key = f"{prefix}/attestation.json"
                store.put(attestation_key, attestation, content_type="application/json")
                files.append(_file(attestation_key, attestation))
                counts["attestations"] += 1
        values = dict(build_id=bid, job_id=jid, attempt=b.attempt, distro=distro, architecture=arch,
                      source_name=s.name, source_version=b.version, status=b.status.value, reason=reason,
                      artifacts=artifacts, worker_key_id=kid, worker_name=f"builder-{b.attempt % 4}",
                      started_at=b.built_at - timedelta(minutes=7), built_at=b.built_at, log_key=log_key,
                      diffoscope_key=diffoscope_key, attestation_key=attestation_key, files=files)
        for k, v in values.items():
            cols[k].append(v)
    return pa.Table.from_pydict(cols, schema=HISTORY.arrow)


def _gzip(store: Store, key: str, text: str, content_type: str = "text/plain; charset=utf-8") -> dict:
    """Store `text` gzip-encoded; the file's entry as a worker signs it (`ResultRow.files`)."""
    data = gzip.compress(text.encode(), mtime=0)
    store.put(key, data, content_type=content_type, content_encoding="gzip")
    return _file(key, data)


def _file(key: str, data: bytes) -> dict:
    return {"key": key, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


def _index_sha(binary: str, version: str) -> str:
    """The sha256 the synthetic index records for an artifact."""
    return hashlib.sha256(f"{binary} {version}".encode()).hexdigest()


def _signed_link(worker: Ed25519PrivateKey) -> bytes:
    link = make_link("rebuild pkg.pkg.tar.zst", materials={"pkg.src": b"source"}, products={"pkg.pkg.tar.zst": b"x"})
    return json.dumps(sign_link(link, worker), sort_keys=True).encode()


def make_world(root: Path, packages: int, builds: int, *, log_fraction: float = 0.01, seed: int = 1,
               live_claims: int = 8) -> World:
    """Write the synthetic store under `root/store` (without fsync: only publish is measured)."""
    rnd = random.Random(seed)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    store = LocalStore(root / "store", fsync=False)
    worker = generate_key()
    (root / "worker.pub").write_text(public_key_b64(worker.public_key()))
    ensure_key(root / "rebuilder.sign.key")  # a configured key must exist
    config = parse_rebuilder_config({"worker": {"authorized_workers": [public_key_b64(worker.public_key())]},
                                     "publish": {"signing_key": str(root / "rebuilder.sign.key")},
                                     "http": {"transparently_sign_attestations": True}})
    sources = _sources(rnd, packages)
    for profile in dict.fromkeys(s[0] for s in SUITES):
        _point(store, f"state/{profile}", f"state/{profile}/{unique_name('.parquet')}",
               parquet_bytes(_state_table(sources, profile, now)))
    rows, current = _plan_builds(rnd, sources, builds, now)
    counts = {"packages": sum(len(s.binaries) for s in sources), "sources": len(sources), "builds": len(rows),
              "logs": 0, "diffoscope": 0, "diffoscope_html": 0, "attestations": 0}
    attestation = _signed_link(worker)
    parts = []
    for start in range(0, len(rows), HISTORY_PART_ROWS):
        table = _history_columns(rnd, rows[start:start + HISTORY_PART_ROWS], store, worker, log_fraction, counts,
                                 attestation)
        part = f"history/part-{unique_name('')}.parquet"
        store.put(part, parquet_bytes(table), content_type=PARQUET)
        parts.append(part)
    manifest = f"history/manifest-{unique_name('')}.json"
    store.put(manifest, json.dumps({"schema": MANIFEST_SCHEMA, "parts": parts, "rows": len(rows)}).encode())
    pointer = Pointer(store, "history")
    pointer.advance(manifest, {"parts": len(parts), "rows": len(rows)}, None, None)
    del rows
    queued = _queue(store, current, now)
    counts["queued"] = len(queued)
    leases = Leases(store, ttl=3600, clock_skew=30)
    for job in queued[:live_claims]:
        leases.acquire(claim_key(job.job_id, job.attempt), "otherworker", meta={"worker": "builder-9"})
    counts["history_parts"] = len(parts)
    return World(root, config, worker, now, queued[live_claims:], counts)


def _queue(store: Store, current: dict[str, tuple[Source, int, Status | None]], now: datetime) -> list[JobRow]:
    jobs = []
    for jid, (s, attempts, last) in current.items():
        if last is Status.GOOD:
            continue
        _, distro, release, component, arch, backend, _ = SUITES[s.suite]
        artifacts = tuple(Artifact(b, s.version, arch, f"https://mirror.example/pool/{b}_{s.version}",
                                   sha256=_index_sha(b, s.version), component=component) for b in s.binaries)
        retry = last is not None
        jobs.append(JobRow(job_id=jid, backend=backend, architecture=arch, input_url=s.input_url(s.version),
                           distro=distro, releases=(release,), source_name=s.name, source_version=s.version,
                           artifacts=artifacts, priority=Priority.RETRY if retry else Priority.NEW,
                           queued_at=now - timedelta(days=3), not_before=None, attempt=attempts + 1,
                           retries=attempts))
    jobs.sort(key=lambda j: j.job_id)
    _point(store, QUEUE, f"{QUEUE}/{unique_name('.parquet')}", parquet_bytes(jobs, JobRow))
    return jobs


def add_results(world: World, n: int, *, seed: int = 2) -> list[ResultRow]:
    """Real signed results for `n` queued jobs (70% GOOD, 15% BAD, 15% FAIL), as a worker leaves them."""
    rnd = random.Random(seed)
    store = world.store(fsync=False)
    kid = key_id(world.worker.public_key())
    leases = Leases(store, ttl=3600, clock_skew=30)
    rows = []
    for job in rnd.sample(world.queued, min(n, len(world.queued))):
        lease = leases.acquire(claim_key(job.job_id, job.attempt), kid, meta={"worker": "builder-new"})
        token = lease.state.token
        prefix = build_prefix(job.job_id, job.attempt, token)
        r = rnd.random()
        status = Status.GOOD if r < 0.7 else Status.BAD if r < 0.85 else Status.FAIL
        files = [_gzip(store, f"{prefix}/log", f"build of {job.source_name}\n" + LOG_TAIL)]
        diffoscope_key, link = None, None
        if status is Status.GOOD:
            # What a worker attests: the products it rebuilt, with the index's digests (carried
            # inside the signed result, as a worker does since rebuilder.result/3).
            link = sign_link({"_type": "link", "name": f"rebuild {job.artifacts[0].name}", "materials": {},
                              "products": {a.name: {"sha256": a.sha256} for a in job.artifacts},
                              "environment": {}, "byproducts": {}, "command": []}, world.worker)
        elif status is Status.BAD:
            diffoscope_key = f"{prefix}/diffoscope.txt"
            files.append(_gzip(store, diffoscope_key, "--- a\n+++ b\n"))
        artifacts = () if status is Status.FAIL else tuple(
            ArtifactResult(a.name, Status.BAD if status is Status.BAD and i == 0 else Status.GOOD,
                           "1" * 64 if status is Status.BAD and i == 0 else a.sha256)
            for i, a in enumerate(job.artifacts))
        names = [a.name for a in job.artifacts]
        reason = {Status.GOOD: None, Status.BAD: f"not reproducible: {names[0]} differs",
                  Status.FAIL: "download failed: 404 Not Found"}[status]
        row = ResultRow(build_id=f"{job.job_id}-{job.attempt}", job_id=job.job_id, attempt=job.attempt,
                        distro=job.distro, architecture=job.architecture, source_name=job.source_name,
                        source_version=job.source_version, status=status, reason=reason, artifacts=artifacts,
                        # newer than every build of the history, and not after the store received it
                        # (publish refuses a result built after it was stored: reason `timestamp`)
                        worker_key_id=kid, worker_name="builder-new", started_at=world.now - timedelta(minutes=5),
                        built_at=world.now, log_key=f"{prefix}/log",
                        diffoscope_key=diffoscope_key, attestation_key=None,
                        files=tuple(FileDigest(**f) for f in files))
        payload = {"schema": RESULT_SCHEMA, "result": record_to_json(row),
                   "claim": {"token": token, "generation": lease.state.generation, "queue": None},
                   "attestation": link}
        # Where a worker stores its signed result: its done receipt's key (docs/trust.md).
        store.put(claim_notice_key(job.job_id, job.attempt, "done", kid),
                  json.dumps(sign_document(payload, world.worker)).encode(), content_type="application/json")
        leases.release(lease, {"done": True})
        rows.append(row)
    return rows
