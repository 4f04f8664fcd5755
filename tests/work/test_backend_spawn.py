"""A backend stopped by a signal while it starts a tool leaves no tool running (jobs/work/backends/script.py).

Seen under load: SIGTERM arrived while `subprocess.run` was inside `Popen()` (after the fork,
before it returned), so the exception left a `tar` that nobody held; it kept unpacking into
the directory being removed ("Directory not empty"). The test makes that moment certain: the
signal is sent from inside `Popen()`, right after the child started.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid


def test_a_signal_during_a_tools_start_kills_the_tool_before_the_stop_propagates(tmp_path):
    marker = f"rebuilder-spawn-{uuid.uuid4().hex}"
    child = textwrap.dedent(f"""
        import os, signal, subprocess, sys, time
        from jobs.work.backends import script

        real = subprocess.Popen

        class Interrupted(real):
            def __init__(self, *a, **kw):
                super().__init__(*a, **kw)
                os.kill(os.getpid(), signal.SIGTERM)  # the child runs; Popen() has not returned yet
                time.sleep(1)  # a handler that raises does so here, inside Popen()

        marker = "{marker[:12]}" + "{marker[12:]}"  # not in this process's own command line
        subprocess.Popen = Interrupted
        script.stop_on_signals()
        try:
            script.run([sys.executable, "-c", "import time; time.sleep(60)", marker], timeout=120,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except script.Terminated as stop:
            print("stopped", stop.args[0])
        alive = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout
        print("alive", alive.split())
    """)
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["stopped 15", "alive []"], done.stdout


def test_run_returns_what_subprocess_run_returns(tmp_path):
    from jobs.work.backends.script import run

    done = run(["sh", "-c", "echo out; echo err >&2; exit 3"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
               timeout=30)
    assert (done.returncode, done.stdout, done.stderr) == (3, b"out\n", b"err\n")
    try:
        run(["sleep", "30"], timeout=0.2)
    except subprocess.TimeoutExpired:
        pass
    else:
        raise AssertionError("no timeout")
