"""Run one external command: logged, size-capped, timed out, and cleaned up with all its descendants.

The model is rebuilderd's ``worker/src/proc.rs``: stdin is ``/dev/null``, stdout and stderr go
to one log, a size cap drops excess output and appends ``TRUNCATED DUE TO SIZE LIMIT``, a
timeout appends ``TRUNCATED DUE TO TIMEOUT`` and sends SIGTERM, then SIGKILL after a grace
period (``SIGKILL_DELAY`` = 10 s). Unlike rebuilderd the signals reach every descendant, not
only the direct child, and what is left after the command exits is swept, so a build cannot
leave daemons behind.

The command runs under a small reaper process (``jobs.core.reaper``), the leader of a new
session and process group: a child subreaper, so descendants that call ``setsid()`` or
double-fork stay below it and are signalled too, and the other end of a pipe from us, so when
this process dies in any way, SIGKILL included, the reaper kills the whole tree at once. The
reaper's module docstring lists what it cannot catch. If the reaper is gone, whatever is left
in the process group is signalled directly (the model before the reaper).

The deadline covers the command; cleanup after it may add up to two grace periods.
No signal handlers and no global state: safe to call from several threads at once. Linux only.
"""

from __future__ import annotations

import contextlib
import errno
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from jobs.core.errors import MissingToolError
from jobs.core.reaper import live_processes

READ_SIZE = 64 * 1024
REAPER = Path(__file__).with_name("reaper.py")
# How often we look at the leader, the group and the cancel event when the pipe is quiet.
_TICK = 0.05


@dataclass(frozen=True)
class ProcResult:
    """What happened to one command; ``bytes_logged`` counts output bytes, not markers."""

    argv: tuple[str, ...]
    exit_code: int | None
    signal: int | None
    duration: float
    timed_out: bool
    truncated: bool
    cancelled: bool
    bytes_total: int
    bytes_logged: int
    log_path: Path | None

    @property
    def ok(self) -> bool:
        """True when the command exited with status 0 on its own."""
        return self.exit_code == 0 and not self.timed_out and not self.cancelled


def size_marker(max_bytes: int) -> bytes:
    """The text rebuilderd appends when output exceeded ``max_bytes``."""
    return f"\n\nTRUNCATED DUE TO SIZE LIMIT: {max_bytes} bytes\n\n".encode()


def timeout_marker(timeout: float) -> bytes:
    """The text rebuilderd appends when the command ran longer than ``timeout`` seconds."""
    return f"\n\nTRUNCATED DUE TO TIMEOUT: {_number(timeout)} seconds\n\n".encode()


def killed_marker(reason: str) -> bytes:
    """The text appended when the caller cancelled the command (e.g. its lease was lost)."""
    return f"\n\nKILLED: {reason}\n\n".encode()


def run(
    argv: Sequence[str],
    *,
    log: Path | BinaryIO,
    timeout: float | None,
    max_bytes: int | None = None,
    kill_on_max_bytes: bool = False,
    env: Mapping[str, str] | None = None,
    cwd: Path | str | None = None,
    mirror: BinaryIO | None = None,
    kill_grace: float = 10.0,
    cancel: threading.Event | None = None,
    cancel_reason: str = "cancelled",
    tool_package: str | None = None,
) -> ProcResult:
    """Run ``argv`` in a new process group, streaming merged stdout+stderr into ``log``.

    ``log`` is a path (created or truncated) or an open binary file (left open). ``env``
    replaces the environment, as in subprocess. ``mirror`` receives all output, even what the
    size cap drops (rebuilderd's passthrough does the same).
    """
    argv = tuple(os.fspath(a) for a in argv)
    if not argv:
        raise ValueError("empty argv")
    start = time.monotonic()
    with contextlib.ExitStack() as stack:
        if isinstance(log, (str, os.PathLike)):
            log_path: Path | None = Path(log)
            sink: BinaryIO = stack.enter_context(open(log_path, "wb"))
        else:
            log_path, sink = None, log
        proc = _start(argv, env=env, cwd=cwd, grace=kill_grace, tool_package=tool_package)
        assert proc.stdout is not None and proc.stdin is not None
        stack.callback(proc.stdout.close)
        stack.callback(proc.stdin.close)
        group = _Group(proc, kill_grace)
        out = _Output(sink, mirror, max_bytes)
        deadline = start + timeout if timeout is not None else None
        timed_out = cancelled = False
        try:
            for now in _pump(proc.stdout.fileno(), out, group, deadline):
                if group.stopping:
                    continue
                if cancel is not None and cancel.is_set():
                    cancelled = True
                    out.marker(killed_marker(cancel_reason))
                    group.stop(now)
                elif deadline is not None and now >= deadline:
                    timed_out = True
                    out.marker(timeout_marker(timeout or 0))
                    group.stop(now)
                elif out.truncated and kill_on_max_bytes:
                    group.stop(now)
        except BaseException:
            group.kill_now()
            raise
        code = proc.wait()
        sink.flush()
    return ProcResult(
        argv=argv, exit_code=code if code >= 0 else None, signal=-code if code < 0 else None,
        duration=time.monotonic() - start, timed_out=timed_out, truncated=out.truncated,
        cancelled=cancelled, bytes_total=out.total, bytes_logged=out.logged, log_path=log_path,
    )


def _start(argv: tuple[str, ...], *, env: Mapping[str, str] | None, cwd: Path | str | None, grace: float,
           tool_package: str | None) -> subprocess.Popen[bytes]:
    """Start ``argv`` under a reaper; raise as Popen would (MissingToolError for a missing tool)."""
    status_read, status_write = os.pipe()
    try:
        try:
            proc = subprocess.Popen(
                [sys.executable, "-I", "-S", str(REAPER), str(status_write), repr(float(grace)), "--", *argv],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                start_new_session=True, close_fds=True, pass_fds=(status_write,), bufsize=0,
                env=dict(env) if env is not None else None, cwd=cwd,
            )
        finally:
            os.close(status_write)
        with open(status_read, "rb", closefd=False) as f:
            status = f.readline().decode("utf-8", "replace").split(" ", 2)
    finally:
        os.close(status_read)
    if status[0] == "S":
        return proc
    proc.wait()
    assert proc.stdout is not None and proc.stdin is not None
    proc.stdout.close()
    proc.stdin.close()
    if status[0] == "E" and len(status) == 3 and status[1].isdigit():
        code = int(status[1])
        if code == errno.ENOENT:
            raise MissingToolError(argv[0], tool_package)
        raise OSError(code, status[2].strip(), argv[0])
    raise OSError(errno.EIO, f"could not start {argv[0]!r}: the process reaper failed", argv[0])


def _pump(fd: int, out: _Output, group: _Group, deadline: float | None) -> Iterator[float]:
    """Copy the pipe into ``out`` until EOF and a settled group; yield the time between reads."""
    eof = False
    drain_until: float | None = None
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while True:
            now = time.monotonic()
            yield now
            group.step(now)
            if group.settled(now):
                if eof:
                    return
                # Only a process that left the group can still hold the pipe open.
                drain_until = drain_until or now + group.grace
                if now >= drain_until:
                    return
            wait = _TICK
            if deadline is not None and not group.stopping:
                wait = min(wait, max(0.0, deadline - now))
            if eof:
                group.wait_leader(wait)
            elif selector.select(wait):
                chunk = os.read(fd, READ_SIZE)
                if chunk:
                    out.write(chunk)
                else:
                    eof = True


class _Output:
    """Copies output to the log up to ``max_bytes``, then drops it (but keeps counting)."""

    def __init__(self, sink: BinaryIO, mirror: BinaryIO | None, max_bytes: int | None) -> None:
        self.sink, self.mirror, self.max_bytes = sink, mirror, max_bytes
        self.total = self.logged = 0
        self.truncated = self.closed = False

    def write(self, chunk: bytes) -> None:
        self.total += len(chunk)
        self._mirror(chunk)
        if self.closed:
            return
        if self.max_bytes is not None and self.logged + len(chunk) > self.max_bytes:
            keep = chunk[: self.max_bytes - self.logged]
            self.sink.write(keep)
            self.logged += len(keep)
            self.truncated = True
            self.marker(size_marker(self.max_bytes))
            return
        self.sink.write(chunk)
        self.logged += len(chunk)

    def marker(self, text: bytes) -> None:
        # As in rebuilderd, nothing is logged after a marker; a later marker still follows it.
        self.closed = True
        self.sink.write(text)

    def _mirror(self, chunk: bytes) -> None:
        if self.mirror is None:
            return
        try:
            self.mirror.write(chunk)
            self.mirror.flush()
        except (OSError, ValueError):
            self.mirror = None  # a closed worker stdout must not fail the build


class _Group:
    """The process group led by ``proc``: SIGTERM, then SIGKILL after ``grace`` seconds."""

    def __init__(self, proc: subprocess.Popen[bytes], grace: float) -> None:
        self.proc, self.pgid, self.grace = proc, proc.pid, grace
        self.stopping = self.killed = False
        self.kill_at: float | None = None

    def stop(self, now: float) -> None:
        """Start the TERM → KILL sequence (idempotent)."""
        if self.stopping:
            return
        self.stopping = True
        self.kill_at = now + self.grace
        self._signal(signal.SIGTERM)

    def step(self, now: float) -> None:
        """Advance the sequence: sweep orphans once the leader exited, KILL when grace is over."""
        if self.proc.poll() is not None and not self.stopping and _group_alive(self.pgid):
            self.stop(now)
        if self.kill_at is not None and now >= self.kill_at and not self.killed:
            self.killed = True
            self._signal(signal.SIGKILL)

    def settled(self, now: float) -> bool:
        """The leader has exited and nothing is left in the group that a signal can still end."""
        if self.proc.poll() is None:
            return False
        if self.killed and self.kill_at is not None and now >= self.kill_at + self.grace:
            return True  # survivors of SIGKILL (uninterruptible sleep): stop waiting for them
        return not _group_alive(self.pgid)

    def wait_leader(self, timeout: float) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout)

    def kill_now(self) -> None:
        """SIGKILL everything at once (our own failure) and wait, bounded, until it is gone."""
        self._signal(signal.SIGKILL)
        try:
            self.proc.wait(max(self.grace, 1.0))
        except subprocess.TimeoutExpired:  # the reaper did not finish: kill the group ourselves
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pgid, signal.SIGKILL)
            self.proc.wait()
        give_up = time.monotonic() + self.grace
        while _group_alive(self.pgid) and time.monotonic() < give_up:
            time.sleep(0.01)

    def _signal(self, sig: signal.Signals) -> None:
        # While the reaper lives it signals every descendant, in the group or not (it must not
        # be killed itself before it has killed the rest). Once it is gone, what is left of the
        # group is signalled directly; the leader's pid stays reserved as the group id while
        # any member lives, so killpg cannot hit an unrelated group.
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write(b"K" if sig == signal.SIGKILL else b"T")
                return
            except (OSError, ValueError):
                pass  # the reaper just exited
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pgid, sig)


def _group_alive(pgid: int) -> bool:
    """Is any non-zombie process left in group ``pgid``?"""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # killpg(0) also sees zombies that their (new) parent has not reaped yet, e.g. when PID 1
    # in a container does not reap; those hold no pipe and need no kill.
    try:
        return any(pgrp == pgid for _, _, pgrp in live_processes())
    except OSError:
        return True


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
