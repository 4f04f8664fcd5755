"""Leases on both real stores: acquire, renew, takeover after expiry, loss, release."""

from __future__ import annotations

import contextlib
import time

import pytest

from jobs.core.lease import Held, Lease, LeaseHeld, LeaseKeeper, LeaseLost, Leases, LeaseState
from jobs.core.store import PreconditionFailed, open_store
from tests.core.racing import race
from tests.faults import FaultyStore


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_acquire_then_held_by_someone_else(store):
    clock = Clock()
    leases = Leases(store, ttl=60, clock_skew=5, clock=clock)
    lease = leases.acquire("claims/job/1.json", "worker-a", meta={"job": "job"})
    assert lease.state.holder == "worker-a" and lease.state.expires_at == clock.now + 60
    with pytest.raises(LeaseHeld) as exc:
        leases.acquire("claims/job/1.json", "worker-b")
    assert exc.value.holder == "worker-a"
    state, etag = leases.read("claims/job/1.json")
    assert state == lease.state and etag == lease.etag and state.meta == {"job": "job"}


def test_renewal_extends_and_changes_the_etag(store):
    clock = Clock()
    leases = Leases(store, ttl=60, clock_skew=5, clock=clock)
    lease = leases.acquire("lock", "a")
    clock.now += 20
    renewed = leases.renew(lease)
    assert renewed.state.expires_at == clock.now + 60 and renewed.etag != lease.etag
    assert renewed.state.token == lease.state.token
    clock.now += 50  # past the first expiry (+65), not past the renewed one (+85)
    with pytest.raises(LeaseHeld):
        leases.acquire("lock", "b")


def test_takeover_only_after_expiry_plus_skew_allowance(store):
    clock = Clock()
    leases = Leases(store, ttl=60, clock_skew=5, clock=clock)
    lease = leases.acquire("lock", "a")
    clock.now += 60 + 5  # expired by the holder's clock, but within the skew allowance
    with pytest.raises(LeaseHeld):
        leases.acquire("lock", "b")
    clock.now += 0.01
    taken = leases.acquire("lock", "b")
    assert taken.state.holder == "b" and taken.state.generation == 2
    with pytest.raises(LeaseLost):
        leases.renew(lease)  # the old holder learns it lost
    with pytest.raises(LeaseLost):
        leases.release(lease)


def test_holder_stops_acting_before_others_may_take_over(store):
    clock = Clock()
    leases = Leases(store, ttl=60, clock_skew=5, clock=clock)
    lease = leases.acquire("lock", "a")
    clock.now += 54.9
    assert leases.is_safe(lease)
    clock.now += 0.2
    assert not leases.is_safe(lease)  # holder gives up at expiry - skew ...
    assert not leases.is_expired(leases.read("lock")[0])  # ... contenders wait until expiry + skew


def test_skewed_contender_clocks_within_the_allowance_never_overlap(store):
    # A holder and contenders whose clocks differ by up to the allowance: whenever a
    # contender may take over, the holder already considers its lease unsafe.
    holder_clock = Clock()
    skew = 5.0
    holder = Leases(store, ttl=60, clock_skew=skew, clock=holder_clock)
    lease = holder.acquire("lock", "a")
    for offset in (-skew, -2.5, 0.0, 2.5, skew):
        contender = Leases(store, ttl=60, clock_skew=skew, clock=lambda offset=offset: holder_clock.now + offset)
        for t in range(0, 80):
            holder_clock.now = lease.state.acquired_at + t
            if contender.is_expired(contender.read("lock")[0]):
                assert not holder.is_safe(lease), (offset, t)


def test_release_lets_the_next_holder_in_at_once(store):
    leases = Leases(store, ttl=600, clock_skew=30)
    lease = leases.acquire("lock", "a")
    leases.release(lease)
    nxt = leases.acquire("lock", "b")
    assert nxt.state.holder == "b" and nxt.state.generation == 2


def test_unreadable_lease_object_counts_as_expired(store):
    store.put("lock", b"\x00 not json")
    lease = Leases(store, ttl=60, clock_skew=5).acquire("lock", "a")
    assert lease.state.holder == "a"


@pytest.mark.full("several processes wait out a lease")
def test_takeover_after_expiry_by_exactly_one_of_several_processes(store_factory):
    url = store_factory.url()
    leases = Leases(open_store(url), ttl=1.0, clock_skew=0.0)
    old = leases.acquire("lock", "crashed-worker")
    time.sleep(1.1)
    reports = race("lease", url, "60", 6, store_factory.env())
    winners = [r for r in reports if r["won"]]
    assert len(winners) == 1, reports
    assert all(r["holder"] == winners[0]["me"] for r in reports if not r["won"])
    state, _ = leases.read("lock")
    assert state.holder == winners[0]["me"] and state.generation == 2
    with pytest.raises(LeaseLost):
        leases.renew(old)


class LostAnswers:
    """A store whose conditional writes land but whose answers are lost, as when a
    retried request meets its own first attempt: the caller sees 412."""

    def __init__(self, store) -> None:
        self.store = store

    def __getattr__(self, name):
        return getattr(self.store, name)

    def put_if_absent(self, key, body, **kw):
        self.store.put_if_absent(key, body, **kw)
        raise PreconditionFailed("answer lost", op="put_if_absent", key=key)

    def put_if_match(self, key, body, etag, **kw):
        self.store.put_if_match(key, body, etag, **kw)
        raise PreconditionFailed("answer lost", op="put_if_match", key=key)


def test_a_write_whose_answer_was_lost_is_recognised_as_ours(store):
    clock = Clock()
    leases = Leases(LostAnswers(store), ttl=60, clock_skew=5, clock=clock)
    lease = leases.acquire("lock", "a")
    assert leases.read("lock") == (lease.state, lease.etag)
    clock.now += 10
    lease = leases.renew(lease)
    assert leases.read("lock") == (lease.state, lease.etag)
    leases.release(lease)
    assert leases.read("lock")[0].released


def test_keeper_renews_in_the_background_and_reports_loss(store):
    leases = Leases(store, ttl=1.5, clock_skew=0.1)
    lease = leases.acquire("lock", "a")
    with LeaseKeeper(leases, lease, interval=0.2) as keeper:
        # Checked every 0.2 s, renewed once less than 0.2 + 1.5 / 4 s are left (after about 0.9 s).
        deadline = time.monotonic() + 5
        while keeper.lease.state.expires_at == lease.state.expires_at and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not keeper.lost.is_set()
        assert keeper.lease.state.expires_at > lease.state.expires_at
        # Someone else takes over (e.g. an operator, or a contender after a stall); the
        # keeper may renew between our read and our write: read again, as a contender would.
        for _ in range(50):
            state, etag = leases.read("lock")
            try:
                store.put_if_match("lock", LeaseState("b", "t", 0, 0, time.time() + 60).to_bytes(), etag)
                break
            except PreconditionFailed:
                continue
        else:
            pytest.fail("the keeper renewed between every read and write")
        assert keeper.lost.wait(2.0)
        assert "changed" in keeper.reason


def test_keeper_checks_with_reads_and_writes_only_when_the_lease_runs_low(store):
    """A look every 0.2 s at a 60 s lease is a GET until less than 0.2 + 15 s are left: no write
    at all in a second; a takeover is still found at the next look."""
    leases = Leases(store, ttl=60, clock_skew=1)
    lease = leases.acquire("lock", "a")
    watched = FaultyStore(store)
    with LeaseKeeper(Leases(watched, ttl=60, clock_skew=1), lease, interval=0.2) as keeper:
        time.sleep(1.0)
        assert watched.log == [] and watched.ops["get"] >= 3 and not keeper.lost.is_set()
        state, etag = leases.read("lock")
        store.put_if_match("lock", LeaseState("b", "t", 0, 0, time.time() + 60).to_bytes(), etag)
        assert keeper.lost.wait(2.0)
        assert "changed" in keeper.reason and keeper.taken_while_live
    assert watched.log == []


def test_ttl_must_exceed_twice_the_skew(store):
    with pytest.raises(ValueError):
        Leases(store, ttl=10, clock_skew=5)


def test_lease_type_is_plain_data():
    s = LeaseState("a", "t", 1.0, 1.0, 2.0)
    assert LeaseState.from_bytes(s.to_bytes()) == s
    assert LeaseState.from_bytes(b'{"schema": "other"}') is None
    assert isinstance(Lease("k", s, '"e"'), Lease)


def test_a_lease_released_as_done_is_kept_from_takeover(store):
    leases = Leases(store, ttl=60, clock_skew=5)
    lease = leases.acquire("claims/j/1.json", "worker-a")
    leases.release(lease, {"done": True})
    with pytest.raises(LeaseHeld):
        leases.acquire("claims/j/1.json", "worker-b", keep=lambda s: s.meta.get("done"))
    state, _ = leases.read("claims/j/1.json")
    assert state.released and state.meta["done"] is True and state.holder == "worker-a"
    assert leases.acquire("claims/j/1.json", "worker-b").state.generation == 2  # without keep: taken over


@pytest.mark.parametrize("ending", [None, RuntimeError, KeyboardInterrupt])
def test_held_releases_the_lease_however_the_block_ends(store, ending):
    clock = Clock()
    leases = Leases(store, ttl=60, clock_skew=5, clock=clock)
    lock = Held(leases, "locks/publish.json", "a", meta={"job": "publish"})
    with pytest.raises(LeaseHeld):
        Held(leases, "locks/publish.json", "b")
    with contextlib.suppress(RuntimeError, KeyboardInterrupt), lock as keeper:
        keeper.check()
        if ending is not None:
            raise ending("stopped")
    state, _ = leases.read("locks/publish.json")
    assert state.released and state.meta == {"job": "publish"}
    assert Held(leases, "locks/publish.json", "b").keeper.lease.state.holder == "b"


def test_held_leaves_a_lost_lease_to_its_new_holder(store):
    clock = Clock()
    leases = Leases(store, ttl=60, clock_skew=5, clock=clock)
    with Held(leases, "lock", "a") as keeper:
        clock.now += 66
        taken = leases.acquire("lock", "b")  # a's lease expired: b takes it over
        keeper._lose("renew refused")  # what the keeper's thread does on its next renewal
        with pytest.raises(LeaseLost):
            keeper.check()
    state, etag = leases.read("lock")
    assert state == taken.state and etag == taken.etag  # a did not release b's lease
