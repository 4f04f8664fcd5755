"""The example deployments in examples/ are what they claim: every file is checked by the tool that
runs it. Configs with the real `rebuilder check-config` (as shipped, and as `examples/install.sh`
installs them on a host), systemd units and drop-ins with `systemd-analyze verify`, workflows with
actionlint and zizmor."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_infra import INSTALLED
from tests.test_workflows import _tool
from tests.test_workflows import test_actions_are_pinned_and_run_steps_expand_nothing as pinned_and_unexpanded
from tests.tools import missing, require_tool

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
INSTALL = EXAMPLES / "install.sh"
NAMES = ["archlinux", "debian"]
CONFIGS = ("rebuilderd.conf", "rebuilderd-sync.conf", "rebuilderd-worker.conf")
PROFILES = {"archlinux": ["archlinux-core", "archlinux-extra"], "debian": ["debian-trixie-main"]}
BACKENDS = {"archlinux": "rebuilder-archlinux.sh", "debian": "rebuilder-debian.sh"}
DROPINS = {"archlinux": "archlinux-repro.conf", "debian": "debrebuild.conf"}
KEYRING = "usr/share/keyrings/debian-archive-keyring.gpg"
WORKFLOWS = sorted(EXAMPLES.glob("*/workflows/*.yml"))
HEX_SECRET = re.compile(r"[0-9a-f]{64}")


def rebuilder(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("rebuilder")
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}
    return subprocess.run([str(exe), *args], capture_output=True, text=True, env=env, timeout=60, cwd=cwd)


def install(destdir: Path, example: str, *roles: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(INSTALL), example, *roles], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "DESTDIR": str(destdir), **(env or {})})


def test_every_example_file_is_checked_here():
    """A new file in examples/ must get a check in this module (and be listed here)."""
    expected = {"README.md", "install.sh"}
    for name in NAMES:
        expected |= {f"{name}/{f}" for f in (*CONFIGS, "README.md", "rebuilder.default", "workflows/rebuilder.yml",
                                             f"systemd/rebuilder-worker@.service.d/{DROPINS[name]}")}
    expected.add("debian/rebuilder-worker.sysusers.conf")
    found = {str(p.relative_to(EXAMPLES)) for p in EXAMPLES.rglob("*") if p.is_file()}
    assert found == expected


@pytest.mark.parametrize("name", NAMES)
def test_shipped_configs_pass_check_config_away_from_the_host(name):
    ex = EXAMPLES / name
    res = rebuilder("--config", str(ex / "rebuilderd.conf"), "check-config", "--no-host-checks",
                    "--worker-config", str(ex / "rebuilderd-worker.conf"), "--profiles", str(ex / "rebuilderd-sync.conf"))
    assert res.returncode == 0, res.stderr
    # No secret is shipped, so the only finding is that no worker is trusted yet.
    assert res.stderr.splitlines() == [
        f"rebuilder check-config: warning: {ex}/rebuilderd.conf:worker: neither authorized_workers nor signup_secret "
        "is set: publish accepts no worker's results (fine on a host that only syncs or builds)"]
    conf = json.loads(res.stdout)
    assert conf["rebuilder"]["store"]["url"].startswith("s3://")
    assert conf["rebuilder"]["auth"]["cookie"] is None and conf["worker"]["signup_secret"] is None
    assert list(conf["worker"]["backend"]) == conf["worker"]["supported_backends"] == [name]
    assert conf["worker"]["backend"][name]["path"] == f"/usr/local/libexec/rebuilder/{BACKENDS[name]}"
    profiles = conf["sync"]["profiles"]
    assert sorted(profiles) == PROFILES[name]
    for profile in profiles.values():
        assert profile["distro"] == profile["sync_method"] == name
        assert profile["source"].startswith("https://")
        if name == "archlinux":
            assert profile["source"] == "https://geo.mirror.pkgbuild.com/$repo/os/$arch"
            assert profile["architectures"] == ["x86_64"]
            assert not {"keyring", "buildinfo_base_url", "releases"} & set(profile)
        else:
            assert profile["keyring"] == "/" + KEYRING
            assert profile["buildinfo_base_url"] == "https://buildinfos.debian.net/buildinfo-pool"
            assert [r["name"] for r in profile["releases"]] == ["trixie"]
            assert profile["components"] == ["main"] and profile["architectures"] == ["all", "amd64"]
    assert [p["components"] for p in profiles.values()] == ([["core"], ["extra"]] if name == "archlinux" else [["main"]])


@pytest.mark.parametrize("name", NAMES)
def test_shipped_configs_on_a_host_without_the_backend_say_how_to_install_it(name, tmp_path):
    ex = EXAMPLES / name
    res = rebuilder("--config", str(ex / "rebuilderd.conf"), "check-config", "--root", str(tmp_path),
                    "--worker-config", str(ex / "rebuilderd-worker.conf"), "--profiles", str(ex / "rebuilderd-sync.conf"))
    assert res.returncode == 1
    errors = [line for line in res.stderr.splitlines() if ": error: " in line]
    script = f"/usr/local/libexec/rebuilder/{BACKENDS[name]}"
    assert f'rebuilderd-worker.conf:backend."{name}".path: backend \'{name}\': script \'{script}\'' in errors[0]
    assert "does not exist; install the shipped one: install -D -m 0755 " in errors[0]
    assert len(errors) == (2 if name == "debian" else 1)
    if name == "debian":
        assert "keyring: '/usr/share/keyrings/debian-archive-keyring.gpg' does not exist" in errors[1]


def test_shipped_files_hold_no_secret():
    for path in EXAMPLES.rglob("*"):
        if not path.is_file():
            continue
        text = path.read_text()
        assert "PRIVATE KEY" not in text and not HEX_SECRET.search(text), path
        for line in text.splitlines():
            if re.match(r"\s*#?\s*(cookie|signup_secret)\s*=", line):
                assert line.lstrip().startswith("#") and line.rstrip().endswith('""'), (path, line)


@pytest.mark.parametrize("name", NAMES)
def test_install_sh_makes_a_host_that_check_config_passes(name, tmp_path):
    root = tmp_path / "root"
    res = install(root, name, "control", "worker")
    assert res.returncode == 0, res.stderr
    assert f"systemctl enable --now {' '.join(f'rebuilder-sync@{p}.timer' for p in PROFILES[name])} " \
           "rebuilder-publish.timer rebuilder-worker@one.service" in res.stdout
    # staged below DESTDIR: the lines name the staged files, and the check looks there
    assert f"installed {root}/etc/rebuilderd.conf (with generated secrets)" in res.stdout.splitlines()
    assert f"  rebuilder check-config --root {root}" in res.stdout.splitlines()
    etc = root / "etc"
    main, worker = (etc / "rebuilderd.conf").read_text(), (etc / "rebuilderd-worker.conf").read_text()
    cookie = re.search(r'^cookie = "(.*)"$', main, re.M)[1]
    signup = re.search(r'^signup_secret = "(.*)"$', main, re.M)[1]
    assert HEX_SECRET.fullmatch(cookie) and HEX_SECRET.fullmatch(signup) and cookie != signup  # 256 bits each
    assert re.search(r'^signup_secret = "(.*)"$', worker, re.M)[1] == signup
    assert stat.S_IMODE((etc / "rebuilderd.conf").stat().st_mode) == 0o640
    assert stat.S_IMODE((etc / "rebuilderd-worker.conf").stat().st_mode) == (0o640 if name == "debian" else 0o600)
    assert stat.S_IMODE((etc / "default" / "rebuilder").stat().st_mode) == 0o600
    script = root / "usr/local/libexec/rebuilder" / BACKENDS[name]
    assert stat.S_IMODE(script.stat().st_mode) == 0o755
    assert script.read_bytes() == (REPO / "jobs/work/backends" / BACKENDS[name]).read_bytes()

    check = rebuilder("check-config", "--root", str(root))
    if name == "debian":  # the host needs debian-archive-keyring: check-config says so until it is there
        assert check.returncode == 1 and f"'/{KEYRING}' does not exist; install debian-archive-keyring" in check.stderr
        (root / KEYRING).parent.mkdir(parents=True)
        keyring = Path("/" + KEYRING)
        (root / KEYRING).write_bytes(keyring.read_bytes() if keyring.is_file() else b"a keyring")
        check = rebuilder("check-config", "--root", str(root))
    assert check.returncode == 0 and check.stderr == "", check.stderr  # not one warning
    assert json.loads(check.stdout)["worker"]["signup_secret"] == "***"
    assert cookie not in check.stdout and signup not in check.stdout

    # Run again: nothing is overwritten, the secrets stay.
    again = install(root, name, "control", "worker")
    assert again.returncode == 0 and "installed" not in again.stdout, again.stdout
    assert (etc / "rebuilderd.conf").read_text() == main


def test_install_sh_worker_alone_needs_the_control_hosts_signup_secret(tmp_path):
    res = install(tmp_path, "archlinux", "worker")
    assert res.returncode == 2 and "set SIGNUP_SECRET" in res.stderr
    assert not (tmp_path / "etc" / "rebuilderd-worker.conf").exists()
    res = install(tmp_path, "archlinux", "worker", env={"SIGNUP_SECRET": "not hex!"})
    assert res.returncode == 2 and "must be hex" in res.stderr
    assert not (tmp_path / "etc" / "rebuilderd-worker.conf").exists()
    secret = "3e9b1f7a0c5d8e2b6a4f9c1d7e3b5a0f8c2d6e4b9a1f3c7d5e0b8a2f6c4d9e1b"
    res = install(tmp_path, "archlinux", "worker", env={"SIGNUP_SECRET": secret})
    assert res.returncode == 0, res.stderr
    assert f'\nsignup_secret = "{secret}"\n' in (tmp_path / "etc" / "rebuilderd-worker.conf").read_text()
    # a worker-only host gets rebuilderd.conf as shipped: no admin cookie, no signup secret
    assert (tmp_path / "etc" / "rebuilderd.conf").read_bytes() == (EXAMPLES / "archlinux/rebuilderd.conf").read_bytes()
    assert not (tmp_path / "etc" / "systemd/system/rebuilder-publish.service").exists()


def test_install_sh_refuses_unknown_examples_and_roles(tmp_path):
    assert install(tmp_path, "fedora", "worker").returncode == 2
    assert install(tmp_path, "debian", "builder").returncode == 2
    assert not any(tmp_path.iterdir())


@pytest.fixture(scope="module")
def analyze() -> str:
    return require_tool("systemd-analyze", "systemd")


def _installed_units(root: Path, tmp_path: Path) -> Path:
    """The units install.sh put in root, with ExecStart at this checkout's rebuilder (verify checks it)."""
    exe = Path(sys.executable).parent / "rebuilder"
    if not exe.exists():
        exe = Path(shutil.which("rebuilder") or "")
        if not exe.is_file():
            missing("the rebuilder command", "pip install -e .")
    out = tmp_path / "units"
    shutil.copytree(root / "etc/systemd/system", out)
    for unit in out.rglob("*"):
        if unit.is_file():
            unit.write_text(unit.read_text().replace(INSTALLED, str(exe)))
    return out


@pytest.mark.parametrize("name", NAMES)
def test_installed_units_and_drop_in_pass_systemd_analyze_verify(name, tmp_path, analyze):
    assert install(tmp_path / "root", name, "control", "worker").returncode == 0
    units = _installed_units(tmp_path / "root", tmp_path)
    assert (units / "rebuilder-worker@.service.d" / DROPINS[name]).is_file()
    instances = ["rebuilder-worker@one.service", "rebuilder-publish.service", "rebuilder-publish.timer"]
    instances += [f"rebuilder-sync@{p}.{kind}" for p in PROFILES[name] for kind in ("service", "timer")]
    for instance in instances:
        run = subprocess.run([analyze, "verify", "--man=no", str(units / instance)], capture_output=True,
                             text=True, timeout=60, env={**os.environ, "SYSTEMD_LOG_COLOR": "0"})
        assert run.returncode == 0 and not run.stdout.strip() and not run.stderr.strip(), run.stdout + run.stderr
    # The drop-in is really read: a mistake in it is reported.
    dropin = units / "rebuilder-worker@.service.d" / DROPINS[name]
    dropin.write_text(dropin.read_text() + "NoNewPrivilegez=no\n")
    run = subprocess.run([analyze, "verify", "--man=no", str(units / "rebuilder-worker@one.service")],
                         capture_output=True, text=True, timeout=60)
    assert "NoNewPrivilegez" in run.stdout + run.stderr


def test_example_workflows_pass_actionlint():
    assert [str(p.relative_to(EXAMPLES)) for p in WORKFLOWS] == [f"{n}/workflows/rebuilder.yml" for n in NAMES]
    run = subprocess.run([_tool("actionlint"), "-no-color", *map(str, WORKFLOWS)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr


def test_example_workflows_pass_zizmor():
    run = subprocess.run([_tool("zizmor"), "--offline", "--no-progress", "--persona=pedantic", *map(str, WORKFLOWS)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.parent.parent.name)
def test_example_workflows_pin_actions_and_sync_every_profile(workflow):
    pinned_and_unexpanded(workflow)
    text = workflow.read_text()
    profiles = re.search(r"^\s*profile: \[(.*)\]$", text, re.M)[1].split(", ")
    assert profiles == PROFILES[workflow.parent.parent.name]
