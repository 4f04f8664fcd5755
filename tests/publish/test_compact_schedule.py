"""The history append (both stores, killed at every write) and the retry schedule (pure)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from datetime import timedelta

import pytest

from jobs.core.config import ScheduleConfig
from jobs.core.history import BuildSummary, build_summaries, history_parts, read_history, retry_due
from jobs.core.model import Artifact, JobRow, Priority, Status, from_table, job_id
from jobs.core.pointer import Pointer
from jobs.publish.state import compact as compact_module
from jobs.publish.state.compact import compacted_build_ids
from jobs.publish.state.schedule import apply_results, next_queue
from jobs.publish.state.update import collect_orphans, compact
from tests.faults import FaultyStore, Killed
from tests.publish.test_verify import NOW, result_row


def jid(n: int) -> str:
    return job_id("test", "x86_64", f"file:///in/{n}")


def row(n: int, attempt: int = 1, status=Status.GOOD, hours: int = 0):
    return result_row(jid(n), "a" * 64, "f" * 32, attempt=attempt, status=status,
                      built_at=NOW + timedelta(hours=hours))


def job(n: int, attempt: int = 1, retries: int = 0) -> JobRow:
    url = f"file:///in/{n}"
    return JobRow(job_id=jid(n), backend="test", architecture="x86_64", input_url=url, distro="d", releases=(None,),
                  source_name=f"p{n}", source_version="1", artifacts=(Artifact(f"p{n}", "1", "x86_64", url),),
                  priority=Priority.NEW, queued_at=NOW, not_before=None, attempt=attempt, retries=retries)


def history_ids(store) -> Counter:
    return Counter(read_history(store).column("build_id").to_pylist())


# --- schedule ---------------------------------------------------------------------------

def test_a_good_result_removes_its_job():
    jobs = {jid(0): job(0), jid(1): job(1)}
    assert next_queue(jobs, [row(0)], ScheduleConfig(), NOW) == {jid(1): job(1)}


@pytest.mark.parametrize("status", [Status.FAIL, Status.BAD])
def test_a_failed_result_is_retried_after_rebuilderds_code_delay(status):
    later = NOW + timedelta(days=1)
    jobs, changes = apply_results({jid(0): job(0)}, [row(0, status=status, hours=3)], ScheduleConfig(), later)
    retried = jobs[jid(0)]
    built_at = NOW + timedelta(hours=3)
    assert (retried.attempt, retried.retries, retried.priority) == (2, 1, Priority.RETRY)
    assert retried.not_before == built_at + timedelta(hours=48)  # (1 + 1) * 24 h, not the docs' 24 h
    assert retried.queued_at == later and changes.retried == [f"{jid(0)}-1"]
    # The second failure waits (2 + 1) * base; the base is configurable.
    jobs = next_queue(jobs, [row(0, attempt=2, status=status, hours=60)], ScheduleConfig(retry_delay_base=10), later)
    assert jobs[jid(0)].not_before == NOW + timedelta(hours=60 + 30)
    assert (jobs[jid(0)].attempt, jobs[jid(0)].retries) == (3, 2)
    # The same formula as sync's retries of dropped jobs.
    summary = BuildSummary(jid(0), status, 2, 2, NOW + timedelta(hours=60))
    assert retry_due(summary, ScheduleConfig(retry_delay_base=10)) == jobs[jid(0)].not_before


def test_max_retries_removes_the_job():
    jobs, changes = apply_results({jid(0): job(0, retries=1)}, [row(0, status=Status.BAD)],
                                  ScheduleConfig(max_retries=2), NOW)
    assert jobs == {} and changes.exhausted == [f"{jid(0)}-1"]
    assert next_queue({jid(0): job(0)}, [row(0, status=Status.BAD)], ScheduleConfig(max_retries=2), NOW)[jid(0)]


def test_results_of_unqueued_jobs_and_older_attempts_change_nothing():
    jobs = {jid(0): job(0, attempt=2, retries=1)}
    new, changes = apply_results(jobs, [row(0, attempt=1, status=Status.BAD), row(5)], ScheduleConfig(), NOW)
    assert new == jobs and sorted(changes.ignored) == sorted([f"{jid(0)}-1", f"{jid(5)}-1"])
    # Applying the same results twice equals applying them once.
    once = next_queue({jid(0): job(0), jid(1): job(1)}, [row(0, status=Status.FAIL), row(1)], ScheduleConfig(), NOW)
    assert next_queue(once, [row(0, status=Status.FAIL), row(1)], ScheduleConfig(), NOW) == once


# --- history ----------------------------------------------------------------------------

def test_compaction_appends_each_build_once(store):
    assert compacted_build_ids(store) == set()
    first = compact(store, [row(0), row(1, status=Status.FAIL)])
    assert first.added == tuple(sorted([f"{jid(0)}-1", f"{jid(1)}-1"])) and first.part and first.manifest
    again = compact(store, [row(1, status=Status.FAIL), row(2), row(2)])
    assert again.added == (f"{jid(2)}-1",)
    assert compact(store, [row(0), row(2)]).manifest is None  # nothing new: nothing written
    assert history_ids(store) == Counter({f"{jid(n)}-1": 1 for n in range(3)})
    assert len(history_parts(store)) == 2 and compacted_build_ids(store) == set(history_ids(store))
    manifest = json.loads(store.get(Pointer(store, "history").read()[0].target).data)
    assert manifest == {"schema": "rebuilder.history-manifest/1", "parts": history_parts(store), "rows": 3}
    assert build_summaries(store)[jid(1)].status is Status.FAIL
    state = again.history
    assert state.holding([f"{jid(0)}-1", f"{jid(2)}-1", f"{jid(9)}-1", f"{jid(0)}-1"]) == {f"{jid(0)}-1", f"{jid(2)}-1"}
    assert state.holding([]) == set() and state.build_ids() == set(history_ids(store))


def test_many_parts_are_merged_into_one(store, monkeypatch):
    monkeypatch.setattr(compact_module, "PART_LIMIT", 3)
    merged = [compact(store, [row(n)]).merged for n in range(5)]
    assert merged == [False, False, False, True, False] and len(history_parts(store)) == 2
    assert history_ids(store) == Counter({f"{jid(n)}-1": 1 for n in range(5)})
    # Parts the retained manifests still name survive; so does everything the current one names.
    assert collect_orphans(store, min_age_seconds=0) == []
    for n in range(5, 8):
        compact(store, [row(n)])
    removed = collect_orphans(store, min_age_seconds=0)
    assert removed and all("/part-" in k for k in removed)
    assert history_ids(store) == Counter({f"{jid(n)}-1": 1 for n in range(8)})


def test_killed_at_every_write_the_rerun_appends_each_build_once(store_factory):
    reference = store_factory.make()
    compact(reference, [row(0)])
    counting = FaultyStore(reference)
    compact(counting, [row(0), row(1), row(2, status=Status.BAD)])
    expected = history_ids(reference)
    assert counting.writes >= 3
    for kill_at in range(1, counting.writes + 1):
        for after in (False, True):
            store = store_factory.make()
            compact(store, [row(0)])
            with pytest.raises(Killed):
                compact(FaultyStore(store, kill_at=kill_at, after=after), [row(0), row(1), row(2, status=Status.BAD)])
            assert set(history_ids(store)) <= set(expected)  # the pointer names a whole history
            compact(store, [row(0), row(1), row(2, status=Status.BAD)])
            assert history_ids(store) == expected, (kill_at, after)
            collect_orphans(store, min_age_seconds=0)
            assert history_ids(store) == expected
            head, _ = Pointer(store, "history").read()
            names = {i.key for i in store.list("history/")}
            assert names == {"history/HEAD.json", *history_parts(store), head.target, *head.retained}


def test_history_rows_round_trip(store):
    rows = [row(0), replace(row(1, status=Status.FAIL), reason="download failed", artifacts=())]
    compact(store, rows)
    assert sorted(from_table(read_history(store)), key=lambda r: r.build_id) == sorted(rows, key=lambda r: r.build_id)
