"""The README's two commands, infra/demo.sh and infra/test.sh, and the `--bind` they pass on.

What needs no build runs in the fast tier: argument handling, the not-root message, a taken
address as a one-line error before anything is built, the free-port fallback of the server,
and the demo's configs naming the console-script backend (which a reinstall recreates at the
same path). The end-to-end checks are in the full tier: tests/test_fresh_clone.py.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import tomllib
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from jobs.core.store import LocalStore
from jobs.demo.archrepo import FixtureRepo
from jobs.demo.run import BACKEND_SCRIPT, demo_backend, write_configs
from jobs.serve.server import BindError, make_server

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@contextmanager
def held_port(port: int = 0) -> Iterator[int]:
    """A listening socket on 127.0.0.1 (any free port with 0), held for the block."""
    sock = socket.socket()
    try:
        sock.bind(("127.0.0.1", port))
        sock.listen()
        yield sock.getsockname()[1]
    finally:
        sock.close()


def run(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    kwargs.setdefault("timeout", 120)
    kwargs.setdefault("cwd", REPO)
    return subprocess.run(argv, capture_output=True, text=True, **kwargs)


@pytest.mark.parametrize("script", ["infra/demo.sh", "infra/test.sh"])
def test_help_says_how_to_run_it(script):
    res = run([script, "--help"])
    assert res.returncode == 0 and f"{script} [" in res.stdout and "sudo" in res.stdout, res.stdout + res.stderr
    assert "REBUILDER_VENV" in res.stdout


@pytest.mark.parametrize(("argv", "message"), [
    (["--bogus"], "unknown option --bogus"), (["--bind"], "--bind needs ADDR:PORT"), (["a", "b"], "one DIR only"),
    (["--distro"], "--distro needs NAME")])
def test_demo_sh_usage_errors_exit_2(argv, message):
    res = run(["infra/demo.sh", *argv])
    assert res.returncode == 2 and res.stderr.startswith("usage: infra/demo.sh [--bind ADDR:PORT] [--distro NAME]... "
                                                         "[DIR]"), res.stderr
    assert message in res.stderr and len(res.stderr.splitlines()) == 1


def test_demo_sh_not_root_is_told_to_prefix_sudo(tmp_path):
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run the script as another user")
    res = run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "infra/demo.sh",
               "--bind", "127.0.0.1:9000", str(tmp_path)], env={"PATH": "/usr/bin:/bin:/usr/sbin:/sbin"})
    assert res.returncode == 1, res.stdout + res.stderr
    assert res.stderr == ("infra/demo.sh: must run as root (it installs Debian packages and builds in mount "
                          f"namespaces): sudo infra/demo.sh --bind 127.0.0.1:9000 {tmp_path}\n")
    res = run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "infra/demo.sh", "--distro", "debian",
               "--distro=archlinux"], env={"PATH": "/usr/bin:/bin:/usr/sbin:/sbin"})
    assert res.stderr.endswith(": sudo infra/demo.sh --distro debian --distro archlinux\n"), res.stderr


def test_demo_with_a_taken_bind_fails_at_once_in_one_line(tmp_path):
    with held_port() as port:
        res = run([str(BIN / "rebuilder"), "demo", str(tmp_path / "demo"), "--bind", f"127.0.0.1:{port}"], timeout=60)
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    assert res.stderr == f"rebuilder: error: cannot serve on 127.0.0.1:{port}: address already in use; " \
                         "pass another --bind\n"
    assert not (tmp_path / "demo" / "repo").exists()  # nothing was built


def test_serve_with_a_taken_bind_is_one_line(tmp_path):
    with held_port() as port:
        res = run([str(BIN / "rebuilder"), "--store", (tmp_path / "store").as_uri(), "serve",
                   "--bind", f"127.0.0.1:{port}"], timeout=60)
    assert res.returncode == 1 and res.stderr == (f"rebuilder: error: cannot serve on 127.0.0.1:{port}: address "
                                                  "already in use; pass another --bind\n"), res.stderr


@pytest.mark.parametrize(("command", "bind"), [("demo", "nonsense"), ("serve", "127.0.0.1:99999")])
def test_bind_that_is_not_host_port_is_a_usage_error(command, bind, tmp_path):
    res = run([str(BIN / "rebuilder"), "--store", (tmp_path / "store").as_uri(), command, "--bind", bind], timeout=60)
    assert res.returncode == 2 and "Invalid value for '--bind'" in res.stderr and "Traceback" not in res.stderr


def test_server_falls_back_to_the_next_free_port_only_when_asked(tmp_path):
    store = LocalStore(tmp_path / "store", fsync=False)
    store.put("site/index.html", b"<h1>dashboard</h1>", content_type="text/html")
    with held_port() as port:
        with pytest.raises(BindError, match=f"cannot serve on 127.0.0.1:{port}: address already in use"):
            make_server(store, f"127.0.0.1:{port}")
        server = None
        for _ in range(20):  # another process may hold port + 1 too: then it takes the one after
            try:
                server = make_server(store, f"127.0.0.1:{port}", fallback=20)
                break
            except BindError:
                continue
        assert server is not None
        try:
            got = server.server_address[1]
            assert port < got <= port + 20
            threading.Thread(target=server.serve_forever, daemon=True).start()
            with urllib.request.urlopen(f"http://127.0.0.1:{got}/") as resp:
                assert resp.read() == b"<h1>dashboard</h1>"
        finally:
            server.shutdown()
            server.server_close()


def test_demo_configs_name_the_console_script_not_the_package(tmp_path):
    """A path inside site-packages/jobs vanishes when the package is reinstalled another way
    (wheel → editable): the demo's worker config names the console script, which pip writes to
    the same bin/ path on every install."""
    backend = demo_backend()
    assert backend == BIN / BACKEND_SCRIPT, backend
    package = Path(__import__("jobs").__file__).resolve().parent
    assert package not in backend.resolve().parents and "site-packages" not in str(backend)
    repo = FixtureRepo(root=tmp_path / "repo", repo="demo", arch="x86_64", db_path=tmp_path / "repo/demo.db",
                       packages=[], pkgbuild_dir=tmp_path / "pkgbuilds", archive_dir=tmp_path / "archive")
    _, _, worker = write_configs(tmp_path, repo)
    assert tomllib.loads(worker.read_text())["backend"]["archlinux"]["path"] == str(backend)
    # It is the real backend: with no package file it says how to call it.
    res = run([str(backend)], timeout=60)
    assert res.returncode == 2 and "usage" in (res.stdout + res.stderr).lower(), res.stdout + res.stderr


@pytest.mark.parametrize(("tier", "expected"), [([], "--full"), (["--fast"], "")])
def test_test_sh_checks_the_setup_then_runs_pytest_on_two_cores(tier, expected):
    """With everything installed it installs nothing and runs pytest: the full tier by default."""
    if os.geteuid() != 0:
        pytest.skip("infra/test.sh sets up as root")
    res = run(["infra/test.sh", *tier, "--collect-only", "-q", "tests/test_entrypoints.py"], timeout=300,
              env={"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "REBUILDER_VENV": str(BIN.parent), "HOME": str(REPO)})
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    first = res.stdout.splitlines()[0]
    assert first == f"== {BIN}/python -m pytest -n 2 {expected + ' ' if expected else ''}--collect-only -q " \
                    "tests/test_entrypoints.py", first
    assert "test_test_sh_checks_the_setup_then_runs_pytest_on_two_cores" in res.stdout


def test_ci_runs_the_lint_and_then_the_readme_test_command():
    lines = [line for line in (REPO / ".ci/run").read_text().splitlines() if line and not line.startswith("#")]
    assert lines[-1] == 'exec infra/test.sh "$@"'
    assert 'export CI="${CI:-true}"' in lines and "infra/test.sh --setup-only" in lines
    assert any(line.endswith("/bin/ruff\" check jobs tests bench") for line in lines)


@pytest.mark.parametrize("signals", [[signal.SIGINT, signal.SIGINT], [signal.SIGTERM]], ids=["ctrl-c-twice", "term"])
def test_serve_stops_quietly_on_ctrl_c_or_term(signals, tmp_path):
    """Ctrl-C (even twice, or the same signal sent to the process and its group) or SIGTERM: exit 0, no traceback."""
    LocalStore(tmp_path / "store", fsync=False).put("site/index.html", b"<h1>dashboard</h1>", content_type="text/html")
    proc = subprocess.Popen([str(BIN / "rebuilder"), "--store", (tmp_path / "store").as_uri(), "serve",
                             "--bind", "127.0.0.1:0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().startswith(f"serving {(tmp_path / 'store').as_uri()}/site/ at http://127.0.0.1:")
        for sig in signals:
            proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0 and stderr == "", stderr


def test_a_missing_debian_package_is_found_and_not_root_is_told_to_use_sudo():
    """What infra/setup.sh (sourced by both scripts) installs: only what dpkg says is missing,
    and as root only."""
    script = ". infra/setup.sh; ARGS_TEXT=--fast; ensure_packages infra/test.sh @infra/apt-packages.txt " \
             "$BOOTSTRAP_PACKAGES rebuilder-no-such-package"
    listed = run(["bash", "-c", ". infra/setup.sh; missing_packages @infra/apt-packages.txt $BOOTSTRAP_PACKAGES "
                                "rebuilder-no-such-package"])
    assert listed.returncode == 0 and listed.stdout.splitlines()[-1] == "rebuilder-no-such-package", listed.stdout
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run the script as another user")
    res = run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "bash", "-c", script],
              env={"PATH": "/usr/bin:/bin:/usr/sbin:/sbin"})
    assert res.returncode == 1 and res.stderr.endswith(
        "infra/test.sh: must run as root (to install the Debian packages rebuilder-no-such-package): "
        "sudo infra/test.sh --fast\n"), res.stderr


@pytest.mark.parametrize("published", [False, True])
def test_serve_warns_when_nothing_is_published_where_it_looks(tmp_path, published):
    """A mistyped --store served only 404s without a word; now its first line says so."""
    store = LocalStore(tmp_path / "store", fsync=False)
    if published:
        store.put("site/index.html", b"<h1>dashboard</h1>", content_type="text/html")
    proc = subprocess.Popen([str(BIN / "rebuilder"), "--store", store.url, "serve", "--bind", "127.0.0.1:0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        serving = proc.stdout.readline()  # printed once it listens
        assert serving.startswith(f"serving {store.url}/site/ at http://127.0.0.1:"), serving
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "Traceback" not in err, err
    warning = (f"rebuilder serve: warning: nothing is published at {store.url}/site/ (no index.html): every page is "
               "a 404 until `rebuilder publish` runs on this store; check --store (or [store] url, site_url)\n")
    assert err == ("" if published else warning)
