"""Every injected fault must fire: `tests.faults.unfired()`, which tests/conftest.py checks after
every test, names the faults that never acted, and a fault counts as fired only when it acted."""

from __future__ import annotations

import pytest

from jobs.core.store import LocalStore, NotFound, StoreUnavailable
from tests import faults
from tests.faults import Fault, FaultyStore, Killed


@pytest.fixture
def local(tmp_path) -> LocalStore:
    return LocalStore(tmp_path / "store", fsync=False)


def test_a_fault_that_never_matched_is_reported(local):
    try:
        faulty = FaultyStore(local, faults=[Fault("kill", key="never/*"), Fault("fail", op="put", nth=1)])
        with pytest.raises(StoreUnavailable):
            faulty.put("a", b"1")
        unfired = faults.unfired()
        assert unfired == ["kill before ('put', 'put_if_absent', 'put_if_match', 'delete') key='never/*' nth=1 "
                           "(matched 0 operations)"]
        FaultyStore(local, kill_at=5).put("b", b"2")  # the short form is checked too
        assert len(faults.unfired()) == 2 and "nth=5 (matched 1 operations)" in faults.unfired()[1]
    finally:
        faults.CREATED.clear()  # this test's own unfired faults are meant


def test_a_fault_after_an_operation_that_raised_has_not_fired(local):
    """`fail` after a write that itself failed never acted; a kill after it did (the process dies)."""
    try:
        failing = FaultyStore(local, faults=[Fault("fail", "after", op="get")])
        with pytest.raises(NotFound):
            failing.get("missing")
        assert failing.faults[0].seen == 1 and failing.faults[0].fired == 0 and len(faults.unfired()) == 1
    finally:
        faults.CREATED.clear()
    killing = FaultyStore(local, faults=[Fault("kill", "after", op="get")])
    with pytest.raises(Killed):
        killing.get("missing")
    assert killing.faults[0].fired == 1 and not faults.unfired()


def test_may_not_fire_is_exempt(local):
    FaultyStore(local, faults=[Fault("kill", nth=3, may_not_fire=True)]).put("a", b"1")
    assert not faults.unfired()
