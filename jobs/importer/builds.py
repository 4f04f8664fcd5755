"""One imported build: its files (log, diffoscope output, attestations) written and its history row made."""

from __future__ import annotations

import gzip
import hashlib
import json
import sqlite3

from jobs.core.bounded import cap
from jobs.core.layout import build_prefix
from jobs.core.model import ArtifactResult, FileDigest, ResultRow, Status, build_id
from jobs.core.model.limits import result_problem
from jobs.core.store import Store
from jobs.importer.database import BLOB_MAX, BlobRefused, Package, PkgBase, blob
from jobs.importer.summary import ImportSummary
from jobs.publish.site.facts import attestation_key as published_attestation
from jobs.publish.state.compact import HistoryState

TOKEN = "rebuilderd"  # the claim-token segment of imported builds' file keys
WORKER_KEY_ID = "rebuilderd"  # no worker key signed these: the row says where it came from
WORKER_NAME = "rebuilderd (imported)"
TEXT = "text/plain; charset=utf-8"
LOG_MAX = cap("log_decoded")  # one log or diffoscope text decompressed
ATTESTATION_MAX = cap("attestation")


def _gzip_file(store: Store, key: str, data: bytes) -> FileDigest:
    body = gzip.compress(data, mtime=0)
    if len(body) > BLOB_MAX:
        raise BlobRefused(f"{key}: {len(body)} bytes gzip-encoded (more than {BLOB_MAX})")
    store.put(key, body, content_type=TEXT, content_encoding="gzip")
    return FileDigest(key=key, sha256=hashlib.sha256(body).hexdigest(), size=len(body))


def _json_file(store: Store, key: str, data: bytes) -> FileDigest:
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        raise BlobRefused(f"{key}: the attestation is not JSON") from None
    if not isinstance(doc, dict):
        raise BlobRefused(f"{key}: the attestation is not a JSON object")
    body = json.dumps(doc, sort_keys=True).encode()
    store.put(key, body, content_type="application/json")
    return FileDigest(key=key, sha256=hashlib.sha256(body).hexdigest(), size=len(body))


def result_row(con: sqlite3.Connection, store: Store, base: PkgBase, job: str, packages: list[Package],
            summary: ImportSummary, history: HistoryState, state_rows: dict) -> ResultRow | None:
    """The history row of one job's built packages, its files written (None: nothing to add)."""
    built = [p for p in packages if p.build_id is not None]
    if not built:
        return None
    statuses = [p.status for p in packages]
    status = (Status.BAD if Status.BAD in statuses else
              Status.GOOD if all(s is Status.GOOD for s in statuses) else Status.UNKWN)
    attempt = max(1, base.retries + (1 if status is Status.GOOD else 0))
    bid = build_id(job, attempt)
    if history.holding([bid]):
        summary.present += 1
        return None
    first = state_rows[job][0]
    prefix = build_prefix(job, attempt, TOKEN)
    files: list[FileDigest] = []
    keys: dict[str, str | None] = {"log": None, "diffoscope": None, "attestation": None}
    try:
        log_text = blob(con, min(p.build_id for p in built), "build_log", LOG_MAX)
        if log_text is not None:
            files.append(_gzip_file(store, f"{prefix}/log", log_text))
            keys["log"] = files[-1].key
        for index, p in enumerate(built, 1):
            for column, what, limit, write, suffix in (
                    ("diffoscope", "diffoscope", LOG_MAX, _gzip_file, "txt"),
                    ("attestation", "attestation", ATTESTATION_MAX, _json_file, "json")):
                data = blob(con, p.build_id, column, limit)
                if data is None:
                    continue
                name = f"{what}.{suffix}" if keys[what] is None else f"{what}-{index}.{suffix}"
                files.append(write(store, f"{prefix}/{name}", data))
                if keys[what] is None and what == "attestation" and status is Status.GOOD:
                    # Published as the daemon kept it (signed by rebuilderd-worker's key, which
                    # is not known here, so publish cannot countersign it): publish's own copy.
                    store.put(published_attestation(bid), store.get(files[-1].key).data,
                              content_type="application/json")
                keys[what] = keys[what] or files[-1].key
    except BlobRefused as exc:
        summary.rejected += len(packages)
        summary.problem(f"pkgbase {base.id}: {exc}")
        return None
    summary.files += len(files)
    times = [p.built_at for p in built if p.built_at is not None]
    row = ResultRow(build_id=bid, job_id=job, attempt=attempt, distro=first.distro, architecture=first.architecture,
                    source_name=first.source_name, source_version=first.source_version, status=status, reason=None,
                    artifacts=tuple(ArtifactResult(p.name, p.status) for p in packages),
                    worker_key_id=WORKER_KEY_ID, worker_name=WORKER_NAME, started_at=min(times), built_at=max(times),
                    log_key=keys["log"], diffoscope_key=keys["diffoscope"], attestation_key=keys["attestation"],
                    files=tuple(files))
    problem = result_problem(row)
    if problem:
        summary.rejected += len(packages)
        summary.problem(f"pkgbase {base.id}: {problem}")
        return None
    summary.packages += len(packages)
    return row
