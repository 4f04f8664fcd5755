"""Upstream rebuilderd 0.24 and its rebuildctl 0.23.1 as benchmark baselines (issue #18).

They are Debian trixie's own binaries, run in the trixie chroot tests/serve/test_upstream.py
builds and caches (`REBUILDER_TRIXIE_ROOT`, default /var/cache/rebuilder-tests/trixie-root);
the chroot shares the network namespace, so a daemon inside listens on the host's loopback
and `rebuildctl` inside reaches an HTTP server on the host. `unavailable()` says why they
cannot run here (not root, no chroot); the benchmarks then report the baseline as missing.

Times are those of the processes: `rebuildctl`'s wall time as this process waits for it, CPU
as the kernel accounts it (rebuildctl through RUSAGE_CHILDREN, the daemon from
/proc/<pid>/stat), so they include what the daemon does for the request.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.httpd import serve

ROOT = Path(os.environ.get("REBUILDER_TRIXIE_ROOT", "/var/cache/rebuilder-tests/trixie-root"))
COOKIE = "Fk3q9ZmT7vXc2LpW8nRb4HsY6dJg5QeA"
SECRET = "Zk3q9ZmT7vXc2LpW8nRb4HsY6dJg5QeB"
_TICK = os.sysconf("SC_CLK_TCK")


def unavailable() -> str | None:
    """Why upstream's tools cannot run here, or None."""
    if os.geteuid() != 0:
        return "chroot needs root"
    if not (ROOT / "usr/bin/rebuilderd").exists() or not (ROOT / "usr/bin/rebuildctl").exists():
        return f"no trixie chroot with rebuilderd at {ROOT} (the full test tier builds it: tests/serve/test_upstream.py)"
    return None


def version() -> str:
    out = subprocess.run(["chroot", str(ROOT), "rebuilderd", "--version"], capture_output=True, text=True)
    return out.stdout.strip() or out.stderr.strip()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def http_directory(directory: Path) -> Iterator[str]:
    """`directory` served over HTTP on the host's loopback (a mirror rebuildctl can download from)."""
    with serve(directory) as url:
        yield url


@dataclass
class Run:
    """One rebuildctl process: wall and CPU seconds (its own and the daemon's), its output."""

    seconds: float
    cpu_seconds: float
    daemon_cpu_seconds: float
    stdout: bytes


class Daemon:
    """A fresh rebuilderd (empty SQLite database) in the chroot, and rebuildctl against it."""

    def __init__(self, state: Path, proc: subprocess.Popen, url: str) -> None:
        self.state, self.proc, self.url = state, proc, url
        self.inside = "/" + str(state.relative_to(ROOT))

    def cpu(self) -> float:
        """The daemon's CPU seconds so far (user + system)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK

    def put(self, name: str, data: bytes) -> str:
        """A file in the daemon's state directory; its path inside the chroot."""
        (self.state / name).write_bytes(data)
        return f"{self.inside}/{name}"

    def rebuildctl(self, *args: str, timeout: float = 300) -> Run:
        """Run `rebuildctl -H <daemon> ARGS` in the chroot, cookie set, no pager; fails on a non-zero exit."""
        env = ["env", "-i", "PATH=/usr/bin:/bin", "HOME=/root", "NOPAGER=1",
               f"REBUILDERD_COOKIE_PATH={self.inside}/cookie"]
        before_children = resource.getrusage(resource.RUSAGE_CHILDREN)
        daemon_before = self.cpu()
        started = time.perf_counter()
        res = subprocess.run(["chroot", str(ROOT), *env, "rebuildctl", "-H", self.url, *args],
                             capture_output=True, timeout=timeout)
        seconds = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if res.returncode != 0:
            raise RuntimeError(f"upstream rebuildctl {' '.join(args)} exited {res.returncode}: "
                               f"{res.stderr.decode(errors='replace')[-500:]}")
        cpu = (after.ru_utime - before_children.ru_utime) + (after.ru_stime - before_children.ru_stime)
        return Run(seconds, cpu, self.cpu() - daemon_before, res.stdout)


@contextlib.contextmanager
def daemon() -> Iterator[Daemon]:
    """A rebuilderd 0.24 with an empty database, listening on loopback; stopped afterwards."""
    state = ROOT / "tmp" / f"rebuilderd-bench-{uuid.uuid4().hex}"
    state.mkdir(parents=True)
    port = _free_port()
    inside = "/" + str(state.relative_to(ROOT))
    (state / "cookie").write_text(COOKIE + "\n")
    (state / "rebuilderd.conf").write_text(f'[http]\nbind_addr = "127.0.0.1:{port}"\n[auth]\ncookie = "{COOKIE}"\n'
                                           f'[worker]\nsignup_secret = "{SECRET}"\n')
    # chroot, sh and env all exec: the Popen's pid is the daemon's.
    proc = subprocess.Popen(["chroot", str(ROOT), "sh", "-c", f"cd {inside} && exec env "
                             f"REBUILDERD_COOKIE_PATH={inside}/cookie rebuilderd -c {inside}/rebuilderd.conf"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(url + "/api/v0/dashboard", timeout=2).read()
                break
            except (urllib.error.URLError, ConnectionError):
                if proc.poll() is not None:
                    raise RuntimeError(f"rebuilderd exited {proc.returncode} at start") from None
                time.sleep(0.05)
        else:
            raise RuntimeError("rebuilderd did not answer within 10 s")
        yield Daemon(state, proc, url)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(state, ignore_errors=True)


def sync_profile(d: Daemon, mirror_url: str, *, suite: str, repeat_name: str = "arch") -> Run:
    """`rebuildctl pkgs sync-profile` of an Arch repository `suite` at `mirror_url` into daemon `d`."""
    conf = d.put("sync.conf", (f'[profile."{repeat_name}"]\ndistro = "archlinux"\nsuite = "{suite}"\n'
                               f'architectures = ["x86_64"]\nsource = "{mirror_url}/$repo/os/$arch"\n').encode())
    return d.rebuildctl("pkgs", "sync-profile", "--sync-config", conf, repeat_name)
