"""The fault wrapper itself (tests/faults.py) and the store's answer to lost answers (`put_new`)."""

from __future__ import annotations

import time

import pytest

from jobs.core.pointer import Pointer
from jobs.core.store import NotFound, PreconditionFailed, StoreUnavailable, put_new
from tests.faults import Fault, FaultyStore, Killed


def test_kill_before_and_after_a_chosen_write_then_the_process_is_dead(store):
    """A kill before the 2nd write lands nothing; after it, the write has landed; either way every
    later call, reads included, dies too (nothing runs after SIGKILL)."""
    before = FaultyStore(store, kill_at=2)
    before.put("a", b"1")
    with pytest.raises(Killed):
        before.put("b", b"2")
    with pytest.raises(Killed):
        before.get("a")
    assert before.killed_at == ("before", "put", "b") and [i.key for i in store.list()] == ["a"]
    after = FaultyStore(store, faults=[Fault("kill", "after", op="put_if_absent", key="c*")])
    after.put("b", b"2")
    with pytest.raises(Killed):
        after.put_if_absent("c1", b"3")
    assert store.get("c1").data == b"3" and after.dead


def test_fail_delay_call_and_lost_answer_by_op_key_and_count(store):
    """`fail` raises StoreUnavailable before (nothing landed) or after (landed); `delay` sleeps;
    `call` runs a callback; `nth`/`times` pick which matching operations; `lost_answer` lands the
    write and returns the answer of its retry (412 for a create-only write)."""
    calls = []
    faulty = FaultyStore(store, faults=[
        Fault("fail", op="put", key="f/*", nth=2, times=2),
        Fault("fail", "after", op="delete"),
        Fault("delay", op="get", seconds=0.2),
        Fault("call", "after", op="head", callback=lambda op, key: calls.append((op, key))),
        Fault("lost_answer", "after", op="put_if_absent"),
    ])
    faulty.put("f/1", b"x")
    for key in ("f/2", "f/3"):
        with pytest.raises(StoreUnavailable):
            faulty.put(key, b"x")
    faulty.put("f/4", b"x")
    assert sorted(i.key for i in store.list("f/")) == ["f/1", "f/4"]
    with pytest.raises(StoreUnavailable):
        faulty.delete("f/1")
    with pytest.raises(NotFound):
        store.head("f/1")  # failed after it landed
    started = time.monotonic()
    faulty.get("f/4")
    assert time.monotonic() - started >= 0.2
    faulty.head("f/4")
    assert calls == [("head", "f/4")]
    with pytest.raises(PreconditionFailed):
        faulty.put_if_absent("new", b"ours")
    assert store.get("new").data == b"ours"
    assert [op for op, _ in faulty.landed] == ["put", "put", "delete", "put_if_absent"]


def test_put_new_and_pointers_take_a_lost_answer_for_what_it_is(store):
    """A create-only write refused only because its first try landed is a success when the object
    holds our bytes (and a failure when it holds someone else's); a pointer advanced the same way
    stays advanced instead of making its caller delete the object it now names."""
    lossy = FaultyStore(store, faults=[Fault("lost_answer", "after", op=("put_if_absent", "put_if_match"), times=0)])
    assert put_new(lossy, "obj", b"ours") == store.head("obj").etag
    with pytest.raises(PreconditionFailed):
        put_new(store, "obj", b"theirs")
    pointer = Pointer(lossy, "p")
    first = pointer.advance("p/one", {}, None, None)
    second = pointer.advance("p/two", {}, first, Pointer(store, "p").read()[1])
    assert Pointer(store, "p").read()[0].target == "p/two" and second.generation == 2
