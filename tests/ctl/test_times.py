"""A site's timestamps that are dates but not instants rebuildctl can hold: one clear line, never a traceback."""

from __future__ import annotations

import json

import pytest

from tests.ctl.support import ctl

# Real dates whose UTC falls before year 1 or after 9999: astimezone raised OverflowError, not a ValueError.
STAMPS = ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"]
SUITE = {"distro": "debian", "release": "trixie", "component": "main", "architecture": "amd64"}


def _site(root, *, built_at=None, started_at=None):
    key = "api/v1/GOOD.json"
    package = {**SUITE, "status": "GOOD", "name": "hello", "version": "1", "artifact_architecture": "amd64",
               "artifact_url": None, "build_id": "b", "files": None, "built_at": built_at}
    (root / "api/v1").mkdir(parents=True)
    (root / key).write_text(json.dumps({"packages": [package]}))
    (root / "api/v1/index.json").write_text(json.dumps({"suites": [{
        **SUITE, "counts": {"good": 1, "bad": 0, "fail": 0, "unknown": 0}, "total": 1, "percent_reproducible": 100.0,
        "queued": 0, "feeds": {"GOOD": key}}]}))
    build = {"pkgbase": {"name": "hello", "distro": "debian", "suite": "main", "architecture": "amd64"},
             "version": "1", "worker_id": 1, "started_at": started_at}
    (root / "api/v0").mkdir(parents=True)
    (root / "api/v0/dashboard").write_text(json.dumps({"active_builds": [build] if started_at else []}))
    return root.as_uri()


@pytest.mark.parametrize("stamp", STAMPS)
def test_a_package_built_at_past_the_calendar(tmp_path, stamp):
    res = ctl("-H", _site(tmp_path, built_at=stamp), "pkgs", "ls")
    assert res.exit_code == 1 and res.stdout == ""
    assert "malformed list feed" in res.stderr and "out of range" in res.stderr and len(res.stderr.splitlines()) == 1


@pytest.mark.parametrize("stamp", [s.replace("+14:00", "").replace("-14:00", "") + z for s in STAMPS
                                   for z in ("+14:00", "-14:00")])
def test_a_running_build_started_past_the_calendar(tmp_path, stamp):
    res = ctl("-H", _site(tmp_path, started_at=stamp), "status")
    if stamp.startswith("0001") and stamp.endswith("-14:00") or stamp.startswith("9999") and stamp.endswith("+14:00"):
        assert res.exit_code == 0, res.output  # a real instant within the calendar
        return
    assert res.exit_code == 1 and res.stdout == ""
    assert "malformed dashboard feed" in res.stderr and len(res.stderr.splitlines()) == 1


@pytest.mark.parametrize("feed", ["queue", "workers"])
def test_a_time_that_is_no_time_is_named_in_a_short_line(tmp_path, feed):
    # fromisoformat's error holds the whole value: a 100 kB "time" made a 100 kB error line.
    (tmp_path / "api/v1").mkdir(parents=True)
    (tmp_path / f"api/v1/{feed}.json").write_text(json.dumps(
        {"kind": feed, "generated_at": "x" * 100_000, "jobs": [], "workers": []}))
    res = ctl("-H", tmp_path.as_uri(), feed, "ls")
    assert res.exit_code == 1 and res.stdout == ""
    assert res.stderr.startswith(f"rebuildctl: error: malformed {feed} feed: Invalid isoformat string: 'xxx")
    assert len(res.stderr) < 400 and res.stderr.count("\n") == 1
