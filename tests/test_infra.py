"""The shipped systemd units pass `systemd-analyze verify` without a single warning."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tools import missing, require_tool

REPO = Path(__file__).resolve().parent.parent
UNITS = REPO / "infra" / "systemd"
INSTALLED = "/usr/local/bin/rebuilder"
# Templates are verified as instances, the way they are enabled.
INSTANCES = ["rebuilder-sync@archlinux-core.service", "rebuilder-sync@archlinux-core.timer",
             "rebuilder-worker@one.service", "rebuilder-publish.service", "rebuilder-publish.timer"]


def test_every_unit_file_is_verified():
    templates = {re.sub(r"@[^.]+\.", "@.", i) for i in INSTANCES}
    assert {p.name for p in UNITS.iterdir() if p.suffix in (".service", ".timer")} == templates


@pytest.fixture(scope="module")
def unit_dir(tmp_path_factory) -> Path:
    """The units, with ExecStart pointing at this checkout's `rebuilder` (verify checks it exists)."""
    analyze = require_tool("systemd-analyze", "systemd")
    rebuilder = Path(sys.executable).parent / "rebuilder"
    if not rebuilder.exists():
        rebuilder = Path(shutil.which("rebuilder") or "")
        if not rebuilder.is_file():
            missing("the rebuilder command", "pip install -e .")
    out = tmp_path_factory.mktemp("units")
    for unit in UNITS.iterdir():
        (out / unit.name).write_text(unit.read_text().replace(INSTALLED, str(rebuilder)))
    out.joinpath(".analyze").write_text(analyze)
    return out


@pytest.mark.parametrize("instance", INSTANCES)
def test_systemd_analyze_verify_is_clean(unit_dir, instance):
    analyze = unit_dir.joinpath(".analyze").read_text()
    run = subprocess.run([analyze, "verify", "--man=no", str(unit_dir / instance)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and not run.stdout.strip() and not run.stderr.strip(), run.stdout + run.stderr


def test_units_use_the_installed_command_and_env_file():
    for unit in UNITS.glob("*.service"):
        text = unit.read_text()
        assert f"ExecStart={INSTALLED} " in text, unit.name
        assert "EnvironmentFile=-/etc/default/rebuilder" in text, unit.name
        assert "NoNewPrivileges=yes" in text and "ProtectSystem=strict" in text, unit.name


def test_worker_unit_is_idle_and_restarts():
    text = (UNITS / "rebuilder-worker@.service").read_text()
    for line in ("ExecStart=/usr/local/bin/rebuilder work --name %i", "CPUSchedulingPolicy=idle",
                 "IOSchedulingClass=idle", "Restart=always"):
        assert line + "\n" in text


def test_sync_timer_matches_rebuilderd_habit():
    text = (UNITS / "rebuilder-sync@.timer").read_text()
    assert "OnBootSec=1min\n" in text and "OnUnitActiveSec=5m\n" in text
    assert "ExecStart=/usr/local/bin/rebuilder sync %i\n" in (UNITS / "rebuilder-sync@.service").read_text()


def test_a_broken_unit_is_caught(unit_dir, tmp_path):
    analyze = unit_dir.joinpath(".analyze").read_text()
    broken = tmp_path / "rebuilder-publish.service"
    text = (unit_dir / "rebuilder-publish.service").read_text()
    broken.write_text(text.replace("[Service]", "[Service]\nRestartSecc=5\nExecStart=relative/path", 1))
    run = subprocess.run([analyze, "verify", "--man=no", str(broken)], capture_output=True, text=True, timeout=60)
    assert run.returncode != 0 or run.stdout.strip() or run.stderr.strip()
