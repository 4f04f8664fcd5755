"""`publish_state` end to end: real workers' results, the queue, requests, the lock, and kills.

Runs against the local store and a real SeaweedFS.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from jobs.core.config import parse_rebuilder_config, rebuilderd_conf
from jobs.core.history import read_history
from jobs.core.layout import PUBLISH_LOCK, claim_notice_key, result_key
from jobs.core.lease import Leases
from jobs.core.model import PackageStateRow, Priority, Status, parquet_bytes
from jobs.core.pointer import Pointer
from jobs.core.queue import read_queue, update_queue
from jobs.core.requests import write_request
from jobs.core.signing import (
    KeyFileError,
    generate_key,
    key_id,
    load_public_keys_feed,
    public_key_from_b64,
    verify_link,
)
from jobs.publish.run import publish
from jobs.publish.state.requests import APPLIED, Refusal
from jobs.publish.state.update import REBUILDER_KEYS, publish_state, rebuilder_signing_key
from jobs.publish.state.verify import Reason
from tests.faults import FaultyStore, Killed
from tests.publish.previous_format import to_previous_format
from tests.publish.test_verify import NOW, built, config_for, forge, forged_job, put_json

COOKIE = "Cq4Tz8Mv2Lx7Rn3Kp9Wd5Hs6Jb1Yf0Ge"


def history_ids(store) -> Counter:
    return Counter(read_history(store).column("build_id").to_pylist())


def snapshot(store, jobs) -> None:
    """A package-state snapshot listing the synthetic jobs (what sync would have written)."""
    rows = [PackageStateRow.for_artifact(a, distro=j.distro, release=None, architecture=j.architecture,
                                         source_name=j.source_name, source_version=j.source_version,
                                         backend=j.backend, input_url=j.input_url, sync_id="s1", seen_at=NOW)
            for j in jobs for a in j.artifacts]
    key = "state/test/s1.parquet"
    store.put(key, parquet_bytes(rows, PackageStateRow))
    Pointer(store, "state/test").advance(key, {}, None, None)


def copy_store(source, target) -> None:
    for info in source.list(""):
        blob = source.get(info.key)
        target.put(info.key, blob.data, content_type=blob.info.content_type,
                   content_encoding=blob.info.content_encoding)


def test_results_update_the_queue_and_a_second_publish_changes_nothing(store, tmp_path):
    (good, fail, bad), worker = built(store, tmp_path)
    config = config_for(tmp_path, authorized=[worker.identity.public_key])
    state = publish_state(store, config, now=NOW)
    assert not state.busy and state.rejected == [] and len(state.accepted) == 3
    assert state.history_rows_added == 3 and history_ids(store) == Counter({f"{r.job_id}-1": 1 for r in (good, fail, bad)})
    assert state.queue_changes.done == [f"{good.job_id}-1"]
    assert sorted(state.queue_changes.retried) == sorted([f"{fail.job_id}-1", f"{bad.job_id}-1"])
    queue = read_queue(store)
    assert set(queue.jobs) == {fail.job_id, bad.job_id}
    built_at = {a.row.job_id: a.row.built_at for a in state.accepted}
    for jid, job in queue.jobs.items():
        assert (job.attempt, job.retries, job.priority, job.queued_at) == (2, 1, Priority.RETRY, NOW)
        assert job.not_before == built_at[jid] + timedelta(hours=48)
    assert "3 results accepted" in state.line()
    lock, _ = Leases(store).read(PUBLISH_LOCK)
    assert lock.released

    history_head = Pointer(store, "history").read()[0]
    again = publish_state(store, config, now=NOW + timedelta(hours=1))
    assert again.accepted == [] and again.history_rows_added == 0 and again.queue_changes.count() == 0
    assert Pointer(store, "history").read()[0] == history_head
    assert read_queue(store).pointer == queue.pointer  # not even rewritten


@pytest.mark.parametrize("stored_as", ["receipt", "previous"])
def test_results_and_claims_of_compacted_builds_are_pruned(store, tmp_path, stored_as):
    """Every publish lists results/ and claims/: what the history holds is deleted, nothing else.

    Results stored as done receipts go with the claims; those of earlier workers (`previous`,
    in results/) in the run after the one that compacted them."""
    (good, fail, bad), worker = built(store, tmp_path)
    previous = stored_as == "previous"
    for row in (good, fail, bad) if previous else ():
        to_previous_format(store, worker.identity, row.job_id)
    config = config_for(tmp_path, authorized=[worker.identity.public_key])
    forged = forge(store, generate_key(), forged_job(1), queue=False)  # rejected: stays, for the operator to see
    first = publish_state(store, config, now=NOW)
    assert first.pruned == 0 and len(list(store.list("results/"))) == (4 if previous else 1)  # compacted: next run
    assert len(first.accepted) == 3
    soon = publish_state(store, config, now=NOW + timedelta(seconds=1))
    assert {i.key for i in store.list("results/")} == {forged}
    assert len(list(store.list("claims/"))) == 9  # claims, start markers, done receipts, touched < a TTL ago: kept
    assert soon.pruned == (3 if previous else 0) and soon.accepted == [] and soon.queue_changes.count() == 0
    later = publish_state(store, config, now=datetime.now(timezone.utc) + timedelta(days=1))  # claims' mtime
    assert later.pruned == 9 and [i.key for i in store.list("claims/")] == []
    assert later.accepted == [] and history_ids(store) == Counter({f"{r.job_id}-1": 1 for r in (good, fail, bad)})
    assert set(read_queue(store).jobs) == {fail.job_id, bad.job_id}


@pytest.mark.parametrize("stored_as", ["receipt", "previous"])
def test_claims_of_builds_compacted_in_this_run_stay_until_the_next(store, tmp_path, stored_as):
    """A worker that read the queue just before this run's update must still find their claims."""
    rows, worker = built(store, tmp_path)
    for row in rows if stored_as == "previous" else ():
        to_previous_format(store, worker.identity, row.job_id)
    config = config_for(tmp_path, authorized=[worker.identity.public_key])
    late = datetime.now(timezone.utc) + timedelta(days=1)  # every claim is long settled
    first = publish_state(store, config, now=late)
    assert first.pruned == 0 and len(list(store.list("claims/"))) == 9  # with start markers and done receipts
    second = publish_state(store, config, now=late)
    assert second.pruned == (12 if stored_as == "previous" else 9)
    assert list(store.list("claims/")) == [] and list(store.list("results/")) == []


def test_max_retries_stops_retrying(store, tmp_path):
    (good, fail, bad), worker = built(store, tmp_path)
    config = config_for(tmp_path, authorized=[worker.identity.public_key], max_retries=2)
    publish_state(store, config, now=NOW)
    update_queue(store, lambda jobs: {k: replace(j, not_before=None) for k, j in jobs.items()})
    assert sorted(worker.run(until_idle=True).built) == sorted([f"{fail.job_id}-2 FAIL", f"{bad.job_id}-2 BAD"])
    state = publish_state(store, config, now=NOW)
    assert sorted(state.queue_changes.exhausted) == sorted([f"{fail.job_id}-2", f"{bad.job_id}-2"])
    assert read_queue(store).jobs == {} and sum(history_ids(store).values()) == 5


def test_countersigned_attestations_verify_with_the_worker_and_rebuilder_keys(store, tmp_path):
    (good, _, _), worker = built(store, tmp_path)
    state = publish_state(store, config_for(tmp_path, authorized=[worker.identity.public_key]), now=NOW)
    assert list(state.countersigned) == [f"{good.job_id}-1"] and state.attestation_problems == {}
    link = state.countersigned[f"{good.job_id}-1"]
    (rebuilder,) = load_public_keys_feed(state.public_keys)
    keys = {"worker": public_key_from_b64(worker.identity.public_key), "rebuilder": rebuilder}
    assert verify_link(link, keys, threshold=2) == {"worker", "rebuilder"}
    good = next(a for a in state.accepted if a.row.status is Status.GOOD)
    assert json.loads(good.attestation)["signed"] == link["signed"]  # the link the result carried
    assert json.loads(store.get(state.attestation_batch).data)["links"] == state.countersigned  # kept by publish


def test_after_a_key_rotation_the_old_key_stays_published(store, tmp_path):
    """Attestations countersigned before a rotation keep verifying with the published keys."""
    (good, _, _), worker = built(store, tmp_path)
    first = publish_state(store, config_for(tmp_path, authorized=[worker.identity.public_key]), now=NOW)
    (old,) = first.public_keys["current"]
    rotated = tmp_path / "rotated"
    rotated.mkdir()
    second = publish_state(store, config_for(rotated, authorized=[worker.identity.public_key]), now=NOW)
    new, kept = second.public_keys["current"]
    assert kept == old and new != old  # the current key first
    link = first.countersigned[f"{good.job_id}-1"]
    assert verify_link(link, {"old": load_public_keys_feed(second.public_keys)[1]}) == {"old"}
    again = publish_state(store, config_for(rotated, authorized=[worker.identity.public_key]), now=NOW)
    assert again.public_keys == second.public_keys


def test_a_configured_signing_key_that_does_not_exist_is_an_error(store, tmp_path, capsys):
    """Issue #14 item 7: a typo in `signing_key` made publish create a second rebuilder key,
    and `api/v0/public-keys` listed two. Now it is an error naming the path and the fix."""
    _, worker = built(store, tmp_path, 1)
    first = publish_state(store, config_for(tmp_path, authorized=[worker.identity.public_key]), now=NOW)
    assert len(first.public_keys["current"]) == 1
    capsys.readouterr()
    typo = tmp_path / "rebuilder.sign.kye"
    with pytest.raises(KeyFileError, match=f"rebuilder keygen {typo}") as info:
        publish_state(store, config_for(tmp_path, authorized=[worker.identity.public_key], signing_key=typo),
                      now=NOW)
    assert info.value.path == str(typo) and "[publish] signing_key" in str(info.value)
    assert not typo.exists()
    assert json.loads(store.get(REBUILDER_KEYS).data)["keys"] == first.public_keys["current"]
    again = publish_state(store, config_for(tmp_path, authorized=[worker.identity.public_key]), now=NOW)
    assert again.public_keys == first.public_keys and capsys.readouterr().err == ""


def test_only_the_unconfigured_default_key_is_created_and_that_is_said(tmp_path, monkeypatch, capsys):
    default = tmp_path / "var" / "rebuilderd.sign.key"
    monkeypatch.setattr(rebuilderd_conf, "DEFAULT_SIGNING_KEY", str(default))
    config = parse_rebuilder_config({})
    key = rebuilder_signing_key(config)
    assert default.exists() and f"created the rebuilder signing key {default}" in capsys.readouterr().err
    assert key_id(rebuilder_signing_key(config).public_key()) == key_id(key.public_key())
    assert capsys.readouterr().err == ""  # said once, when it was made


def test_countersigning_can_be_switched_off(store, tmp_path):
    _, worker = built(store, tmp_path, 1)
    state = publish_state(store, config_for(tmp_path, authorized=[worker.identity.public_key], sign=False), now=NOW)
    # The result carried its attestation: publish keeps it, as the worker signed it.
    (link,) = state.countersigned.values()
    assert verify_link(link, {"worker": public_key_from_b64(worker.identity.public_key)}) == {"worker"}
    assert len(link["signatures"]) == 1 and state.public_keys["current"]
    assert json.loads(store.get(state.attestation_batch).data)["links"] == state.countersigned


def test_rejected_results_never_reach_the_history_nor_the_queue(store, tmp_path):
    (good, fail), worker = built(store, tmp_path, 2)
    stranger = generate_key()
    # A forged GOOD for the retry attempt publish is about to queue, and a replayed GOOD.
    forged = forge(store, stranger, fail.job_id, holder=key_id(stranger.public_key()), attempt=2, queue=False)
    stored = claim_notice_key(good.job_id, 1, "done", worker.identity.key_id)
    replayed = put_json(store, result_key(fail.job_id, 3), json.loads(store.get(stored).data))
    state = publish_state(store, config_for(tmp_path, authorized=[worker.identity.public_key]), now=NOW)
    assert {r.key: r.reason for r in state.rejected} == {forged: Reason.UNKNOWN_KEY, replayed: Reason.REPLAYED}
    assert set(history_ids(store)) == {f"{good.job_id}-1", f"{fail.job_id}-1"}
    assert read_queue(store).jobs[fail.job_id].attempt == 2  # still waiting for a real retry
    assert "2 rejected" in state.line()


def test_a_second_publisher_reports_the_lock_holder(store, tmp_path):
    _, worker = built(store, tmp_path, 1)
    config = config_for(tmp_path, authorized=[worker.identity.public_key])
    other = Leases(store).acquire(PUBLISH_LOCK, "publish@elsewhere:42")
    state = publish_state(store, config, now=NOW)
    assert state.busy and "publish@elsewhere:42" in state.detail and state.line().startswith("publish: skipped")
    assert history_ids(store) == Counter()
    Leases(store).release(other)
    assert publish_state(store, config, now=NOW).history_rows_added == 1


class SlowResults:
    """A store whose results listing takes a while, so that two publishers surely overlap."""

    def __init__(self, store) -> None:
        self.store = store

    def __getattr__(self, name):
        return getattr(self.store, name)

    def list(self, prefix=""):
        if prefix == "results/":
            time.sleep(1.5)
        return self.store.list(prefix)


def test_two_publishers_at_once_one_runs(store, tmp_path):
    _, worker = built(store, tmp_path, 2)
    config = config_for(tmp_path, authorized=[worker.identity.public_key])
    barrier, states = threading.Barrier(2), []

    def run(name):
        barrier.wait()
        states.append(publish_state(SlowResults(store), config, now=NOW, holder=name))

    threads = [threading.Thread(target=run, args=(f"publisher-{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    busy = [s for s in states if s.busy]
    ran = [s for s in states if not s.busy]
    assert len(busy) == 1 and len(ran) == 1 and ran[0].history_rows_added == 2
    assert "publisher-" in busy[0].detail
    assert sum(history_ids(store).values()) == 2


def test_admin_requests_are_applied_then_deleted(store, tmp_path):
    (p0, p1, p2), worker = built(store, tmp_path)
    snapshot(store, [p0, p1, p2])
    config = config_for(tmp_path, authorized=[worker.identity.public_key], cookie=COOKIE, max_retries=1)
    requeue = write_request(store, COOKIE, "requeue", name="pkg*", status="BAD")  # past max_retries
    push = write_request(store, COOKIE, "push", name=p0.source_name, priority=4)
    write_request(store, COOKIE, "push", name=p1.source_name)
    drop = write_request(store, COOKIE, "drop", name=p1.source_name)
    forged = write_request(store, "Nx5Rk9Vm3Qz7Tc2Lp8Wg4Hd6Jf1Bs0Ya", "push", name="pkg*")
    now = datetime.now(timezone.utc)  # requests are stamped with the real time; publish judges their age
    state = publish_state(store, config, now=now)
    assert sorted(state.queue_changes.exhausted) == sorted([f"{p1.job_id}-1", f"{p2.job_id}-1"])
    assert len(state.requests_applied) == 4 and state.request_changes.queued[requeue] == [p2.job_id]
    assert state.request_changes.queued[push] == [p0.job_id] and state.request_changes.dropped[drop] == [p1.job_id]
    assert [(r.key, r.reason) for r in state.requests_rejected] == [(forged, Refusal.BAD_HMAC)]
    jobs = read_queue(store).jobs
    assert set(jobs) == {p0.job_id, p2.job_id}
    assert (jobs[p0.job_id].priority, jobs[p0.job_id].attempt, jobs[p0.job_id].not_before) == (4, 2, None)
    assert (jobs[p2.job_id].priority, jobs[p2.job_id].attempt, jobs[p2.job_id].retries) == (0, 2, 1)
    assert [i.key for i in store.list("requests/")] == [forged]  # applied ones deleted, the forged one kept

    write_request(store, COOKIE, "drop", name="pkg*")
    without_cookie = publish_state(store, config_for(tmp_path, authorized=[worker.identity.public_key]), now=now)
    assert {r.reason for r in without_cookie.requests_rejected} == {Refusal.NO_COOKIE}
    assert set(read_queue(store).jobs) == {p0.job_id, p2.job_id}


@pytest.mark.slow
def test_killed_at_every_write_the_rerun_converges(store_factory, tmp_path):
    template = store_factory.make()
    (p0, p1, p2), worker = built(template, tmp_path)
    snapshot(template, [p0, p1, p2])
    write_request(template, COOKIE, "requeue", name="pkg002", priority=0)
    write_request(template, COOKIE, "drop", name="pkg001")
    config = config_for(tmp_path, authorized=[worker.identity.public_key], cookie=COOKIE)
    now = datetime.now(timezone.utc)  # requests are stamped with the real time; publish judges their age

    def outcome(store):
        return history_ids(store), read_queue(store).jobs, sorted(i.key for i in store.list("requests/"))

    reference = store_factory.make()
    copy_store(template, reference)
    counting = FaultyStore(reference)
    publish_state(counting, config, now=now)
    expected = outcome(reference)
    assert expected[0] == Counter({f"{r.job_id}-1": 1 for r in (p0, p1, p2)})
    assert set(expected[1]) == {p2.job_id} and expected[2] == []
    assert counting.writes >= 8
    for kill_at in range(1, counting.writes + 1):
        for after in (False, True):
            store = store_factory.make()
            copy_store(template, store)
            with pytest.raises(Killed):
                publish_state(FaultyStore(store, kill_at=kill_at, after=after), config, now=now)
            read_queue(store)
            read_history(store)  # whatever the pointers name is complete and readable
            store.delete(PUBLISH_LOCK)  # stands for the killed holder's lease expiring
            publish_state(store, config, now=now)
            assert outcome(store) == expected, (kill_at, after, counting.log[kill_at - 1])


def test_an_admin_request_acts_once_however_it_is_written_again(store, tmp_path):
    """Issue #14 item 4: a signed drop, written again later under the same or a new name, was
    applied again each time. Now its nonce is remembered: every copy is refused and listed,
    and the queue is what the one application left."""
    (p0, p1, p2), worker = built(store, tmp_path)
    snapshot(store, [p0, p1, p2])
    config = config_for(tmp_path, authorized=[worker.identity.public_key], cookie=COOKIE, max_retries=9)
    now = datetime.now(timezone.utc)
    drop = write_request(store, COOKIE, "drop", name=p1.source_name)
    captured = store.get(drop).data  # anyone who can read the bucket can keep a copy
    first = publish_state(store, config, now=now)
    assert first.request_changes.dropped[drop] == [p1.job_id] and p1.job_id not in read_queue(store).jobs
    assert json.loads(store.get(APPLIED).data)["nonces"]  # remembered by publish, under history/

    push = write_request(store, COOKIE, "push", name=p1.source_name)  # the operator wants it back
    store.put("requests/99999999T000000Z-replay.json", captured)  # the same drop under a new name
    store.put(drop, captured)  # and under its own name again
    second = publish_state(store, config, now=now + timedelta(seconds=1))
    assert second.requests_applied == [push] and p1.job_id in read_queue(store).jobs
    assert sorted((r.key, r.reason) for r in second.requests_rejected) == sorted([
        ("requests/99999999T000000Z-replay.json", Refusal.REPLAYED), (drop, Refusal.ALREADY_APPLIED)])
    assert "1 requests applied, 2 rejected" in second.line()
    # The copy under a new name stays listed for the operator; the one under its own name was deleted.
    assert [i.key for i in store.list("requests/")] == ["requests/99999999T000000Z-replay.json"]
    third = publish_state(store, config, now=now + timedelta(seconds=2))
    assert [r.reason for r in third.requests_rejected] == [Refusal.REPLAYED] and p1.job_id in read_queue(store).jobs
    # A whole publish lists the refused copy for operators beside rejected results, and acts on nothing.
    summary = publish(store, config, now=now + timedelta(seconds=3))
    assert [r.reason for r in summary.state.requests_rejected] == [Refusal.REPLAYED]
    listed = json.loads(store.get("site/api/v1/rejected.json").data)["rejected"]
    assert [(r["key"], r["reason"]) for r in listed] == [("requests/99999999T000000Z-replay.json", "replayed")]
    assert p1.job_id in read_queue(store).jobs


def test_requests_outside_the_window_are_refused_and_old_nonces_forgotten(store, tmp_path):
    _, worker = built(store, tmp_path, 1)
    config = config_for(tmp_path, authorized=[worker.identity.public_key], cookie=COOKIE,
                        auth={"request_max_age": 600}, lease={"ttl": 30, "clock_skew": 5})
    now = datetime.now(timezone.utc)
    old = write_request(store, COOKIE, "drop", name="pkg*")
    late = publish_state(store, config, now=now + timedelta(seconds=606))
    assert [(r.key, r.reason) for r in late.requests_rejected] == [(old, Refusal.STALE)]
    assert "request_max_age" in late.requests_rejected[0].detail and late.requests_applied == []
    early = publish_state(store, config, now=now - timedelta(seconds=6))
    assert [(r.key, r.reason) for r in early.requests_rejected] == [(old, Refusal.FUTURE)]
    ok = publish_state(store, config, now=now + timedelta(seconds=604))  # inside max age + skew
    assert ok.requests_applied == [old]
    assert len(json.loads(store.get(APPLIED).data)["nonces"]) == 1
    # Once the window refuses the request anyway its nonce is forgotten: the memory stays bounded.
    later = publish_state(store, config, now=now + timedelta(seconds=1000))
    assert json.loads(store.get(APPLIED).data)["nonces"] == {} and later.requests_rejected == []


@pytest.mark.parametrize("built_at", [datetime(9999, 12, 31, 23, tzinfo=timezone.utc),
                                      datetime(1, 1, 1, tzinfo=timezone.utc)])
def test_a_trusted_workers_result_built_at_the_calendars_end_is_rejected_and_publish_goes_on(store, tmp_path,
                                                                                              built_at):
    # A BAD built at 9999-12-31T23:00Z (a valid instant) made retry_due overflow (its retry is due past datetime's
    # range): an OverflowError that stopped every publish from then on, the history keeping the row. Such a time
    # is now no time a result can have been built at (before 1970, or after it was stored): reason `timestamp`.
    (good,), worker = built(store, tmp_path, 1)
    config = config_for(tmp_path, authorized=[worker.identity.public_key])
    key = forge(store, worker.identity.key, forged_job(0), holder=worker.identity.key_id,
                started_at=built_at, built_at=built_at)
    summary = publish(store, config, now=NOW)
    assert [(r.key, r.reason) for r in summary.state.rejected] == [(key, "timestamp")]
    assert len(summary.state.accepted) == 1  # the honest build alongside it
    again = publish(store, config, now=NOW + timedelta(hours=1))  # said again, and nothing stops
    assert [(r.key, r.reason) for r in again.state.rejected] == [(key, "timestamp")]


def test_a_retry_past_the_calendar_is_due_at_its_end():
    """What the history may still hold (rows from before the timestamp check, an imported database): a retry
    past datetime's range is due at the end of time, not an OverflowError in every publish and sync."""
    from jobs.core.config import ScheduleConfig
    from jobs.core.history import BuildSummary, retry_due
    from jobs.core.model import Status

    summary = BuildSummary(job_id="j", status=Status.BAD, attempt=1, retries=0,
                           built_at=datetime(9999, 12, 31, 23, tzinfo=timezone.utc))
    assert retry_due(summary, ScheduleConfig()) == datetime.max.replace(tzinfo=timezone.utc)
