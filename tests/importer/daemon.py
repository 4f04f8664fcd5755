"""A rebuilderd 0.24 database made by the real daemon, with builds reported by the real worker.

Upstream's `rebuilderd` 0.24.0 and `rebuilderd-worker` 0.23.1 run in the cached trixie root
(tests/serve/test_upstream.py makes it). `rebuildctl pkgs sync-profile` syncs an Arch
repository served on loopback; `rebuilderd-worker connect` builds every queued package with
a backend script that copies the published file (GOOD), writes different bytes (BAD, with
diffoscope's output) or writes nothing (BAD, no diffoscope). diffoscope is not in the root:
a two-line script stands in for it (the daemon stores whatever the worker reports).
"""

from __future__ import annotations

import functools
import http.server
import shutil
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.sync import alpm_builders as alpm

COOKIE = "Fk3q9ZmT7vXc2LpW8nRb4HsY6dJg5QeA"
SECRET = "Zk3q9ZmT7vXc2LpW8nRb4HsY6dJg5QeB"

# (name, version, desc fields, outcome): GOOD copies the file, BAD writes other bytes, NONE writes nothing
PACKAGES = sorted([
    ("epochy", "2:1.0-3", {}, "GOOD"), ("plain", "1.0-1", {}, "GOOD"), ("plus", "1.0+git-1", {}, "GOOD"),
    ("grp-any", "1-1", {"base": "grp", "arch": "any"}, "GOOD"), ("grp-bin", "1-1", {"base": "grp"}, "BAD"),
    ("a-bin", "2-1", {"base": "other"}, "GOOD"), ("b-any", "2-1", {"base": "other", "arch": "any"}, "GOOD"),
    ("alone", "3-1", {"arch": "any"}, "NONE"), ("broken", "4-1", {}, "BAD")])


def filename(name: str, version: str, fields: dict) -> str:
    return f"{name}-{version}-{fields.get('arch', 'x86_64')}.pkg.tar.zst"


@dataclass
class Daemon:
    url: str
    state: Path  # the daemon's state directory (its rebuilderd.db), on the host
    mirror: str  # the repository's base URL


def serve_mirror(root: Path) -> tuple[str, http.server.ThreadingHTTPServer]:
    """The repository (core.db and every package file) under `root`, served on loopback."""
    directory = root / "core" / "os" / "x86_64"
    directory.mkdir(parents=True)
    (directory / "core.db").write_bytes(alpm.db([m for n, v, kw, _ in PACKAGES for m in alpm.package(n, v, **kw)]))
    for name, version, fields, _ in PACKAGES:
        (directory / filename(name, version, fields)).write_bytes(f"package {name} {version}\n".encode() * 50)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(
        type("Quiet", (http.server.SimpleHTTPRequestHandler,), {"log_message": lambda *a: None}),
        directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}", server


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(url: str) -> None:
    for _ in range(200):
        try:
            requests.get(url + "/api/v0/pkgs/list", timeout=2)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise AssertionError(f"rebuilderd did not answer at {url}")


def run_daemon(trixie: Path, mirror_root: Path, mirror: str, *, build: bool = True):
    """Start the daemon, sync the repository, build everything (if `build`); yields a `Daemon`."""
    state = trixie / "tmp" / f"rebuilderd-{uuid.uuid4().hex}"
    state.mkdir()
    inside = "/" + str(state.relative_to(trixie))
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    (state / "cookie").write_text(COOKIE + "\n")
    (state / "rebuilderd.conf").write_text(f'[http]\nbind_addr = "127.0.0.1:{port}"\n[auth]\ncookie = "{COOKIE}"\n'
                                           f'[worker]\nsignup_secret = "{SECRET}"\n')
    (state / "sync.conf").write_text(f'[profile."arch"]\ndistro = "archlinux"\nsuite = "core"\n'
                                     f'architectures = ["x86_64"]\nsource = "{mirror}/$repo/os/$arch"\n')
    files = state / "files"
    files.mkdir()
    for name, version, fields, outcome in PACKAGES:
        source = mirror_root / "core" / "os" / "x86_64" / filename(name, version, fields)
        if outcome == "GOOD":
            shutil.copy(source, files / source.name)
        elif outcome == "BAD":
            (files / source.name).write_bytes(b"rebuilt differently\n")
    (state / "backend.sh").write_text(f"#!/bin/sh\necho \"rebuilding $1 for the test\"\ncp {inside}/files/* "
                                      "\"$REBUILDERD_OUTDIR\"/\necho done\n")
    (state / "bin").mkdir()
    (state / "bin" / "diffoscope").write_text('#!/bin/sh\nshift\necho "--- $1"\necho "+++ $2"\necho "@@ differs @@"\n'
                                              "exit 1\n")
    for script in (state / "backend.sh", state / "bin" / "diffoscope"):
        script.chmod(0o755)
    (state / "worker.conf").write_text(f'endpoint = "{url}"\nsignup_secret = "{SECRET}"\n[diffoscope]\nenabled = true\n'
                                       f'[backend."archlinux"]\npath = "{inside}/backend.sh"\n')
    daemon = subprocess.Popen(["chroot", str(trixie), "sh", "-c", f"cd {inside} && exec env "
                               f"REBUILDERD_COOKIE_PATH={inside}/cookie rebuilderd -c {inside}/rebuilderd.conf"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker = None
    try:
        _wait(url)
        res = subprocess.run(["chroot", str(trixie), "env", f"REBUILDERD_COOKIE_PATH={inside}/cookie", "rebuildctl",
                              "-H", url, "pkgs", "sync-profile", "--sync-config", f"{inside}/sync.conf", "arch"],
                             capture_output=True, timeout=120)
        assert res.returncode == 0, res.stderr.decode()
        if build:
            worker = subprocess.Popen(
                ["chroot", str(trixie), "env", "-i", f"PATH={inside}/bin:/usr/bin:/bin", f"HOME={inside}",
                 "rebuilderd-worker", "-n", state.name, "-c", f"{inside}/worker.conf", "connect", url],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                listed = requests.get(url + "/api/v0/pkgs/list", timeout=10).json()
                if all(r["status"] != "UNKWN" for r in listed):
                    break
                time.sleep(0.5)
            else:
                raise AssertionError("the worker did not build every package in 180 s")
            worker.terminate()
            worker.wait(timeout=10)
            worker = None
        yield Daemon(url=url, state=state, mirror=mirror)
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=10)
        daemon.terminate()
        daemon.wait(timeout=10)
        shutil.rmtree(state, ignore_errors=True)
        shutil.rmtree(trixie / "var/lib/rebuilderd-worker" / state.name, ignore_errors=True)  # the worker's own
