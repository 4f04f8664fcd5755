"""Pointers over immutable objects, and the queue built on them (both stores)."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timezone

import pytest

from jobs.core.model import Artifact, JobRow, job_id
from jobs.core.pointer import Pointer, PointerCorrupt
from jobs.core.queue import read_queue, update_queue
from jobs.core.store import PreconditionFailed

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)


def job(name: str, **kw) -> JobRow:
    url = f"https://example.org/{name}-1.0-1-x86_64.pkg.tar.zst"
    fields = dict(job_id=job_id("archlinux", "x86_64", url), backend="archlinux", architecture="x86_64",
                  input_url=url, distro="archlinux", releases=(None,), source_name=name, source_version="1.0-1",
                  artifacts=(Artifact(name, "1.0-1", "x86_64", url),), priority=1, queued_at=NOW,
                  not_before=None, attempt=1, retries=0)
    fields.update(kw)
    return JobRow(**fields)


def test_pointer_advances_by_cas_and_keeps_recent_targets(store):
    p = Pointer(store, "state/demo")
    assert p.read() == (None, None)
    keys = []
    current, etag = None, None
    for i in range(5):
        key = f"state/demo/{i}.parquet"
        store.put(key, b"x")
        keys.append(key)
        current = p.advance(key, {"i": i}, current, etag)
        _, etag = p.read()
    value, _ = p.read()
    assert value.target == keys[-1] and value.generation == 5 and value.meta == {"i": 4}
    assert value.retained == (keys[3], keys[2])
    remaining = [o.key for o in store.list("state/demo/") if o.key.endswith(".parquet")]
    assert remaining == keys[2:]  # older targets collected only after the pointer moved past them


def test_pointer_refuses_a_stale_writer(store):
    p = Pointer(store, "q")
    store.put("q/a", b"a")
    first = p.advance("q/a", {}, None, None)
    value, etag = p.read()
    store.put("q/b", b"b")
    p.advance("q/b", {}, value, etag)
    store.put("q/c", b"c")
    with pytest.raises(PreconditionFailed):
        p.advance("q/c", {}, value, etag)  # etag of the first generation
    with pytest.raises(PreconditionFailed):
        p.advance("q/c", {}, None, None)  # "create" when it exists
    assert p.read()[0].target == "q/b" and first.generation == 1


def test_corrupt_or_escaping_pointer_is_refused(store):
    store.put("q/HEAD.json", b"{not json")
    with pytest.raises(PointerCorrupt):
        Pointer(store, "q").read()
    store.put("q/HEAD.json", json.dumps({"schema": "rebuilder.pointer/1", "target": "site/index.html",
                                         "generation": 1, "updated_at": "x"}).encode())
    with pytest.raises(PointerCorrupt):
        Pointer(store, "q").read()


def test_orphans_of_killed_writers_are_collected_when_old(store):
    p = Pointer(store, "q")
    store.put("q/live", b"1")
    p.advance("q/live", {}, None, None)
    store.put("q/orphan", b"2")
    assert p.collect_orphans(min_age_seconds=3600) == []
    assert p.collect_orphans(min_age_seconds=0) == ["q/orphan"]
    assert [o.key for o in store.list("q/")] == ["q/HEAD.json", "q/live"]


def test_queue_update_round_trip(store):
    assert read_queue(store).jobs == {}
    a, b = job("a"), job("b")
    state, wrote = update_queue(store, lambda jobs: {**jobs, a.job_id: a, b.job_id: b})
    assert wrote and set(state.jobs) == {a.job_id, b.job_id}
    assert read_queue(store).jobs == {a.job_id: a, b.job_id: b}
    _, wrote = update_queue(store, lambda jobs: None)
    assert not wrote
    _, wrote = update_queue(store, lambda jobs: dict(jobs))  # same content: nothing written
    assert not wrote


def test_concurrent_queue_writers_lose_nothing(store):
    names = [f"pkg{i}" for i in range(12)]
    errors = []

    def add(name):
        try:
            row = job(name)
            update_queue(store, lambda jobs: {**jobs, row.job_id: row})
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=add, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert {j.source_name for j in read_queue(store).jobs.values()} == set(names)
