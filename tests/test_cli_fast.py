"""`rebuilder`'s fast start (`jobs.cli_fast`): its parser agrees with the typer CLI, and so does what it prints.

A small local Arch mirror is synced into a fresh local store both ways, in process: through the
typer app (CliRunner) and through `jobs.cli_fast.parse`; stdout, stderr (durations aside) and the
exit code must be the same for every argument list the fast start accepts — good and failing
profiles, unknown ones, options from the environment, a sync config without profiles (typer's
usage error) — and every other list must be left to typer (parse returns None). A publish of the
synced store is compared the same way.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from unittest import mock

import pytest
import typer.main
from typer.testing import CliRunner

from jobs import cli_fast
from jobs.cli import app
from jobs.core.cliapp import EXIT_TERMINAL, EXIT_TRANSIENT
from jobs.core.errors import RebuilderError
from jobs.core.fastargs import standalone
from tests.sync import alpm_builders as alpm


def _command(name: str | None):
    group = typer.main.get_command(app)
    return group if name is None else group.commands[name]


@pytest.mark.parametrize("name", [None, *cli_fast.COMMANDS])
def test_the_spec_is_the_typer_commands_parameters(name):
    """Every option of the typer command is in the spec with the same parameter, kind, environment variable and
    range, its list of words is the spec's `arguments`, and the spec has nothing else."""
    spec = cli_fast.COMMANDS[name] if name else cli_fast.GLOBAL
    command = _command(name)
    words: dict[str, str] = {}
    arguments = None
    for param in command.params:
        if param.name == "version" and param.is_eager:  # --version/-V: its callback prints and exits; left to typer
            continue
        if param.param_type_name == "argument":
            assert param.nargs == -1 and param.type_descriptor.annotation == list[str]
            arguments = param.name
            continue
        assert not param.multiple and not param.is_flag and not param.count and param.nargs == 1, param.name
        assert param.envvar == cli_fast.ENVVARS.get(param.name), param.name
        annotation = param.type_descriptor.annotation
        assert (annotation is Path) == (param.name in cli_fast.PATHS), param.name
        info = param.type_descriptor.parameter_info
        if param.name == "retries":
            assert (annotation, info.min, info.max, param.default) == (int, *cli_fast.RETRIES)
        elif param.name == "timeout":
            assert (annotation, info.min, info.max, param.default) == (float, *cli_fast.TIMEOUT[:1], None,
                                                                       cli_fast.TIMEOUT[1])
        else:
            assert annotation in (str, Path) and param.default is None, param.name
        for word in [*param.opts, *param.secondary_opts]:
            words[word] = param.name
    assert spec.values == words and not spec.flags and not spec.counts
    assert spec.arguments == arguments
    help_words = set(command.get_help_option_names(command.make_context("x", [], resilient_parsing=True)))
    assert help_words.isdisjoint(words)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """A mirror with two repositories, and sync configs: both good, one unreachable, none at all."""
    root = tmp_path_factory.mktemp("clifast")
    mirror = root / "mirror"
    mirror.mkdir()
    (mirror / "core.db").write_bytes(alpm.db(alpm.package("foo", "1.0-1") + alpm.package("bar", "2.0-1")))
    (mirror / "extra.db").write_bytes(alpm.db(alpm.package("baz", "3.1-2")))

    def profile(name: str, source: str) -> str:
        return (f'[profile."{name}"]\ndistro = "archlinux"\ncomponents = ["{name}"]\narchitectures = ["x86_64"]\n'
                f'source = "{source}"\n')

    (root / "good.conf").write_text(profile("core", mirror.as_uri()) + profile("extra", mirror.as_uri()))
    (root / "bad.conf").write_text(profile("core", mirror.as_uri()) + profile("gone", (root / "nosuch").as_uri()))
    (root / "empty.conf").write_text("")
    (root / "rebuilderd.conf").write_text("")
    return root


_DURATION = re.compile(r"\b[0-9]+(\.[0-9]+)? s\b")


def _outcome(out: str, err: str, code: object, exc: BaseException | None) -> tuple[str, str, object]:
    """What the process would show: run_app's line for this project's errors; durations in progress lines as 'N s'."""
    if isinstance(exc, RebuilderError):
        err += f"rebuilder: error: {exc}\n"
        code = EXIT_TRANSIENT if exc.transient else EXIT_TERMINAL
    elif exc is not None:
        raise exc
    return out, _DURATION.sub("N s", err), code


def _typer(argv: list[str], env: dict[str, str]) -> tuple[str, str, object]:
    res = CliRunner().invoke(app, argv, env=env, prog_name="rebuilder")
    exc = res.exception if not isinstance(res.exception, SystemExit) else None
    return _outcome(res.stdout, res.stderr, res.exit_code, exc)


def _fast(argv: list[str], env: dict[str, str]) -> tuple[str, str, object]:
    out, err = io.StringIO(), io.StringIO()
    code, exc = None, None
    with mock.patch.dict(os.environ, env):  # the variables as typer's runner sets them, restored after
        command = cli_fast.parse(argv)
        assert command is not None, argv
        with redirect_stdout(out), redirect_stderr(err):
            try:
                standalone(command)("rebuilder", True)
            except SystemExit as stop:
                code = stop.code
            except RebuilderError as error:
                exc = error
    return _outcome(out.getvalue(), err.getvalue(), code, exc)


ACCEPTED = [
    ["sync"], ["sync", "core"], ["sync", "extra", "core"], ["sync", "core", "core"], ["sync", "--retries", "0", "core"],
    ["sync", "core", "--timeout", "5"], ["sync", "--timeout", "0.1", "--retries", "20"], ["sync", "--retries", "007"],
    ["sync", "--timeout", "60", "extra"], ["sync", "nosuch"], ["sync", "core", "nosuch"],
    ["--config", "{world}/rebuilderd.conf", "sync", "core"], ["--config", "{world}/missing.conf", "sync"],
    ["sync", "--profiles", "{world}/bad.conf"], ["sync", "--profiles", "{world}/bad.conf", "core"],
    ["sync", "--profiles", "{world}/bad.conf", "gone", "--retries", "0"], ["sync", "--profiles", "{world}/missing.conf"],
    ["sync", "--profiles", "{world}/empty.conf"], ["sync", "--profiles", "{world}/empty.conf", "core"],
    ["sync", "--profiles", "{world}"], ["--store", "{store}", "sync", "core"], ["--store", "gopher://x/y", "sync"],
    ["--store", "{store}", "--config", "{world}/rebuilderd.conf", "sync", "--profiles", "{world}/good.conf"],
]


@pytest.mark.parametrize("args", ACCEPTED, ids=" ".join)
def test_the_same_output_and_exit_code_both_ways(world, tmp_path, args):
    store = tmp_path / "store"
    argv = [a.format(world=world, store=store.as_uri()) for a in args]
    env = {"REBUILDER_SYNC_CONFIG": str(world / "good.conf"), "REBUILDER_STORE": store.as_uri(),
           "REBUILDER_CONFIG": "", "HOME": str(tmp_path)}
    theirs = _typer(argv, env)
    shutil.rmtree(store, ignore_errors=True)
    ours = _fast(argv, env)
    assert ours == theirs, argv
    assert theirs[2] in (0, 1, 2, 75)


def test_the_environment_and_a_repeated_sync_both_ways(world, tmp_path):
    """Options from the environment (an empty variable is unset, as to click), and a second sync of the same store
    (nothing changed) print the same both ways."""
    store = tmp_path / "store"
    env = {"REBUILDER_SYNC_CONFIG": str(world / "bad.conf"), "REBUILDER_STORE": store.as_uri(),
           "REBUILDER_CONFIG": str(world / "rebuilderd.conf"), "HOME": str(tmp_path)}
    for argv in (["sync", "core"], ["sync", "--profiles", str(world / "good.conf")], ["sync"]):
        first = _typer(argv, env)
        assert _fast(argv, env) == _typer(argv, env) != first, argv  # the second run: unchanged
        shutil.rmtree(store)
        assert _fast(argv, env) == first, argv
        shutil.rmtree(store)
    empty = {**env, "REBUILDER_SYNC_CONFIG": ""}  # the default sync config, which is not there
    theirs = _typer(["sync", "extra"], empty)
    shutil.rmtree(store, ignore_errors=True)
    assert _fast(["sync", "extra"], empty) == theirs
    assert theirs != _typer(["sync", "extra"], {**env, "REBUILDER_SYNC_CONFIG": str(world / "good.conf")})


@pytest.mark.parametrize("args", [["publish"], ["--config", "{world}/nokey.conf", "publish"],
                                  ["--store", "gopher://x/y", "publish"]], ids=" ".join)
def test_a_publish_prints_the_same_both_ways(world, tmp_path, args):
    """A publish of a synced store, and two that fail."""
    (world / "nokey.conf").write_text(f'[publish]\nsigning_key = "{world / "nosuch.key"}"\n')
    synced = tmp_path / "synced"
    env = {"REBUILDER_STORE": synced.as_uri(), "REBUILDER_CONFIG": "", "HOME": str(tmp_path)}
    assert _typer(["sync", "--profiles", str(world / "good.conf")], env)[2] == 0
    argv = [a.format(world=world) for a in args]
    for store in (tmp_path / "typer", tmp_path / "fast"):
        shutil.copytree(synced, store)
    theirs = _typer(argv, {**env, "REBUILDER_STORE": (tmp_path / "typer").as_uri()})
    assert _fast(argv, {**env, "REBUILDER_STORE": (tmp_path / "fast").as_uri()}) == theirs
    assert theirs[2] == (0 if args == ["publish"] else 1), theirs
    assert ("site: " in theirs[0]) == (args == ["publish"]), theirs


LEFT_TO_TYPER = [
    [], ["--help"], ["-h"], ["--version"], ["-V"], ["--store", "x", "-V", "sync"], ["sync", "-h"], ["sync", "--help"], ["sync", "core", "--help"], ["publish", "--help"], ["publish", "x"],
    ["publish", "--store", "x"], ["publish", "--"], ["work", "--once"],
    ["run"], ["check-config"], ["nosuch"], ["--store"], ["--store", "", "sync"], ["--store", "-x", "sync"],
    ["--store", "x", "--store", "y", "sync"], ["--config", "a", "--config", "b", "sync"], ["--store=x", "sync"],
    ["sync", "--store", "x"], ["sync", "--config", "x"], ["sync", "--retries"], ["sync", "--retries", "21"],
    ["sync", "--retries", "-1"], ["sync", "--retries", "x"], ["sync", "--retries", "5.0"], ["sync", "--retries", " 5"],
    ["sync", "--retries", "1_0"], ["sync", "--retries", "99999999999999999999"], ["sync", "--timeout", "0.05"],
    ["sync", "--timeout", "0.09"], ["sync", "--timeout", "1e3"], ["sync", "--timeout", "inf"],
    ["sync", "--timeout", ".5"], ["sync", "--timeout", "5."], ["sync", "--timeout", "١٢"], ["sync", "--retries=3"],
    ["sync", "--", "core"], ["sync", "core", "--"], ["sync", "-"], ["sync", ""], ["sync", "--bogus"], ["sync", "-r", "1"],
    ["sync", "--profiles"], ["sync", "--profiles", ""], ["sync", "--profiles", "-p"], ["sync", "--profiles", "a\0b"],
    ["sync", "--retries", "1", "--retries", "2"], ["sync", "--profiles", "a", "--profiles", "b"], ["--", "sync"],
    ["sync", "core", "--timeout"], ["-x", "sync"], ["--store", "x"], ["--config", "x", "--store", "y"],
]


@pytest.mark.parametrize("argv", LEFT_TO_TYPER, ids=" ".join)
def test_anything_uncertain_is_left_to_typer(argv):
    assert cli_fast.parse(argv) is None


def test_a_config_path_in_the_environment_with_nul_is_left_to_typer(monkeypatch):
    monkeypatch.setenv("REBUILDER_SYNC_CONFIG", "/etc/x")
    assert cli_fast.parse(["sync"]) is not None
    monkeypatch.setattr(os, "environ", {**os.environ, "REBUILDER_SYNC_CONFIG": "a\0b"})
    assert cli_fast.parse(["sync"]) is None


_PROCESS = """
import atexit, json, sys
atexit.register(lambda: print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)), file=sys.stderr))
from jobs.cli_fast import main
sys.argv = ["rebuilder", *sys.argv[1:]]
main()
"""


def test_the_console_script_syncs_without_typer_and_leaves_usage_errors_to_it(world, tmp_path):
    """As a process: a sync imports neither typer nor click nor pydantic; a bad --retries is typer's usage error
    (exit 2), --help is typer's help, and a profile that fails exits 1 with its one line; a publish, no typer."""
    heavy = ("typer", "click", "pydantic", "rich", "duckdb", "boto3")
    env = {**os.environ, "REBUILDER_CONFIG": "", "HOME": str(tmp_path)}
    env.pop("REBUILDER_SYNC_CONFIG", None)
    store = ["--store", (tmp_path / "store").as_uri()]

    def rebuilder(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", _PROCESS.format(heavy=heavy), *argv], env=env,
                              capture_output=True, text=True, timeout=120)

    synced = rebuilder(*store, "sync", "--profiles", str(world / "good.conf"), "core")
    assert synced.returncode == 0, synced.stderr
    assert synced.stdout.startswith("sync core: updated, 2 packages in 2 build inputs"), synced.stdout
    assert json.loads(synced.stderr.splitlines()[-1]) == []
    assert (tmp_path / "store" / "queue" / "HEAD.json").exists()
    bad = rebuilder(*store, "sync", "--profiles", str(world / "good.conf"), "--retries", "99")
    assert bad.returncode == 2 and "--retries" in bad.stderr and bad.stdout == ""
    assert "typer" in json.loads(bad.stderr.splitlines()[-1])
    helped = rebuilder("sync", "--help")
    assert helped.returncode == 0 and "--profiles" in helped.stdout and "Usage: rebuilder sync" in helped.stdout
    failed = rebuilder(*store, "sync", "--profiles", str(world / "bad.conf"), "gone", "--retries", "0")
    assert failed.returncode == 1 and failed.stdout == ""
    assert "sync gone: failed, nothing changed:" in failed.stderr
    assert json.loads(failed.stderr.splitlines()[-1]) == []
    unknown = rebuilder(*store, "sync", "--profiles", str(world / "good.conf"), "nosuch")
    assert unknown.returncode == 1 and unknown.stderr.startswith("rebuilder: error:"), unknown.stderr
    empty = rebuilder(*store, "sync", "--profiles", str(world / "empty.conf"))
    assert empty.returncode == 2 and "no sync profiles configured" in empty.stderr
    published = rebuilder(*store, "publish")
    assert published.returncode == 0 and published.stdout.startswith("publish: "), published.stderr
    assert not {"typer", "click"} & set(json.loads(published.stderr.splitlines()[-1]))


_BUG = """
import sys
from jobs import cli_support
def bug(*args):
    raise ZeroDivisionError("a bug in the body")
cli_support.sync = cli_support.publish = bug
sys.argv = ["rebuilder", *sys.argv[1:]]
from {module} import main
main()
"""


@pytest.mark.full("four interpreter starts, two with typer and rich")
@pytest.mark.parametrize("standard", ["", "1"])
def test_a_bugs_traceback_is_shown_as_typer_shows_it(tmp_path, standard):
    """An exception that is no error of this project (a bug; also an OSError the store did not turn into one)
    is shown by typer's traceback hook both ways (a rich box without locals, or Python's own with
    TYPER_STANDARD_TRACEBACK): the fast start printed Python's plain traceback where typer printed its own."""
    env = {**os.environ, "REBUILDER_STORE": (tmp_path / "store").as_uri(), "HOME": str(tmp_path), "COLUMNS": "100",
           "TYPER_STANDARD_TRACEBACK": standard}
    env.pop("REBUILDER_CONFIG", None)
    for argv in (["publish"], ["sync", "--profiles", str(tmp_path / "none.conf"), "core"]):
        runs = {module: subprocess.run([sys.executable, "-c", _BUG.format(module=module), *argv], env=env,
                                       capture_output=True, text=True, timeout=120)
                for module in ("jobs.cli", "jobs.cli_fast")}
        typer_run, fast_run = runs["jobs.cli"], runs["jobs.cli_fast"]
        assert typer_run.returncode == fast_run.returncode == EXIT_TERMINAL, runs
        assert typer_run.stdout == fast_run.stdout == ""
        assert typer_run.stderr.splitlines()[-1] == fast_run.stderr.splitlines()[-1] == \
            "ZeroDivisionError: a bug in the body"
        boxed = ("╭" in typer_run.stderr, "╭" in fast_run.stderr)
        assert boxed == ((not standard,) * 2), runs
        assert "Traceback (most recent call last)" in fast_run.stderr or not standard
