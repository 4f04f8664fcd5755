"""Upstream rebuilderd 0.24 and its rebuildctl 0.23.1 as benchmark baselines (issue #18).

They are Debian trixie's own binaries, run in the trixie chroot the full test tier builds and
caches (`REBUILDER_TRIXIE_ROOT`, default /var/cache/rebuilder-tests/trixie-root); tests/trixie.py
starts the daemon (the same code the tests use). `unavailable()` says why they cannot run here
(not root, no chroot); the benchmarks then report the baseline as missing.

Times are those of the processes: `rebuildctl`'s wall time as this process waits for it, CPU
as the kernel accounts it (rebuildctl through RUSAGE_CHILDREN, the daemon from
/proc/<pid>/stat), so they include what the daemon does for the request.
"""

from __future__ import annotations

import contextlib
import resource
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests import trixie
from tests.httpd import serve
from tests.trixie import COOKIE, ROOT, SECRET, unavailable, version

__all__ = ["COOKIE", "ROOT", "SECRET", "Daemon", "Run", "daemon", "http_directory", "sync_profile", "unavailable",
           "version"]


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


class Daemon(trixie.Daemon):
    """A fresh rebuilderd (empty SQLite database) in the chroot, and timed rebuildctl runs against it."""

    def rebuildctl(self, *args: str, timeout: float = 300) -> Run:
        """Run `rebuildctl -H <daemon> ARGS` in the chroot, cookie set, no pager; fails on a non-zero exit."""
        before_children = resource.getrusage(resource.RUSAGE_CHILDREN)
        daemon_before = self.cpu()
        started = time.perf_counter()
        res = self.run_rebuildctl(*args, timeout=timeout)
        seconds = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before_children.ru_utime) + (after.ru_stime - before_children.ru_stime)
        return Run(seconds, cpu, self.cpu() - daemon_before, res.stdout)


@contextlib.contextmanager
def daemon() -> Iterator[Daemon]:
    """A rebuilderd 0.24 with an empty database, listening on loopback; stopped afterwards."""
    with trixie.daemon(ROOT, kind=Daemon) as d:
        yield d


def sync_profile(d: Daemon, mirror_url: str, *, suite: str, repeat_name: str = "arch") -> Run:
    """`rebuildctl pkgs sync-profile` of an Arch repository `suite` at `mirror_url` into daemon `d`."""
    conf = d.sync_conf(mirror_url, suite=suite, name=repeat_name)
    return d.rebuildctl("pkgs", "sync-profile", "--sync-config", conf, repeat_name)
