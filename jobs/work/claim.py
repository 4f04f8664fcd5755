"""Choosing and claiming a due job (rebuilderd's `/queue/pop`, without a daemon).

A worker reads the queue, keeps the jobs that are due and that it can build (its backends
and architectures), orders them by priority and shuffles within a priority so that workers
rarely race for one key, reads the first few claims or lists `claims/`, and claims the first
job with no claim object with a create-only lease on `claims/<job-id>/<attempt>.json`. An
expired or released claim (a crashed or stopped worker) is taken over by exactly one other
worker (lease CAS). A claim released as done, or whose attempt already has a result (stored
as its worker's done receipt, or under `results/` by workers before this version), is left.
"""

from __future__ import annotations

import itertools
import json
import random
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from jobs.core.layout import (
    CLAIM_NOTICE_KEY,
    CLAIMS,
    claim_key,
    claim_notice_key,
    claim_notices_prefix,
    is_key_id,
    result_key,
)
from jobs.core.lease import Lease, LeaseHeld, Leases, LeaseState
from jobs.core.model import JobRow
from jobs.core.signing import sign_document
from jobs.core.store import NotFound, Store

if TYPE_CHECKING:
    from jobs.work.identity import WorkerIdentity

START_SCHEMA = "rebuilder.claim-start/1"
LOST_SCHEMA = "rebuilder.claim-lost/1"
DONE_SCHEMA = "rebuilder.claim-done/1"  # the receipts of workers before results were done receipts (publish reads them)

# Architecture names that mean the same machine (rebuilderd adds these both ways).
_ALIASES = [{"x86_64", "amd64"}, {"aarch64", "arm64"}, {"i386", "i686", "x86"}, {"powerpc64", "ppc64"},
            {"any", "all"}]


def expand_architectures(supported: Iterable[str]) -> set[str]:
    """The architectures a worker builds, with their aliases (`*` stays `*`: any)."""
    out = set(supported)
    for group in _ALIASES:
        if out & group:
            out |= group
    return out


def buildable(job: JobRow, backends: Sequence[str], architectures: set[str]) -> bool:
    """Whether this worker has the backend and the architecture for the job."""
    return job.backend in backends and ("*" in architectures or job.architecture in architectures)


def due_jobs(jobs: Iterable[JobRow], *, backends: Sequence[str], architectures: Iterable[str], now: datetime,
             rng: random.Random | None = None) -> list[JobRow]:
    """Buildable due jobs, lowest priority value first, random within a priority."""
    rng = rng or random.Random()
    archs = expand_architectures(architectures)
    due = [j for j in jobs if buildable(j, backends, archs) and (j.not_before is None or j.not_before <= now)]
    rng.shuffle(due)
    due.sort(key=lambda j: j.priority)  # stable: the shuffle survives within a priority
    return due


@dataclass(frozen=True)
class Claim:
    """A job this worker holds a lease on."""

    job: JobRow
    lease: Lease


def _done(state: LeaseState) -> bool:
    return bool(state.meta.get("done"))


@dataclass
class ClaimMemory:
    """What a worker remembers of `claims/` between two claims. Hints only: the conditional
    writes decide who holds a claim, so a wrong hint costs a request, never a second build.

    - `finished`: claim keys of attempts known to be reported (a done receipt in a listing, a
      result found, or built here): never read or written again while the queue lists them;
    - `probe`: read the first candidates' claims (GETs, a twelfth of a LIST's price each)
      before listing `claims/`; cleared when a poll found nothing claimable (then most due jobs
      are taken, and one listing is cheaper than a read of each), set again by a claim;
    - `held_until`: after a poll that found nothing, the earliest time (this machine's clock)
      at which a claim it saw held may have expired; None when it saw none.
    """

    finished: set[str] = field(default_factory=set)
    probe: bool = True
    held_until: float | None = None


PROBES = 8  # candidates read one by one before `claims/` is listed (8 GETs cost 0.64 LIST)


def claim_next(store: Store, leases: Leases, holder: str, candidates: Iterable[JobRow], *,
               meta: dict | None = None, identity: WorkerIdentity | None = None,
               memory: ClaimMemory | None = None) -> Claim | None:
    """Claim the first candidate nobody else holds and nobody has finished; None if none.

    With a `memory` that says `probe`, the claims of the first few candidates (`PROBES`) are
    read one by one (a 404 means free: created at once). Then, or without probing, `claims/`
    is listed (once, when there is a candidate left; publish prunes the claims of compacted
    builds, so it holds little more than the builds running now and those finished since
    the last publish). An attempt with a done receipt in the listing is finished: skipped
    unread. Candidates with no claim object are tried first, each with one create-only
    write, which only a worker that claimed the job since the listing refuses. After such a
    refusal the listing is known to be out of date (many workers are after the last few
    jobs), so each further candidate's claim is read (a GET, 404 when it is still free)
    before it is written. A candidate whose claim exists is running, finished (released
    `done`), or free to take over (its holder released it or died): it is only read, and
    written (taken over with the ETag just read) when that read says it may be and the
    attempt has no result yet (one more GET). So a poll that finds nothing claimable costs
    one GET per running candidate and no write, and one that loses a race costs one refused
    write, not one per job claimed since it listed.

    With an `identity`, each write of a claim is preceded by a signed start marker (and a
    lost race followed by its withdrawal): the evidence that makes publish wait before it
    accepts another worker's result for the attempt (`announce_start`, docs/trust.md).
    """
    memory = memory if memory is not None else ClaimMemory(probe=False)
    memory.held_until = None
    keyed = ((job, claim_key(job.job_id, job.attempt)) for job in candidates)  # lazily: the queue may be long
    pending = ((job, key) for job, key in keyed if key not in memory.finished)
    if memory.probe:
        for job, key in itertools.islice(pending, PROBES):
            if not _may_take(store, leases, job, key, memory):
                continue
            claim = _acquire(store, leases, holder, job, key, meta, identity)
            if claim is not None:
                return claim
    taken: list[tuple[JobRow, str]] = []
    stale = False  # a job the listing showed unclaimed was claimed since
    for job, key, exists in _listed(store, pending, memory):
        if exists:
            taken.append((job, key))
            continue
        if stale and not _may_take(store, leases, job, key, memory):
            continue
        claim = _acquire(store, leases, holder, job, key, meta, identity)
        if claim is not None:
            return claim
        stale = True
    for job, key in taken:
        if not _may_take(store, leases, job, key, memory):
            continue
        claim = _acquire(store, leases, holder, job, key, meta, identity)
        if claim is not None:
            return claim
    return None


def _listed(store: Store, candidates: Iterable[tuple[JobRow, str]],
            memory: ClaimMemory) -> Iterator[tuple[JobRow, str, bool]]:
    """(job, claim key, whether the claim object exists) per candidate not known finished, in order (lazily)."""
    existing: set[str] | None = None
    for job, key in candidates:
        if existing is None:  # listed only when there is a candidate
            existing = set()
            for info in store.list(CLAIMS):
                notice = CLAIM_NOTICE_KEY.fullmatch(info.key)
                if notice is None:
                    existing.add(info.key)
                elif notice.group(3) == "done":  # somebody reported the attempt: nothing to build
                    memory.finished.add(claim_key(notice.group(1), int(notice.group(2))))
        if key not in memory.finished:
            yield job, key, key in existing


def _may_take(store: Store, leases: Leases, job: JobRow, key: str, memory: ClaimMemory) -> bool:
    """Whether the claim at `key` may be created or taken over now, by its current object.

    Before a takeover the attempt's result is looked for: a holder that reported it no
    longer needs its claim (it may have left it to expire), and the attempt is never built
    twice. What is learnt goes into `memory`.
    """
    current = leases.read(key)
    if current is None:
        return True  # free, or gone since the listing: create it
    state = current[0]
    if state is not None and _done(state):
        memory.finished.add(key)
        return False
    if state is not None and not leases.is_expired(state):
        until = state.expires_at + leases.clock_skew
        memory.held_until = until if memory.held_until is None else min(memory.held_until, until)
        return False
    if _result_claim(store, job, state.holder if state is not None else None) is not None:
        # expired, released or unreadable: reported already?
        memory.finished.add(key)
        return False
    return True


def _acquire(store: Store, leases: Leases, holder: str, job: JobRow, key: str, meta: dict | None,
             identity: WorkerIdentity | None = None) -> Claim | None:
    """The claim on `job` (with `Leases.acquire`'s conditional writes), or None if it is held or finished."""
    if identity is not None:
        announce_start(store, identity, job.job_id, job.attempt)
    try:
        lease = leases.acquire(key, holder, meta={"job_id": job.job_id, "attempt": job.attempt, **(meta or {})},
                               keep=_done)
    except LeaseHeld:
        if identity is not None:
            announce_start(store, identity, job.job_id, job.attempt, withdrawn=True)
        return None
    # A taken-over claim may belong to an attempt that was finished (and released)
    # before publish removed it from the queue: never build an attempt twice.
    if lease.state.generation > 1:
        finished = _result_claim(store, job, None)
        if finished is not None:
            # The holder died after its result landed: keep the finished claim's token
            # and holder, so publish can still tie the result to its claim.
            leases.release(lease, {"done": True, "result_token": finished[0], "result_holder": finished[1]})
            if identity is not None:
                announce_start(store, identity, job.job_id, job.attempt, withdrawn=True)
            return None
    return Claim(job, lease)


def _result_claim(store: Store, job: JobRow, holder: str | None) -> tuple[str, str] | None:
    """(claim token, signer key id) of the attempt's result, if one exists.

    A result is stored as its worker's done receipt: with the claim's last `holder` known,
    its receipt is read (one GET), else the attempt's receipts are listed. Then the key
    workers before this version stored results under (`results/`).
    """
    if holder is not None and is_key_id(holder) and len(holder) <= 128:  # worker-written: else listed
        keys = [claim_notice_key(job.job_id, job.attempt, "done", holder)]
    else:
        keys = [info.key for info in store.list(claim_notices_prefix(job.job_id, job.attempt, "done"))]
    for key in [*keys, result_key(job.job_id, job.attempt)]:
        try:
            doc = json.loads(store.get(key).data)
        except NotFound:
            continue
        except ValueError:
            return ("", "")  # unreadable: publish rejects it; never build the attempt again
        try:
            payload = doc["signed"]
            if "result" in payload:
                return str(payload["claim"]["token"]), str(payload["result"]["worker_key_id"])
            return str(payload["token"]), str(CLAIM_NOTICE_KEY.fullmatch(key).group(4))  # an earlier worker's receipt
        except (KeyError, TypeError, AttributeError):
            return ("", "")
    return None


def announce_start(store: Store, identity: WorkerIdentity, job_id: str, attempt: int, *,
                   withdrawn: bool = False) -> str:
    """Sign and store that we are about to claim this attempt (or, `withdrawn`, that we did not get it).

    Written before the claim itself, so it exists before anybody could replace that claim.
    While a trusted worker's marker for an attempt stands, publish accepts another worker's
    result for it only once the result is older than the interval between two looks at a
    claim plus the clock skew allowance: time for a live holder to notice a takeover and sign its notice
    (docs/trust.md). Costs one PUT per claim, two after a lost race.
    """
    payload = {"schema": START_SCHEMA, "job_id": job_id, "attempt": int(attempt), "withdrawn": withdrawn,
               "noticed_at": int(time.time())}
    key = claim_notice_key(job_id, attempt, "start", identity.key_id)
    store.put(key, json.dumps(sign_document(payload, identity.key), sort_keys=True).encode(),
              content_type="application/json")
    return key


def report_lost(store: Store, leases: Leases, lease: Lease, identity: WorkerIdentity) -> str:
    """Sign and store a notice that our claim was replaced while it was live; returns its key.

    A takeover before expiry is what a hostile writer with worker credentials does (a plain
    PUT over the claim); publish refuses the attempt's result from anybody else while a
    trusted worker's notice says so (docs/trust.md).
    """
    current = leases.read(lease.key)
    found = None
    if current is not None and current[0] is not None:
        found = {"holder": current[0].holder, "token": current[0].token, "generation": current[0].generation}
    return _notice(store, lease, identity, "lost", LOST_SCHEMA, expires_at=int(lease.state.expires_at), found=found)


def _notice(store: Store, lease: Lease, identity: WorkerIdentity, kind: str, schema: str, **fields: object) -> str:
    job_id, attempt = str(lease.state.meta.get("job_id")), int(lease.state.meta.get("attempt"))  # type: ignore[arg-type]
    payload = {"schema": schema, "job_id": job_id, "attempt": attempt, "token": lease.state.token,
               "noticed_at": int(time.time()), **fields}
    key = claim_notice_key(job_id, attempt, kind, identity.key_id)
    store.put(key, json.dumps(sign_document(payload, identity.key), sort_keys=True).encode(),
              content_type="application/json")
    return key
