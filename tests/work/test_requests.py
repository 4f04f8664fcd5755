"""What a worker writes and reads per build and per idle poll (issue #18: requests cost money).

Each write named here is one the trust model needs (docs/trust.md): the start marker, the
claim, the build's files and the result, stored as the done receipt (one object). Nothing else is written for a build
that needs no renewal; polls that cannot find anything read as little as they can.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from jobs.core.layout import claim_key, claim_notice_key
from jobs.core.lease import Leases
from jobs.core.queue import read_queue, update_queue
from tests.faults import FaultyStore
from tests.publish.previous_format import to_previous_format
from tests.work.test_worker import script, synthetic_jobs
from tests.work.worker_child import make_worker


def _worker(store, tmp_path, name: str, *, body: str = 'cp "$1" "$REBUILDERD_OUTDIR/"', ttl: int = 600):
    backend = script(tmp_path / f"{name}.sh", body)
    worker = make_worker(store.url, tmp_path / "w", name, str(backend), ttl)
    watched = FaultyStore(store)
    return dataclasses.replace(worker, store=watched), watched


def test_a_good_build_writes_what_the_trust_model_needs_and_nothing_else(store, tmp_path):
    (row,) = synthetic_jobs(store, tmp_path, 1)
    worker, watched = _worker(store, tmp_path, "w1")
    stats = worker.run(once=True)
    assert stats.built == [f"{row.job_id}-1 GOOD"]
    kid = worker.identity.key_id
    claim = claim_key(row.job_id, 1)
    builds = [key for op, key in watched.log if key.startswith("builds/")]
    assert [(op, key) for op, key in watched.log if not key.startswith(("builds/", "workers/"))] == [
        ("put", claim_notice_key(row.job_id, 1, "start", kid)),
        ("put_if_absent", claim),
        ("put_if_absent", claim_notice_key(row.job_id, 1, "done", kid))]
    assert [k.rsplit("/", 1)[1] for k in builds] == ["log"]  # the attestation is carried inside the result
    # The first candidate's claim was read (404: free), so claims/ was never listed; the claim
    # was read back before the result (no renewal), and is left to expire, not released.
    assert watched.ops["list"] == 0 and watched.ops["put_if_match"] == 0
    state, _ = Leases(store).read(claim)
    doc = json.loads(store.get(claim_notice_key(row.job_id, 1, "done", kid)).data)
    assert doc["signed"]["result"]["worker_key_id"] == kid and list(store.list("results/")) == []
    assert not state.released and state.token == doc["signed"]["claim"]["token"]


def test_nobody_builds_an_attempt_whose_claim_was_left_to_expire(store, tmp_path):
    (row,) = synthetic_jobs(store, tmp_path, 1)
    first, _ = _worker(store, tmp_path, "w1")
    assert len(first.run(once=True).built) == 1
    key = claim_key(row.job_id, 1)
    state, etag = Leases(store).read(key)
    store.put_if_match(key, dataclasses.replace(state, expires_at=0.0).to_bytes(), etag)  # expired long ago
    second, watched = _worker(store, tmp_path, "w2")
    second._claims.probe = False  # list first: the done receipt alone keeps it off
    assert second.next_claim() is None
    assert watched.log == [] and watched.ops["get"] == 2  # the queue pointer and object; the claim is not read
    third, watched = _worker(store, tmp_path, "w3")  # probes: reads the expired claim, then finds the result
    assert third.next_claim() is None and watched.log == []
    assert third._claims.finished == {key}


@pytest.mark.parametrize("stored_as", ["previous", "unreadable-claim", "odd-holder"])
def test_a_finished_attempt_is_known_by_its_result_wherever_it_is_stored(store, tmp_path, stored_as):
    """An expired claim of a reported attempt: a worker probing it finds the result and leaves it.

    `previous`: the result in results/ beside a receipt, as workers before this version stored it
    (the receipt at the holder's key is read first, then results/). `unreadable-claim`, `odd-holder`:
    the claim names no holder a key can be made of, so the attempt's receipts are listed."""
    (row,) = synthetic_jobs(store, tmp_path, 1)
    first, _ = _worker(store, tmp_path, "w1")
    assert len(first.run(once=True).built) == 1
    key = claim_key(row.job_id, 1)
    if stored_as == "previous":
        to_previous_format(store, first.identity, row.job_id)
        store.delete(claim_notice_key(row.job_id, 1, "done", first.identity.key_id))  # only results/ left
        state, etag = Leases(store).read(key)
        store.put_if_match(key, dataclasses.replace(state, expires_at=0.0).to_bytes(), etag)  # expired long ago
    elif stored_as == "odd-holder":
        state, etag = Leases(store).read(key)
        odd = dataclasses.replace(state, holder="é/../" + "x" * 2000, expires_at=0.0)
        store.put_if_match(key, odd.to_bytes(), etag)
    else:
        store.put(key, b"not a lease")
    second, watched = _worker(store, tmp_path, "w2")  # probes: reads the claim, then looks for the result
    assert second.next_claim() is None and watched.log == []
    assert second._claims.finished == {key}
    assert watched.ops["list"] == (0 if stored_as == "previous" else 1)


def test_an_idle_worker_polls_with_one_get_until_something_could_have_changed(store, tmp_path):
    running, finished = synthetic_jobs(store, tmp_path, 2)
    Leases(store, ttl=600, clock_skew=30).acquire(claim_key(running.job_id, 1), "other-worker")  # building it
    done, _ = _worker(store, tmp_path, "w1")
    assert done.run(once=True).built == [f"{finished.job_id}-1 GOOD"]  # its done receipt is in claims/
    worker, watched = _worker(store, tmp_path, "w2")
    assert worker.next_claim() is None  # first poll: reads both claims (both held)
    assert watched.log == [] and watched.ops["list"] == 0
    watched.ops.clear()
    assert worker.next_claim() is None  # nothing changed, no claim it saw can have expired: the pointer only
    assert dict(watched.ops) == {"get": 1} and watched.log == []
    watched.ops.clear()
    worker._look_at = 0.0  # as if the running claim could have expired by now
    assert worker.next_claim() is None
    # one listing and the running claim read; the finished one is known by its receipt, not read
    assert dict(watched.ops) == {"get": 2, "list": 1} and watched.log == []
    # The queue moves (an operator requeued the running job): the next poll looks again at once.
    update_queue(store, lambda jobs: {**jobs, running.job_id: dataclasses.replace(running, attempt=2)})
    claim = worker.next_claim()
    assert claim is not None and (claim.job.job_id, claim.job.attempt) == (running.job_id, 2)


def test_the_queue_is_read_again_only_when_its_pointer_moves(store, tmp_path):
    rows = synthetic_jobs(store, tmp_path, 2)
    watched = FaultyStore(store)
    first = read_queue(watched)
    assert watched.ops["get"] == 2
    again = read_queue(watched, cached=first)
    assert watched.ops["get"] == 3 and again.jobs is first.jobs
    update_queue(store, lambda jobs: {rows[0].job_id: jobs[rows[0].job_id]})
    moved = read_queue(watched, cached=again)
    assert watched.ops["get"] == 5 and list(moved.jobs) == [rows[0].job_id]
