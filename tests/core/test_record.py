"""`jobs.core.record`: the records rebuildctl's path uses behave as the dataclasses they replaced."""

from __future__ import annotations

import copy
import pickle

import pytest

from jobs.core.feeds import PackageRecord, QueuedJob, Worker
from jobs.core.record import asdict, fields, is_record, record, replace


@record(frozen=True, uncompared=("raw",))
class Frozen:
    """A frozen record."""

    x: int
    y: str | None = None
    raw: dict | None = None

    def twice(self) -> int:
        return self.x * 2


@record
class Mutable:
    p: int
    q: list


def test_a_frozen_record():
    a = Frozen(1, "a", {"k": 1})
    assert a == Frozen(1, y="a") and a != Frozen(2, "a") and hash(a) == hash(Frozen(1, "a"))  # raw not compared
    assert repr(a) == "Frozen(x=1, y='a')" and a.twice() == 2 and Frozen.__doc__ == "A frozen record."
    assert Frozen(3).y is None and fields(Frozen) == ("x", "y", "raw") and is_record(a) and not is_record(Frozen)
    with pytest.raises(AttributeError):
        a.x = 2
    with pytest.raises(AttributeError):
        a.other = 2
    assert replace(a, y="b") == Frozen(1, "b") and asdict(a) == {"x": 1, "y": "a", "raw": {"k": 1}}
    with pytest.raises(TypeError):
        replace(a, z=1)
    assert pickle.loads(pickle.dumps(a)) == a and copy.deepcopy(a) == a and copy.copy(a).raw == {"k": 1}


def test_a_mutable_record():
    b = Mutable(1, [2])
    b.p = 5
    assert b == Mutable(5, [2]) and Mutable.__hash__ is None
    with pytest.raises(TypeError):
        hash(b)
    with pytest.raises(AttributeError):
        b.z = 1  # slots


def test_the_feed_records_are_records():
    assert fields(PackageRecord)[:3] == ("distro", "release", "component")
    assert "raw" in fields(QueuedJob) and "raw" in fields(Worker)
    w = Worker("k" * 64, "w", 1, "enrolled", None, 3, None, {"raw": True})
    assert w == Worker("k" * 64, "w", 1, "enrolled", None, 3) and "raw" not in repr(w)
    assert replace(w, builds=4).builds == 4 and replace(w, builds=4).raw == {"raw": True}
