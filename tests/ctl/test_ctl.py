"""rebuildctl against a site published by the real jobs, over loopback HTTP and file://."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from jobs.core.config import parse_rebuilder_config
from jobs.core.queue import read_queue
from jobs.core.store import open_store
from jobs.ctl.feeds import Site
from jobs.publish.run import publish
from tests.ctl.support import COOKIE, ctl
from tests.ctl.support import Recording as _Recording


def test_status(base):
    res = ctl("-H", base, "status")
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0].split("\t")[:2] == ["distro", "release"]  # piped: a header line, then the rows
    assert lines[1].split("\t") == ["archlinux", "-", "fixture", "x86_64", "4", "1", "1", "0", "66.7%", "2"]
    assert "queue length: 2" in lines and "active builds: 0" in lines
    report = json.loads(ctl("-H", base, "status", "--json").stdout)
    assert report["suites"][0]["percent_reproducible"] == 66.7 and report["active_builds"] == []


def test_pkgs_ls_lines_and_json(base):
    res = ctl("-H", base, "pkgs", "ls")
    assert res.exit_code == 0, res.output
    names = [line[8:].split()[0] for line in res.stdout.splitlines()]
    assert names == ["ftbfs", "hello-c", "hello-script", "split-a", "split-b", "unrepro"]
    unrepro = res.stdout.splitlines()[-1]
    assert unrepro.startswith("[BAD  ] unrepro 1.0-1 (archlinux, <none>, fixture, any) \"")
    assert unrepro.endswith('unrepro-1.0-1-any.pkg.tar.zst"')
    rows = json.loads(ctl("-H", base, "pkgs", "ls", "--name", "split-*", "--json").stdout)
    assert [r["name"] for r in rows] == ["split-a", "split-b"] and {r["status"] for r in rows} == {"GOOD"}
    assert ctl("-H", base, "pkgs", "ls", "--distro", "debian").stdout == ""
    assert ctl("-H", base, "pkgs", "ls", "--architecture", "aarch64").stdout == ""
    assert ctl("-H", base, "pkgs", "ls", "--status", "nope").exit_code == 2


def test_pkgs_ls_status_reads_only_that_feed(http_base):
    _Recording.seen.clear()
    res = ctl("-H", http_base, "pkgs", "ls", "--status", "fail")
    assert res.stdout.splitlines() == [line for line in res.stdout.splitlines() if line.startswith("[FAIL ] ftbfs ")]
    assert len(res.stdout.splitlines()) == 1
    assert [p for p, _ in _Recording.seen] == ["/api/v1/index.json",
                                               "/api/v1/suites/archlinux/-/fixture/x86_64/FAIL.all.json"]


def test_http_cache_revalidates(http_base, tmp_path):
    site = Site(http_base, cache=tmp_path / "c")
    first = site.json("api/v1/index.json")
    _Recording.seen.clear()
    assert site.json("api/v1/index.json") == first
    assert _Recording.seen == [("/api/v1/index.json", 304)]  # served from the cache
    assert list((tmp_path / "c").iterdir())


def test_log_diffoscope_attestation(base):
    log = ctl("-H", base, "pkgs", "log", "unrepro")
    assert log.exit_code == 0 and "unrepro" in log.stdout and "\x1f" not in log.stdout  # gzip decoded
    diff = ctl("-H", base, "pkgs", "diffoscope", "unrepro", "--version", "1.0-1", "--distro", "archlinux")
    assert diff.exit_code == 0 and "unrepro-1.0-1-any.pkg.tar.zst" in diff.stdout
    link = json.loads(ctl("-H", base, "pkgs", "attestation", "hello-c").stdout)
    assert len(link["signatures"]) == 2
    res = ctl("-H", base, "pkgs", "attestation", "unrepro")
    assert res.exit_code == 3 and "no published attestation" in res.stderr
    res = ctl("-H", base, "pkgs", "log", "no-such-package")
    assert res.exit_code == 3 and "no-such-package" in res.stderr
    assert ctl("-H", base, "pkgs", "log", "unrepro", "--version", "9").exit_code == 3


def test_several_matches_are_listed_and_exit_3(published, tmp_path):
    site = tmp_path / "site"
    shutil.copytree(published[0] / "site", site)
    feed_path = site / "api/v1/packages/archlinux/hello-c.json"
    feed = json.loads(feed_path.read_text())
    older = {**feed["packages"][0], "version": "1:2.0-1", "build_id": "older-1",
             "files": {**feed["packages"][0]["files"], "log": "api/v0/builds/99/log"}}
    feed["packages"].append(older)
    feed_path.write_text(json.dumps(feed))
    res = ctl("-H", site.as_uri(), "pkgs", "log", "hello-c")
    assert res.exit_code == 3
    assert "hello-c 1:2.1-3" in res.stderr and "hello-c 1:2.0-1" in res.stderr and "--version" in res.stderr
    assert ctl("-H", site.as_uri(), "pkgs", "log", "hello-c", "--version", "1:2.1-3").exit_code == 0


def test_unreachable_endpoint_is_an_error():
    res = ctl("-H", "http://127.0.0.1:9", "status")  # discard port: refused
    assert res.exit_code == 1 and "cannot fetch" in res.stderr


def _requests(store_dir: Path) -> list[Path]:
    return sorted((store_dir / "requests").glob("*.json")) if (store_dir / "requests").exists() else []


def test_admin_verbs_without_cookie_or_store_write_nothing(published, tmp_path):
    store_dir = published[0]
    res = ctl("pkgs", "requeue", "--status", "BAD", "--store", store_dir.as_uri())
    assert res.exit_code == 1
    assert "no admin cookie" in res.stderr and "$REBUILDERD_COOKIE_PATH" in res.stderr
    assert "[auth] cookie" in res.stderr and str(tmp_path / "home/.config/rebuilderd.conf") in res.stderr
    res = ctl("-H", "https://r.example", "queue", "push", "archlinux", "fixture", "unrepro", "--store",
              store_dir.as_uri())
    assert res.exit_code == 1 and '[endpoints."https://r.example"] cookie' in res.stderr
    conf = tmp_path / "ctl.conf"
    conf.write_text(f'[auth]\ncookie = "{COOKIE}"\n')
    res = ctl("-c", str(conf), "queue", "drop", "archlinux", "fixture", "unrepro")
    assert res.exit_code == 1 and "no store" in res.stderr and "[store] url" in res.stderr
    assert "no admin cookie" not in res.stderr
    assert _requests(store_dir) == []


def test_admin_requests_are_applied_by_the_next_publish(published, tmp_path):
    store_dir = tmp_path / "store"
    shutil.copytree(published[0], store_dir)  # the shared store stays untouched for the read tests
    conf = tmp_path / "ctl.conf"
    conf.write_text(f'[auth]\ncookie = "{COOKIE}"\n[store]\nurl = "{store_dir.as_uri()}"\n')
    store = open_store(store_dir.as_uri())
    config = parse_rebuilder_config({"auth": {"cookie": COOKIE}, "worker": {"signup_secret": "Fk3q9ZmT7vXc2LpW8nRb4HsY6dJg5QeA"},
                                     "publish": {"signing_key": published[1].publish.signing_key}})

    def job_of(name: str):
        return next((j for j in read_queue(store).jobs.values() if j.source_name == name), None)

    res = ctl("-c", str(conf), "pkgs", "requeue", "--status", "BAD", "--priority", "7", "--reset")
    assert res.exit_code == 0, res.output
    assert len(_requests(store_dir)) == 1 and "the next publish applies it" in res.stdout
    summary = publish(store, config)
    assert len(summary.state.requests_applied) == 1 and not summary.state.requests_rejected
    assert _requests(store_dir) == []
    job = job_of("unrepro")
    assert job is not None and job.priority == 7 and job.not_before is None and job.retries == 0
    assert job_of("hello-c") is None  # GOOD: not matched

    assert ctl("-c", str(conf), "queue", "push", "archlinux", "fixture", "hello-c").exit_code == 0
    assert ctl("-c", str(conf), "queue", "drop", "archlinux", "fixture", "unrepro").exit_code == 0
    summary = publish(store, config)
    assert len(summary.state.requests_applied) == 2
    assert job_of("hello-c") is not None and job_of("unrepro") is None


def test_admin_request_with_a_wrong_cookie_is_rejected_by_publish(published, tmp_path, monkeypatch):
    store_dir = tmp_path / "store"
    shutil.copytree(published[0], store_dir)
    cookie_file = tmp_path / "cookie"
    cookie_file.write_text("Nx5Rk9Vm3Qz7Tc2Lp8Wg4Hd6Jf1Bs0Ya\n")
    monkeypatch.setenv("REBUILDERD_COOKIE_PATH", str(cookie_file))
    res = ctl("queue", "push", "archlinux", "fixture", "hello-c", "--store", store_dir.as_uri())
    assert res.exit_code == 0, res.output
    config = parse_rebuilder_config({"auth": {"cookie": COOKIE}, "worker": {"signup_secret": "Fk3q9ZmT7vXc2LpW8nRb4HsY6dJg5QeA"},
                                     "publish": {"signing_key": published[1].publish.signing_key}})
    summary = publish(open_store(store_dir.as_uri()), config)
    assert [r.reason for r in summary.state.requests_rejected] == ["bad-hmac"]


def test_help_has_an_example_everywhere():
    for cmd in (["status"], ["pkgs", "ls"], ["pkgs", "log"], ["pkgs", "diffoscope"], ["pkgs", "attestation"],
                ["pkgs", "requeue"], ["queue", "push"], ["queue", "drop"], ["queue", "ls"], ["workers", "ls"],
                ["verify"], ["completions"]):
        res = ctl(*cmd, "--help")
        assert res.exit_code == 0 and "Example: rebuildctl" in res.stdout, cmd
