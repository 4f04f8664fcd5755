"""Does a signed result match the state it was built from? (docs/trust.md)

A trusted worker's signature says *who* reports; these checks bound *what* it can report.
Everything compared against here is written by sync or publish only (`queue/`, whose
rows carry the index's artifact digests), or is bound by the result's own signature:

- the job is in the current queue, at exactly the result's attempt (a result for a job
  never queued, for a finished job or for an attempt made up is refused);
- distro, architecture, source name and version equal the queued job's, and the artifacts
  are the job's, each exactly once;
- an artifact reported GOOD has the sha256 the synced index recorded, a GOOD build has
  every artifact GOOD, and its attestation (carried inside the signed result, or a file
  from workers before that) is signed by the result's signer and names exactly those
  digests as its products;
- every file the result names (log, diffoscope text, attestation) is listed in its
  signed `files`, every listed file lies under the claim's build prefix, and the stored
  bytes have the signed size and SHA-256 (streamed, bounded by `MAX_FILE_BYTES`).

Each check raises `Mismatch` with a stable reason (a `verify.Reason` value) and a detail.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from jobs.core.bounded import OverLimit, cap, read_object
from jobs.core.model import JobRow, ResultRow, Status
from jobs.core.signing import SignatureError, key_id, link_key_id, product_digests, verify_link
from jobs.core.store import NotFound, Reads

MAX_FILE_BYTES = cap("signed_file")  # a build log is capped by [build] max_bytes; a file past this is refused unread
MAX_ATTESTATION_BYTES = cap("attestation")
# A link nests 5 deep (metablock, signed, products, artifact, digests); environment and
# byproducts may nest a little more. Far deeper verifies (one frame a level) but cannot be
# countersigned (a deep copy: two frames a level): refused here, not lost after acceptance.
MAX_LINK_DEPTH = 32
_CHUNK = 1 << 20


# The files a build uploads under its claim's prefix (jobs/work/report.py), by the result field naming each.
_NAMES = {"log_key": "log", "diffoscope_key": "diffoscope.txt", "attestation_key": "attestation.json"}
HTML_REPORT = "diffoscope.html"  # beside the text report, named by no field


class Mismatch(Exception):
    """A result that does not match its job, its index digests or its files."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def _short(value: object) -> str:
    return repr(value)[:120]


def check_job(row: ResultRow, jobs: Mapping[str, JobRow]) -> JobRow:
    """The queued job this result reports on; Mismatch if it is not queued at this attempt or differs."""
    job = jobs.get(row.job_id)
    if job is None:
        raise Mismatch("not-queued", f"job {row.job_id} is not in the queue (never queued, finished or dropped)")
    if job.attempt != row.attempt:
        raise Mismatch("wrong-attempt", f"the queue is at attempt {job.attempt} of this job, not {row.attempt}")
    for name in ("distro", "architecture", "source_name", "source_version"):
        if getattr(row, name) != getattr(job, name):
            raise Mismatch("job-mismatch", f"{name} {_short(getattr(row, name))} is not the queued job's "
                                           f"{_short(getattr(job, name))}")
    if row.status is Status.FAIL:
        return job
    expected = Counter(a.name for a in job.artifacts)
    reported = Counter(a.name for a in row.artifacts)
    if reported != expected:
        raise Mismatch("job-mismatch", f"artifacts {sorted(reported)[:10]} are not the queued job's "
                                       f"{sorted(expected)[:10]}")
    return job


def check_digests(row: ResultRow, job: JobRow) -> dict[str, str]:
    """The index digest of each artifact; Mismatch if a GOOD artifact's differs or a GOOD build has a BAD one."""
    if row.status not in (Status.GOOD, Status.BAD, Status.FAIL):
        raise Mismatch("job-mismatch", f"{row.status.value} is not the outcome of a build (GOOD, BAD or FAIL)")
    if any(a.status not in (Status.GOOD, Status.BAD) for a in row.artifacts):
        raise Mismatch("job-mismatch", "an artifact's outcome must be GOOD or BAD")
    index = {a.name: (a.sha256 or "").lower() for a in job.artifacts}
    for art in row.artifacts:
        if art.status is Status.GOOD:
            if not index[art.name]:
                raise Mismatch("digest-mismatch", f"{art.name}: the index records no sha256, so GOOD cannot be "
                                                  "checked against it")
            if (art.sha256 or "").lower() != index[art.name]:
                raise Mismatch("digest-mismatch", f"{art.name}: reported GOOD with sha256 {_short(art.sha256)}, "
                                                  f"the index records {index[art.name]}")
    if row.status is Status.GOOD and any(a.status is not Status.GOOD for a in row.artifacts):
        bad = [a.name for a in row.artifacts if a.status is not Status.GOOD]
        raise Mismatch("digest-mismatch", f"a GOOD build with artifacts not GOOD: {bad[:10]}")
    if row.status is Status.BAD and row.artifacts and all(a.status is Status.GOOD for a in row.artifacts):
        raise Mismatch("job-mismatch", "a BAD build whose artifacts are all GOOD")
    return index


def check_files(store: Reads, row: ResultRow, prefix: str) -> bytes | None:
    """Every named file is signed, under `prefix`, and stored with its signed size and SHA-256.

    Each file is read once (one GET, no HEAD: never past its signed size plus a byte); the
    attestation's bytes, as hashed, are returned for `check_attestation` (None: none).
    """
    listed: dict[str, tuple[str, int]] = {}
    for f in row.files:
        if f.key in listed:
            raise Mismatch("file-mismatch", f"{_short(f.key)} is listed twice")
        if not f.key.startswith(prefix) or "/" in f.key[len(prefix):] or f.key[len(prefix):] in ("", ".", ".."):
            raise Mismatch("files-outside-claim", f"file {_short(f.key)} is not directly under {prefix}")
        listed[f.key] = (f.sha256, f.size)
        if f.key[len(prefix):] not in _NAMES.values() and f.key[len(prefix):] != HTML_REPORT:
            raise Mismatch("file-mismatch", f"{_short(f.key)} is not a file a build uploads")
    for name in ("log_key", "diffoscope_key", "attestation_key"):
        value = getattr(row, name)
        if value is not None and not value.startswith(prefix):
            raise Mismatch("files-outside-claim", f"{name} {_short(value)} is not under {prefix}")
        if value is not None and value != prefix + _NAMES[name]:
            raise Mismatch("file-mismatch", f"{name} {_short(value)} is not {prefix}{_NAMES[name]}")
        if value is not None and value not in listed:
            raise Mismatch("file-mismatch", f"{name} {_short(value)} is not among the signed files")
    if row.log_key is None:
        raise Mismatch("missing-log", "the result names no log")
    attestation = None
    for key, (sha256, size) in listed.items():
        keep = key == row.attestation_key and size <= MAX_ATTESTATION_BYTES
        data = _check_file(store, key, sha256, size, keep=keep)
        if keep:
            attestation = data
    return attestation


def _check_file(store: Reads, key: str, sha256: str, size: int, *, keep: bool = False) -> bytes | None:
    """Read `key` once, never past `size` + 1 bytes; its bytes if `keep` (a small file)."""
    if size > MAX_FILE_BYTES:
        raise Mismatch("file-mismatch", f"{key} has {size} bytes (limit {MAX_FILE_BYTES})")
    digest, seen, kept = hashlib.sha256(), 0, []
    try:
        body = store.open(key)
    except NotFound:
        raise Mismatch("missing-log" if key.endswith("/log") else "file-mismatch", f"{key} does not exist") from None
    try:
        while seen <= size and (chunk := body.read(min(_CHUNK, size + 1 - seen))):
            digest.update(chunk)
            seen += len(chunk)
            if keep:
                kept.append(chunk)
    finally:
        body.close()
    if seen != size:
        raise Mismatch("file-mismatch", f"{key} has {'more than ' if seen > size else ''}{seen} bytes, "
                                        f"the result signed {size}")
    if digest.hexdigest() != sha256:
        raise Mismatch("file-mismatch", f"{key}: stored bytes do not match the signed sha256 (changed after signing)")
    return b"".join(kept) if keep else None


def check_attestation(store: Reads, row: ResultRow, index: Mapping[str, str], signer: Ed25519PublicKey,
                      data: bytes | None = None, *, carried: bool = False) -> bytes | None:
    """A GOOD build's attestation: signed by the result's signer, its products exactly the index digests.

    `data`: its bytes as `check_files` read and hashed them (read here if not given); with
    `carried`, the bytes of the attestation the signed result carries (None: it carries none),
    bound by the result's signature and bounded like a file (`MAX_ATTESTATION_BYTES`).
    Returns the bytes checked (None: not a GOOD build).
    """
    if carried:
        if row.status is not Status.GOOD:
            if data is not None:
                raise Mismatch("attestation-mismatch", f"a {row.status.value} result that carries an attestation")
            return None
        if data is None:
            raise Mismatch("attestation-mismatch", "a GOOD result without an attestation")
        if len(data) > MAX_ATTESTATION_BYTES:
            raise Mismatch("attestation-mismatch", f"attestation of more than {MAX_ATTESTATION_BYTES} bytes")
        return _check_link(row, index, signer, data)
    if row.status is not Status.GOOD:
        return None
    if row.attestation_key is None:
        raise Mismatch("attestation-mismatch", "a GOOD result without an attestation")
    if data is None:
        try:
            data, _info = read_object(store, row.attestation_key, MAX_ATTESTATION_BYTES)
        except NotFound:
            raise Mismatch("attestation-mismatch", f"{row.attestation_key} does not exist") from None
        except OverLimit:
            raise Mismatch("attestation-mismatch",
                           f"attestation of more than {MAX_ATTESTATION_BYTES} bytes") from None
    if len(data) > MAX_ATTESTATION_BYTES:
        raise Mismatch("attestation-mismatch", f"attestation of more than {MAX_ATTESTATION_BYTES} bytes")
    signed = {f.key: f.sha256 for f in row.files}.get(row.attestation_key)
    if signed != hashlib.sha256(data).hexdigest():  # the bytes hashed against the signed digest, checked here
        raise Mismatch("file-mismatch", f"{row.attestation_key}: stored bytes do not match the signed sha256")
    return _check_link(row, index, signer, data)


def _check_link(row: ResultRow, index: Mapping[str, str], signer: Ed25519PublicKey, data: bytes) -> bytes:
    """The attestation's bytes, if they are a link signed by `signer` naming exactly the index's digests."""
    try:
        link = json.loads(data)
        if _deeper_than(link, MAX_LINK_DEPTH):
            raise Mismatch("attestation-mismatch", f"the attestation nests more than {MAX_LINK_DEPTH} levels deep")
        verify_link(link, {row.worker_key_id: signer})
        products = product_digests(link)
    except SignatureError as exc:
        raise Mismatch("attestation-mismatch", f"not signed by the result's worker: {exc.reason}") from None
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise Mismatch("attestation-mismatch", "the attestation is not a readable in-toto link") from None
    # Exactly the worker's one signature: another worker's link with the signer's signature
    # added would otherwise be countersigned and served as naming that worker for this build.
    if [s["keyid"] in (link_key_id(signer), key_id(signer)) for s in link["signatures"]] != [True]:
        raise Mismatch("attestation-mismatch", "the attestation carries signatures other than the result's "
                                               "worker's one")
    named = Counter(str(d.get("sha256", "")).lower() for d in products.values())
    wanted = Counter(index[a.name] for a in row.artifacts)
    if named != wanted:
        raise Mismatch("attestation-mismatch", "the attestation's products are not the index's artifact digests")
    return data


def _deeper_than(value: object, limit: int) -> bool:
    """Whether JSON `value` nests objects or arrays more than `limit` deep (walked without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False
