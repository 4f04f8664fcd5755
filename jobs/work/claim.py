"""Choosing and claiming a due job (rebuilderd's `/queue/pop`, without a daemon).

A worker reads the queue, keeps the jobs that are due and that it can build (its backends
and architectures), orders them by priority and shuffles within a priority so that workers
rarely race for one key, then claims one with a create-only lease on
`claims/<job-id>/<attempt>.json`. An expired claim (a crashed worker) is taken over by
exactly one other worker (lease CAS). A claim whose attempt already has a result is left.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from jobs.core.layout import claim_key, result_key
from jobs.core.lease import Lease, LeaseHeld, Leases, LeaseState
from jobs.core.model import JobRow
from jobs.core.store import NotFound, Store

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


def claim_next(store: Store, leases: Leases, holder: str, candidates: Sequence[JobRow], *,
               meta: dict | None = None) -> Claim | None:
    """Claim the first candidate nobody else holds and nobody has finished; None if none.

    A finished attempt's claim is released with `done` in its metadata, so skipping it costs
    one refused create and one read, and no write. To spend that rarely, `claims/` is listed
    first (publish prunes the claims of compacted builds, so it holds little more than the
    builds running now and those finished since the last publish) and candidates whose claim
    exists are tried only after every unclaimed one: they are running, finished, or held by
    a worker that died or let go (those are taken over as before, just later in the order).
    """
    for job in _unclaimed_first(store, candidates):
        try:
            lease = leases.acquire(claim_key(job.job_id, job.attempt), holder,
                                   meta={"job_id": job.job_id, "attempt": job.attempt, **(meta or {})}, keep=_done)
        except LeaseHeld:
            continue
        # A taken-over claim may belong to an attempt that was finished (and released)
        # before publish removed it from the queue: never build an attempt twice.
        if lease.state.generation > 1:
            finished = _result_claim(store, job)
            if finished is not None:
                # The holder died after its result landed: keep the finished claim's token
                # and holder, so publish can still tie the result to its claim.
                leases.release(lease, {"done": True, "result_token": finished[0], "result_holder": finished[1]})
                continue
        return Claim(job, lease)
    return None


def _unclaimed_first(store: Store, candidates: Iterable[JobRow]) -> Iterator[JobRow]:
    """The candidates in order, those whose claim object exists after all others (lazily)."""
    existing: set[str] | None = None
    taken = []
    for job in candidates:
        if existing is None:  # listed only when there is a candidate
            existing = {info.key for info in store.list("claims/")}
        if claim_key(job.job_id, job.attempt) in existing:
            taken.append(job)
        else:
            yield job
    yield from taken


def _result_claim(store: Store, job: JobRow) -> tuple[str, str] | None:
    """(claim token, signer key id) of the attempt's result, if one exists."""
    try:
        doc = json.loads(store.get(result_key(job.job_id, job.attempt)).data)
    except NotFound:
        return None
    except ValueError:
        return ("", "")  # unreadable: publish rejects it; never build the attempt again
    try:
        payload = doc["signed"]
        return str(payload["claim"]["token"]), str(payload["result"]["worker_key_id"])
    except (KeyError, TypeError):
        return ("", "")

