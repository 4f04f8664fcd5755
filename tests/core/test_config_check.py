"""`rebuilder check-config` beyond parsing: a profile's keys fit its distro, backends and keyrings
exist on the host, sync methods exist, some worker is trusted. Run as an operator runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from jobs.core.config import parse_sync_config
from jobs.core.config.sync_conf import SYNC_METHODS
from jobs.core.errors import ConfigError
from jobs.sync.run import PARSERS
from jobs.work.backends import shipped_backend

ARCH = '[profile."arch"]\ndistro = "archlinux"\nsource = "https://m/$repo/os/$arch"\ncomponents = ["core"]\n' \
       'architectures = ["x86_64"]\n'
DEBIAN = '[profile."deb"]\ndistro = "debian"\nsource = "https://deb.debian.org/debian"\nreleases = ["trixie"]\n' \
         'components = ["main"]\narchitectures = ["amd64"]\n'
TRUSTED = '[worker]\nsignup_secret = "8f3c0d5e9a1b7c24e6f0a9d3b5c71e28f4a6d0c9b2e7f1a3c5d8e0b4f6a2c9d1"\n'


def check(tmp_path: Path, *, config: str = TRUSTED, worker: str | None = None, sync: str = "",
          args: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """`rebuilder check-config` on these three files, in an otherwise empty environment."""
    files = {"rebuilderd.conf": config, "worker.conf": worker, "sync.conf": sync}
    for name, text in files.items():
        if text is not None:
            (tmp_path / name).write_text(text)
    argv = [str(Path(sys.executable).with_name("rebuilder")), "--config", str(tmp_path / "rebuilderd.conf"),
            "check-config", "--profiles", str(tmp_path / "sync.conf"), *args]
    if worker is not None:
        argv += ["--worker-config", str(tmp_path / "worker.conf")]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path)


def problems(res: subprocess.CompletedProcess) -> list[str]:
    assert "Traceback" not in res.stderr
    return [line.removeprefix("rebuilder check-config: ") for line in res.stderr.splitlines()]


def test_sync_methods_are_the_parsers_sync_has():
    assert set(SYNC_METHODS) == set(PARSERS)


@pytest.mark.parametrize("key, value", [("keyring", '"/usr/share/keyrings/debian-archive-keyring.gpg"'),
                                        ("buildinfo_base_url", '"https://buildinfos.debian.net/buildinfo-pool"'),
                                        ("releases", '["trixie"]')])
def test_a_debian_only_key_in_an_arch_profile_is_an_error(tmp_path, key, value):
    res = check(tmp_path, sync=ARCH + f"{key} = {value}\n")
    assert res.returncode == 1 and not res.stdout
    (line,) = res.stderr.splitlines()
    assert f'sync.conf:profile."arch".{key}: Debian-only key in a profile with sync method \'archlinux\'' in line
    assert "remove it" in line
    # the same file is refused by every command that loads it, not only by check-config
    with pytest.raises(ConfigError, match=f'profile."arch".{key}'):
        parse_sync_config({"profile": {"arch": {"distro": "archlinux", "source": "s", "components": ["core"],
                                                "architectures": ["x86_64"], key: json.loads(value)}}})


def test_an_arch_profile_shows_no_debian_keys_and_a_debian_profile_shows_them(tmp_path):
    res = check(tmp_path, sync=ARCH + DEBIAN)
    assert res.returncode == 0, res.stderr
    profiles = json.loads(res.stdout)["sync"]["profiles"]
    assert not {"keyring", "buildinfo_base_url", "releases"} & set(profiles["arch"])
    assert profiles["arch"]["source"] == "https://m/$repo/os/$arch"
    assert profiles["deb"]["buildinfo_base_url"] == "https://buildinfos.debian.net/buildinfo-pool"
    assert profiles["deb"]["keyring"] is None and profiles["deb"]["releases"] == [{"name": "trixie", "source": None}]
    # and without a keyring, a warning says what that means and what to set
    assert problems(res) == [
        f"warning: {tmp_path}/sync.conf:profile.\"deb\".keyring: not set: InRelease signatures are not verified, "
        "only the index hashes; set keyring = '/usr/share/keyrings/debian-archive-keyring.gpg' "
        "(package debian-archive-keyring)"]


@pytest.mark.parametrize("drop, message", [
    ("releases", 'profile."deb".releases: a profile with sync method \'debian\' needs releases'),
    ("components", 'profile."deb".components: a profile with sync method \'debian\' needs components'),
    ("architectures", 'profile."deb".architectures: a profile with sync method \'debian\' needs architectures'),
])
def test_a_debian_profile_without_what_it_needs_is_an_error(tmp_path, drop, message):
    text = "\n".join(line for line in DEBIAN.splitlines() if not line.startswith(drop)) + "\n"
    res = check(tmp_path, sync=text)
    assert res.returncode == 1 and message in res.stderr, res.stderr
    assert "expected a non-empty list" in res.stderr


def test_an_arch_profile_without_repositories_and_a_debian_source_with_arch_variables(tmp_path):
    res = check(tmp_path, sync=ARCH.replace('components = ["core"]\n', ""))
    assert res.returncode == 1 and 'profile."arch".components: a profile with sync method \'archlinux\' needs components' in res.stderr
    res = check(tmp_path, sync=DEBIAN.replace("https://deb.debian.org/debian", "https://m/$repo/os/$arch"))
    assert res.returncode == 1 and 'profile."deb".source: $repo/$arch are Arch mirror variables' in res.stderr


def test_an_unknown_sync_method_is_an_error(tmp_path):
    res = check(tmp_path, sync='[profile."f"]\ndistro = "fedora"\nsource = "https://m"\n')
    assert res.returncode == 1
    assert problems(res) == [f"error: {tmp_path}/sync.conf:profile.\"f\".distro: no sync method 'fedora': "
                             "`rebuilder sync` reads archlinux and debian indexes only"]
    res = check(tmp_path, sync='[profile."f"]\ndistro = "archlinux"\nsync_method = "rpm"\nsource = "https://m"\n')
    assert res.returncode == 1 and 'profile."f".sync_method: no sync method \'rpm\'' in res.stderr


def test_a_missing_backend_script_names_backend_path_and_fix(tmp_path):
    worker = '[backend."archlinux"]\npath = "/nonexistent/rebuilder-archlinux.sh"\n'
    res = check(tmp_path, worker=worker)
    assert res.returncode == 1
    assert problems(res) == [
        f"error: {tmp_path}/worker.conf:backend.\"archlinux\".path: backend 'archlinux': script "
        f"'/nonexistent/rebuilder-archlinux.sh' does not exist; install the shipped one: "
        f"install -D -m 0755 {shipped_backend('archlinux')} /nonexistent/rebuilder-archlinux.sh"]
    # checked away from the host (a deployment repository's CI): the file alone is fine
    res = check(tmp_path, worker=worker, args=("--no-host-checks",))
    assert res.returncode == 0 and not res.stderr, res.stderr
    assert json.loads(res.stdout)["worker"]["backend"]["archlinux"]["path"] == "/nonexistent/rebuilder-archlinux.sh"


def test_the_install_hint_names_the_script_the_path_is_named_after(tmp_path):
    """docs/configuration.md's example: the archlinux table names the archlinux-local console
    script; installing archlinux-repro's script there instead would be the wrong backend."""
    for path in ("/nonexistent/rebuilder-backend-archlinux-local", "/nonexistent/rebuilder-archlinux-local"):
        res = check(tmp_path, worker=f'[backend."archlinux"]\npath = "{path}"\n')
        assert res.returncode == 1
        assert res.stderr.rstrip().endswith(
            f"install the shipped one: install -D -m 0755 {shipped_backend('archlinux-local')} {path}"), res.stderr
    res = check(tmp_path, worker='[backend."debian"]\npath = "/nonexistent/rebuilder-backend-debian-local"\n')
    assert f"install -D -m 0755 {shipped_backend('debian-local')} " in res.stderr, res.stderr


def test_a_backend_script_that_is_not_executable_or_not_a_file(tmp_path):
    script = tmp_path / "backend.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o644)
    res = check(tmp_path, worker=f'[backend."mine"]\npath = "{script}"\n')
    assert res.returncode == 1
    assert problems(res) == [f"error: {tmp_path}/worker.conf:backend.\"mine\".path: backend 'mine': script "
                             f"'{script}' is not executable; fix: chmod 0755 {script}"]
    script.chmod(0o755)
    res = check(tmp_path, worker=f'[backend."mine"]\npath = "{script}"\n')
    assert res.returncode == 0 and not res.stderr, res.stderr
    res = check(tmp_path, worker=f'[backend."mine"]\npath = "{tmp_path}"\n')
    assert res.returncode == 1 and "is not a regular file; install the script there or correct the path" in res.stderr


def test_root_looks_up_absolute_paths_and_default_files_under_it(tmp_path):
    root = tmp_path / "image"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "rebuilderd.conf").write_text(TRUSTED)
    (root / "etc" / "rebuilderd-worker.conf").write_text('[backend."debian"]\npath = "/usr/libexec/r/deb.sh"\n')
    (root / "etc" / "rebuilderd-sync.conf").write_text(
        DEBIAN + 'keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"\n')
    argv = [str(Path(sys.executable).with_name("rebuilder")), "check-config", "--root", str(root)]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    res = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)
    assert res.returncode == 1
    assert problems(res) == [
        f"error: {root}/etc/rebuilderd-worker.conf:backend.\"debian\".path: backend 'debian': script "
        f"'/usr/libexec/r/deb.sh' (checked at '{root}/usr/libexec/r/deb.sh') does not exist; install the shipped "
        f"one: install -D -m 0755 {shipped_backend('debian')} /usr/libexec/r/deb.sh",
        f"error: {root}/etc/rebuilderd-sync.conf:profile.\"deb\".keyring: "
        "'/usr/share/keyrings/debian-archive-keyring.gpg' does not exist; install debian-archive-keyring or "
        "correct the path"]
    (root / "usr/libexec/r").mkdir(parents=True)
    (root / "usr/libexec/r/deb.sh").write_bytes(shipped_backend("debian").read_bytes())
    (root / "usr/libexec/r/deb.sh").chmod(0o755)
    (root / "usr/share/keyrings").mkdir(parents=True)
    (root / "usr/share/keyrings/debian-archive-keyring.gpg").write_bytes(b"keys")
    res = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)
    assert res.returncode == 0 and not res.stderr, res.stderr


def test_supported_backends_without_a_script_and_a_worker_file_without_backends(tmp_path):
    res = check(tmp_path, worker='supported_backends = ["debian"]\n')
    assert res.returncode == 1
    assert problems(res) == [
        f"warning: {tmp_path}/worker.conf:backend: no [backend.\"<name>\"] table: `rebuilder work` cannot start "
        "with this file",
        f"error: {tmp_path}/worker.conf:supported_backends: backend 'debian' has no [backend.\"debian\"] path: "
        "add one or remove 'debian' from the list"]


def test_no_trusted_worker_is_a_warning(tmp_path):
    res = check(tmp_path, config="")
    assert res.returncode == 0
    assert problems(res) == [
        f"warning: {tmp_path}/rebuilderd.conf:worker: neither authorized_workers nor signup_secret is set: publish "
        "accepts no worker's results (fine on a host that only syncs or builds)"]


def test_profiles_the_worker_cannot_build_are_a_warning(tmp_path):
    script = tmp_path / "b.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    worker = f'supported_architectures = ["amd64"]\n[backend."debian"]\npath = "{script}"\n'
    debian_all = DEBIAN.replace('["amd64"]', '["all", "amd64"]')
    res = check(tmp_path, worker=worker, sync=ARCH + debian_all + f'keyring = "{script}"\n')
    assert res.returncode == 0
    assert problems(res) == [
        f"warning: {tmp_path}/sync.conf:profile.\"arch\": its jobs need backend 'archlinux', which this worker "
        "does not have: this host builds none of them (fine if other workers do)",
        f"warning: {tmp_path}/sync.conf:profile.\"deb\": its jobs of architecture 'all' are not in "
        "supported_architectures: this host builds none of them (fine if other workers do)"]
    res = check(tmp_path, worker=worker.replace('["amd64"]', '["amd64", "all"]'), sync=debian_all + f'keyring = "{script}"\n')
    assert res.returncode == 0 and not res.stderr, res.stderr
    res = check(tmp_path, worker=worker.replace('["amd64"]', '["*"]'), sync=debian_all + f'keyring = "{script}"\n')
    assert res.returncode == 0 and not res.stderr, res.stderr


def test_a_root_that_is_not_a_directory_is_a_usage_error(tmp_path):
    """A mistyped --root used to check nothing and pass (every default file missing: all defaults)."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    (tmp_path / "file").write_text("")
    for root, why in ((tmp_path / "missing", "does not exist"), (tmp_path / "file", "is a file")):
        res = subprocess.run([str(Path(sys.executable).with_name("rebuilder")), "check-config", "--root", str(root)],
                             capture_output=True, text=True, env=env, timeout=60)
        assert res.returncode == 2 and f"Invalid value for '--root': dir '{root}' {why}" in res.stderr, res.stderr
        assert res.stdout == ""


def test_unset_keys_whose_default_is_a_path_show_that_path(tmp_path):
    """check-config prints the effective settings: an unset signing key or work_dir is the path the jobs use."""
    res = check(tmp_path)
    shown = json.loads(res.stdout)
    assert shown["rebuilder"]["publish"]["signing_key"] == "/var/lib/rebuilderd/rebuilderd.sign.key"
    assert shown["worker"]["work_dir"] == str(tmp_path)  # a worker started here
    key = tmp_path / "sign.key"
    res = check(tmp_path, config=TRUSTED + f'[publish]\nsigning_key = "{key}"\n',
                worker=f'work_dir = "{tmp_path / "w"}"\n[backend."archlinux"]\npath = "/bin/true"\n')
    shown = json.loads(res.stdout)
    assert shown["rebuilder"]["publish"]["signing_key"] == str(key)
    assert shown["worker"]["work_dir"] == str(tmp_path / "w")
