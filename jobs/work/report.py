"""Uploading one build's files and its signed result.

Order: the log and the diffoscope reports first (under the claim's own prefix,
gzip-encoded with Content-Type and Content-Encoding so a static host serves them),
then — after the claim was read back (or renewed, when less than half a TTL of it is left)
to prove it is still ours — the signed result, with a create-only write. A reader therefore
never sees a result whose log is missing, and a polite worker writes a result only while it
holds the claim, so one attempt never has two results (rebuilderd issues #168, #182, #234).

The result is stored as the worker's done receipt, `claims/<job-id>/<attempt>.done/<key
id>.json` (one object, one PUT): the key only this worker's signature can fill, which every
worker's listing of `claims/` shows as finished and publish reads as both the result and the
receipt that guards it (docs/trust.md). Workers before this version wrote
`results/<job-id>/<attempt>.json` and a separate receipt; publish accepts both.

The signed result binds every uploaded file: `ResultRow.files` lists each object's key,
SHA-256 and size as stored, so a file swapped in `builds/` afterwards is refused by publish
(docs/trust.md). The claim section names the queue version the job was read from. A GOOD
build's in-toto attestation is carried inside the signed result (`attestation`, null for
other builds: `rebuilder.result/3`), not uploaded as a file of its own: one PUT fewer a
GOOD build (workers before this version uploaded `attestation.json` beside the log and
signed `rebuilder.result/2`; publish accepts both).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import shutil
import tempfile
from pathlib import Path

from jobs.core.layout import build_prefix, claim_notice_key
from jobs.core.lease import Lease, LeaseKeeper, LeaseLost, Leases
from jobs.core.model import FileDigest, JobRow, ResultRow, build_id, record_to_json
from jobs.core.signing import sign_document
from jobs.core.store import PreconditionFailed, Store, put_new
from jobs.work.build import BuildOutcome
from jobs.work.identity import WorkerIdentity

log = logging.getLogger(__name__)

SCHEMA = "rebuilder.result/3"
TEXT = "text/plain; charset=utf-8"


def digest_of(key: str, data: bytes) -> FileDigest:
    """The signed digest of an object's stored bytes."""
    return FileDigest(key=key, sha256=hashlib.sha256(data).hexdigest(), size=len(data))


def _upload_gzip(store: Store, key: str, path: Path | bytes, content_type: str) -> FileDigest:
    """Stream a file (or small bytes) gzip-compressed into the store (bounded memory, deterministic bytes)."""
    if isinstance(path, bytes):
        data = gzip.compress(path, mtime=0)
        store.put(key, data, content_type=content_type, content_encoding="gzip")
        return digest_of(key, data)
    with tempfile.TemporaryFile() as tmp:
        with open(path, "rb") as src, gzip.GzipFile(fileobj=tmp, mode="wb", mtime=0) as gz:
            shutil.copyfileobj(src, gz, 1 << 20)
        tmp.seek(0)
        sha, size = hashlib.sha256(), 0
        while chunk := tmp.read(1 << 20):
            sha.update(chunk)
            size += len(chunk)
        tmp.seek(0)
        store.put(key, tmp, content_type=content_type, content_encoding="gzip")
    return FileDigest(key=key, sha256=sha.hexdigest(), size=size)


def final_margin(leases: Leases) -> float:
    """Seconds of lease the result's write must have left: half the TTL, plus the skew allowance."""
    return leases.ttl / 2 + leases.clock_skew


def upload(store: Store, keeper: LeaseKeeper, job: JobRow, outcome: BuildOutcome,
           identity: WorkerIdentity) -> tuple[ResultRow, Lease]:
    """Upload the build's files, then its signed result; LeaseLost means nothing was reported.

    `keeper` renews the claim while files upload; it is stopped before the last renewal so
    the two never race. Returns the result and the lease as last renewed.
    """
    lease = keeper.lease
    prefix = build_prefix(job.job_id, job.attempt, lease.state.token)
    files = [_upload_gzip(store, f"{prefix}/log", outcome.log, TEXT)]
    log_key = files[0].key
    diffoscope_key = None
    if outcome.diffoscope_text is not None:
        files.append(_upload_gzip(store, f"{prefix}/diffoscope.txt", outcome.diffoscope_text, TEXT))
        diffoscope_key = files[-1].key
    if outcome.diffoscope_html is not None:
        files.append(_upload_gzip(store, f"{prefix}/diffoscope.html", outcome.diffoscope_html,
                                  "text/html; charset=utf-8"))
    row = ResultRow(
        build_id=build_id(job.job_id, job.attempt), job_id=job.job_id, attempt=job.attempt, distro=job.distro,
        architecture=job.architecture, source_name=job.source_name, source_version=job.source_version,
        status=outcome.status, reason=outcome.reason, artifacts=tuple(outcome.artifacts),
        worker_key_id=identity.key_id, worker_name=identity.name, started_at=outcome.started_at,
        built_at=outcome.built_at, log_key=log_key, diffoscope_key=diffoscope_key, attestation_key=None,
        files=tuple(files))
    queue = lease.state.meta.get("queue")
    payload = {"schema": SCHEMA, "result": record_to_json(row),
               "claim": {"token": lease.state.token, "generation": lease.state.generation,
                         "queue": queue if isinstance(queue, str) else None},
               "attestation": outcome.attestation}
    doc = sign_document(payload, identity.key)
    keeper.stop()
    if keeper.lost.is_set():
        raise LeaseLost(keeper.lease.key, keeper.reason or "lost while uploading")
    # Proves the claim is still ours and leaves at least half a TTL for the write: a check
    # (a GET) when that much is left, else a renewal.
    try:
        final = keeper.lease = keeper.leases.keep(keeper.lease, renew_below=final_margin(keeper.leases))
    except LeaseLost:
        keeper.taken_while_live = keeper.leases.is_safe(keeper.lease)
        raise
    key = claim_notice_key(job.job_id, job.attempt, "done", identity.key_id)
    try:
        put_new(store, key, json.dumps(doc, sort_keys=True).encode(), content_type="application/json")
    except PreconditionFailed:
        # Only this worker's key can sign what belongs here, and it never wrote this attempt
        # before: another writer put something at our receipt key. Publish fails the attempt
        # closed on it; nothing is reported.
        raise LeaseLost(final.key, f"{key} already holds an object this worker did not write") from None
    return row, final
