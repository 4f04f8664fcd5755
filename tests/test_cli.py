"""The console scripts as a user runs them: exit codes, clean errors, no pretence."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.sync import alpm_builders as alpm

FIXTURES = Path(__file__).parent / "fixtures" / "config"


def run(prog: str, *args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name(prog)
    base = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}
    return subprocess.run([str(exe), *args], capture_output=True, text=True, env={**base, **(env or {})},
                          timeout=60, cwd=cwd)


def test_sync_without_profiles_is_a_usage_error(tmp_path):
    store = tmp_path / "store"
    res = run("rebuilder", "--store", store.as_uri(), "sync", "--profiles", str(tmp_path / "none.conf"))
    assert res.returncode == 1 and "none.conf" in res.stderr  # a named file must exist
    empty = tmp_path / "empty.conf"
    empty.write_text("")
    res = run("rebuilder", "--store", store.as_uri(), "sync", "--profiles", str(empty))
    assert res.returncode == 2 and f'no sync profiles configured: {empty} has no [profile."<name>"] table' \
        in " ".join(res.stderr.split()), res.stderr
    # No flag, no variable: the error names the default file it looked at.
    default = Path("/etc/rebuilderd-sync.conf")
    if not default.exists():
        res = run("rebuilder", "--store", store.as_uri(), "sync")
        assert res.returncode == 2 and f"no sync profiles configured: {default} does not exist" \
            in " ".join(res.stderr.split()), res.stderr
    res = run("rebuilder", "--store", store.as_uri(), "sync", "--profiles", str(FIXTURES / "rebuilderd-sync.conf"),
              "no-such-profile")
    assert res.returncode == 1 and "no-such-profile" in res.stderr


def test_work_without_backends_says_what_to_configure(tmp_path):
    conf = tmp_path / "worker.conf"
    conf.write_text("[build]\ntimeout = 60\n")
    res = run("rebuilder", "--store", (tmp_path / "store").as_uri(), "work", "--once", "--worker-config", str(conf),
              env={"HOME": str(tmp_path)}, cwd=tmp_path)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert f"error: {conf}:backend: this worker has no backends (expected" in res.stderr, res.stderr
    assert not (tmp_path / "rebuilder.v2.key").exists()  # nothing created before the config is valid
    default = Path("/etc/rebuilderd-worker.conf")
    if not default.exists():  # no flag, no variable, no file: it says which file it looked for
        for command in (["work", "--once"], ["run"]):
            res = run("rebuilder", "--store", (tmp_path / "store").as_uri(), *command,
                      env={"HOME": str(tmp_path)}, cwd=tmp_path)
            assert res.returncode == 1 and res.stderr == (
                f"rebuilder: error: {default}:backend: this worker has no backends; the file does not exist: "
                "pass --worker-config FILE or set REBUILDER_WORKER_CONFIG "
                '(expected [backend."<name>"] path = ...)\n'), res.stderr
    conf.write_text('[backend."archlinux"]\npath = "/nonexistent/backend"\n')
    res = run("rebuilder", "--store", (tmp_path / "store").as_uri(), "work", "--once", "--worker-config", str(conf),
              env={"HOME": str(tmp_path)}, cwd=tmp_path)
    assert res.returncode == 1 and f"error: {conf}:backend.\"archlinux\".path: backend script '/nonexistent/backend'" \
        in res.stderr, res.stderr


def test_work_once_with_nothing_due_exits_cleanly(tmp_path):
    conf = tmp_path / "worker.conf"
    conf.write_text(f'work_dir = "{tmp_path / "w"}"\n[backend."archlinux"]\npath = "/bin/true"\n')
    store = tmp_path / "store"
    res = run("rebuilder", "--store", store.as_uri(), "work", "--once", "--worker-config", str(conf),
              "--name", "w1")
    # Nothing was ever synced into the store: said, and 75 (try again once a sync has run).
    assert res.returncode == 75 and res.stdout == ""
    assert res.stderr.endswith(f"work w1: no package state in {store.as_uri()}: run `rebuilder sync` first\n")
    assert (tmp_path / "w" / "w1" / "rebuilder.v2.key").exists()
    assert f"created the worker key {tmp_path / 'w' / 'w1' / 'rebuilder.v2.key'}" in res.stderr  # never silently
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "core.db").write_bytes(alpm.db([]))  # synced, nothing in it: an empty queue is normal
    (tmp_path / "sync.conf").write_text('[profile."core"]\ndistro = "archlinux"\ncomponents = ["core"]\n'
                                        f'architectures = ["x86_64"]\nsource = "{mirror.as_uri()}"\n')
    assert run("rebuilder", "--store", store.as_uri(), "sync", "--profiles", str(tmp_path / "sync.conf")).returncode == 0
    res = run("rebuilder", "--store", store.as_uri(), "work", "--once", "--worker-config", str(conf),
              "--name", "w1")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "work w1: built 0, claims lost 0, stopped 0"
    assert "created the worker key" not in res.stderr  # created once, by the first run


def test_check_config_prints_effective_settings_with_secrets_masked():
    res = run("rebuilder", "--config", str(FIXTURES / "rebuilderd-full.conf"), "check-config",
              "--worker-config", str(FIXTURES / "rebuilderd-worker.conf"),
              "--profiles", str(FIXTURES / "rebuilderd-sync.conf"))
    assert res.returncode == 1 and "signup_secret: too weak" in res.stderr and "pwgen -1s 32" in res.stderr
    assert "INSECURE" not in res.stderr  # the worker example's placeholder, refused without quoting it
    res = run("rebuilder", "--config", str(FIXTURES / "rebuilderd-full.conf"), "check-config",
              "--worker-config", str(FIXTURES / "rebuilderd-worker-full.conf"),
              "--profiles", str(FIXTURES / "rebuilderd-sync.conf"), "--no-host-checks")  # its /usr/libexec scripts
    assert res.returncode == 0, res.stderr
    conf = json.loads(res.stdout)
    assert conf["rebuilder"]["worker"]["signup_secret"] == "***" and conf["rebuilder"]["auth"]["cookie"] == "***"
    assert "Fk3q9ZmT7vXc2LpW8nRb4HsY6dJg5QeA" not in res.stdout
    assert conf["worker"]["build"]["max_bytes"] == 1048576
    assert conf["sync"]["profiles"]["archlinux-core"]["distro"] == "archlinux"


def test_bad_config_is_one_clear_line_without_traceback(tmp_path):
    bad = tmp_path / "rebuilderd.conf"
    bad.write_text("[schedule]\nretry_delay_base = \"soon\"\n")
    res = run("rebuilder", "check-config", env={"REBUILDER_CONFIG": str(bad)})
    assert res.returncode == 1
    assert "Traceback" not in res.stderr
    assert str(bad) in res.stderr and "schedule.retry_delay_base" in res.stderr


def test_publish_with_a_configured_key_that_does_not_exist_fails_naming_keygen(tmp_path):
    typo = tmp_path / "rebuilderd.sign.kye"
    conf = tmp_path / "rebuilderd.conf"
    conf.write_text(f'[publish]\nsigning_key = "{typo}"\n')
    res = run("rebuilder", "--store", (tmp_path / "store").as_uri(), "--config", str(conf), "publish")
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert f"rebuilder keygen {typo}" in res.stderr and not typo.exists()


def test_keygen_creates_a_key_once(tmp_path):
    key = tmp_path / "rebuilderd.sign.key"
    res = run("rebuilder", "keygen", str(key))
    assert res.returncode == 0, res.stderr
    assert "BEGIN PUBLIC KEY" in res.stdout and "key id:" in res.stdout
    assert key.stat().st_mode & 0o777 == 0o640
    res = run("rebuilder", "keygen", str(key))
    assert res.returncode == 1 and "refusing" in res.stderr


def test_help_has_an_example_on_every_command():
    for cmd in ("sync", "work", "publish", "run", "check-config", "keygen"):
        res = run("rebuilder", cmd, "--help")
        assert res.returncode == 0 and "Example:" in res.stdout, cmd


@pytest.mark.parametrize("prog", ["rebuilder", "rebuildctl"])
def test_version_and_short_help_as_rebuilderd_s_programs_take_them(prog):
    """`-V`/`--version` print "<prog> <version>"; `-h` is `--help`, on the program and on a command."""
    from importlib.metadata import version

    exe = str(Path(sys.executable).with_name(prog))
    for flag in ("--version", "-V"):
        res = subprocess.run([exe, flag], capture_output=True, text=True, timeout=60)
        assert (res.returncode, res.stdout, res.stderr) == (0, f"{prog} {version('rebuilder')}\n", "")
    command = ["sync"] if prog == "rebuilder" else ["pkgs", "ls"]
    for args in ([], command):
        short, long = (subprocess.run([exe, *args, flag], capture_output=True, text=True, timeout=60)
                       for flag in ("-h", "--help"))
        assert short.returncode == long.returncode == 0 and short.stdout == long.stdout and "Usage:" in short.stdout


def test_a_worker_key_with_newlines_cannot_forge_lines_in_publish_s_output(tmp_path):
    """The log's warnings and the refusals publish prints name hostile keys on one line, escaped."""
    from jobs.core.signing import ensure_key

    ensure_key(tmp_path / "sign.pem")
    (tmp_path / "c.toml").write_text('[worker]\nsignup_secret = "Fk3q9ZmT7vXc2LpW8nRb4HsY6dJg5QeA"\n'
                                     f'[publish]\nsigning_key = "{tmp_path / "sign.pem"}"\n')
    (tmp_path / "store/results").mkdir(parents=True)
    (tmp_path / "store/results/x\nERROR forged\x1b[2K line.json").write_text("{}")
    for fast in (True, False):  # the console script's fast start, and typer's
        argv = ([str(Path(sys.executable).with_name("rebuilder"))] if fast else
                [sys.executable, "-c", "from jobs.cli import main; main()"])
        res = subprocess.run([*argv, "--config", str(tmp_path / "c.toml"), "--store", (tmp_path / "store").as_uri(),
                              "publish"], capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        said = [line for line in res.stderr.splitlines() if "forged" in line]
        assert said == [r"rejected results/x\nERROR forged\x1b[2K line.json: bad-key not results/<job-id>/<attempt>.json",
                        r"publish: rejected results/x\nERROR forged\x1b[2K line.json: bad-key"], res.stderr
