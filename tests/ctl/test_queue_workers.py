"""`queue ls` and `workers ls` on the real published queue and workers feeds, and on edited copies."""

from __future__ import annotations

import json

import pytest

from jobs.ctl.feeds import ORJSON_FROM
from jobs.ctl.queue import secs_to_human
from tests.ctl.support import copy_site, ctl

HEADER = "\t".join(["queued at", "name", "version", "running for", "worker", "not before", "distro", "release",
                    "component", "arch", "priority"])


def test_queue_ls_hides_retries_not_due_unless_planned(base):
    # After the fixture run the queue holds the two non-GOOD jobs, waiting for their retry delay.
    res = ctl("-H", base, "queue", "ls")
    assert res.exit_code == 0, res.output
    assert res.stdout.splitlines() == [HEADER]  # the header line alone
    res = ctl("-H", base, "queue", "ls", "--planned")
    lines = res.stdout.splitlines()
    assert lines[0] == HEADER
    assert sorted(line.split("\t")[1] for line in lines[1:]) == ["ftbfs", "unrepro"]
    assert all(line.endswith("\tarchlinux\t-\tfixture\tx86_64\t2") for line in lines[1:])
    jobs = json.loads(ctl("-H", base, "queue", "ls", "--planned", "--json").stdout)
    assert {j["source_name"] for j in jobs} == {"ftbfs", "unrepro"} and all(j["running"] is None for j in jobs)


def test_workers_ls(base):
    res = ctl("-H", base, "workers", "ls")
    assert res.exit_code == 0, res.output
    header, line = res.stdout.splitlines()
    assert header == "key id\tname\ttrust\tlast seen\tbuilds\tcurrent job"
    key_id, name, trust, last_seen, builds, job = line.split("\t")
    assert (len(key_id), name, trust, builds, job) == (64, "w1", "enrolled", "5", "-")
    workers = json.loads(ctl("-H", base, "workers", "ls", "--json").stdout)
    assert workers[0]["key_id"] == key_id and workers[0]["current_job"] is None


def _job(i: int, **over) -> dict:
    job = {"job_id": f"{i:032x}", "attempt": 1, "priority": 1, "not_before": None,
           "queued_at": f"2026-05-01T10:{i // 60:02}:{i % 60:02}.000000Z", "distro": "debian", "release": "sid",
           "component": "main", "architecture": "amd64", "source_name": f"pkg{i:02}", "source_version": "1.0-1",
           "backend": "debian", "artifacts": [{"name": f"pkg{i:02}", "version": "1.0-1"}], "running": None}
    return {**job, **over}


def test_queue_lines_running_planned_and_head(published, tmp_path):
    site = copy_site(published[0] / "site", tmp_path / "site")
    running = {"worker_name": "w7", "worker_key_id": "ab" * 32, "started_at": "2026-05-01T10:57:57.000000Z",
               "renewed_at": "2026-05-01T11:59:00.000000Z", "expires_at": "2026-05-01T12:09:00.000000Z"}
    jobs = [_job(0, running=running, source_name='we"ird', release=None),
            _job(1, not_before="2026-05-02T00:00:00.000000Z", priority=2)] + [_job(i) for i in range(2, 40)]
    (site / "api/v1/queue.json").write_text(json.dumps({
        "schema": "rebuilder.feed/1", "kind": "queue", "generated_at": "2026-05-01T12:00:00.000000Z",
        "count": len(jobs), "jobs": jobs}))
    url = site.as_uri()
    lines = ctl("-H", url, "queue", "ls").stdout.splitlines()
    assert lines[0] == HEADER and len(lines) == 1 + 39  # the job not due yet is hidden
    # running for 1h 2m 3s at the feed's generated_at; a missing value is "-", never None
    assert lines[1].split("\t") == ["2026-05-01 10:00:00", 'we"ird', "1.0-1", "1h  2m  3s", "w7", "-", "debian", "-",
                                    "main", "amd64", "1"]
    assert lines[2].split("\t") == ["2026-05-01 10:00:02", "pkg02", "1.0-1", "-", "-", "-", "debian", "sid", "main",
                                    "amd64", "1"]
    planned = ctl("-H", url, "queue", "ls", "--planned").stdout.splitlines()
    assert planned[2].split("\t")[5:] == ["2026-05-02 00:00:00", "debian", "sid", "main", "amd64", "2"]
    assert len(planned) == 1 + 40
    head = ctl("-H", url, "queue", "ls", "--head", "--planned", "--json")
    assert [j["source_name"] for j in json.loads(head.stdout)][:2] == ['we"ird', "pkg01"]
    assert len(json.loads(head.stdout)) == 25
    table = ctl("-C", "-H", url, "queue", "ls", "--head", env={"COLUMNS": "200"})  # -C: the terminal form
    assert "running for" in table.stdout and "25 of 40 jobs, 1 not due yet (--planned lists them)" in table.stdout


def test_secs_to_human_is_rebuilderds():
    assert [secs_to_human(s) for s in (0, 59, 60, 3723, 86400)] == [" 0s", "59s", " 1m  0s", " 1h  2m  3s",
                                                                     "24h  0m  0s"]


def test_an_older_site_without_the_feeds_says_which_url(published, tmp_path):
    site = copy_site(published[0] / "site", tmp_path / "site")
    (site / "api/v1/queue.json").unlink()
    (site / "api/v1/workers.json").unlink()
    for cmd, key in ((["queue", "ls"], "api/v1/queue.json"), (["workers", "ls"], "api/v1/workers.json")):
        res = ctl("-H", site.as_uri(), *cmd)
        assert res.exit_code == 1
        assert f"{site.as_uri()}/{key} is not published" in res.stderr and "does not write" in res.stderr


@pytest.mark.parametrize("feed", ["queue", "workers"])
def test_a_feed_nested_as_deep_as_orjson_reads_is_one_line_with_json(tmp_path, feed):
    # A big feed (orjson reads it: up to 1024 levels) with a value nested 1010 deep beside the fields: the
    # table prints; --json prints the feed's objects as they are, and json.dumps gave up with a traceback.
    if feed == "queue":
        items = [_job(i) for i in range(300)]
        doc = {"schema": "rebuilder.feed/1", "kind": "queue", "generated_at": "2026-05-01T12:00:00.000000Z",
               "count": len(items), "jobs": items}
        args = ["queue", "ls", "--planned"]
    else:
        items = [{"key_id": f"{i:064x}", "name": f"w{i}", "worker_id": i, "trust": "enrolled", "last_seen": None,
                  "builds": 1, "current_job": None} for i in range(600)]
        doc = {"schema": "rebuilder.feed/1", "kind": "workers", "generated_at": "2026-05-01T12:00:00.000000Z",
               "workers": items}
        args = ["workers", "ls"]
    items[0]["extra"] = "DEEP"
    text = json.dumps(doc).replace('"DEEP"', "[" * 1010 + "]" * 1010)
    assert len(text) > ORJSON_FROM
    (tmp_path / "api/v1").mkdir(parents=True)
    (tmp_path / f"api/v1/{feed}.json").write_text(text)
    res = ctl("-H", tmp_path.as_uri(), *args)
    assert res.exit_code == 0 and len(res.stdout.splitlines()) == 1 + len(items), res.output
    res = ctl("-H", tmp_path.as_uri(), *args, "--json")
    assert res.exit_code == 1 and res.stdout == ""
    assert res.stderr == "rebuildctl: error: the site's JSON nests too deep to print as JSON\n"
