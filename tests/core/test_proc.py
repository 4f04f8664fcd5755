"""jobs.core.proc against real processes: timeouts, group kills, size caps, cancellation."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from jobs.core.errors import MissingToolError
from jobs.core.proc import ProcResult, killed_marker, run, size_marker, timeout_marker

PY = sys.executable
GRACE = 0.5
SLACK = 1.5


def alive(pid: int) -> bool:
    """A zombie counts as dead: it holds nothing, and PID 1 here may not reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except FileNotFoundError:
        return False
    return stat[stat.rfind(b")") + 2:].split()[0] != b"Z"


def read_pids(path: Path) -> list[int]:
    return [int(p) for p in path.read_text().split()]


def script(tmp_path: Path, body: str) -> str:
    path = tmp_path / "script.py"
    path.write_text(textwrap.dedent(body))
    return str(path)


def test_output_and_exit_code(tmp_path: Path) -> None:
    log = tmp_path / "log"
    r = run(["sh", "-c", "printf out; printf err >&2; exit 3"], log=log, timeout=10)
    assert (r.exit_code, r.signal, r.ok, r.timed_out, r.truncated) == (3, None, False, False, False)
    assert log.read_bytes() == b"outerr"
    assert r.bytes_total == r.bytes_logged == 6
    assert r.log_path == log
    assert r.argv == ("sh", "-c", "printf out; printf err >&2; exit 3")
    assert run(["true"], log=tmp_path / "ok", timeout=None).ok


def test_killed_by_signal_is_reported(tmp_path: Path) -> None:
    r = run(["sh", "-c", "kill -KILL $$"], log=tmp_path / "log", timeout=10)
    assert (r.exit_code, r.signal, r.ok, r.timed_out) == (None, signal.SIGKILL, False, False)


def test_stdin_is_dev_null(tmp_path: Path) -> None:
    r = run(["cat"], log=tmp_path / "log", timeout=5)
    assert r.ok and r.bytes_total == 0


def test_missing_tool_names_the_package(tmp_path: Path) -> None:
    with pytest.raises(MissingToolError) as e:
        run(["no-such-tool-xyz", "--help"], log=tmp_path / "log", timeout=5, tool_package="xyz-utils")
    assert e.value.tool == "no-such-tool-xyz" and e.value.package == "xyz-utils"
    assert "xyz-utils" in str(e.value)
    assert not e.value.transient


def test_missing_cwd_is_not_a_missing_tool(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        run(["true"], log=tmp_path / "log", timeout=5, cwd=tmp_path / "nope")


def test_invalid_utf8_is_logged_byte_exact(tmp_path: Path) -> None:
    data = bytes(range(256)) * 64 + b"\xff\xfe\xc3("
    src = tmp_path / "bin"
    src.write_bytes(data)
    log = tmp_path / "log"
    r = run(["cat", str(src)], log=log, timeout=5)
    assert r.ok and log.read_bytes() == data


def test_env_and_cwd_are_passed(tmp_path: Path) -> None:
    log = tmp_path / "log"
    env = {"PATH": os.environ["PATH"], "REBUILDERD_OUTDIR": "/out dir"}
    r = run(["sh", "-c", 'printf "%s|%s|%s" "$REBUILDERD_OUTDIR" "$(pwd)" "${HOME-unset}"'],
            log=log, timeout=5, env=env, cwd=tmp_path)
    assert r.ok
    assert log.read_text() == f"/out dir|{tmp_path}|unset"


def test_mirror_and_file_object_log(tmp_path: Path) -> None:
    log, mirror = io.BytesIO(), io.BytesIO()
    r = run(["sh", "-c", "echo one; echo two >&2"], log=log, timeout=5, mirror=mirror)
    assert r.ok and r.log_path is None
    assert log.getvalue() == mirror.getvalue() == b"one\ntwo\n"
    assert not log.closed


def test_timeout_kills_the_whole_group_even_if_it_ignores_sigterm(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    prog = script(tmp_path, f"""
        import os, signal, subprocess, sys, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # inherited by both children
        kids = [subprocess.Popen(["sleep", "60"]),
                subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])]
        open({str(pids)!r}, "w").write(" ".join(str(p) for p in [os.getpid()] + [k.pid for k in kids]))
        print("ready", flush=True)
        time.sleep(60)
    """)
    log = tmp_path / "log"
    r = run([PY, prog], log=log, timeout=1.5, kill_grace=GRACE)
    assert r.timed_out and not r.ok and not r.truncated
    assert r.signal == signal.SIGKILL
    assert 1.5 + GRACE <= r.duration < 1.5 + GRACE + SLACK
    assert log.read_bytes() == b"ready\n" + timeout_marker(1.5)
    assert timeout_marker(1.5) == b"\n\nTRUNCATED DUE TO TIMEOUT: 1.5 seconds\n\n"
    assert timeout_marker(86400) == b"\n\nTRUNCATED DUE TO TIMEOUT: 86400 seconds\n\n"
    assert [p for p in read_pids(pids) if alive(p)] == []


def test_timeout_ends_a_cooperative_command_at_sigterm(tmp_path: Path) -> None:
    r = run(["sleep", "60"], log=tmp_path / "log", timeout=0.3, kill_grace=30)
    assert r.timed_out and r.signal == signal.SIGTERM
    assert r.duration < 0.3 + SLACK


def test_orphan_left_by_a_normal_exit_is_killed(tmp_path: Path) -> None:
    pid = tmp_path / "pid"
    # The daemon does not hold the pipe, so only the group sweep can find it.
    r = run(["sh", "-c", f"sleep 60 >/dev/null 2>&1 & echo $! > {pid}; echo done"],
            log=tmp_path / "log", timeout=10, kill_grace=GRACE)
    assert r.ok and not r.timed_out
    assert r.duration < SLACK
    assert not alive(read_pids(pid)[0])


def test_child_holding_the_pipe_and_ignoring_sigterm_is_killed(tmp_path: Path) -> None:
    pid = tmp_path / "pid"
    log = tmp_path / "log"
    r = run(["sh", "-c", f'trap "" TERM; sleep 60 & echo $! > {pid}; echo leader done'],
            log=log, timeout=None, kill_grace=GRACE)
    assert r.ok and not r.timed_out  # the leader exited 0; cleanup is not a failure
    assert GRACE <= r.duration < GRACE + SLACK
    assert log.read_bytes() == b"leader done\n"
    assert not alive(read_pids(pid)[0])


def test_log_flood_is_capped_but_the_command_runs_to_completion(tmp_path: Path) -> None:
    total, cap = 50 * 1024 * 1024, 1_000_000
    prog = script(tmp_path, f"""
        import sys
        chunk = b"x" * 1023 + b"\\n"
        for _ in range({total} // 1024):
            sys.stdout.buffer.write(chunk)
        sys.stdout.flush()
        sys.stderr.write("finished\\n")
    """)
    log = tmp_path / "log"
    r = run([PY, prog], log=log, timeout=60, max_bytes=cap)
    assert r.ok and r.truncated and not r.timed_out
    assert r.bytes_total == total + len("finished\n") > cap
    assert r.bytes_logged == cap
    data = log.read_bytes()
    assert len(data) == cap + len(size_marker(cap))
    assert data.endswith(b"\n\nTRUNCATED DUE TO SIZE LIMIT: 1000000 bytes\n\n")
    assert data[:cap] == (b"x" * 1023 + b"\n") * (cap // 1024) + b"x" * (cap % 1024)


def test_output_of_exactly_max_bytes_is_not_truncated(tmp_path: Path) -> None:
    log = tmp_path / "log"
    r = run(["printf", "12345"], log=log, timeout=5, max_bytes=5)
    assert r.ok and not r.truncated and log.read_bytes() == b"12345"


def test_kill_on_max_bytes_kills_at_the_cap(tmp_path: Path) -> None:
    prog = script(tmp_path, """
        import time
        while True:
            print("diff line", flush=True)
            time.sleep(0.001)
    """)
    log = tmp_path / "log"
    r = run([PY, prog], log=log, timeout=30, max_bytes=1000, kill_on_max_bytes=True, kill_grace=GRACE)
    assert r.truncated and not r.timed_out and not r.ok
    assert r.signal == signal.SIGTERM
    assert r.duration < SLACK + GRACE
    assert log.read_bytes() == (b"diff line\n" * 100) + size_marker(1000)


def test_size_cap_then_timeout_appends_both_markers(tmp_path: Path) -> None:
    log = tmp_path / "log"
    r = run(["sh", "-c", "echo AAAAAAAAAAAAAAAAAAAAAAAA; echo BBBBBBBBBBBBBBBBBBBBBBBBBBBB; sleep 60"],
            log=log, timeout=0.5, max_bytes=30, kill_grace=GRACE)
    assert r.truncated and r.timed_out
    expected = b"AAAAAAAAAAAAAAAAAAAAAAAA\nBBBBB" + size_marker(30) + timeout_marker(0.5)
    assert log.read_bytes() == expected


def test_cancel_event_kills_with_reason(tmp_path: Path) -> None:
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    log = tmp_path / "log"
    r = run(["sh", "-c", "echo building; sleep 60"], log=log, timeout=60, kill_grace=GRACE,
            cancel=cancel, cancel_reason="lease lost")
    assert r.cancelled and not r.timed_out and not r.ok
    assert r.duration < 0.3 + SLACK
    assert log.read_bytes() == b"building\n" + killed_marker("lease lost")
    assert killed_marker("lease lost") == b"\n\nKILLED: lease lost\n\n"


def test_concurrent_runs_from_threads(tmp_path: Path) -> None:
    results: dict[int, ProcResult] = {}

    def work(i: int) -> None:
        if i == 0:  # one run times out while the others finish normally
            results[i] = run(["sleep", "60"], log=tmp_path / "0.log", timeout=0.5, kill_grace=GRACE)
            return
        code = f"import sys; sys.stdout.write('{i}\\n' * 20000); sys.exit({i})"
        results[i] = run([PY, "-c", code], log=tmp_path / f"{i}.log", timeout=30)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert time.monotonic() - started < 0.5 + SLACK + 2
    assert results[0].timed_out
    for i in range(1, 8):
        assert results[i].exit_code == i
        assert (tmp_path / f"{i}.log").read_bytes() == f"{i}\n".encode() * 20000


def test_failing_log_kills_the_group_and_raises(tmp_path: Path) -> None:
    class FullDisk(io.BytesIO):
        def write(self, b: object) -> int:
            raise OSError(28, "No space left on device")

    pid = tmp_path / "pid"
    started = time.monotonic()
    with pytest.raises(OSError, match="No space"):
        run(["sh", "-c", f"sleep 60 & echo $! > {pid}; sleep 0.2; echo output; sleep 60"],
            log=FullDisk(), timeout=30, kill_grace=GRACE)
    assert time.monotonic() - started < SLACK
    assert not alive(read_pids(pid)[0])


# A build's tree of the kinds that escape a process-group kill: a background child, a child in a
# session of its own (setsid), and a daemon that double-forked and called setsid(). Each writes its
# own pid; the command itself then waits in the foreground.
TREE = """
pids="$1"
sleep 300 & echo $! >> "$pids"
setsid sh -c 'echo $$ >> "$1"; exec sleep 300' _ "$pids" &
{py} -c '
import os, sys, time
if os.fork(): os._exit(0)
os.setsid()
if os.fork(): os._exit(0)
open(sys.argv[1], "a").write("%d\\n" % os.getpid())
os.close(1); os.close(2)
time.sleep(300)
' "$pids"
echo $$ >> "$pids"
{tail}
"""


def tree(tmp_path: Path, tail: str) -> tuple[list[str], Path]:
    pids = tmp_path / "pids"
    path = tmp_path / "tree.sh"
    path.write_text(TREE.format(py=PY, tail=tail))
    return ["sh", str(path), str(pids)], pids


def wait_for_pids(path: Path, n: int, timeout: float = 30.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and len(read_pids(path)) >= n:
            return read_pids(path)
        time.sleep(0.05)
    raise AssertionError(f"the tree did not start: {path.read_text() if path.exists() else 'no pids'}")


def wait_all_dead(pids: list[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.05)
    return [p for p in pids if alive(p)]


def test_descendants_in_other_sessions_are_killed_after_a_normal_exit(tmp_path: Path) -> None:
    argv, pids = tree(tmp_path, "exit 0")
    r = run(argv, log=tmp_path / "log", timeout=60, kill_grace=GRACE)
    assert r.ok
    assert len(read_pids(pids)) == 4
    assert wait_all_dead(read_pids(pids), 0) == []  # all gone when run() returns


def test_a_timeout_kills_descendants_in_other_sessions(tmp_path: Path) -> None:
    argv, pids = tree(tmp_path, "sleep 300")
    r = run(argv, log=tmp_path / "log", timeout=2, kill_grace=GRACE)
    assert r.timed_out and r.signal == signal.SIGTERM
    assert len(read_pids(pids)) == 4
    assert wait_all_dead(read_pids(pids), 0) == []


RUNNER = """
import sys
from pathlib import Path
from jobs.core.proc import run
run(sys.argv[2:], log=Path(sys.argv[1]), timeout=600, kill_grace=30)
"""


@pytest.mark.parametrize("victim", ["caller", "reaper"])
def test_the_tree_dies_with_a_sigkilled_caller(tmp_path: Path, victim: str) -> None:
    """A process running proc.run (a worker) is SIGKILLed mid-build: within seconds no process of
    the build's tree is left, the ones in other sessions included. If instead the reaper itself is
    SIGKILLed (say by the OOM killer) the command's leader still dies with it (PDEATHSIG); its
    descendants are then beyond reach, the documented limit."""
    from jobs.core.reaper import descendants

    argv, pids = tree(tmp_path, "sleep 300")
    caller = subprocess.Popen([PY, "-c", RUNNER, str(tmp_path / "log"), *argv], cwd=Path(__file__).parents[2])
    everything: list[int] = []
    try:
        started = wait_for_pids(pids, 4)
        everything = descendants(caller.pid)
        reaper = next(p for p in everything if b"reaper.py" in Path(f"/proc/{p}/cmdline").read_bytes())
        assert set(started) <= set(everything)
        (leader,) = [p for p in everything if _ppid(p) == reaper and b"tree.sh" in Path(f"/proc/{p}/cmdline").read_bytes()]
        os.kill(caller.pid if victim == "caller" else reaper, signal.SIGKILL)
        if victim == "caller":
            assert wait_all_dead(everything, 5) == []
        else:
            assert wait_all_dead([reaper, leader], 5) == []
    finally:
        caller.kill()
        caller.wait()
        # With the reaper SIGKILLed, what is below the leader is beyond its reach (the documented
        # limit): the test cleans up after itself.
        for pid in (read_pids(pids) if pids.exists() else []) + everything:
            with contextlib.suppress(OSError):  # only our own sleepers, never a reused pid
                if b"300" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    os.kill(pid, signal.SIGKILL)


def _ppid(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_bytes()
    return int(stat[stat.rfind(b")") + 2:].split()[1])
