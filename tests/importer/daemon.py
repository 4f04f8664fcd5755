"""A rebuilderd 0.24 database made by the real daemon, with builds reported by the real worker.

Upstream's `rebuilderd` 0.24.0 and `rebuilderd-worker` 0.23.1 run in the cached trixie root
(tests/serve/test_upstream.py makes it; tests/trixie.py starts the daemon). `rebuildctl pkgs
sync-profile` syncs an Arch repository served on loopback; `rebuilderd-worker connect` builds every queued package with
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
from dataclasses import dataclass
from pathlib import Path

import requests

from tests import trixie as chroot
from tests.sync import alpm_builders as alpm
from tests.trixie import COOKIE, SECRET

__all__ = ["COOKIE", "PACKAGES", "Daemon", "filename", "run_daemon", "serve_mirror"]

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


def run_daemon(trixie: Path, mirror_root: Path, mirror: str, *, build: bool = True):
    """Start the daemon, sync the repository, build everything (if `build`); yields a `Daemon`."""
    with chroot.daemon(trixie) as d:
        state, inside, url = d.state, d.inside, d.url
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
        (state / "bin" / "diffoscope").write_text('#!/bin/sh\nshift\necho "--- $1"\necho "+++ $2"\n'
                                                  'echo "@@ differs @@"\nexit 1\n')
        for script in (state / "backend.sh", state / "bin" / "diffoscope"):
            script.chmod(0o755)
        (state / "worker.conf").write_text(f'endpoint = "{url}"\nsignup_secret = "{SECRET}"\n[diffoscope]\n'
                                           f'enabled = true\n[backend."archlinux"]\npath = "{inside}/backend.sh"\n')
        worker = None
        try:
            d.run_rebuildctl("pkgs", "sync-profile", "--sync-config", d.sync_conf(mirror), "arch", timeout=120)
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
            shutil.rmtree(trixie / "var/lib/rebuilderd-worker" / state.name, ignore_errors=True)  # the worker's own
