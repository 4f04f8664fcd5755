"""What an operator sees: bars on a terminal (a real pty), plain lines when piped or under systemd.

Every command here is the real console script over a real local store; the terminal is a
pseudo-terminal (`os.openpty`), the network failures are real (a port bound and closed, an
unresolvable `.invalid` host, a server that accepts and never answers).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import io
import os
import re
import select
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from jobs.core import progress
from jobs.core.signing import ensure_key
from tests.httpd import serve
from tests.sync import alpm_builders as alpm

BIN = Path(sys.executable).parent
ESC = "\x1b"


def base_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A clean environment: no TERM, no systemd variables unless given."""
    return {"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8", **extra}


def in_pty(argv: list[str], env: dict[str, str], *, timeout: float = 120, cwd: Path | None = None
           ) -> tuple[int, str]:
    """Run `argv` with stdin, stdout and stderr on a pseudo-terminal; its exit code and everything it wrote."""
    master, slave = os.openpty()
    os.set_blocking(master, False)
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd, close_fds=True,
                            start_new_session=True)
    os.close(slave)
    out = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
        else:
            proc.kill()
            raise AssertionError(f"{argv} did not finish in {timeout} s: {out[-2000:]!r}")
    finally:
        os.close(master)
    return proc.wait(timeout=30), out.decode("utf-8", "replace")


def piped(argv: list[str], env: dict[str, str], *, timeout: float = 120, cwd: Path | None = None
          ) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout, cwd=cwd)


def assert_plain(*texts: str) -> None:
    for text in texts:
        assert ESC not in text and "\r" not in text, text[-2000:]


# -- a small mirror, a store and configs -----------------------------------------------------

PACKAGES = ("good-a", "bad-b", "fail-c")


def make_mirror(root: Path) -> Path:
    """An Arch repository `core` with three real package files (their digests in the database)."""
    root.mkdir(parents=True, exist_ok=True)
    members = []
    for name in PACKAGES:
        filename = f"{name}-1.0-1-x86_64.pkg.tar.zst"
        data = hashlib.sha512(name.encode()).digest() * 16
        (root / filename).write_bytes(data)
        members += alpm.package(name, "1.0-1", filename=filename, sha256=hashlib.sha256(data).hexdigest(),
                                csize=str(len(data)))
    (root / "core.db").write_bytes(alpm.db(members))
    return root


def sync_conf(path: Path, source: str) -> Path:
    path.write_text(f'[profile."core"]\ndistro = "archlinux"\ncomponents = ["core"]\narchitectures = ["x86_64"]\n'
                    f'source = "{source}"\n')
    return path


BACKEND = """#!/bin/sh
# GOOD for good-*, BAD for bad-*, FAIL for fail-*.
set -e
name=$(basename "$1")
case "$name" in
  bad-*) echo different > "$REBUILDERD_OUTDIR/$name" ;;
  fail-*) echo "rebuilder-backend: FAIL: broken on purpose"; exit 1 ;;
  *) cp "$1" "$REBUILDERD_OUTDIR/$name" ;;
esac
"""


def setup_cycle(tmp_path: Path) -> tuple[list[str], list[str]]:
    """(the rebuilder command with its store and config, the `run` arguments)."""
    mirror = make_mirror(tmp_path / "mirror")
    backend = tmp_path / "backend.sh"
    backend.write_text(BACKEND)
    backend.chmod(0o755)
    ensure_key(tmp_path / "sign.key")  # a configured key must exist
    (tmp_path / "rebuilderd.conf").write_text(
        f'[worker]\nsignup_secret = "Fk3q9ZmT7vXc2LpW8nRb4HsY6dJg5QeA"\n[publish]\nsigning_key = "{tmp_path / "sign.key"}"\n')
    (tmp_path / "worker.conf").write_text(
        f'signup_secret = "Fk3q9ZmT7vXc2LpW8nRb4HsY6dJg5QeA"\nsupported_architectures = ["x86_64"]\nwork_dir = "{tmp_path / "workers"}"\n'
        f'idle_delay = 1\n[build]\nsilent = true\n[diffoscope]\nenabled = false\n'
        f'[backend."archlinux"]\npath = "{backend}"\n')
    sync_conf(tmp_path / "sync.conf", mirror.as_uri())
    common = [str(BIN / "rebuilder"), "--store", (tmp_path / "store").as_uri(),
              "--config", str(tmp_path / "rebuilderd.conf")]
    return common, ["--profiles", str(tmp_path / "sync.conf"), "--worker-config", str(tmp_path / "worker.conf")]


# -- choosing the kind of output -----------------------------------------------------------


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_detection_honours_term_and_systemd():
    tty = _Tty()
    assert progress.is_interactive(tty, {"TERM": "xterm"})
    assert not progress.is_interactive(io.StringIO(), {"TERM": "xterm"})  # piped or redirected
    assert not progress.is_interactive(tty, {"TERM": "dumb"})
    assert not progress.is_interactive(tty, {"TERM": "xterm", "JOURNAL_STREAM": "8:12345"})  # systemd service
    assert not progress.is_interactive(tty, {"TERM": "xterm", "INVOCATION_ID": "0f" * 16})
    assert isinstance(progress.for_terminal(io.StringIO(), {}), progress.Plain)
    assert isinstance(progress.for_terminal(tty, {"TERM": "xterm"}), progress.Bars)


def test_plain_lines_escape_control_characters_and_print_one_line_per_step():
    out = io.StringIO()
    with progress.use(progress.Plain(out)):
        with progress.step("parse", "sync core: parse", unit="packages"):
            progress.advance("parse", 1234)
        progress.advance("parse", 5)  # closed: nothing
        with pytest.raises(RuntimeError), progress.step("write", "sync core: write", total=3, unit="objects"):
            raise RuntimeError("failed steps print no line of their own")
        progress.line("claimed evil\x1b[2J\rname\n1.0 (job, attempt 1)")
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("sync core: parse: 1,234 packages in ") and lines[0].endswith(" s")
    assert lines[1] == "claimed evil\\x1b[2J\\rname\\n1.0 (job, attempt 1)"
    assert len(lines) == 2
    assert_plain(out.getvalue())


def test_bars_draw_on_a_terminal_stream_and_never_read_markup():
    out = _Tty()
    bars = progress.Bars(out)
    bars.console.force_terminal = True
    with progress.use(bars):
        with progress.step("render", "publish: render [bold]x[/bold]", unit="files"):
            for _ in range(3):
                progress.advance("render")
        progress.line("bad-b 1.0-1: BAD in 0.1 s ([red]not[/red] reproducible)")
    text = out.getvalue()
    assert ESC in text and "publish: render [bold]x[/bold]" in text and "3 files" in text
    assert "([red]not[/red] reproducible)" in text


# -- sync, work, run and publish as an operator runs them ------------------------------------


def test_sync_draws_bars_on_a_terminal_and_prints_plain_lines_when_piped(tmp_path):
    mirror = make_mirror(tmp_path / "mirror")
    conf = sync_conf(tmp_path / "sync.conf", mirror.as_uri())

    def cmd(store: str) -> list[str]:
        return [str(BIN / "rebuilder"), "--store", (tmp_path / store).as_uri(), "sync", "--profiles", str(conf)]

    res = piped(cmd("piped"), base_env(tmp_path, TERM="xterm-256color"))
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("sync core: updated, 3 packages in 3 build inputs") and res.stdout.count("\n") == 1
    steps = res.stderr.splitlines()
    assert [line.split(":")[1].strip() for line in steps] == ["download", "parse", "write"], steps
    assert "sync core: parse: 3 packages in " in steps[1] and "sync core: write: 3 of 3 objects in " in steps[2]
    assert_plain(res.stdout, res.stderr)

    rc, out = in_pty(cmd("tty"), base_env(tmp_path, TERM="xterm-256color", COLUMNS="120"))
    assert rc == 0, out
    assert ESC + "[" in out and "\r" in out  # drawn and redrawn in place
    assert "━" in out and "sync core: parse" in out and "3 of 3 objects" in out
    assert "sync core: updated, 3 packages in 3 build inputs" in out

    # The same terminal under systemd (the journal is no terminal) or with TERM=dumb: plain lines.
    for extra in ({"TERM": "xterm", "JOURNAL_STREAM": "8:4242", "INVOCATION_ID": "ab" * 16}, {"TERM": "dumb"}):
        rc, out = in_pty(cmd(f"plain-{len(extra)}"), base_env(tmp_path, **extra))
        assert rc == 0, out
        assert ESC not in out and "sync core: parse: 3 packages in " in out
        assert all(line.endswith("\r") or not line for line in out.split("\n"))  # only the pty's CRLF


def test_run_shows_each_job_and_ends_with_the_verdicts_on_a_terminal_and_piped(tmp_path):
    for mode in ("piped", "tty"):
        here = tmp_path / mode
        here.mkdir()
        common, args = setup_cycle(here)
        argv = common + ["run", "--workers", "2"] + args
        if mode == "piped":
            res = piped(argv, base_env(here), cwd=here)
            assert res.returncode == 0, res.stderr[-3000:]
            assert_plain(res.stdout, res.stderr)
            out, stdout = res.stderr, res.stdout.splitlines()
            assert stdout[-1] == "run: GOOD 1, BAD 1, FAIL 1, UNKWN 0"
            assert stdout[-2].startswith("publish: 3 results accepted")
            assert "publish: verify: 3 of 3 results in " in out and "publish: render: " in out
            assert "publish: write: " in out
            # the write line counts the package pages written during the render too: the summary's figures
            written = re.search(r"publish: write: (\d+) of (\d+) files in ", out)
            site = re.search(r"site: (\d+) written, (\d+) deleted", stdout[-2])
            assert written[1] == written[2] and int(written[1]) == int(site[1]) + int(site[2]) > 0, (out, stdout[-2])
        else:
            rc, out = in_pty(argv, base_env(here, TERM="xterm-256color", COLUMNS="160"), cwd=here)
            assert rc == 0, out[-3000:]
            assert ESC + "[" in out and "━" in out
            assert "run: GOOD 1, BAD 1, FAIL 1, UNKWN 0" in out
        for name, verdict in zip(PACKAGES, ("GOOD", "BAD", "FAIL")):
            assert f"claimed {name} 1.0-1 (" in out and ", attempt 1)" in out, out[-3000:]
            assert f"{name} 1.0-1: {verdict} in " in out
        assert "(backend exited with status 1: broken on purpose)" in out
        if mode == "piped":  # one line each, named by its worker
            claimed = [line for line in out.splitlines() if "claimed " in line]
            assert len(claimed) == 3 and all(line.startswith(("worker1: ", "worker2: ")) for line in claimed)


def test_work_against_a_store_nothing_was_synced_into_says_so(tmp_path):
    common, args = setup_cycle(tmp_path)
    store = (tmp_path / "store").as_uri()
    worker = [*common, "work", "--worker-config", str(tmp_path / "worker.conf"), "--name", "w1"]
    res = piped([*worker, "--once"], base_env(tmp_path), cwd=tmp_path)
    assert res.returncode == 75 and res.stdout == ""
    created, said = res.stderr.splitlines(keepends=True)  # the worker key, made on first start, is said too
    assert created.startswith("worker: created the worker key ")
    assert said == f"work w1: no package state in {store}: run `rebuilder sync` first\n"

    rc, out = in_pty([*worker, "--once"], base_env(tmp_path, TERM="xterm"), cwd=tmp_path)
    assert rc == 75 and f"no package state in {store}: run `rebuilder sync` first" in out

    # A long-running worker (the systemd service) says it once and keeps looking.
    proc = subprocess.Popen(worker, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=base_env(tmp_path),
                            cwd=tmp_path)
    try:
        first = proc.stderr.readline()
        assert first == f"no package state in {store}: run `rebuilder sync` first; looking again every 1 s\n"
        time.sleep(2.5)  # two more looks: no second line
        assert proc.poll() is None
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and err == "" and out == "work w1: built 0, claims lost 0, stopped 0\n"

    # Once synced, an empty queue is normal: --once exits 0 at once.
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "core.db").write_bytes(alpm.db([]))
    sync_conf(tmp_path / "empty.conf", empty.as_uri())
    res = piped([*common, "sync", "--profiles", str(tmp_path / "empty.conf")], base_env(tmp_path))
    assert res.returncode == 0, res.stderr
    res = piped([*worker, "--once"], base_env(tmp_path), cwd=tmp_path)
    assert res.returncode == 0 and res.stdout == "work w1: built 0, claims lost 0, stopped 0\n", res.stderr


# -- network failures: one line per retry, one line when giving up ----------------------------


def closed_port() -> int:
    """A loopback port that refuses connections: bound, then closed."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Silent:
    """A server that accepts connections and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.accepted:
            conn.close()


class _Busy(http.server.SimpleHTTPRequestHandler):
    """A mirror (or an S3 endpoint) answering 503 to everything."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_PUT = do_HEAD = do_GET

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base class's name)
        pass


@pytest.mark.full("waits out a mirror's retries and timeouts, piped and in a pty")
@pytest.mark.parametrize("case", ["refused", "dns", "timeout", "503"])
def test_an_unreachable_mirror_is_one_line_per_retry_then_one_line_and_exit_75(tmp_path, case):
    with contextlib.ExitStack() as stack:
        if case == "timeout":
            silent = Silent()
            stack.callback(silent.close)
            host = f"127.0.0.1:{silent.port}"
        elif case == "503":
            host = stack.enter_context(serve(tmp_path, _Busy)).removeprefix("http://")
        else:
            host = f"127.0.0.1:{closed_port()}" if case == "refused" else "nonexistent.invalid"
        url = f"http://{host}/core/os/x86_64/core.db"
        what = {"refused": "connection refused", "dns": "DNS lookup failed",
                "timeout": "timed out waiting for an answer", "503": "HTTP 503"}[case]
        conf = sync_conf(tmp_path / "sync.conf", f"http://{host}/$repo/os/$arch")
        argv = [str(BIN / "rebuilder"), "--store", (tmp_path / "store").as_uri(), "sync", "--profiles", str(conf),
                "--retries", "2", "--timeout", "0.5"]
        started = time.monotonic()
        res = piped(argv, base_env(tmp_path))
        took = time.monotonic() - started
        rc, out = in_pty(argv, base_env(tmp_path, TERM="xterm"))
    assert res.returncode == 75 and rc == 75, (res, out)
    assert res.stdout == ""
    lines = res.stderr.splitlines()
    assert lines == [f"GET {url}: {what} (attempt 1 of 3); retrying in 0.0 s",
                     f"GET {url}: {what} (attempt 2 of 3); retrying in 2.0 s",
                     f"sync core: failed, nothing changed: {what} after 3 attempts (url='{url}')"], lines
    assert took < 20  # 2 s of backoff, three 0.5 s timeouts at most, and the start
    assert_plain(res.stderr)
    assert f"{what} (attempt 2 of 3)" in out and f"{what} after 3 attempts" in out
    for text in (res.stderr, out):
        assert "Traceback" not in text and "HTTPConnectionPool" not in text and "Max retries" not in text
    assert not (tmp_path / "store" / "state").exists() and not (tmp_path / "store" / "queue").exists()


@pytest.mark.parametrize("case", ["refused", "dns", "503"])
def test_an_unreachable_s3_store_is_one_line_per_retry_then_one_line_and_exit_75(tmp_path, case):
    mirror = make_mirror(tmp_path / "mirror")
    conf = sync_conf(tmp_path / "sync.conf", mirror.as_uri())
    env = base_env(tmp_path, AWS_ACCESS_KEY_ID="rebuilder-test", AWS_SECRET_ACCESS_KEY="not-a-secret")
    with contextlib.ExitStack() as stack:
        endpoint = {"refused": f"http://127.0.0.1:{closed_port()}", "dns": "http://nonexistent.invalid:8333",
                    "503": stack.enter_context(serve(tmp_path, _Busy)) if case == "503" else ""}[case]
        what, final = {"refused": ("connection refused", "connection refused"),
                       "dns": ("DNS lookup failed", "DNS lookup failed"),
                       "503": ("HTTP 503", "HTTP 503 (Service Unavailable)")}[case]
        store = f"s3://rebuilder/x?endpoint_url={endpoint}&region=us-east-1&max_attempts=2"
        res = piped([str(BIN / "rebuilder"), "--store", store, "sync", "--profiles", str(conf)], env)
    assert res.returncode == 75, res
    lines = res.stderr.splitlines()
    assert len(lines) == 3, lines
    for n, line in enumerate(lines[:2], 1):
        assert line.startswith(f"S3 PUT {endpoint}/rebuilder/x/locks/sync/core.json: {what} "
                               f"(attempt {n} of 3); retrying in "), line
    assert lines[2] == (f"sync core: failed, nothing changed: {final} at {endpoint} after 3 attempts "
                        "(op='put_if_absent', key='locks/sync/core.json', store='s3://rebuilder/x')"), lines[2]
    assert "Traceback" not in res.stderr and "Could not connect" not in res.stderr
    assert_plain(res.stderr)


def test_run_against_a_store_with_no_package_state_says_so(tmp_path):
    common, args = setup_cycle(tmp_path)
    sync_conf(tmp_path / "sync.conf", (tmp_path / "nowhere").as_uri())
    res = piped(common + ["run"] + args, base_env(tmp_path), cwd=tmp_path)
    assert res.returncode == 1, res  # the sync failed for good (no such mirror directory)
    lines = res.stdout.splitlines()
    assert lines[0].startswith("sync core: failed, nothing changed: no such file")
    assert lines[1] == f"work: no package state in {(tmp_path / 'store').as_uri()}: run `rebuilder sync` first"
    assert lines[-1] == "run: GOOD 0, BAD 0, FAIL 0, UNKWN 0"
    assert "claimed" not in res.stderr and "Traceback" not in res.stderr
