"""Where everything lives in the store: the one source of truth for object keys.

Every job builds keys through these functions and constants, and parses the keys it lists
with the patterns below (both directions live here: a key shape changes in one place). The
role policies in `infra/` are derived from `PREFIXES`, so code and permissions cannot drift
apart. Untrusted names never appear in keys: jobs are identified by their hex `job_id`,
profiles by validated names. A test (tests/test_layout_keys.py) fails on a key literal
anywhere else in `jobs/`.
"""

from __future__ import annotations

import re

from jobs.core.model import is_job_id

# prefix → (what lives there, the roles that write it)
PREFIXES: dict[str, tuple[str, tuple[str, ...]]] = {
    "state/": ("package-state snapshots per sync profile, behind state/<profile>/HEAD.json", ("sync",)),
    "queue/": ("the queue of due jobs, behind queue/HEAD.json", ("sync", "publish")),
    "locks/": ("leases of the per-profile sync lock and the publish lock", ("sync", "publish")),
    "claims/": ("worker leases on job attempts", ("worker",)),
    "results/": ("signed build results of earlier workers, create-only per attempt", ("worker",)),
    "builds/": ("logs, diffoscope reports, attestations", ("worker",)),
    "workers/": ("worker enrolment records", ("worker",)),
    # publish deletes a request once the queue update that applied it has landed
    "requests/": ("signed admin requests (requeue, queue push/drop)", ("admin", "publish")),
    "history/": ("compacted build history, behind history/HEAD.json", ("publish",)),
    "site/": ("the published static site and feeds (public read)", ("publish",)),
}


# The listing prefixes, one per room of the store.
STATE = "state/"
QUEUE = "queue"  # the queue's pointer prefix: queue/HEAD.json and queue/<name>.parquet
LOCKS = "locks/"
CLAIMS = "claims/"
RESULTS = "results/"
BUILDS = "builds/"
WORKERS = "workers/"
REQUESTS = "requests/"
HISTORY = "history"  # the history's pointer prefix: history/HEAD.json, manifests and parts
SITE = "site/"  # the published site, when it shares the store (else its own store, at its root)

# Publish's own records under history/ (only publish writes there).
APPLIED_REQUESTS = "history/applied-requests.json"  # nonces of applied admin requests
ENROLLED_WORKERS = "history/enrolled-workers.json"  # the worker records publish accepted first
REBUILDER_KEYS = "history/rebuilder-keys.json"  # every public key publish countersigned with
SITE_FACTS = "history/site-facts.parquet"  # what publish learned once per build (failure class, ...)
ATTESTATIONS = "history/attestations/"  # countersigned attestations: one object per publish run (or build id)

# Parsing listed keys. Groups: job id, attempt (1 to 999,999,999), and then as named.
_JOB_ID = "[0-9a-f]{32}"
_ATTEMPT = "[1-9][0-9]{0,8}"
_KEY_ID = "[A-Za-z0-9]+"
STATE_HEAD_KEY = re.compile(r"state/([^/]+)/HEAD\.json")  # group 1: the profile
CLAIM_KEY = re.compile(rf"claims/({_JOB_ID})/({_ATTEMPT})\.json")
CLAIM_NOTICE_KEY = re.compile(rf"claims/({_JOB_ID})/({_ATTEMPT})\.(start|lost|done)/({_KEY_ID})\.json")  # kind, key id
RESULT_KEY = re.compile(rf"results/({_JOB_ID})/({_ATTEMPT})\.json")
WORKER_KEY = re.compile(rf"workers/({_KEY_ID})\.json")  # group 1: the key id
REQUEST_KEY = re.compile(r"requests/[A-Za-z0-9._-]{1,200}\.json")
# One publish run's kept attestations (`attestation_batch_key`): a history row naming it has its
# attestation there, under its build id (publish's own object, not a file of builds/).
ATTESTATION_BATCH_KEY = re.compile(re.escape(ATTESTATIONS) + r"run-[A-Za-z0-9._-]{1,200}\.json")


def _job(job_id: str) -> str:
    if not is_job_id(job_id):
        raise ValueError(f"not a job id: {job_id!r}")
    return job_id


def state_prefix(profile: str) -> str:
    """Prefix of one sync profile's snapshots and its HEAD.json."""
    if not profile or "/" in profile or profile.startswith("."):
        raise ValueError(f"unsafe profile name {profile!r}")
    return f"state/{profile}"


def state_head_profile(key: str) -> str | None:
    """The profile whose state pointer `key` is (`state/<profile>/HEAD.json`), else None."""
    match = STATE_HEAD_KEY.fullmatch(key)
    return match.group(1) if match else None


def sync_lock(profile: str) -> str:
    """The lease that keeps two syncs of one profile apart."""
    return f"locks/sync/{state_prefix(profile).removeprefix('state/')}.json"


PUBLISH_LOCK = "locks/publish.json"
SITE_LOCK = "locks/publish-site.json"  # keeps two site writers apart (publish's second half)


def claim_key(job_id: str, attempt: int) -> str:
    """The lease a worker holds while it builds one attempt of a job."""
    return f"claims/{_job(job_id)}/{int(attempt)}.json"


CLAIM_NOTICES = ("start", "lost", "done")
# Every done receipt (a worker's signed result), as an S3 resource pattern: `*` spans the job id
# and attempt; claims themselves (`claims/<job>/<attempt>.json`, renewed by If-Match) never match.
DONE_RECEIPTS = CLAIMS + "*.done/"


def claim_notice_key(job_id: str, attempt: int, kind: str, key_id: str) -> str:
    """A worker's signed word about its claim on an attempt.

    "start" (about to claim it, or withdrawn after losing the race), "lost" (replaced while
    live) or "done" (reported: the signed result itself, or, from workers before results were
    stored here, a receipt beside `results/<job-id>/<attempt>.json`); docs/trust.md.
    """
    if kind not in CLAIM_NOTICES:
        raise ValueError(f"not a claim notice: {kind!r}")
    if not key_id.isalnum():
        raise ValueError(f"not a key id: {key_id!r}")
    return f"claims/{_job(job_id)}/{int(attempt)}.{kind}/{key_id}.json"


def claim_notices_prefix(job_id: str, attempt: int, kind: str) -> str:
    """The prefix of every worker's `kind` notice on one attempt (listed to find them all)."""
    if kind not in CLAIM_NOTICES:
        raise ValueError(f"not a claim notice: {kind!r}")
    return f"claims/{_job(job_id)}/{int(attempt)}.{kind}/"


def result_key(job_id: str, attempt: int) -> str:
    """The signed result of one attempt as workers before results were done receipts stored it (create-only).

    Publish still accepts results stored here; a worker now stores its result at its done
    receipt's key (`claim_notice_key(job_id, attempt, "done", key_id)`)."""
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


def is_key_id(text: str) -> bool:
    """Whether `text` can name a worker key in keys (`workers/<key id>.json`, claim notices)."""
    return re.fullmatch(_KEY_ID, text) is not None


def request_key(name: str) -> str:
    """An admin request object, under a unique `name` ending in .json."""
    key = REQUESTS + name
    if not REQUEST_KEY.fullmatch(key):
        raise ValueError(f"not a request name: {name!r}")
    return key


def attestation_key(build_id: str) -> str:
    """Publish's countersigned attestation of one build (as earlier publishes and the importer keep them)."""
    return f"{ATTESTATIONS}{build_id}.json"


def attestation_batch_key(name: str) -> str:
    """The countersigned attestations of one publish run, in one object (`name`: unique, sortable)."""
    return f"{ATTESTATIONS}run-{name}.json"
