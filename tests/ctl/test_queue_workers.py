"""`queue ls` and `workers ls` on the real published queue and workers feeds, and on edited copies."""

from __future__ import annotations

import json

from jobs.ctl.queue import secs_to_human
from tests.ctl.support import copy_site, ctl


def test_queue_ls_hides_retries_not_due_unless_planned(base):
    # After the fixture run the queue holds the two non-GOOD jobs, waiting for their retry delay.
    res = ctl("-H", base, "queue", "ls")
    assert res.exit_code == 0, res.output
    assert res.stdout == ""
    res = ctl("-H", base, "queue", "ls", "--planned")
    lines = res.stdout.splitlines()
    assert sorted(line.split()[2] for line in lines) == ["ftbfs", "unrepro"]
    assert all(line.endswith('"archlinux" None "x86_64"') for line in lines)
    jobs = json.loads(ctl("-H", base, "queue", "ls", "--planned", "--json").stdout)
    assert {j["source_name"] for j in jobs} == {"ftbfs", "unrepro"} and all(j["running"] is None for j in jobs)


def test_workers_ls(base):
    res = ctl("-H", base, "workers", "ls")
    assert res.exit_code == 0, res.output
    [line] = res.stdout.splitlines()
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
    assert len(lines) == 39  # the job not due yet is hidden
    # rebuilderd's line, Rust Debug quoting included; running for 1h 2m 3s at the feed's generated_at
    weird = 'we"ird 1.0-1'
    assert lines[0] == ("2026-05-01 10:00:00 " + f"{weird:<60}" + " " + " 1h  2m  3s" + " "
                        + "2026-05-01 10:57:57 " + '"debian" None "amd64"')
    assert 'we\\"ird' not in lines[0]  # the name is not Debug-quoted, the distro is
    assert lines[1] == ("2026-05-01 10:00:02 " + f"{'pkg02 1.0-1':<60}" + " " + " " * 11 + " " + " " * 19 + " "
                        + '"debian" Some("sid") "amd64"')
    assert len(ctl("-H", url, "queue", "ls", "--planned").stdout.splitlines()) == 40
    head = ctl("-H", url, "queue", "ls", "--head", "--planned", "--json")
    assert [j["source_name"] for j in json.loads(head.stdout)][:2] == ['we"ird', "pkg01"]
    assert len(json.loads(head.stdout)) == 25
    table = ctl("-C", "-H", url, "queue", "ls", "--head", env={"COLUMNS": "200"})  # -C: the terminal form
    assert "running for" in table.stdout and "25 of 40 jobs, 1 not due yet (--planned)" in table.stdout


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
