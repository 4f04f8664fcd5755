"""The small process between `proc.run` and a command: the command's whole tree dies with the caller.

`proc.run` starts ``python -I -S reaper.py STATUS_FD GRACE -- ARGV...`` as the leader of a new
session and process group; the reaper starts ARGV in that group and

- is a *child subreaper* (``PR_SET_CHILD_SUBREAPER``): every descendant that loses its parent,
  including one that called ``setsid()`` or double-forked to become a daemon, is re-parented to
  the reaper instead of PID 1, so the reaper can always find and signal the whole tree, in or
  out of the process group;
- reads its stdin, a pipe from the caller: ``T`` sends SIGTERM to every descendant, ``K`` sends
  SIGKILL, and end-of-file (the caller exited or was SIGKILLed: the kernel closes its end) kills
  every descendant at once. A pipe, unlike ``PR_SET_PDEATHSIG``, follows the caller *process*,
  not the thread that happened to start the command;
- when ARGV exits, sends SIGTERM to what it left behind, SIGKILL after GRACE seconds, and exits
  only once no descendant is left (``waitpid`` says ECHILD: as subreaper it is an ancestor of
  every one of them), or GRACE seconds after that SIGKILL (a process in uninterruptible sleep);
- exits with ARGV's status: the same exit code, or killed by the same signal (without a core).

It also sets ``PR_SET_PDEATHSIG=SIGKILL`` on ARGV: if the reaper itself is SIGKILLed (the OOM
killer), at least the command's leader dies with it. Limits: a descendant of a SIGKILLed reaper
other than that leader goes to PID 1; a process started elsewhere on the command's behalf (by
systemd, a D-Bus service, a container daemon) is not a descendant and is not seen. For hard
containment run workers in their own cgroup (a systemd unit kills its whole control group).

Only the standard library: the script runs with ``-I -S`` (no site, no environment) so it starts
fast and cannot be changed by the build's ``PYTHON*`` variables. Linux only (prctl).
"""

from __future__ import annotations

import ctypes
import errno
import os
import resource
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
TICK = 0.05

_libc = ctypes.CDLL(None, use_errno=True)


def _prctl(option: int, value: int) -> None:
    if _libc.prctl(option, value, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl({option}): {os.strerror(err)}")


def _die_with_reaper(reaper: int) -> None:
    # In the child between fork and exec: if the reaper is gone already, go too.
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != reaper:
        os._exit(127)


def live_processes() -> Iterator[tuple[int, int, int]]:
    """(pid, ppid, pgrp) of every process that is not a zombie, from one scan of /proc."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()  # state, ppid, pgrp, ...
        if len(fields) > 2 and fields[0] != b"Z":
            yield int(name), int(fields[1]), int(fields[2])


def descendants(root: int) -> list[int]:
    """Every live process below ``root``, from one scan of /proc."""
    children: dict[int, list[int]] = {}
    for pid, ppid, _ in live_processes():
        children.setdefault(ppid, []).append(pid)
    found, todo = [], [root]
    while todo:
        for pid in children.get(todo.pop(), ()):
            found.append(pid)
            todo.append(pid)
    return found


def signal_all(sig: int) -> None:
    """Send ``sig`` to every descendant; repeated by the caller until none is left."""
    for pid in descendants(os.getpid()):
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


class Reaper:
    def __init__(self, command: int, grace: float) -> None:
        self.command, self.grace = command, grace
        self.status: int | None = None  # the command's wait status once it exited
        self.kill_at: float | None = None  # when the TERM sent to leftovers becomes KILL
        self.give_up_at: float | None = None  # after SIGKILL: stop waiting for the unkillable
        self.control_open = True

    def run(self) -> int:
        while True:
            now = time.monotonic()
            if self._reap():
                break  # nothing left below us
            if self.status is not None and self.kill_at is None:
                self.kill_at = now + self.grace  # the command is done: its leftovers go
                signal_all(signal.SIGTERM)
            if self.kill_at is not None and now >= self.kill_at:
                self._kill(now)
            if self.give_up_at is not None and now >= self.give_up_at and self.status is not None:
                break
            self._control()
        return self.status if self.status is not None else signal.SIGKILL

    def _kill(self, now: float) -> None:
        if self.give_up_at is None:
            self.give_up_at = now + self.grace
        signal_all(signal.SIGKILL)

    def _reap(self) -> bool:
        """Collect exited children (ours and adopted orphans); True when there are none left."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return True
            if pid == 0:
                return False
            if pid == self.command:
                self.status = status

    def _control(self) -> None:
        if not self.control_open:
            time.sleep(TICK)
            return
        try:
            ready, _, _ = select.select([0], [], [], TICK)
        except InterruptedError:
            return
        if not ready:
            return
        try:
            data = os.read(0, 64)
        except OSError:
            data = b""
        if not data:
            # The caller is gone (or done with us): nobody reads the output or stops the build.
            self.control_open = False
            self.kill_at = time.monotonic()
            self._kill(self.kill_at)
            return
        if b"K" in data:
            self.kill_at = self.kill_at or time.monotonic()
            self._kill(time.monotonic())
        elif b"T" in data:
            signal_all(signal.SIGTERM)


def _exit_like(status: int) -> None:
    """End this process the way the command ended."""
    sys.stdout.flush()
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # the command's crash, not ours
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):
            pass  # SIGKILL and SIGSTOP have no handler to reset
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [sig])
        os.kill(os.getpid(), sig)
        os._exit(128 + sig)
    os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1)


def main(argv: list[str]) -> None:
    status_fd, grace = int(argv[1]), float(argv[2])
    if argv[3] != "--" or len(argv) < 5:
        raise SystemExit("usage: reaper.py STATUS_FD GRACE -- ARGV...")
    command = argv[4:]
    status = os.fdopen(status_fd, "w")
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    # proc.run talks to us through stdin; a TERM sent to the whole group must not end us first.
    signal.signal(signal.SIGTERM, lambda *_: signal_all(signal.SIGTERM))
    me = os.getpid()
    try:
        child = subprocess.Popen(command, stdin=subprocess.DEVNULL, close_fds=True,
                                 preexec_fn=lambda: _die_with_reaper(me))
    except OSError as exc:
        status.write(f"E {exc.errno or errno.EIO} {exc.strerror or exc}\n")
        status.close()
        os._exit(127)
    status.write(f"S {child.pid}\n")
    status.close()
    result = Reaper(child.pid, grace).run()
    child.returncode = 0  # reaped above; keep Popen from waiting on a pid that is gone
    _exit_like(result)


if __name__ == "__main__":
    main(sys.argv)
