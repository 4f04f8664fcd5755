"""Ending a command's process: Python's own clean-up, then `_exit`, never C++ static destructors.

pyarrow keeps native thread pools (a CPU pool and an I/O pool that a Parquet read starts, and
jemalloc's background thread); DuckDB has its own. A pool thread may still be finishing a task
when the main thread reaches the end of the program, and such a task can need the GIL (to
release a Python-owned buffer the read was given, or to call a Python file object). Once
interpreter finalization has begun, CPython (3.11 here) ends any thread that asks for the GIL
with `pthread_exit`; the forced unwind that starts runs into Arrow's `noexcept` worker loop,
and libstdc++ calls `std::terminate()`: "terminate called without an active exception",
SIGABRT, exit status 134, after all the work was done and all output written
(apache/arrow#34314, #39862). A backtrace of one such abort shows exactly that: an
`arrow::internal::ThreadPool` worker in `__pthread_unwind` → `std::terminate`, while the main
thread is closing files in `Py_FinalizeEx`. It happens in a few runs out of a hundred (a
bare read-a-Parquet-file-and-exit script aborted 2 times in 300 runs on a loaded 2-core
machine), and nothing in Python can join those native threads.

So the console scripts end through :func:`exit_process`: it does everything a normal Python
exit does that matters to us (joins non-daemon threads, runs `atexit` callbacks such as
`logging.shutdown`, flushes stdout and stderr) and then calls `os._exit`, which ends the
process without running the native libraries' static destructors. The kernel frees their
memory and threads; nothing of ours lives in them (every file we write is closed, flushed and
renamed before the command returns).
"""

from __future__ import annotations

import atexit
import os
import sys
import threading

# What CPython exits with when flushing stdout fails at the end (e.g. a closed pipe).
EXIT_FLUSH_FAILED = 120


def exit_code(exc: SystemExit) -> int:
    """The status `sys.exit(x)` means: None → 0, an int as is, anything else printed → 1."""
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    try:
        print(code, file=sys.stderr)
    except (OSError, ValueError):
        pass
    return 1


def exit_process(code: int) -> None:
    """Finish like a normal interpreter exit would, then end the process with `os._exit(code)`."""
    try:
        _join_threads()
        atexit._run_exitfuncs()
    except BaseException:  # noqa: BLE001 - a failing clean-up must still end the process
        code = code or 1
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            if stream is sys.stdout and code == 0:
                code = EXIT_FLUSH_FAILED
    os._exit(code)


def _join_threads() -> None:
    # What Py_FinalizeEx does first: run threading's own exit hooks (they stop
    # concurrent.futures' workers) and join every non-daemon thread.
    shutdown = getattr(threading, "_shutdown", None)
    if shutdown is not None:
        shutdown()
        return
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
