"""The queue plan of a sync: rebuilderd's import semantics as a pure function."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from jobs.core.config import ScheduleConfig
from jobs.core.history import BuildSummary
from jobs.core.model import Priority, Status
from jobs.sync.plan import job_rows, plan_queue
from jobs.sync.records import BinaryEntry, BuildInput

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
SCHEDULE = ScheduleConfig(retry_delay_base=24, max_retries=3, initial_delay=600)


def bi(name: str, version: str = "1.0-1", release: str | None = None) -> BuildInput:
    url = f"https://mirror.example/core/os/x86_64/{name}-{version}-x86_64.pkg.tar.zst"
    entry = BinaryEntry(name=name, version=version, architecture="x86_64", source_name=name, source_version=version,
                        url=url, filename=url.rsplit("/", 1)[1], sha256="0" * 64, size=1, component="core")
    return BuildInput(distro="archlinux", release=release, architecture="x86_64", backend="archlinux",
                      source_name=name, source_version=version, input_url=url, artifacts=(entry,))


def plan(jobs, inputs, *, previous=frozenset(), elsewhere=frozenset(), built=None, running=lambda r: False,
         schedule=SCHEDULE):
    listed = job_rows(inputs, now=NOW, schedule=schedule)
    return plan_queue(dict(jobs), listed=listed, previous=set(previous), elsewhere=set(elsewhere),
                      built=built or {}, running=running, schedule=schedule)


def test_new_inputs_are_queued_with_priority_new_after_the_initial_delay():
    jobs, p = plan({}, [bi("a"), bi("b")])
    assert len(p.added) == 2 and not p.dropped
    row = next(iter(jobs.values()))
    assert row.priority == Priority.NEW and row.attempt == 1 and row.retries == 0
    assert row.not_before == NOW + timedelta(seconds=600)
    assert row.artifacts[0].sha256 == "0" * 64


def test_no_initial_delay_means_due_now():
    jobs, _ = plan({}, [bi("a")], schedule=ScheduleConfig())
    assert next(iter(jobs.values())).not_before is None


def test_a_second_sync_with_an_unchanged_index_changes_nothing():
    first, _ = plan({}, [bi("a"), bi("b")])
    again, p = plan(first, [bi("a"), bi("b")], previous=set(first))
    assert again == first and not (p.added or p.dropped or p.refreshed or p.retried)


def test_new_version_queued_old_pending_version_dropped():
    first, _ = plan({}, [bi("a", "1.0-1"), bi("b")])
    second, p = plan(first, [bi("a", "1.0-2"), bi("b")], previous=set(first))
    assert [second[j].source_version for j in p.added] == ["1.0-2"]
    assert [first[j].source_version for j in p.dropped] == ["1.0-1"]
    assert sorted(r.source_version for r in second.values() if r.source_name == "a") == ["1.0-2"]


def test_running_job_of_a_vanished_version_finishes():
    first, _ = plan({}, [bi("a", "1.0-1")])
    second, p = plan(first, [], previous=set(first), running=lambda row: True)
    assert second == first and p.kept_running == list(first) and not p.dropped


def test_vanished_here_but_listed_by_another_profile_stays():
    first, _ = plan({}, [bi("a")])
    second, p = plan(first, [], previous=set(first), elsewhere=set(first))
    assert second == first and not p.dropped


def test_an_input_built_good_keeps_its_result():
    listed = job_rows([bi("a")], now=NOW, schedule=SCHEDULE)
    (jid,) = listed
    built = {jid: BuildSummary(jid, Status.GOOD, 1, 0, NOW)}
    jobs, p = plan({}, [bi("a")], built=built)
    assert jobs == {} and not p.added


def test_a_non_good_input_that_reappears_is_retried_on_schedule():
    listed = job_rows([bi("a")], now=NOW, schedule=SCHEDULE)
    (jid,) = listed
    built_at = NOW - timedelta(hours=1)
    built = {jid: BuildSummary(jid, Status.BAD, 2, 2, built_at)}
    jobs, p = plan({}, [bi("a")], built=built)
    row = jobs[jid]
    assert p.retried == [jid]
    assert row.priority == Priority.RETRY and row.attempt == 3 and row.retries == 2
    assert row.not_before == built_at + timedelta(hours=3 * 24)  # (retries + 1) * base


def test_max_retries_stops_automatic_retries():
    listed = job_rows([bi("a")], now=NOW, schedule=SCHEDULE)
    (jid,) = listed
    built = {jid: BuildSummary(jid, Status.FAIL, 3, 3, NOW)}
    jobs, p = plan({}, [bi("a")], built=built)
    assert jobs == {} and not p.retried


def test_friends_in_two_releases_are_one_job_with_both_releases():
    jobs, p = plan({}, [bi("a", release="sid"), bi("a", release="forky")])
    assert len(jobs) == 1 and len(p.added) == 1
    assert next(iter(jobs.values())).releases == ("sid", "forky")
    again, p2 = plan(jobs, [bi("a", release="trixie")], previous=set(jobs))
    assert next(iter(again.values())).releases == ("sid", "forky", "trixie") and p2.refreshed
