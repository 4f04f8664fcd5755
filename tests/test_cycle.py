"""`rebuilder run` (one full cycle) and `rebuilder serve`, as an operator runs them."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

from jobs.core.signing import ensure_key
from jobs.work.backends import shipped_backend

BIN = Path(sys.executable).parent


def test_run_one_cycle_then_serve_the_site(fixture_repo, tmp_path):
    store = (tmp_path / "store").as_uri()
    ensure_key(tmp_path / "sign.key")  # a configured key must exist
    (tmp_path / "rebuilderd.conf").write_text(
        f'[worker]\nsignup_secret = "Fk3q9ZmT7vXc2LpW8nRb4HsY6dJg5QeA"\n[publish]\nsigning_key = "{tmp_path / "sign.key"}"\n'
        '[http]\nbind_addr = "127.0.0.1:0"\n')
    (tmp_path / "sync.conf").write_text(
        f'[profile."fixture"]\ndistro = "archlinux"\ncomponents = ["{fixture_repo.repo}"]\n'
        f'architectures = ["{fixture_repo.arch}"]\nsource = "{fixture_repo.root.as_uri()}/$repo/os/$arch"\n')
    (tmp_path / "worker.conf").write_text(
        f'signup_secret = "Fk3q9ZmT7vXc2LpW8nRb4HsY6dJg5QeA"\nsupported_architectures = ["{fixture_repo.arch}"]\n'
        f'work_dir = "{tmp_path / "workers"}"\n[build]\nsilent = true\n[diffoscope]\nenabled = true\n'
        f'[backend."archlinux"]\npath = "{shipped_backend("archlinux-local")}"\n')
    env = {"PATH": f"{BIN}:/usr/bin:/bin:/usr/sbin:/sbin", "HOME": str(tmp_path),
           "REBUILDER_ARCHIVE": str(fixture_repo.archive_dir), "REBUILDER_PKGBUILDS": str(fixture_repo.pkgbuild_dir)}
    common = [str(BIN / "rebuilder"), "--store", store, "--config", str(tmp_path / "rebuilderd.conf")]
    res = subprocess.run(common + ["run", "--profiles", str(tmp_path / "sync.conf"), "--worker-config",
                                   str(tmp_path / "worker.conf"), "--workers", "2"],
                         capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    lines = res.stdout.splitlines()
    assert lines[0].startswith("sync fixture: updated")
    built = sum(int(line.split("built ")[1].split(",")[0]) for line in lines if line.startswith("work "))
    assert built == 5
    assert lines[-2].startswith("publish:") and "site:" in lines[-2]
    assert lines[-1] == "run: GOOD 3, BAD 1, FAIL 1, UNKWN 0"  # the verdicts of this cycle's builds

    server = subprocess.Popen(common + ["serve"], stdout=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        url = server.stdout.readline().split(" at ")[1].strip()
        records = json.load(urllib.request.urlopen(url + "api/v0/pkgs/list"))
        status = {r["name"]: r["status"] for r in records}
        assert status["hello-script"] == "GOOD" and status["unrepro"] == "BAD" and status["ftbfs"] == "BAD"
        log_url = url + f"api/v0/builds/{records[0]['build_id']}/log"
        with urllib.request.urlopen(urllib.request.Request(log_url, headers={"Accept-Encoding": "gzip"})) as resp:
            assert resp.headers["Content-Encoding"] == "gzip" and resp.headers["Content-Type"].startswith("text/plain")
        with urllib.request.urlopen(log_url) as resp:  # upstream's rebuildctl accepts no gzip: decoded for it
            assert resp.headers.get("Content-Encoding") is None and resp.headers["Content-Type"].startswith("text/plain")
            assert b"\x1f\x8b" not in resp.read(2)
        with urllib.request.urlopen(url) as resp:
            assert resp.headers["Content-Type"].startswith("text/html") and b"JSON" in resp.read()
        try:
            urllib.request.urlopen(url + "../../etc/passwd")
        except urllib.error.HTTPError as exc:
            assert exc.code == 404
    finally:
        server.terminate()
        server.wait(timeout=10)
