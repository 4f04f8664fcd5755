"""Our rebuildctl pointed at the real rebuilderd 0.24 (`-H http://…`): its v0 API for reads and admin verbs.

The daemon syncs a repository and the real rebuilderd-worker 0.23.1 builds it
(tests/importer/daemon.py); our `rebuildctl` entry point then lists, reads files, shows the
status, the queue and the workers, and pushes, drops and requeues, each checked against
the daemon's own answers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.importer.daemon import COOKIE, run_daemon, serve_mirror
from tests.serve.test_upstream import trixie  # noqa: F401 - the fixture

pytestmark = pytest.mark.full("rebuilderd 0.24 and rebuilderd-worker 0.23.1 in a trixie chroot (as root)")
BIN = Path(sys.executable).parent


@pytest.fixture
def daemon(trixie, tmp_path):  # noqa: F811
    mirror, server = serve_mirror(tmp_path / "mirror")
    runner = run_daemon(trixie, tmp_path / "mirror", mirror)
    try:
        yield next(runner)
    finally:
        runner.close()
        server.shutdown()
        server.server_close()


def test_rebuildctl_reads_and_administers_a_real_rebuilderd(daemon, tmp_path):
    cookie = tmp_path / "cookie"
    cookie.write_text(COOKIE + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REBUILD", "XDG_"))}
    env |= {"HOME": str(tmp_path), "NOPAGER": "1", "XDG_CACHE_HOME": str(tmp_path / "cache")}

    def ctl(*args: str, admin: bool = False, ok: bool = True) -> subprocess.CompletedProcess:
        res = subprocess.run([str(BIN / "rebuildctl"), "-H", daemon.url, *args], capture_output=True, text=True,
                             timeout=60, env=env | ({"REBUILDERD_COOKIE_PATH": str(cookie)} if admin else {}))
        if ok:
            assert res.returncode == 0, (args, res.stderr)
        return res

    theirs = {r["name"]: r for r in requests.get(daemon.url + "/api/v0/pkgs/list", timeout=10).json()}
    lines = ctl("pkgs", "ls").stdout.splitlines()
    assert len(lines) == len(theirs) == 9
    def names(out: str) -> set[str]:
        return {line.split("] ", 1)[1].split()[0] for line in out.splitlines()}

    for line in lines:
        r = theirs[line.split("] ", 1)[1].split()[0]]
        assert line == f'[{r["status"]:<5}] {r["name"]} {r["version"]} (archlinux, <none>, core, ' \
                       f'{r["architecture"]}) "{r["artifact_url"]}"'
    bad = {n for n, r in theirs.items() if r["status"] == "BAD"}
    assert names(ctl("pkgs", "ls", "--status", "BAD").stdout) == bad == {"alone", "broken", "grp-bin"}
    assert names(ctl("pkgs", "ls", "--name", "plain").stdout) == {"plain"}
    assert [json.loads(ctl("pkgs", "ls", "--name", "grp-*", "--json").stdout)[i]["name"] for i in (0, 1)] == \
        ["grp-any", "grp-bin"]
    assert ctl("pkgs", "ls", "--name", "nosuch").stdout == ""
    assert ctl("pkgs", "ls", "--status", "FAIL").stdout == ""  # rebuilderd's failed builds are BAD

    log = requests.get(f"{daemon.url}/api/v0/builds/{theirs['broken']['build_id']}/log", timeout=10).text
    assert ctl("pkgs", "log", "broken").stdout == log and "rebuilding" in log
    assert "@@ differs @@" in ctl("pkgs", "diffoscope", "broken").stdout
    attestation = json.loads(ctl("pkgs", "attestation", "epochy").stdout)
    assert attestation == requests.get(f"{daemon.url}/api/v0/builds/{theirs['epochy']['build_id']}/attestation",
                                       timeout=10).json()
    missing = ctl("pkgs", "diffoscope", "plain", ok=False)
    assert missing.returncode == 3 and "has no diffoscope on the daemon" in missing.stderr

    status = ctl("status", admin=True).stdout
    good = sum(r["status"] == "GOOD" for r in theirs.values())
    assert f"core\t{good}\t{len(bad)}\t0\t" in status and "queue length: 0" in status
    assert "workers: 1" in status and "127.0.0.1" in status
    plain = ctl("status")
    assert "only with the admin cookie" in plain.stderr and "workers:" not in plain.stdout
    assert "127.0.0.1" in ctl("workers", "ls", admin=True).stdout

    refused = ctl("queue", "push", "archlinux", "core", "plain", ok=False)
    assert refused.returncode == 1 and "no admin cookie" in refused.stderr
    wrong = tmp_path / "wrong"
    wrong.write_text("Wk3q9ZmT7vXc2LpW8nRb4HsY6dJg5QeZ\n")
    forbidden = subprocess.run([str(BIN / "rebuildctl"), "-H", daemon.url, "queue", "push", "archlinux", "core",
                                "plain"], capture_output=True, text=True, timeout=60,
                               env=env | {"REBUILDERD_COOKIE_PATH": str(wrong)})
    assert forbidden.returncode == 1 and "refused the admin cookie (403)" in forbidden.stderr

    assert "sent to the rebuilderd" in ctl("queue", "push", "archlinux", "core", "plain", "--priority", "0",
                                           admin=True).stdout
    queued = ctl("queue", "ls").stdout.splitlines()
    assert queued[0].split("\t")[:3] == ["queued at", "name", "version"]
    assert [line.split("\t")[1:3] for line in queued[1:]] == [["plain", "1.0-1"]]
    ctl("queue", "drop", "archlinux", "core", "plain", admin=True)
    assert ctl("queue", "ls").stdout.splitlines()[1:] == []
    ctl("pkgs", "requeue", "--status", "BAD", "--reset", admin=True)
    listed = requests.post(daemon.url + "/api/v0/queue/list", json={"limit": None}, timeout=10).json()["queue"]
    assert {i["pkgbase"]["name"] for i in listed} == {"alone", "broken", "grp"}
    assert {line.split("\t")[1] for line in ctl("queue", "ls").stdout.splitlines()[1:]} == {"alone", "broken", "grp"}
    assert len(json.loads(ctl("queue", "ls", "--head", "--json").stdout)) == 3
