"""Workers whose clocks are off by up to the lease's clock-skew allowance (config `lease.clock_skew`).

jobs/core/lease.py: a contender takes a lease over only `clock_skew` seconds after its expiry
and the holder stops trusting it `clock_skew` seconds before, so clocks that differ by up to
the allowance never let two workers act on one claim. tests/core/test_lease.py checks the
arithmetic with fake clocks; here real workers build real jobs with a short TTL and clocks
set `clock_skew` seconds behind and ahead of the true time.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from jobs.core.config import parse_rebuilder_config
from jobs.core.errors import ConfigError
from jobs.core.layout import CLAIM_KEY
from jobs.core.lease import Leases
from jobs.work.run import Worker
from tests.faults import Fault, FaultyStore
from tests.proof.scenario import Scenario, assert_nothing_lost_or_duplicated
from tests.proof.stores import fresh_store

TTL, SKEW = 3, 1  # renewals every second; the allowance at its largest (ttl must exceed 2 x skew)


def skewed(worker: Worker, offset: float) -> Worker:
    """The worker with its clock `offset` seconds off the true time (its leases read that clock)."""
    worker.leases = Leases(worker.store, ttl=TTL, clock_skew=SKEW, clock=lambda: time.time() + offset)
    return worker


def test_skewed_workers_never_share_a_claim_and_lose_no_job(store_factory, tmp_path):
    """Three workers with clocks -skew, 0 and +skew build five jobs that each outlast a renewal
    interval: every job is built exactly once (no claim taken over, no second build), every job
    has exactly one result, and publish accepts them all."""
    scenario = Scenario(tmp_path, packages=("a", "b", "c", "d", "e"), ttl=TTL, clock_skew=SKEW)
    store = fresh_store(store_factory)
    scenario.sync(store)
    ledger = tmp_path / "ledger"
    env = {"PROOF_LEDGER": str(ledger), "PROOF_BUILD_SECONDS": "1.5"}
    workers = [skewed(scenario.worker(store, f"w{i}", seed=i, env=env), offset)
               for i, offset in enumerate((-SKEW, 0, SKEW))]
    stats = {}
    threads = [threading.Thread(target=lambda w=w: stats.__setitem__(w.identity.name, w.run(until_idle=True)))
               for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert not any(s.lost for s in stats.values()), stats
    built = Counter(ledger.read_text().split())
    assert sorted(built) == [f"{p}-1.0-1-x86_64.pkg.tar.zst" for p in "abcde"] and set(built.values()) == {1}
    leases = Leases(store, ttl=TTL, clock_skew=SKEW)
    for info in store.list("claims/"):
        if not CLAIM_KEY.fullmatch(info.key):
            continue  # the workers' signed start markers and done receipts beside their claims
        assert leases.read(info.key)[0].generation == 1, f"{info.key} was taken over"
    summary = scenario.publish(store)
    assert len(summary.state.accepted) == 5 and summary.state.rejected == []
    assert_nothing_lost_or_duplicated(store)


def test_a_stalled_slow_clock_holder_is_taken_over_only_once_it_stopped_trusting_its_claim(store_factory, tmp_path):
    """A worker whose clock is `skew` behind cannot renew its claim (its store writes fail); a worker
    whose clock is `skew` ahead takes the job over no earlier than the instant the first stops
    trusting its claim (true time acquired + ttl - skew), builds it, and is the only one to report."""
    scenario = Scenario(tmp_path, packages=("solo",), ttl=TTL, clock_skew=SKEW)
    store = fresh_store(store_factory)
    scenario.sync(store)
    stalled_store = FaultyStore(store, faults=[Fault("fail", op="put_if_match", key="claims/*", times=0)])
    slow = skewed(scenario.worker(stalled_store, "slow-clock", env={"PROOF_BUILD_SECONDS": "8"}), -SKEW)
    fast = skewed(scenario.worker(store, "fast-clock"), +SKEW)
    slow_stats = []
    holder = threading.Thread(target=lambda: slow_stats.append(slow.run(once=True)))
    holder.start()
    leases = Leases(store, ttl=TTL, clock_skew=SKEW)
    claims = []
    deadline = time.monotonic() + 30
    while not claims:
        assert time.monotonic() < deadline, "the slow worker never claimed"
        claims = [i for i in store.list("claims/") if CLAIM_KEY.fullmatch(i.key)]  # not the start marker
        time.sleep(0.02)
    first, _ = leases.read(claims[0].key)
    fast_built = []
    while not fast_built:
        assert time.monotonic() < deadline, "the job was never taken over"
        fast_built = fast.run(once=True).built
        time.sleep(0.05)
    holder.join()

    taken, _ = leases.read(claims[0].key)
    assert (first.holder, taken.holder) == (slow.identity.key_id, fast.identity.key_id) and taken.generation == 2
    true_acquired = first.acquired_at + SKEW  # each clock's reading minus its offset is the true time
    true_taken_over = taken.acquired_at - SKEW
    assert true_taken_over >= true_acquired + TTL - SKEW - 0.01, (true_taken_over - true_acquired)
    assert true_taken_over <= true_acquired + TTL + SKEW + 3, "the job waited far longer than the lease"
    assert slow_stats[0].built == [] and len(slow_stats[0].lost) == 1
    summary = scenario.publish(store)
    assert [a.row.worker_name for a in summary.state.accepted] == ["fast-clock"] and summary.state.rejected == []
    assert_nothing_lost_or_duplicated(store)


def test_an_allowance_no_claim_could_survive_is_refused_when_the_config_is_read():
    """With ttl <= 2 x clock_skew a holder would distrust its claim before contenders may take it:
    the config is refused with the key and the bound, instead of every job crashing later."""
    with pytest.raises(ConfigError) as err:
        parse_rebuilder_config({"lease": {"ttl": 50, "clock_skew": 30}})
    assert "lease.clock_skew" in str(err.value) and "lease.ttl / 2" in str(err.value)
    assert parse_rebuilder_config({"lease": {"ttl": TTL, "clock_skew": SKEW}}).lease.clock_skew == SKEW
