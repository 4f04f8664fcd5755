"""What the shipped backend scripts share: their log lines, their last FAIL line, stopping on a signal.

A backend writes its progress to stdout (`rebuilder-backend: …`) and, when it fails, one last
line on stderr starting with `FAIL_PREFIX`, which the worker takes as the FAIL reason.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from jobs.core.errors import RebuilderError, TerminalError
from jobs.work.backends import FAIL_PREFIX, SETUP_EXIT

SAY = "rebuilder-backend: "


class UsageError(TerminalError):
    """The backend was called wrongly (exit status 2)."""


class SetupError(UsageError):
    """The host is not set up to build anything: its environment or configuration is wrong, or a tool is
    missing (exit status `SETUP_EXIT`, 78: the worker stops without a verdict instead of reporting FAIL)."""


class Terminated(BaseException):
    """A signal asked us to stop; raised in the main thread so the build's processes are killed."""


_deferring = False
_pending: int | None = None


def on_signal(signum: int, frame: object) -> None:
    """Signal handler: once (cleanup must not be interrupted again), then `Terminated`.

    While a child is being started (`run`), the signal is only noted and raised right after:
    raised inside `Popen()`, between the fork and the return, it would leave a running child
    that nobody holds, so nobody kills it before its directory is removed.
    """
    global _pending
    signal.signal(signum, signal.SIG_IGN)
    if _deferring:
        _pending = signum
        return
    raise Terminated(signum)


@contextmanager
def _signals_deferred() -> Iterator[None]:
    global _deferring, _pending
    _deferring = threading.current_thread() is threading.main_thread()
    try:
        yield
    finally:
        _deferring = False
        if _pending is not None:
            signum, _pending = _pending, None
            raise Terminated(signum)


def run(argv: list[str], *, timeout: float | None = None, **popen: Any) -> subprocess.CompletedProcess:
    """`subprocess.run` (output into pipes or files, no input) that a stop by signal never leaves a child of.

    The child is killed and reaped before `Terminated` (or a timeout) propagates, so the
    caller's cleanup never races with it.
    """
    proc: subprocess.Popen | None = None
    try:
        with _signals_deferred():
            proc = subprocess.Popen(argv, **popen)
        stdout, stderr = proc.communicate(timeout=timeout)
    except BaseException:
        if proc is not None:
            proc.kill()
            proc.communicate()
        raise
    return subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr)


def stop_on_signals() -> None:
    """SIGTERM and SIGHUP raise `Terminated` in the main thread (a no-op in any other thread)."""
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, on_signal)


def say(message: str) -> None:
    print(f"{SAY}{message}", flush=True)


def fail(reason: str, status: int, *, own_line: bool = False) -> int:
    """Print `reason` as the one-line FAIL reason on stderr; return `status` (the exit code).

    `own_line`: start with a line break, for a stop by signal, when a tool writing to the same
    log may have been cut off in the middle of a line (the worker reads the line from its start).
    """
    sys.stdout.flush()
    one_line = " ".join(re.sub(r"[\x00-\x1f\x7f]", " ", reason).split())
    print(f"{chr(10) if own_line else ''}{FAIL_PREFIX}{one_line}", file=sys.stderr, flush=True)
    return status


def guarded(body: Callable[[], int]) -> int:
    """Run a backend's `main` body: what it raises becomes its exit status and its one FAIL line.

    78 (`SETUP_EXIT`) for a host that is not set up to build, 2 for a usage error, 1 for a refused or failed rebuild (or the disk), 128 + N when signal N
    stopped it; a bug keeps its traceback in the log and its reason on the last line.
    """
    try:
        return body()
    except SetupError as e:
        return fail(str(e), SETUP_EXIT)
    except UsageError as e:
        return fail(str(e), 2)
    except RebuilderError as e:
        return fail(str(e), 1)
    except Terminated as e:
        return fail(f"stopped by signal {e.args[0]}", 128 + int(e.args[0]), own_line=True)
    except OSError as e:
        return fail(f"{type(e).__name__}: {e}", 1)
    except Exception as e:  # a bug: keep the traceback in the log, the reason on the last line
        traceback.print_exc(file=sys.stdout)
        return fail(f"unexpected error: {type(e).__name__}: {e}", 1)


def main_on_input(argv: Sequence[str] | None, usage: str, body: Callable[[Path], int]) -> int:
    """A backend's `main`: stop on signals, take exactly one input file (else `usage`, status 2) and
    run `body` on it guarded; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    stop_on_signals()

    def one() -> int:
        if len(args) != 1:
            raise UsageError(usage)
        return body(Path(args[0]))

    return guarded(one)
