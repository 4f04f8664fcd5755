"""Where everything lives in the store: the one source of truth for object keys.

Every job builds keys through these functions, and the role policies in `infra/` are
derived from `PREFIXES`, so code and permissions cannot drift apart. Untrusted names never
appear in keys: jobs are identified by their hex `job_id`, profiles by validated names.
"""

from __future__ import annotations

from jobs.core.model import is_job_id

# prefix → (what lives there, the roles that write it)
PREFIXES: dict[str, tuple[str, tuple[str, ...]]] = {
    "state/": ("package-state snapshots per sync profile, behind state/<profile>/HEAD.json", ("sync",)),
    "queue/": ("the queue of due jobs, behind queue/HEAD.json", ("sync", "publish")),
    "locks/": ("leases of the per-profile sync lock and the publish lock", ("sync", "publish")),
    "claims/": ("worker leases on job attempts", ("worker",)),
    "results/": ("signed build results, create-only per attempt", ("worker",)),
    "builds/": ("logs, diffoscope reports, attestations", ("worker",)),
    "workers/": ("worker enrolment records", ("worker",)),
    # publish deletes a request once the queue update that applied it has landed
    "requests/": ("signed admin requests (requeue, queue push/drop)", ("admin", "publish")),
    "history/": ("compacted build history, behind history/HEAD.json", ("publish",)),
    "site/": ("the published static site and feeds (public read)", ("publish",)),
}


def _job(job_id: str) -> str:
    if not is_job_id(job_id):
        raise ValueError(f"not a job id: {job_id!r}")
    return job_id


def state_prefix(profile: str) -> str:
    """Prefix of one sync profile's snapshots and its HEAD.json."""
    if not profile or "/" in profile or profile.startswith("."):
        raise ValueError(f"unsafe profile name {profile!r}")
    return f"state/{profile}"


def sync_lock(profile: str) -> str:
    """The lease that keeps two syncs of one profile apart."""
    return f"locks/sync/{state_prefix(profile).removeprefix('state/')}.json"


PUBLISH_LOCK = "locks/publish.json"


def claim_key(job_id: str, attempt: int) -> str:
    """The lease a worker holds while it builds one attempt of a job."""
    return f"claims/{_job(job_id)}/{int(attempt)}.json"


CLAIM_NOTICES = ("start", "lost", "done")


def claim_notice_key(job_id: str, attempt: int, kind: str, key_id: str) -> str:
    """A worker's signed word about its claim on an attempt.

    "start" (about to claim it, or withdrawn after losing the race), "lost" (replaced while
    live) or "done" (reported); docs/trust.md.
    """
    if kind not in CLAIM_NOTICES:
        raise ValueError(f"not a claim notice: {kind!r}")
    if not key_id.isalnum():
        raise ValueError(f"not a key id: {key_id!r}")
    return f"claims/{_job(job_id)}/{int(attempt)}.{kind}/{key_id}.json"


def result_key(job_id: str, attempt: int) -> str:
    """The signed result of one attempt (create-only)."""
    return f"results/{_job(job_id)}/{int(attempt)}.json"


def build_prefix(job_id: str, attempt: int, claim_token: str) -> str:
    """Where one claim's log, diffoscope output and attestation go.

    Namespaced by the claim's token: a worker that lost its lease mid-upload can never
    overwrite the files of the worker that took the job over. Only the files named by the
    attempt's one result (create-only) are ever published.
    """
    if not claim_token.isalnum():
        raise ValueError(f"not a claim token: {claim_token!r}")
    return f"builds/{_job(job_id)}-{int(attempt)}/{claim_token[:16]}"


def worker_key(key_id: str) -> str:
    """The enrolment record of one worker key."""
    if not key_id.isalnum():
        raise ValueError(f"not a key id: {key_id!r}")
    return f"workers/{key_id}.json"
