"""The README's first command on a fresh clone, with 8484 already taken (rebuilderd's own port).

A `git clone` of this repository's HEAD runs `infra/demo.sh DIR`, as the README has it (with a
directory of its own instead of /var/tmp/rebuilder-demo): it must build, rebuild, publish,
say that 8484 is in use, serve on the next free port, print the URL, serve the dashboard there,
and stop cleanly on Ctrl-C. To stay offline and quick it reuses this test run's virtual
environment (REBUILDER_VENV) with the clone's own code first on the path; Debian packages are
already installed, so nothing is installed. The wheel test runs `python -m bench --smoke` the way
it failed before, from the source directory with the package installed from a wheel.
"""

from __future__ import annotations

import errno
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from tests.fixtures_arch import require_makepkg_host
from tests.tools import require_tool

REPO = Path(__file__).resolve().parent.parent
VENV = Path(sys.executable).parent.parent
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _clone(tmp_path: Path) -> Path:
    git = require_tool("git", "git")
    clone = tmp_path / "clone"
    subprocess.run([git, "clone", "-q", "--no-local", str(REPO), str(clone)], check=True, timeout=120,
                   env={"PATH": PATH, "HOME": str(tmp_path)})
    return clone


def _lines(stream, out: queue.Queue) -> None:
    for line in stream:
        out.put(line)
    out.put(None)


@pytest.mark.full("a fresh clone running the whole demo")
@pytest.mark.timeout(1200)
def test_fresh_clone_demo_serves_on_a_free_port_when_8484_is_taken(tmp_path):
    require_makepkg_host()
    clone = _clone(tmp_path)
    held = socket.socket()
    try:
        try:
            held.bind(("127.0.0.1", 8484))
            held.listen()
        except OSError as exc:  # taken by someone else already: just as good
            assert exc.errno == errno.EADDRINUSE, exc
        env = {"PATH": PATH, "HOME": str(tmp_path), "LANG": "C.UTF-8", "REBUILDER_VENV": str(VENV),
               "PYTHONPATH": str(clone)}
        proc = subprocess.Popen(["infra/demo.sh", str(tmp_path / "demo")], cwd=clone, env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=_lines, args=(proc.stdout, lines), daemon=True).start()
        seen, url = [], None
        deadline = time.monotonic() + 1100
        try:
            while url is None and time.monotonic() < deadline:
                try:
                    line = lines.get(timeout=5)
                except queue.Empty:
                    continue
                if line is None:
                    break
                seen.append(line)
                if m := re.match(r"site \(Ctrl-C stops\): (http://127\.0\.0\.1:(\d+)/)$", line.rstrip("\n")):
                    url = m.group(1)
            output = "".join(seen)
            assert url is not None, output + (proc.stderr.read() if proc.poll() is not None else "")
            port = int(url.rsplit(":", 1)[1].rstrip("/"))
            assert port != 8484
            assert f"127.0.0.1:8484 is in use (rebuilderd's default port?): serving on 127.0.0.1:{port} instead\n" \
                in output
            assert "publish: 5 results accepted, 0 rejected" in output
            with urllib.request.urlopen(url, timeout=30) as resp:
                page = resp.read().decode()
            assert resp.headers["Content-Type"].startswith("text/html")
            assert '<p class="headline"' in page and '<span class="status-good">4 good</span>' in page, page[:2000]
            # The configs it wrote name the console script of the venv it ran with, not a package path.
            worker = (tmp_path / "demo" / "rebuilderd-worker.conf").read_text()
            assert f'path = "{VENV}/bin/rebuilder-backend-archlinux-local"' in worker
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)  # Ctrl-C
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        stderr = proc.stderr.read()
        assert proc.returncode == 0 and "Traceback" not in stderr, stderr[-3000:]
    finally:
        held.close()


@pytest.mark.full("builds and installs a wheel, runs the benchmarks at smoke size")
@pytest.mark.timeout(900)
def test_bench_smoke_runs_from_the_source_dir_with_a_wheel_install(tmp_path):
    """`python -m bench --smoke` in the checkout with the package installed from a wheel (no
    editable install): the checkout's `jobs` comes first on the path and has no `jobs.site`
    (that lives in site/ and is only mapped there by an install); it reads site/ instead."""
    clone = _clone(tmp_path)  # a clean tree to build the wheel in
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path / "dist"), str(clone)], check=True, cwd=tmp_path, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("rebuilder-*.whl")
    target = tmp_path / "installed"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, timeout=300)
    # -S: this venv's site-packages without its .pth files, so the editable install of this
    # checkout is not there; the wheel and the dependencies are.
    site_packages = next(p for p in sys.path if p.endswith("site-packages") and Path(p).is_relative_to(VENV))
    env = {"PATH": PATH, "HOME": str(tmp_path), "PYTHONPATH": os.pathsep.join([str(target), site_packages])}
    probe = subprocess.run([sys.executable, "-S", "-c", "import jobs.site"], cwd=clone, env=env,
                           capture_output=True, text=True, timeout=60)
    assert "No module named 'jobs.site'" in probe.stderr  # the situation that used to fail
    out = tmp_path / "bench.json"
    res = subprocess.run([sys.executable, "-S", "-m", "bench", "--smoke", "--only", "sync-arch", "publish", "ctl",
                          "--json", str(out)], cwd=clone, env=env, capture_output=True, text=True, timeout=800)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "No module named" not in res.stderr
    import json
    result = json.loads(out.read_text())
    assert set(result["benchmarks"]) == {"sync-arch", "publish", "ctl"}
    assert not [name for name, b in result["benchmarks"].items() if b["error"]], result["benchmarks"]
