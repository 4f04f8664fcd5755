"""The site's writer threads (`writepool.Writer`): bounded, ordered by step, stopped by the first error."""

from __future__ import annotations

import threading
import time

import pytest

from jobs.core.store import LocalStore
from jobs.publish.site.sitewriter import json_safe
from jobs.publish.site.writepool import LOCAL_WRITERS, WRITERS, Writer, writers_for
from tests.faults import FaultyStore, Killed


def test_the_caller_goes_on_while_one_thread_writes_in_order_and_at_most_depth_items_wait():
    gate, started, seen = threading.Event(), threading.Event(), []

    def call(item):
        started.set()
        assert gate.wait(10)
        seen.append(item)
        return item * 10

    results = {}
    pool = Writer(1, depth=2)
    pool.submit("a", [0], call, results.__setitem__)  # returns while 0 is being written
    assert started.wait(10) and seen == []
    pool.submit("a", [1, 2], call, results.__setitem__)  # queued: the caller renders on
    blocked = threading.Thread(target=pool.submit, args=("a", [3], call, results.__setitem__))
    blocked.start()
    blocked.join(0.3)
    assert blocked.is_alive()  # a third waiting item holds the caller: memory stays bounded
    gate.set()
    blocked.join(10)
    pool.wait()
    pool.close()
    assert seen == [0, 1, 2, 3] and results == {0: 0, 1: 10, 2: 20, 3: 30}
    assert not pool.threads


def test_items_of_a_step_overlap_and_the_next_step_starts_once_they_have_landed():
    spans: dict[str, list[tuple[float, float]]] = {"a": [], "b": []}
    active, most, lock = [0], [0], threading.Lock()

    def call(step):
        started = time.monotonic()
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        time.sleep(0.05)
        with lock:
            active[0] -= 1
        spans[step].append((started, time.monotonic()))

    with Writer(4) as pool:
        pool.submit("a", ["a"] * 8, call)
        pool.submit("a", ["a"] * 4, call)  # the same step, a later batch: no wait
        pool.submit("b", ["b"] * 4, call)
        pool.wait()
    assert most[0] > 1
    assert min(s for s, _ in spans["b"]) >= max(e for _, e in spans["a"])
    assert len(spans["a"]) == 12 and len(spans["b"]) == 4


@pytest.mark.parametrize("threads", [0, 1, 3])
def test_the_first_error_stops_what_has_not_started_and_is_raised_in_the_callers_thread(threads):
    called = []

    def call(item):
        called.append(item)
        if item == 2:
            raise Killed()
        time.sleep(0.01)

    pool = Writer(threads, depth=4)
    with pytest.raises(Killed):
        with pool:
            pool.submit("a", range(50), call)
            pool.wait()
    assert 2 in called and len(called) < 50 and not pool.threads
    with pytest.raises(Killed):  # and by every call after it: nothing more is written
        pool.submit("a", [99], call)
    assert 99 not in called


def test_writers_suit_the_store(tmp_path):
    for fsync, writers in ((False, LOCAL_WRITERS), (True, WRITERS)):
        local = LocalStore(tmp_path / str(fsync), fsync=fsync)
        assert writers_for(local) == writers_for(FaultyStore(local)) == writers
    assert LOCAL_WRITERS == 1 and WRITERS > 1  # no fsync: one thread beside the renderer; fsync: the waits overlap

    class Remote:
        url = "s3://bucket/prefix"

    assert writers_for(Remote()) == WRITERS  # type: ignore[arg-type]


def test_json_text_keeps_ascii_and_plain_utf8_and_escapes_what_reorders_text():
    ascii_feed = b'{"name":"foo","rows":[1,2,3]}' * 100
    assert json_safe(ascii_feed) is ascii_feed  # the usual feed: one pass, no copy
    assert json_safe('{"name":"Levente Polyák"}'.encode()) == '{"name":"Levente Polyák"}'.encode()
    assert json_safe('{"name":"a\u202eb\u0085c\u2066"}'.encode()) == b'{"name":"a\\u202eb\\u0085c\\u2066"}'
