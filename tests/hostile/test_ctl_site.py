"""rebuildctl against a hostile site (issue #15): caps, a total deadline, same-origin redirects,
wrong-typed feeds as one clear error, and no terminal escape from a site reaching the terminal.

Each site is a real HTTP server on loopback (tests/hostile/site.py) answering what the test
programs; rebuildctl runs in-process (piped) or with -C (drawn for a terminal).
"""

from __future__ import annotations

import json
import re
import time

import pytest

from jobs.publish.site.feeds import ALL_COLUMNS
from tests.ctl.support import ctl
from tests.hostile.site import INDEX, MB, WORKERS, Answer, gzip_bomb, hostile_site, json_stream, trickle, workers_feed

ESCAPES = "\x1b]0;pwned\x07\x1b[2J\u202eevil\u2066x\u2069\r\x9b31m"
RAW = ("\x1b", "\x07", "\u202e", "\u2066", "\u2069", "\r", "\x9b")
WORKER = {"key_id": "a" * 64, "name": "w1", "worker_id": 1, "trust": "enrolled", "last_seen": None, "builds": 3,
          "current_job": None}


def one_error(res, *needles: str) -> None:
    """Exit 1, nothing on stdout, one line on stderr holding every needle, no traceback."""
    assert res.exit_code == 1, (res.exit_code, res.stdout, res.stderr)
    assert res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rebuildctl: error: "), res.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def test_a_feed_larger_than_the_cap_is_refused_naming_it_and_the_cap():
    with hostile_site({WORKERS: Answer(body=json_stream(5 * MB))}) as base:
        res = ctl("-H", base, "workers", "ls", env={"REBUILDCTL_MAX_FEED_BYTES": str(MB)})
    one_error(res, f"{base}{WORKERS}", "limit of 1,048,576 bytes")


@pytest.mark.parametrize("header", [True, False], ids=["content-encoding", "raw-gzip"])
def test_a_gzip_bomb_is_refused_while_it_expands(header):
    bomb = gzip_bomb(256 * MB)
    assert len(bomb) < MB
    answer = Answer(body=bomb, headers={"Content-Encoding": "gzip"} if header else {})
    with hostile_site({WORKERS: answer}) as base:
        res = ctl("-H", base, "workers", "ls")
    one_error(res, WORKERS, "decompressed: larger than the limit of 33,554,432 bytes")


def test_a_trickling_server_is_cut_off_at_the_total_deadline():
    with hostile_site({WORKERS: trickle(0.3)}) as base:
        started = time.monotonic()
        res = ctl("-H", base, "workers", "ls", env={"REBUILDCTL_DEADLINE": "2"})
        took = time.monotonic() - started
    one_error(res, WORKERS, "2-second deadline")
    assert took < 5, took  # a per-read timeout alone would wait for all 1,000 bytes (300 s)


def test_redirects_are_followed_within_the_origin_only():
    feed = workers_feed(WORKER)
    with hostile_site({"/elsewhere.json": Answer(body=feed)}) as other:
        away = other.replace("127.0.0.1", "localhost") + "/elsewhere.json"
        with hostile_site({WORKERS: Answer(302, {"Location": away})}) as base:
            res = ctl("-H", base, "workers", "ls")
        one_error(res, "redirect to another origin refused", "localhost")
    with hostile_site({WORKERS: Answer(301, {"Location": "/moved.json"}), "/moved.json": Answer(body=feed)}) as base:
        res = ctl("-H", base, "workers", "ls")
    assert res.exit_code == 0 and "w1" in res.stdout, res.stderr


@pytest.mark.parametrize("feed", [
    {"kind": "workers", "generated_at": "2026-01-01T00:00:00Z", "workers": "many"},
    {"kind": "workers", "generated_at": "2026-01-01T00:00:00Z", "workers": [None]},
    {"kind": "workers", "generated_at": "2026-01-01T00:00:00Z", "workers": [{**WORKER, "name": []}]},
    {"kind": "workers", "generated_at": "2026-01-01T00:00:00Z", "workers": [{**WORKER, "key_id": {}}]},
    {"kind": "workers", "generated_at": "2026-01-01T00:00:00Z", "workers": [{**WORKER, "builds": "many"}]},
    {"kind": "workers", "generated_at": 5, "workers": []},
    {"kind": "workers", "generated_at": "2026-01-01T00:00:00Z",
     "workers": [{**WORKER, "current_job": {"job_id": 1, "attempt": "x"}}]},
], ids=["list-is-text", "row-is-null", "name-is-list", "key-is-object", "builds-is-text", "time-is-number",
        "job-wrong"])
def test_a_wrong_typed_workers_feed_is_one_clear_error(feed):
    with hostile_site({WORKERS: Answer(body=json.dumps(feed).encode())}) as base:
        res = ctl("-H", base, "workers", "ls")
    one_error(res, "malformed workers feed", WORKERS)


def _suite(**over) -> dict:
    suite = {"distro": "archlinux", "release": None, "component": "core", "architecture": "x86_64",
             "counts": {"good": 1, "bad": 0, "fail": 0, "unknown": 0}, "total": 1, "percent_reproducible": 100.0,
             "queued": 0, "feeds": {"GOOD": "api/v1/good.json"}, "lists_all": {"GOOD": "api/v1/GOOD.all.json"}}
    return {**suite, **over}


def _whole(name: str = "hello", suite: dict | None = None, **over) -> bytes:
    row = {"name": name, "version": "1.0-1", "artifact_architecture": "x86_64",
           "artifact_url": "https://mirror.example/hello-1.0-1-x86_64.pkg.tar.zst", "source_name": "hello",
           "source_version": "1.0-1", "build_id": "b-1", "v0_build_id": 1, "built_at": None, "reason": None,
           "failure_class": None, "worker_name": "w1", "has_log": True, "has_diffoscope": False,
           "has_diffoscope_html": False, "has_attestation": False, **over}
    return json.dumps({"kind": "suite-status-all", "suite": {"distro": "archlinux", "release": None,
                       "component": "core", "architecture": "x86_64", **(suite or {})}, "status": "GOOD", "count": 1,
                       "columns": list(ALL_COLUMNS), "rows": [[row[c] for c in ALL_COLUMNS]]}).encode()


@pytest.mark.parametrize("index", [{"suites": "many"}, {"suites": [None]}, {"suites": [_suite(distro=7)]},
                                   {"suites": [_suite(counts=[])]}, {"suites": [_suite(feeds="x")]}],
                         ids=["suites-text", "suite-null", "distro-number", "counts-list", "feeds-text"])
def test_a_wrong_typed_index_is_one_clear_error(index):
    with hostile_site({INDEX: Answer(body=json.dumps(index).encode())}) as base:
        for args in (["status"], ["pkgs", "ls"]):
            res = ctl("-H", base, *args)
            one_error(res, "malformed index feed", INDEX)


@pytest.mark.parametrize("over", [{"name": 7}, {"version": ["1"]}, {"artifact_url": {}}, {"v0_build_id": "x"},
                                  {"has_log": "yes"}], ids=["name", "version", "url", "v0-id", "has-log"])
def test_a_wrong_typed_whole_list_is_one_clear_error(over):
    answers = {INDEX: Answer(body=json.dumps({"suites": [_suite()]}).encode()),
               "/api/v1/GOOD.all.json": Answer(body=_whole(**over))}
    with hostile_site(answers) as base:
        for args in (["pkgs", "ls"], ["pkgs", "ls", "--json"]):
            res = ctl("-H", base, *args)
            one_error(res, "malformed")


def test_the_json_a_command_parses_has_a_memory_budget():
    many = json.dumps({"kind": "workers", "generated_at": "2026-01-01T00:00:00Z", "workers": [],
                       "pad": [[]] * 200_000}).encode()  # 800 kB of "[]," that would be 16 MB of objects
    with hostile_site({WORKERS: Answer(body=many)}) as base:
        res = ctl("-H", base, "workers", "ls", env={"REBUILDCTL_MAX_TOTAL_BYTES": str(4 * MB)})
    one_error(res, WORKERS, "as objects in memory", "limit of 4,194,304 bytes")


@pytest.mark.parametrize("drawn", [False, True], ids=["piped", "terminal"])
def test_no_escape_from_a_site_reaches_the_terminal(drawn):
    flags = ["-C"] if drawn else []
    worker = {**WORKER, "name": ESCAPES, "current_job": {
        "job_id": "j", "attempt": 1, "source_name": f"src{ESCAPES}", "source_version": "1", "distro": "archlinux",
        "architecture": "x86_64", "started_at": None}}
    answers = {WORKERS: Answer(body=workers_feed(worker)),
               INDEX: Answer(body=json.dumps({"suites": [_suite(distro=f"arch{ESCAPES}")]}).encode()),
               "/api/v1/GOOD.all.json": Answer(body=_whole(f"hello{ESCAPES}", {"distro": f"arch{ESCAPES}"},
                                                           version=f"1{ESCAPES}",
                                                           artifact_url=f"https://x/{ESCAPES}"))}
    with hostile_site(answers) as base:
        outputs = []
        for args in (["workers", "ls"], ["pkgs", "ls"], ["status"]):
            res = ctl("-H", base, *flags, *args)
            assert res.exit_code == 0, res.stderr
            outputs.append(res.stdout + res.stderr)
        res = ctl("-H", base, *flags, "workers", "ls", "--json")
        assert res.exit_code == 0 and json.loads(res.stdout)[0]["name"] == ESCAPES  # exact, as JSON escapes
        outputs.append(res.stdout)
    for out in outputs:
        out = re.sub(r"\x1b\[[0-9;]*m", "", out) if drawn else out  # rich's own colours and bold
        found = [c for c in RAW if c in out]
        assert not found, (found, out)
    assert "\\x1b" in outputs[0] and "\\x1b" in outputs[1]  # shown, visibly escaped
    if not drawn:  # (a table cuts long cells short)
        assert "\\x1b]0;pwned\\x07\\x1b[2J\\u202eevil" in outputs[0]
        assert "hello\\x1b]0;pwned" in outputs[1]
