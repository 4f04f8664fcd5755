"""Killed, failed or answered twice at any write, the jobs converge and lose or duplicate nothing.

Invariants 2 and 4 (docs/design.md#invariants), proved on the local store and on SeaweedFS: a scheduled run
(sync, two workers, publish) is hit by faults from `tests.faults`, then time passes (the
dead processes' leases expire) and the run is scheduled again. The published state must
equal that of a run without faults, every attempt must have exactly one result in the
history, and every result a worker managed to store must be in it.
"""

from __future__ import annotations

import dataclasses
import fnmatch

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobs.core.errors import RebuilderError
from jobs.core.history import read_history
from jobs.core.queue import read_queue
from jobs.publish.state.update import publish_state
from tests.faults import Fault, FaultyStore, Killed
from tests.proof.scenario import (
    Scenario,
    assert_nothing_lost_or_duplicated,
    assert_one_cycle_published,
    published,
    results_written,
    time_passes,
)
from tests.proof.stores import fresh_store

# Where faults land: any write, or the n-th write under one prefix (so every job gets its share).
TARGETS = [None, None, "*/HEAD.json", "*.parquet", "locks/*", "claims/*", "builds/*", "claims/*.done/*", "history/*",
           "site/*", "workers/*"]


def writes_per_target(log: list[tuple[str, str]]) -> dict[str | None, int]:
    """How many of the writes in `log` each of TARGETS matches (None: every write)."""
    return {key: sum(1 for _, k in log if key is None or fnmatch.fnmatchcase(k, key)) for key in TARGETS}


@st.composite
def faults(draw, writes: dict[str | None, int]) -> Fault:
    """One fault: kill, fail or lose the answer of one write, before or after it lands; the n-th
    write of a target that a clean cycle makes at least n times, so that it fires."""
    action = draw(st.sampled_from(["kill", "kill", "fail", "lost_answer"]))
    when = "after" if action == "lost_answer" else draw(st.sampled_from(["before", "after"]))
    key = draw(st.sampled_from([t for t in TARGETS if writes[t]]))
    nth = draw(st.integers(1, writes[key]))
    return Fault(action, when, key=key, nth=nth)


def faulty_run(scenario: Scenario, faulty: FaultyStore) -> str:
    """One scheduled run through a faulty store, after the last run's dead processes' leases expired."""
    time_passes(faulty.store, scenario.config)
    try:
        return scenario.cycle_until_it_stops(faulty)
    except Killed as exc:
        return f"killed: {exc}"


def test_faults_anywhere_in_a_cycle_converge_to_the_unfaulted_state(store_factory, tmp_path):
    """Any 1-3 runs hit by a kill, a store failure or a lost answer at a random write (sync, work,
    publish or its site), then one clean run: the same published v0 list, history and queue as a
    run with no faults; each attempt once in the history, every result that landed in it, every
    finished claim released as done."""
    scenario = Scenario(tmp_path)
    reference_store = FaultyStore(fresh_store(store_factory))  # no faults: it logs the writes
    scenario.cycle(reference_store)
    reference = published(reference_store.store)
    assert_one_cycle_published(reference)
    writes = writes_per_target(reference_store.log)

    # Each example is two to four full cycles; SeaweedFS runs fewer of them (the logic is the same,
    # what S3 adds, its conditional writes, every example exercises).
    @settings(max_examples=6 if store_factory.kind == "local" else 3, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(plan=st.lists(faults(writes), min_size=1, max_size=3))
    def check(plan: list[Fault]) -> None:
        store = fresh_store(store_factory)
        # The first run starts from the empty store as the clean cycle did, so its fault fires
        # (checked here and by tests/conftest.py); a later run may have less left to do.
        plan = plan[:1] + [dataclasses.replace(fault, may_not_fire=True) for fault in plan[1:]]
        runs = [FaultyStore(store, faults=[fault]) for fault in plan]
        endings = [faulty_run(scenario, faulty) for faulty in runs]
        assert plan[0].fired, (plan, endings)
        time_passes(store, scenario.config)
        scenario.cycle(clean := FaultyStore(store))
        scenario.publish(clean, settled=True)  # the next scheduled publish: results of takeovers settled
        assert published(store) == reference, (plan, endings)
        assert_nothing_lost_or_duplicated(store, results_written(*runs, clean))

    check()


def _one_package_run(scenario: Scenario, store) -> None:
    scenario.sync(store)
    scenario.worker(store, "w1").run(until_idle=True)
    publish_state(store, scenario.config)


def _outcome(store):
    history = read_history(store)
    return (sorted(zip(history.column("build_id").to_pylist(), history.column("status").to_pylist())),
            read_queue(store).jobs)


SWEEP = [("kill", "before"), ("kill", "after"), ("lost_answer", "after")]


def test_every_write_of_a_one_package_run_faulted_in_turn_converges(store_factory, tmp_path):
    """Deterministic sweep: a run of sync, one worker and publish's state step, faulted at each of
    its writes in turn, then rerun once after time passes, reaches the history and queue of the
    unfaulted run; each attempt once in the history, every stored result in it. On the local store every write gets
    every fault (killed before it, killed after it, its answer lost so that the retried request sees
    412); on SeaweedFS every write gets one of them in rotation. A lost answer never fails sync or
    a worker."""
    scenario = Scenario(tmp_path, packages=("good",))
    reference = FaultyStore(fresh_store(store_factory))
    _one_package_run(scenario, reference)
    expected = _outcome(reference.store)
    assert len(expected[0]) == 1 and expected[1] == {}
    assert reference.writes >= 15
    for nth in range(1, reference.writes + 1):
        sweep = SWEEP if store_factory.kind == "local" else [SWEEP[nth % len(SWEEP)]]
        for action, when in sweep:
            where = (action, when, nth, reference.log[nth - 1])
            store = fresh_store(store_factory)
            faulty = FaultyStore(store, faults=[Fault(action, when, nth=nth)])
            try:
                _one_package_run(scenario, faulty)
            except Killed:
                assert action == "kill"
            except RebuilderError as exc:
                pytest.fail(f"a {action} {when} write {nth} failed the run: {exc}")
            time_passes(store, scenario.config)
            try:
                _one_package_run(scenario, rerun := FaultyStore(store))
            except RebuilderError as exc:
                pytest.fail(f"rerun after {where} failed: {exc}")
            assert _outcome(store) == expected, where
            assert_nothing_lost_or_duplicated(store, results_written(faulty, rerun))


def test_a_lost_answer_never_fails_publish(store_factory, tmp_path):
    """A create-only write whose answer was lost (the client retries and sees 412) does not fail publish."""
    scenario = Scenario(tmp_path, packages=("good",))
    store = fresh_store(store_factory)
    scenario.sync(store)
    scenario.worker(store, "w1").run(until_idle=True)
    publish_state(FaultyStore(store, faults=[Fault("lost_answer", "after", key="history/part-*")]), scenario.config)
