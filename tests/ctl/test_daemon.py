"""rebuildctl's v0 fallback (`jobs.ctl.daemon`): when it is taken, and hostile daemon answers.

test_daemon_real.py runs every verb against the real rebuilderd 0.24; here a directory
served over HTTP stands in for a daemon's read answers (a fake, for the cases the real one
never produces), with the real `rebuildctl` CLI in-process.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from jobs.core.model import Status
from jobs.ctl.cli import app
from jobs.ctl.daemon import Daemon, detect, parse_naive, probe
from jobs.ctl.feeds import FeedInvalid, FeedNotFound, Site
from tests.httpd import _QuietHandler, serve

RECORD = {"name": "foo", "version": "1-1", "status": "BAD", "distro": "archlinux", "suite": "core",
          "architecture": "x86_64", "artifact_url": "https://m.example/foo-1-1-x86_64.pkg.tar.zst", "build_id": 7,
          "built_at": "2026-05-01T10:00:00.123456789", "has_diffoscope": True, "has_attestation": False}


def daemon_dir(tmp_path: Path, records: object) -> Path:
    root = tmp_path / "daemon"
    (root / "api" / "v0" / "pkgs").mkdir(parents=True)
    (root / "api" / "v0" / "dashboard").write_text(json.dumps(
        {"suites": {"core": {"good": 0, "unknown": 0, "bad": 1}}, "active_builds": [], "queue_length": 0,
         "now": "2026-05-01T10:00:00"}))
    (root / "api" / "v0" / "pkgs" / "list").write_text(json.dumps(records))
    (root / "api" / "v0" / "builds" / "7").mkdir(parents=True)
    (root / "api" / "v0" / "builds" / "7" / "log").write_text("the log \x1b[31mred\n")
    return root


def test_a_daemon_is_detected_only_when_our_index_is_missing_and_its_dashboard_is_there(tmp_path):
    root = daemon_dir(tmp_path, [RECORD])
    with serve(root) as url:
        site = Site(url)
        found = probe(site)
        assert isinstance(found, Daemon)
        assert [r["name"] for r in found.packages(distro=None, component=None, architecture=None, name="f*",
                                                  statuses=[Status.BAD])] == ["foo"]
        assert found.packages(distro=None, component=None, architecture=None, name=None, statuses=[Status.FAIL]) == []
        other = FeedNotFound(site.url("api/v0/pkgs/list"))
        with pytest.raises(FeedNotFound):
            detect(site, other)  # only our index missing means "maybe a daemon"
        (root / "api" / "v1").mkdir()
        (root / "api" / "v1" / "index.json").write_text("{}")
        assert probe(Site(url)) is None  # one of our sites
    (root / "api" / "v1" / "index.json").unlink()
    (root / "api" / "v0" / "dashboard").write_text('{"not": "a dashboard"}')
    with serve(root) as url:
        assert probe(Site(url)) is None
    assert probe(Site(tmp_path.as_uri())) is None  # file:// is never a daemon


@pytest.mark.parametrize("records", [{"not": "a list"}, [{**RECORD, "name": 5}], [{**RECORD, "build_id": "7"}],
                                     [{**RECORD, "has_diffoscope": "yes"}], ["x"]])
def test_a_hostile_package_list_is_one_clear_error(tmp_path, records):
    with serve(daemon_dir(tmp_path, records)) as url:
        daemon = probe(Site(url))
        with pytest.raises(FeedInvalid):
            daemon.packages(distro=None, component=None, architecture=None, name=None, statuses=None)
        res = CliRunner().invoke(app, ["-H", url, "pkgs", "ls"])
        assert res.exit_code == 1 and url in res.output


def test_cli_lists_and_prints_a_daemons_files_escaped(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    evil = {**RECORD, "name": "foo\x1b]0;title\x07"}
    with serve(daemon_dir(tmp_path, [RECORD, evil])) as url:
        res = CliRunner().invoke(app, ["-H", url, "pkgs", "ls", "--status", "BAD"])
        assert res.exit_code == 0, res.output
        assert "\x1b" not in res.output and "\x07" not in res.output
        assert res.output.splitlines()[0] == \
            '[BAD  ] foo 1-1 (archlinux, <none>, core, x86_64) "https://m.example/foo-1-1-x86_64.pkg.tar.zst"'
        log = CliRunner().invoke(app, ["-H", url, "pkgs", "log", "foo", "--no-pager"])
        assert log.exit_code == 0 and "the log" in log.output and "\x1b" not in log.output
        none = CliRunner().invoke(app, ["-H", url, "pkgs", "attestation", "foo"])
        assert none.exit_code == 3 and "has no attestation on the daemon" in none.output


def test_naive_timestamps_parse_as_utc():
    at = parse_naive("2026-12-06 16:45:18.014110178")
    assert (at.microsecond, at.utcoffset().total_seconds()) == (14110, 0)
    assert parse_naive("2026-12-06T16:45:18") is not None
    assert parse_naive("yesterday") is None and parse_naive(5) is None


class _PostAnswers(_QuietHandler):
    """A daemon stand-in that answers every POST with the bytes of the file `post` in its directory."""

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = (Path(self.directory) / "post").read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.mark.parametrize("answer", [b'{"queue": [{"pkgbase": {"name": "a\\ud800"}, "version": "1"}]}',
                                    b'{"queue": [{"pkgbase": {"name": NaN}, "version": "1"}]}',
                                    b'{"queue": ' + b"[" * 3000 + b"]" * 3000 + b"}"])
def test_a_daemons_answer_is_read_as_a_sites_feed(tmp_path, monkeypatch, answer):
    # Its queue (POST) was parsed by json.loads, not as feeds are: a lone surrogate reached the terminal
    # (UnicodeEncodeError), NaN was printed as "nan", deep nesting was a RecursionError traceback.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root = daemon_dir(tmp_path, [RECORD])
    (root / "post").write_bytes(answer)
    with serve(root, _PostAnswers) as url:
        res = CliRunner().invoke(app, ["-H", url, "queue", "ls"])
    assert res.exit_code == 1 and res.stdout == "", res.output
    assert res.stderr == f"rebuildctl: error: the daemon's answer is not JSON (url: {url}/api/v0/queue/list)\n"


def test_a_daemons_time_with_a_digit_that_is_not_ascii(tmp_path, monkeypatch):
    # "²".isdigit() is True but int() refuses it: a queued job's time with one was a ValueError traceback.
    assert parse_naive("2026-05-01T10:00:00.1\u00b92") == parse_naive("2026-05-01T10:00:00.12")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root = daemon_dir(tmp_path, [RECORD])
    (root / "post").write_text(json.dumps({"queue": [{"pkgbase": {"name": "foo", "distro": "archlinux"}, "version": "1",
                                                     "queued_at": "2026-05-01T10:00:00.\u00b2"}]}))
    with serve(root, _PostAnswers) as url:
        res = CliRunner().invoke(app, ["-H", url, "queue", "ls"])
    assert res.exit_code == 0, res.output
    assert res.stdout.splitlines()[1].startswith("2026-05-01 10:00:00\tfoo\t1\t")
