"""Upstream rebuilderd 0.24, rebuildctl 0.23.1 and rebuilderd-worker: Debian trixie's own binaries in a chroot.

The chroot is made once with debootstrap and cached (`REBUILDER_TRIXIE_ROOT`, default
/var/cache/rebuilder-tests/trixie-root; the `trixie` fixture of tests/serve/test_upstream.py
builds it). It shares the host's network namespace, so a daemon inside listens on the host's
loopback and `rebuildctl` inside reaches an HTTP server on the host.

`daemon()` starts a fresh rebuilderd (empty SQLite database, its own state directory under the
chroot's /tmp) and stops it afterwards. It is the one place that starts upstream's daemon: the
tests (tests/serve/test_upstream.py, tests/importer/daemon.py) and the benchmarks
(bench/upstream.py) all use it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

ROOT = Path(os.environ.get("REBUILDER_TRIXIE_ROOT", "/var/cache/rebuilder-tests/trixie-root"))
# What the chroot holds besides minbase: upstream's tools, the MIME database rebuilderd needs, curl.
PACKAGES = ("rebuilderd", "rebuildctl", "rebuilderd-worker", "shared-mime-info", "curl")
COOKIE = "Fk3q9ZmT7vXc2LpW8nRb4HsY6dJg5QeA"
SECRET = "Zk3q9ZmT7vXc2LpW8nRb4HsY6dJg5QeB"
START_SECONDS = 20.0
_TICK = os.sysconf("SC_CLK_TCK")


def unavailable(root: Path = ROOT) -> str | None:
    """Why upstream's tools cannot run here, or None."""
    if os.geteuid() != 0:
        return "chroot needs root"
    if not (root / "usr/bin/rebuilderd").exists() or not (root / "usr/bin/rebuildctl").exists():
        return f"no trixie chroot with rebuilderd at {root} (the full test tier builds it: tests/serve/test_upstream.py)"
    return None


def version(root: Path = ROOT) -> str:
    """`rebuilderd --version` in the chroot."""
    out = subprocess.run(["chroot", str(root), "rebuilderd", "--version"], capture_output=True, text=True)
    return out.stdout.strip() or out.stderr.strip()


def free_port() -> int:
    """A TCP port free on the loopback just now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def debian_mirror() -> str:
    """The Debian archive apt already uses here, else deb.debian.org."""
    for sources in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for line in sources.read_text().splitlines():
            if line.startswith("URIs:") and line.split()[1:]:
                return line.split()[1]
    return "http://deb.debian.org/debian"


def build_root(root: Path, debootstrap: str) -> None:
    """debootstrap trixie into `root` (beside it first, renamed when complete) with upstream's tools."""
    work = root.with_name(root.name + ".tmp")
    shutil.rmtree(work, ignore_errors=True)
    work.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([debootstrap, "--variant=minbase", "--include=ca-certificates", "trixie", str(work),
                    debian_mirror()], check=True, capture_output=True, timeout=1200)
    subprocess.run(["mount", "-t", "proc", "proc", str(work / "proc")], check=True)
    try:
        subprocess.run(["chroot", str(work), "sh", "-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive "
                        "apt-get install -y -qq --no-install-recommends " + " ".join(PACKAGES)],
                       check=True, capture_output=True, timeout=1200)
    finally:
        subprocess.run(["umount", str(work / "proc")], check=False)
    work.rename(root)


class Daemon:
    """A running rebuilderd in the chroot: its state directory (host path), process and URL."""

    def __init__(self, root: Path, state: Path, proc: subprocess.Popen, url: str) -> None:
        self.root, self.state, self.proc, self.url = root, state, proc, url
        self.inside = "/" + str(state.relative_to(root))  # the state directory as the chroot sees it

    def cpu(self) -> float:
        """The daemon's CPU seconds so far (user + system), from /proc/<pid>/stat."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK

    def put(self, name: str, data: bytes) -> str:
        """A file in the daemon's state directory; its path inside the chroot."""
        (self.state / name).write_bytes(data)
        return f"{self.inside}/{name}"

    def rebuildctl_argv(self, *args: str) -> list[str]:
        """`rebuildctl -H <daemon> ARGS` in the chroot: clean environment, the cookie set, no pager."""
        return ["chroot", str(self.root), "env", "-i", "PATH=/usr/bin:/bin", "HOME=/root", "NOPAGER=1",
                f"REBUILDERD_COOKIE_PATH={self.inside}/cookie", "rebuildctl", "-H", self.url, *args]

    def run_rebuildctl(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        """Run rebuildctl ARGS against the daemon; RuntimeError with its stderr on a non-zero exit."""
        res = subprocess.run(self.rebuildctl_argv(*args), capture_output=True, timeout=timeout)
        if res.returncode != 0:
            raise RuntimeError(f"upstream rebuildctl {' '.join(args)} exited {res.returncode}: "
                               f"{res.stderr.decode(errors='replace')[-500:]}")
        return res

    def sync_conf(self, mirror_url: str, *, suite: str = "core", name: str = "arch") -> str:
        """A sync-profile config `name` for the Arch repository `suite` at `mirror_url`; its path inside."""
        return self.put("sync.conf", (f'[profile."{name}"]\ndistro = "archlinux"\nsuite = "{suite}"\n'
                                      f'architectures = ["x86_64"]\nsource = "{mirror_url}/$repo/os/$arch"\n').encode())


D = TypeVar("D", bound=Daemon)


@contextlib.contextmanager
def daemon(root: Path = ROOT, *, kind: type[D] = Daemon) -> Iterator[D]:  # type: ignore[assignment]
    """A rebuilderd with an empty database listening on loopback, as a `kind`; stopped afterwards."""
    state = root / "tmp" / f"rebuilderd-{uuid.uuid4().hex}"
    state.mkdir(parents=True)
    inside = "/" + str(state.relative_to(root))
    port = free_port()
    (state / "cookie").write_text(COOKIE + "\n")
    (state / "rebuilderd.conf").write_text(f'[http]\nbind_addr = "127.0.0.1:{port}"\n[auth]\ncookie = "{COOKIE}"\n'
                                           f'[worker]\nsignup_secret = "{SECRET}"\n')
    url = f"http://127.0.0.1:{port}"
    proc = None
    try:
        with open(state / "rebuilderd.log", "wb") as log:
            # chroot, sh and env all exec: the Popen's pid is the daemon's.
            proc = subprocess.Popen(["chroot", str(root), "sh", "-c", f"cd {inside} && exec env "
                                     f"REBUILDERD_COOKIE_PATH={inside}/cookie rebuilderd -c {inside}/rebuilderd.conf"],
                                    stdout=subprocess.DEVNULL, stderr=log)
        _wait(url, proc, state / "rebuilderd.log")
        yield kind(root, state, proc, url)
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(state, ignore_errors=True)


def _wait(url: str, proc: subprocess.Popen, log: Path) -> None:
    """Until the daemon answers its dashboard; RuntimeError (with its log's end) when it exits or stays silent."""
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "/api/v0/dashboard", timeout=2).read()
            return
        except urllib.error.HTTPError:
            return  # it answered
        except (urllib.error.URLError, ConnectionError):
            if proc.poll() is not None:
                raise RuntimeError(f"rebuilderd exited {proc.returncode} at start: "
                                   f"{log.read_bytes()[-500:].decode(errors='replace')}") from None
            time.sleep(0.05)
    raise RuntimeError(f"rebuilderd did not answer within {START_SECONDS:.0f} s")
