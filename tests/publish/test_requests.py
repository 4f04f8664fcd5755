"""Admin requests: the stored format and its HMAC (both stores), and what each verb does (pure)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import pytest

from jobs.core.errors import TerminalError
from jobs.core.history import BuildSummary
from jobs.core.model import Artifact, PackageStateRow, Priority, Status, parquet_bytes
from jobs.core.pointer import Pointer
from jobs.core.requests import parse_payload, request_payload, write_request
from jobs.core.signing import hmac_tag
from jobs.publish.state.requests import (
    APPLIED,
    Refusal,
    apply_loaded,
    apply_requests,
    current_state_rows,
    load_requests,
)
from jobs.publish.state.update import record_applied
from tests.publish.test_verify import NOW, config_for

COOKIE = "Cq4Tz8Mv2Lx7Rn3Kp9Wd5Hs6Jb1Yf0Ge"


def state_row(name: str, version: str, *, distro="archlinux", release="core", arch="x86_64", source=None,
              component=None) -> PackageStateRow:
    url = f"https://mirror.example/{distro}/{release}/{name}-{version}-{arch}.pkg"
    return PackageStateRow.for_artifact(
        Artifact(name, version, arch, url, component=component or release), distro=distro, release=release,
        architecture=arch, source_name=source or name, source_version=version, backend=distro, input_url=url,
        sync_id="s1", seen_at=NOW)


def req(verb: str, key: str = "requests/1.json", **fields):
    return parse_payload(request_payload(verb, **fields), key)


def summary(row: PackageStateRow, status: Status, attempt: int = 1, retries: int | None = None) -> BuildSummary:
    return BuildSummary(row.job_id, status, attempt, attempt if retries is None else retries, NOW)


def queued_from(rows, request, **kw):
    jobs, _ = apply_loaded({}, [request], state_rows=rows, history=kw.get("history", {}),
                           latest_attempts=kw.get("latest", {}), now=NOW)
    return jobs


LIBFOO, LIBBAR, LIBBAZ, OTHER = (state_row(n, "1-1") for n in ("libfoo", "libbar", "libbaz", "other"))
ROWS = [LIBFOO, LIBBAR, LIBBAZ, OTHER]
HISTORY = {LIBFOO.job_id: summary(LIBFOO, Status.BAD, 2), LIBBAR.job_id: summary(LIBBAR, Status.GOOD, 1, 0),
           OTHER.job_id: summary(OTHER, Status.BAD, 1)}


def test_a_request_round_trips_through_the_store(store, tmp_path):
    key = write_request(store, COOKIE, "requeue", name="lib*", status="bad", priority=5, reset=True)
    assert key.startswith("requests/") and key.endswith(".json")
    doc = json.loads(store.get(key).data)
    assert set(doc) == {"payload", "hmac"} and doc["hmac"] == hmac_tag(COOKIE, doc["payload"])
    (loaded,), rejected = load_requests(store, config_for(tmp_path, cookie=COOKIE))
    assert rejected == [] and loaded.key == key
    assert (loaded.verb, loaded.name, loaded.status, loaded.priority, loaded.reset) == ("requeue", "lib*", Status.BAD,
                                                                                        5, True)
    assert loaded.distro is None and loaded.created_at.tzinfo is not None


def test_requests_that_do_not_verify_are_refused_and_kept(store, tmp_path):
    forged = write_request(store, "Nx5Rk9Vm3Qz7Tc2Lp8Wg4Hd6Jf1Bs0Ya", "push", distro="archlinux", name="pacman")
    tampered = write_request(store, COOKIE, "requeue", name="foo")
    doc = json.loads(store.get(tampered).data)
    doc["payload"]["name"] = "*"
    store.put(tampered, json.dumps(doc).encode())
    store.put("requests/garbage.json", b"{")
    payload = dict(request_payload("drop", name="x"), verb="nuke")
    invalid = "requests/invalid.json"
    store.put(invalid, json.dumps({"payload": payload, "hmac": hmac_tag(COOKIE, payload)}).encode())
    store.put("requests/nested/x.json", b"{}")
    good = write_request(store, COOKIE, "drop", name="x")
    loaded, rejected = load_requests(store, config_for(tmp_path, cookie=COOKIE))
    assert [r.key for r in loaded] == [good]
    assert {r.key: r.reason for r in rejected} == {
        forged: Refusal.BAD_HMAC, tampered: Refusal.BAD_HMAC, "requests/garbage.json": Refusal.NOT_JSON,
        invalid: Refusal.SCHEMA, "requests/nested/x.json": Refusal.BAD_KEY}
    # Without a cookie nothing can be verified: every request is refused, and kept.
    loaded, rejected = load_requests(store, config_for(tmp_path))
    assert loaded == [] and {r.reason for r in rejected} == {Refusal.NO_COOKIE} and len(rejected) == 6
    assert len(list(store.list("requests/"))) == 6


@pytest.mark.parametrize("verb, fields", [
    ("push", {}),  # push needs a name
    ("requeue", {"status": "MAYBE"}),
    ("requeue", {"priority": True}),
    ("requeue", {"name": ""}),
    ("explode", {}),
])
def test_malformed_requests_are_refused_when_written(verb, fields):
    with pytest.raises(ValueError):
        request_payload(verb, **fields)


def test_requeue_by_status_and_name_glob():
    jobs = queued_from(ROWS, req("requeue", name="lib*", status="BAD", priority=0), history=HISTORY)
    assert list(jobs) == [LIBFOO.job_id]
    job = jobs[LIBFOO.job_id]
    # Due now, at the requested priority, after the last built attempt, keeping the retry count.
    assert (job.priority, job.not_before, job.attempt, job.retries, job.queued_at) == (0, None, 3, 2, NOW)
    assert job.artifacts == (LIBFOO.artifact,) and job.releases == ("core",)
    reset = queued_from(ROWS, req("requeue", name="lib*", status="BAD", reset=True), history=HISTORY)
    assert reset[LIBFOO.job_id].retries == 0
    never = queued_from(ROWS, req("requeue", status="UNKWN", priority=7), history=HISTORY)
    assert list(never) == [LIBBAZ.job_id] and never[LIBBAZ.job_id].attempt == 1
    everything = queued_from(ROWS, req("requeue", distro="archlinux"), history=HISTORY)
    assert set(everything) == {r.job_id for r in ROWS}
    assert queued_from(ROWS, req("requeue", distro="debian"), history=HISTORY) == {}


def test_requeue_of_a_queued_job_reprioritises_it_and_skips_attempts_that_have_results():
    retry = queued_from(ROWS, req("requeue", name="libfoo"), history=HISTORY)[LIBFOO.job_id]
    waiting = replace(retry, priority=Priority.RETRY, not_before=NOW + timedelta(hours=48),
                      queued_at=NOW - timedelta(days=1))
    # Attempt 3 has a result publish did not accept (e.g. a worker not trusted yet): never reuse its claim.
    jobs, changes = apply_loaded({LIBFOO.job_id: waiting}, [req("requeue", name="libfoo", priority=-5)],
                                 state_rows=ROWS, history=HISTORY, latest_attempts={LIBFOO.job_id: 3}, now=NOW)
    job = jobs[LIBFOO.job_id]
    assert (job.priority, job.not_before, job.attempt, job.queued_at) == (-5, None, 4, waiting.queued_at)
    assert changes.queued == {"requests/1.json": [LIBFOO.job_id]}
    again, _ = apply_loaded(jobs, [req("requeue", name="libfoo", priority=-5)], state_rows=ROWS, history=HISTORY,
                            latest_attempts={LIBFOO.job_id: 3}, now=NOW + timedelta(hours=1))
    assert again == jobs  # applied twice = applied once


def test_push_queues_the_latest_version_unless_one_is_named():
    arch = [state_row("pacman", "6.0.2-9"), state_row("pacman", "6.0.2-10", release="core-testing")]
    jobs = queued_from(arch, req("push", distro="archlinux", name="pacman", priority=3))
    assert [j.source_version for j in jobs.values()] == ["6.0.2-10"] and jobs[arch[1].job_id].priority == 3
    named = queued_from(arch, req("push", distro="archlinux", name="pacman", version="6.0.2-9"))
    assert [j.source_version for j in named.values()] == ["6.0.2-9"]
    # Debian orders "~" before everything (pacman's order would pick the rc).
    deb = [state_row("hello", "1.0~rc1", distro="debian", release="sid", arch="amd64", component="main"),
           state_row("hello", "1.0", distro="debian", release="trixie", arch="amd64", component="main")]
    assert [j.source_version for j in queued_from(deb, req("push", distro="debian", name="hello")).values()] == ["1.0"]


def test_one_build_input_in_two_releases_is_one_job():
    a = state_row("foo", "1", release="trixie")
    b = PackageStateRow(**{**{f: getattr(a, f) for f in a.__slots__}, "release": "forky"})
    jobs = queued_from([a, b], req("push", name="foo"))
    assert [j.releases for j in jobs.values()] == [("trixie", "forky")]


def test_drop_removes_matching_jobs_only():
    queue = queued_from(ROWS, req("requeue"))
    jobs, changes = apply_loaded(queue, [req("drop", name="lib*", key="requests/2.json")], state_rows=[], history={},
                                 latest_attempts={}, now=NOW)
    assert set(jobs) == {OTHER.job_id} and sorted(changes.dropped["requests/2.json"]) == sorted(
        r.job_id for r in ROWS[:3])
    kept, _ = apply_loaded(queue, [req("drop", name="libfoo", release="extra")], state_rows=[], history={},
                           latest_attempts={}, now=NOW)
    assert kept == queue


def test_requests_apply_in_name_order():
    drop_then_push = [req("drop", name="libfoo", key="requests/a.json"), req("push", name="libfoo", key="requests/b.json")]
    jobs, _ = apply_loaded({}, drop_then_push, state_rows=ROWS, history={}, latest_attempts={}, now=NOW)
    assert list(jobs) == [LIBFOO.job_id]


def test_current_state_rows_follow_each_profiles_pointer(store, tmp_path):
    for profile, rows in (("core", [LIBFOO, LIBBAR]), ("extra", [OTHER])):
        old = f"state/{profile}/old.parquet"
        store.put(old, parquet_bytes([LIBBAZ], PackageStateRow))
        key = f"state/{profile}/current.parquet"
        store.put(key, parquet_bytes(rows, PackageStateRow))
        Pointer(store, f"state/{profile}").advance(key, {}, None, None)
    assert sorted(r.artifact_name for r in current_state_rows(store)) == ["libbar", "libfoo", "other"]

    write_request(store, COOKIE, "drop", name="x")
    calls = []
    jobs, applied, rejected = apply_requests(store, config_for(tmp_path, cookie=COOKIE), {},
                                             state_rows_loader=lambda: calls.append(1) or [], history={})
    assert jobs == {} and len(applied) == 1 and rejected == [] and calls == []  # drop needs no state
    write_request(store, COOKIE, "requeue", name="lib*")
    jobs, applied, _ = apply_requests(store, config_for(tmp_path, cookie=COOKIE), {},
                                      state_rows_loader=lambda: current_state_rows(store), history={})
    assert len(applied) == 2 and {j.source_name for j in jobs.values()} == {"libfoo", "libbar"}


def test_copies_of_one_request_act_once_and_the_nonce_record_must_be_readable(store, tmp_path):
    config = config_for(tmp_path, cookie=COOKIE)
    key = write_request(store, COOKIE, "drop", name="x")
    store.put("requests/zz-copy.json", store.get(key).data)
    loaded, rejected = load_requests(store, config)
    assert [r.key for r in loaded] == [key]
    assert [(r.key, r.reason) for r in rejected] == [("requests/zz-copy.json", Refusal.REPLAYED)]
    record_applied(store, config, loaded, now=loaded[0].created_at)
    loaded, rejected = load_requests(store, config)
    assert loaded == [] and {r.key: r.reason for r in rejected} == {
        key: Refusal.ALREADY_APPLIED, "requests/zz-copy.json": Refusal.REPLAYED}
    store.put(APPLIED, b"{")  # forgetting the nonces would let them act again: publish stops instead
    with pytest.raises(TerminalError, match="applied-requests.json"):
        load_requests(store, config)
