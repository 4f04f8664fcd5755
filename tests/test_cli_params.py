"""`rebuilder`'s parameters converted without pydantic (`jobs.core.typer_params`): typer's results, typer's errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
import typer.main

from jobs.cli import app
from jobs.core.typer_params import _Converter, _converter, _fast

try:
    from typer._coercion import build_runtime_param
except ImportError:  # another typer: the converters are not installed at all
    build_runtime_param = None

_INTS = [0, 5, 20, 21, -1, "0", "5", "20", "21", "-1", "007", "-0", "+5", " 5", "5 ", "1_000", "5.0", "abc", "",
         "١٢", "99999999999999999999999", "1e3"]
_FLOATS = [60.0, 0.1, 0.05, 1.0, "60", "0.1", "0.09", "0.10", "007.5", "1e3", "inf", "nan", "-1", " 5", "5.", ".5",
           "1_0", "abc", "", "١٢", "12345678901234567890", 5]
_TEXTS = ["", "x", "archlinux-core", " spaced ", "a\udcff", "١٢", "0"]


def _paths(tmp: Path) -> list:
    unreadable = tmp / "unreadable"
    unreadable.write_text("x")
    unreadable.chmod(0)
    directory = tmp / "dir"
    directory.mkdir()
    return ["", "x", str(tmp / "missing" / "file"), str(unreadable), str(directory), str(tmp), "-", "a\0b",
            Path("rebuilder-demo"), tmp / "missing", "~/x", "a\udcff"]


def _param(command, name: str):
    return next(p for p in command.params if p.name == name)


def _outcome(converter, value, param, ctx):
    try:
        got = converter.coerce(value, param=param, ctx=ctx)
    except typer.BadParameter as exc:
        return ("error", exc.format_message())
    return ("ok", got, type(got))


@pytest.mark.skipif(build_runtime_param is None, reason="this typer has no runtime converters")
@pytest.mark.parametrize("command, option", [
    ("sync", "retries"), ("sync", "timeout"), ("sync", "profiles"), ("sync", "profile"), ("run", "workers"),
    ("run", "budget"), ("work", "name"), ("work", "once"), ("demo", "directory"), ("keygen", "path")])
def test_same_value_or_error_as_typer(tmp_path, command, option):
    cmd = typer.main.get_command(app).commands[command]
    param = _param(cmd, option)
    ctx = cmd.make_context(command, [], resilient_parsing=True)
    ours = _converter(param)
    assert isinstance(ours, _Converter)
    annotation = param.type_descriptor.annotation
    values = {int: _INTS, float: _FLOATS, str: _TEXTS, bool: [False, True], Path: _paths(tmp_path),
              list[str]: [(), ("a",), ("a", "b"), ["a", ""], ("a", 1), "a"]}[annotation]
    theirs = build_runtime_param(param.type_descriptor)
    for value in [None, *values]:
        assert _outcome(ours, value, param, ctx) == _outcome(theirs, value, param, ctx), value


def test_every_parameter_of_sync_and_the_group_is_converted_without_typer():
    group = typer.main.get_command(app)
    ctx = group.make_context("rebuilder", ["sync"], resilient_parsing=True)
    _fast(group, ctx)
    kept = {p.name for p in group.get_params(ctx) if not isinstance(getattr(p, "_runtime_param", None), _Converter)}
    assert kept == set()  # --config, --store and --help
    sync = _fast(group.commands["sync"], ctx)
    kept = {p.name for p in sync.get_params(ctx) if not isinstance(getattr(p, "_runtime_param", None), _Converter)}
    assert kept == set()


_RUN = """
import sys
import jobs.cli
try:
    jobs.cli.app(sys.argv[1:], prog_name="rebuilder", standalone_mode=False)
except SystemExit as exc:
    print("exit", exc.code)
except Exception as exc:
    print(type(exc).__name__, exc)
print("pydantic" in sys.modules)
"""


@pytest.mark.parametrize("args, loads_pydantic", [
    (["sync", "--profiles", "/nonexistent/sync.conf", "--retries", "3", "--timeout", "2.5", "a", "b"], False),
    (["sync", "--timeout", "0.01"], True),  # out of range: typer's own error, as before
])
def test_a_sync_converts_its_parameters_without_pydantic(tmp_path, args, loads_pydantic):
    env = {**os.environ, "REBUILDER_CONFIG": str(tmp_path / "none.conf")}
    res = subprocess.run([sys.executable, "-c", _RUN, "--store", (tmp_path / "store").as_uri(), *args],
                         capture_output=True, text=True, timeout=60, env=env)
    assert res.stdout.splitlines()[-1] == str(loads_pydantic), res.stdout + res.stderr


def test_usage_errors_are_typers(tmp_path):
    exe = Path(sys.executable).with_name("rebuilder")
    res = subprocess.run([str(exe), "sync", "--timeout", "0.01", "x"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert "Invalid value for '--timeout': Input should be greater than or equal to 0.1" in res.stderr
    res = subprocess.run([str(exe), "sync", "--retries", "x"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "Invalid value for '--retries'" in res.stderr
