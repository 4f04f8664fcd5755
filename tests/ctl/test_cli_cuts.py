"""rebuildctl's small cuts: --priority help, piped headers and no Python values, notes when nothing
matches, workers in `status`, logs by source name, and which package database `verify --installed` read.

Against the site the real jobs published (over loopback HTTP and file://), and edited copies of it.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from jobs.core.config import parse_rebuilder_config
from jobs.core.store import open_store
from jobs.publish.run import publish
from tests.ctl.support import COOKIE, copy_site, ctl
from tests.ctl.test_installed import DPKG_STATUS, pacman_db

# --- 1. --priority: lower runs sooner --------------------------------------------------------

def _example_priority(help_text: str) -> int:
    [example] = [line for line in help_text.splitlines() if line.strip().startswith("Example: rebuildctl queue push")]
    return int(re.search(r"--priority (-?\d+)", example).group(1))


def test_priority_help_says_lower_runs_sooner_and_the_example_does_so(published, tmp_path):
    for cmd in (["queue", "push"], ["pkgs", "requeue"]):
        text = " ".join(ctl(*cmd, "--help").stdout.split())
        assert "lower runs sooner" in text and "higher" not in text, cmd
        assert "0 (manual, the default)" in text and "1 (new)" in text and "2 (retry)" in text, cmd
    example = _example_priority(ctl("queue", "push", "--help").stdout)
    assert example < 0  # the help says the example runs before every job queued at 0, 1 or 2

    # The example's value is what the request carries, and the next publish queues it ahead.
    store_dir = tmp_path / "store"
    shutil.copytree(published[0], store_dir)
    conf = tmp_path / "ctl.conf"
    conf.write_text(f'[auth]\ncookie = "{COOKIE}"\n[store]\nurl = "{store_dir.as_uri()}"\n')
    assert ctl("-c", str(conf), "pkgs", "requeue", "--status", "BAD").exit_code == 0  # priority 0, due now
    res = ctl("-c", str(conf), "queue", "push", "archlinux", "fixture", "hello-c", "--priority", str(example))
    assert res.exit_code == 0, res.output
    payloads = [json.loads(p.read_text())["payload"] for p in sorted((store_dir / "requests").glob("*.json"))]
    assert {(p["verb"], p["priority"]) for p in payloads} == {("requeue", 0), ("push", example)}
    config = parse_rebuilder_config({"auth": {"cookie": COOKIE}, "worker": {"signup_secret": "Fk3q9ZmT7vXc2LpW8nRb4HsY6dJg5QeA"},
                                     "publish": {"signing_key": published[1].publish.signing_key}})
    assert len(publish(open_store(store_dir.as_uri()), config).state.requests_applied) == 2
    lines = ctl("-H", (store_dir / "site").as_uri(), "queue", "ls", "--planned").stdout.splitlines()
    header = lines[0].split("\t")
    order = [(row[header.index("name")], int(row[header.index("priority")])) for row in
             (line.split("\t") for line in lines[1:])]
    assert order == [("hello-c", example), ("unrepro", 0), ("ftbfs", 2)]  # claim order: lowest first


# --- 2. piped: header lines, never a Python value ------------------------------------------

PYTHON_VALUES = re.compile(r"\bNone\b|\[\]|\{\}|\bSome\(|datetime\(|\bTrue\b|\bFalse\b|<[a-z_.]+ object at|\w='")


def _no_python_values(res, cmd) -> None:
    for stream in (res.stdout, res.stderr):
        found = PYTHON_VALUES.search(stream)
        assert found is None, (cmd, found and found.group(0), stream)


def _edited_site(published, tmp_path) -> Path:
    """The fixture site with what it lacks: an active build, a running job, a worker mid-build, missing values."""
    site = copy_site(published[0] / "site", tmp_path / "site")
    dash = json.loads((site / "api/v0/dashboard").read_text())
    dash["active_builds"] = [{"id": 1, "pkgbase": {"name": "hello-c", "version": "1:2.1-3", "distro": "archlinux",
                                                   "suite": "", "architecture": "x86_64", "input_url": None,
                                                   "artifacts": []},
                              "version": "1:2.1-3", "queued_at": None, "worker_id": None, "started_at": None,
                              "last_ping": None}]
    (site / "api/v0/dashboard").write_text(json.dumps(dash))
    queue = json.loads((site / "api/v1/queue.json").read_text())
    queue["jobs"][0]["running"] = {"worker_name": None, "worker_key_id": "ab" * 32,
                                   "started_at": queue["generated_at"], "renewed_at": None, "expires_at": None}
    queue["jobs"][0]["not_before"] = None
    (site / "api/v1/queue.json").write_text(json.dumps(queue))
    workers = json.loads((site / "api/v1/workers.json").read_text())
    workers["workers"].append({"key_id": "ab" * 32, "name": None, "worker_id": None, "trust": "untrusted",
                               "last_seen": None, "builds": 0, "current_job": {
                                   "job_id": queue["jobs"][0]["job_id"], "attempt": 2, "source_name": "ftbfs",
                                   "source_version": "1.0-1", "distro": "archlinux", "architecture": "x86_64",
                                   "started_at": None}})
    (site / "api/v1/workers.json").write_text(json.dumps(workers))
    return site


def test_piped_status_and_queue_ls_print_a_header_then_plain_rows(base):
    lines = ctl("-H", base, "status").stdout.splitlines()
    assert lines[0].split("\t") == ["distro", "release", "component", "arch", "good", "bad", "fail", "unknown",
                                    "reproducible", "queued"]
    assert lines[1].split("\t") == ["archlinux", "-", "fixture", "x86_64", "4", "1", "1", "0", "66.7%", "2"]
    lines = ctl("-H", base, "queue", "ls", "--planned").stdout.splitlines()
    header = lines[0].split("\t")
    assert header == ["queued at", "name", "version", "running for", "worker", "not before", "distro", "release",
                      "component", "arch", "priority"]
    rows = [dict(zip(header, line.split("\t"), strict=True)) for line in lines[1:]]
    assert sorted(r["name"] for r in rows) == ["ftbfs", "unrepro"]
    assert all(r["release"] == "-" and r["worker"] == "-" and r["running for"] == "-" for r in rows)
    assert all(r["not before"] > r["queued at"] and r["priority"] == "2" for r in rows)  # retries, waiting


def test_no_command_prints_a_python_value(base, published, fixture_repo, tmp_path):
    db = pacman_db(tmp_path / "pacman")
    edited = _edited_site(published, tmp_path).as_uri()
    commands = [["status"], ["pkgs", "ls"], ["pkgs", "ls", "--name", "nosuch"], ["pkgs", "ls", "--status", "UNKWN"],
                ["queue", "ls"], ["queue", "ls", "--planned"], ["queue", "ls", "--head", "--distro", "debian"],
                ["workers", "ls"], ["pkgs", "log", "nosuch", "--version", "9"], ["pkgs", "attestation", "unrepro"],
                ["verify", "--installed", "-b", str(db)],
                ["verify", str(fixture_repo.package("hello-c").path), str(fixture_repo.package("unrepro").path)]]
    for site in (base, edited):
        for cmd in commands:
            res = ctl("-H", site, *cmd)
            assert res.exit_code in (0, 1, 3), (cmd, res.output)
            _no_python_values(res, cmd)
            assert res.stdout or res.stderr, cmd
    status = ctl("-H", edited, "status").stdout
    assert "  hello-c 1:2.1-3 (archlinux, -, x86_64) worker - since -" in status.splitlines()
    queue = ctl("-H", edited, "queue", "ls", "--planned").stdout.splitlines()
    assert queue[1].split("\t")[3:6] == ["0s", "ab" * 32, "-"]  # running for, worker (its key id), not before
    workers = ctl("-H", edited, "workers", "ls").stdout.splitlines()
    assert workers[2].split("\t")[1:] == ["-", "untrusted", "-", "0", "ftbfs 1.0-1 (archlinux, x86_64)"]


# --- 3. a filter that matches nothing says so ------------------------------------------------

@pytest.mark.parametrize(("cmd", "said"), [
    (["pkgs", "ls", "--name", "nosuch"], "no package matches --name nosuch"),
    (["pkgs", "ls", "--name", "hello-*", "--status", "bad"], "no package matches --name hello-* --status BAD"),
    (["pkgs", "ls", "--status", "UNKWN"], "no package matches --status UNKWN"),
    (["pkgs", "ls", "--suite", "nosuch"], "no package matches --suite nosuch"),
    (["pkgs", "ls", "--distro", "debian", "--json"], "no package matches --distro debian"),
    (["queue", "ls", "--planned", "--name", "nosuch"], "no queued job matches --name nosuch"),
    (["queue", "ls", "--planned", "--architecture", "aarch64"], "no queued job matches --architecture aarch64"),
    (["queue", "ls", "--name", "unrepro"], "no queued job matches --name unrepro and is due, 1 not due yet (--planned"),
    (["queue", "ls"], "no queued job is due, 2 not due yet (--planned lists them)"),
])
def test_a_filter_that_matches_nothing_says_so_on_stderr_and_exits_0(base, cmd, said):
    res = ctl("-H", base, *cmd)
    assert res.exit_code == 0, res.output
    assert res.stderr.startswith(f"rebuildctl: {said}") and len(res.stderr.splitlines()) == 1
    assert res.stdout in ("", "[]\n") or res.stdout.count("\n") == 1  # nothing, or the header alone


def test_filters_that_match_say_nothing_and_queue_ls_filters(base):
    res = ctl("-H", base, "pkgs", "ls", "--status", "BAD")
    assert res.stderr == "" and res.stdout.startswith("[BAD  ] unrepro ")
    res = ctl("-H", base, "queue", "ls", "--planned", "--name", "unrepro")
    assert res.stderr == "" and [line.split("\t")[1] for line in res.stdout.splitlines()] == ["name", "unrepro"]
    res = ctl("-H", base, "queue", "ls", "--planned", "--distro", "archlinux", "--suite", "fixture",
              "--architecture", "x86_64", "--json")
    assert {j["source_name"] for j in json.loads(res.stdout)} == {"ftbfs", "unrepro"}


def test_no_workers_and_an_empty_queue_say_so(published, tmp_path):
    site = copy_site(published[0] / "site", tmp_path / "site")
    for feed, key in (("workers.json", "workers"), ("queue.json", "jobs")):
        doc = json.loads((site / "api/v1" / feed).read_text())
        doc[key], doc["count"] = [], 0
        (site / "api/v1" / feed).write_text(json.dumps(doc))
    res = ctl("-H", site.as_uri(), "workers", "ls")
    assert res.exit_code == 0 and res.stdout.splitlines() == ["key id\tname\ttrust\tlast seen\tbuilds\tcurrent job"]
    assert res.stderr.startswith("rebuildctl: no worker has reported to this rebuilder yet")
    res = ctl("-H", site.as_uri(), "queue", "ls", "--planned")
    assert res.exit_code == 0 and res.stderr == "rebuildctl: the queue is empty\n"


def test_help_states_the_exit_codes():
    for cmd in (["pkgs", "ls"], ["queue", "ls"], ["workers", "ls"], ["status"], ["pkgs", "log"],
                ["pkgs", "diffoscope"], ["pkgs", "attestation"], ["pkgs", "requeue"], ["queue", "push"],
                ["queue", "drop"], ["verify"]):
        text = " ".join(ctl(*cmd, "--help").stdout.split())
        assert "Exit codes: 0 " in text, cmd
    for cmd in (["pkgs", "ls"], ["queue", "ls"]):
        assert "0 listed (also when nothing matches: a note says so on stderr)" in " ".join(
            ctl(*cmd, "--help").stdout.split()), cmd
    assert "3 no such package" in " ".join(ctl("pkgs", "log", "--help").stdout.split())


# --- 4. status lists the workers -------------------------------------------------------------

def test_status_lists_workers_after_the_counts_and_queue(base):
    res = ctl("-H", base, "status")
    assert res.exit_code == 0 and res.stderr == ""
    lines = res.stdout.splitlines()
    at = lines.index("workers: 1")
    assert lines.index("queue length: 2") < lines.index("active builds: 0") < at
    assert lines[at + 1].split("\t") == ["name", "key id", "trust", "last seen", "current job"]
    name, key_id, trust, last_seen, job = lines[at + 2].split("\t")
    full = ctl("-H", base, "workers", "ls").stdout.splitlines()[1].split("\t")[0]
    assert (name, trust, job) == ("w1", "enrolled", "-") and len(key_id) == 16 and full.startswith(key_id)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", last_seen)
    report = json.loads(ctl("-H", base, "status", "--json").stdout)
    assert [w["name"] for w in report["workers"]] == ["w1"] and report["workers"][0]["key_id"] == full


def test_status_lists_a_workers_current_job(published, tmp_path):
    edited = _edited_site(published, tmp_path).as_uri()
    lines = ctl("-H", edited, "status").stdout.splitlines()
    assert lines[lines.index("workers: 2") + 3].split("\t") == ["-", "ab" * 8, "untrusted", "-",
                                                               "ftbfs 1.0-1 (archlinux, x86_64)"]


def test_status_without_a_workers_feed_still_works_with_a_note(published, tmp_path):
    site = copy_site(published[0] / "site", tmp_path / "site")
    (site / "api/v1/workers.json").unlink()
    res = ctl("-H", site.as_uri(), "status")
    assert res.exit_code == 0, res.output
    assert res.stdout.splitlines()[1].startswith("archlinux\t") and "queue length: 2" in res.stdout
    assert "workers" not in res.stdout
    assert res.stderr == (f"rebuildctl: {site.as_uri()}/api/v1/workers.json is not published (a `rebuilder publish` "
                          "before the workers feed): no workers listed\n")
    report = json.loads(ctl("-H", site.as_uri(), "status", "--json").stdout)
    assert report["workers"] is None and report["suites"][0]["good"] == 4


# --- 5. pkgs log|diffoscope|attestation by source name ---------------------------------------

def test_files_by_source_name_when_one_build_has_it(base):
    for what in ("log", "attestation"):
        by_source = ctl("-H", base, "pkgs", what, "splitpkg")
        assert by_source.exit_code == 0, by_source.output
        assert by_source.stdout == ctl("-H", base, "pkgs", what, "split-a").stdout
        assert by_source.stdout == ctl("-H", base, "pkgs", what, "split-b").stdout
    assert "splitpkg" in ctl("-H", base, "pkgs", "log", "splitpkg").stdout
    res = ctl("-H", base, "pkgs", "diffoscope", "splitpkg")  # reproduced: no diffoscope, said as for split-a
    assert res.exit_code == 3 and "no published diffoscope" in res.stderr


def test_a_source_name_of_several_builds_lists_them_with_the_narrowing_flags(published, tmp_path):
    site = copy_site(published[0] / "site", tmp_path / "site")
    path = site / "api/v1/packages/archlinux/splitpkg.json"
    feed = json.loads(path.read_text())
    other = {**feed["packages"][0], "name": "split-a", "version": "0.4-1", "source_version": "0.4-1",
             "build_id": "older-1", "files": {**feed["packages"][0]["files"], "log": "api/v0/builds/99/log"}}
    feed["packages"].append(other)
    path.write_text(json.dumps(feed))
    res = ctl("-H", site.as_uri(), "pkgs", "log", "splitpkg")
    assert res.exit_code == 3
    assert res.stderr.startswith("rebuildctl: 2 builds match splitpkg; narrow it with --version")
    assert "split-a 0.4-1" in res.stderr and "split-a 0.5-1" in res.stderr
    res = ctl("-H", site.as_uri(), "pkgs", "log", "splitpkg", "--version", "0.5-1")
    assert res.exit_code == 0 and "splitpkg" in res.stdout


# --- 6. verify --installed names its database and refuses an empty one ---------------------

def test_installed_says_which_database_it_read(base, tmp_path, debian_site):
    db = pacman_db(tmp_path / "pacman")
    res = ctl("-H", base, "verify", "--installed", "-b", str(db))
    assert res.stderr == f"rebuildctl: read 6 installed packages from the pacman local database {db / 'local'}\n"
    admindir = tmp_path / "dpkg"
    admindir.mkdir()
    (admindir / "status").write_text(DPKG_STATUS)
    res = ctl("-H", debian_site, "verify", "--installed", "-b", str(admindir), "--json")
    assert res.stderr == f"rebuildctl: read 5 installed packages from the dpkg status file {admindir / 'status'}\n"
    assert json.loads(res.stdout)["total"] == 5


@pytest.fixture
def debian_site(tmp_path):
    site = tmp_path / "debsite"
    (site / "api/v0/pkgs").mkdir(parents=True)
    (site / "api/v0/pkgs/list").write_text("[]")
    return site.as_uri()


def test_installed_refuses_an_empty_database_or_one_of_neither_kind(base, tmp_path):
    empty_local = tmp_path / "pacman/local"
    empty_local.mkdir(parents=True)
    (empty_local / "ALPM_DB_VERSION").write_text("9\n")
    deinstalled = tmp_path / "status"
    deinstalled.write_text("Package: gone\nStatus: deinstall ok config-files\nArchitecture: amd64\nVersion: 1\n")
    text = tmp_path / "notes.txt"
    text.write_text("hello\nworld\n")
    other_dir = tmp_path / "elsewhere"
    other_dir.mkdir()
    (other_dir / "readme").write_text("x")
    cases = [(tmp_path / "pacman", f"no installed package in the pacman local database {empty_local}"),
             (empty_local, f"no installed package in the pacman local database {empty_local}"),
             (deinstalled, f"no installed package in the dpkg status file {deinstalled} (1 package stanzas"),
             (text, f"{text} is neither a pacman local database nor a dpkg status file"),
             (other_dir, f"{other_dir} is neither a pacman local database nor a dpkg status file")]
    for path, said in cases:
        res = ctl("-H", base, "verify", "--installed", "-b", str(path))
        assert res.exit_code == 1, (path, res.output)
        assert res.stdout == "" and len(res.stderr.splitlines()) == 1, (path, res.stderr)
        assert res.stderr.startswith(f"rebuildctl: error: {said}"), (path, res.stderr)


def test_errors_name_what_is_wrong_in_words_not_reprs(tmp_path):
    for endpoint, said in (("http://127.0.0.1:9", "cannot fetch: "), ((tmp_path / "nosite").as_uri(), "not published")):
        res = ctl("-H", endpoint, "status")
        assert res.exit_code == 1 and res.stderr.startswith(f"rebuildctl: error: {said}"), res.stderr
        assert "(url: " in res.stderr
        _no_python_values(res, endpoint)
    res = ctl("-H", "ftp://x", "status")  # no URL rebuildctl reads: a usage error
    assert (res.exit_code, res.stderr) == (2, "rebuildctl: usage: -H ftp://x: give an http://, https:// or file:// URL\n")
    conf = tmp_path / "ctl.conf"  # from the config file: the file's error, exit 1
    conf.write_text('[http]\nendpoint = "ftp://x"\n')
    res = ctl("-c", str(conf), "status")
    assert (res.exit_code, res.stderr) == (1, f'rebuildctl: error: {conf}:http.endpoint: not a supported URL: "ftp://x" '
                                              "(expected a URL starting with http:// or https:// or file://)\n")


def test_a_store_given_as_the_endpoint_is_told_where_its_site_is(tmp_path):
    """The demo prints its store's URL; `-H` of that store (not its site) says where the site is."""
    store = tmp_path / "store"
    (store / "site/api/v1").mkdir(parents=True)
    (store / "site/api/v1/index.json").write_text("{}")
    for command in (["status"], ["pkgs", "ls"]):
        res = ctl("-H", store.as_uri(), *command)
        assert res.exit_code == 1, res.output
        assert res.stderr == (f"rebuildctl: error: not published; that is a store, its site is below it: "
                              f"-H {store.as_uri()}/site (url: {store.as_uri()}/api/v1/index.json)\n"), res.stderr
    res = ctl("-H", (tmp_path / "elsewhere").as_uri(), "status")  # no site below: no hint
    assert res.stderr == f"rebuildctl: error: not published (url: {(tmp_path / 'elsewhere').as_uri()}/api/v1/index.json)\n"
