"""rebuildctl's parameters converted without pydantic (`jobs.core.typer_params`): typer's results, typer's errors."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import typer
import typer.main
from typer.testing import CliRunner

from jobs.core.typer_params import _Converter, _fast
from jobs.ctl.cli import app

try:
    from typer._coercion import build_runtime_param
except ImportError:  # another typer: the converter is not installed at all (test_not_installed_elsewhere)
    build_runtime_param = None

VALUES = {str: ["", "x", "python-*", " spaced ", "a\udcff", "١٢", "0"],
          int: [0, 7, -1, "0", "7", "-12", "007", "-0", "+5", " 5", "5 ", "1_000", "5.0", "abc", "", "١٢",
                "99999999999999999999999", "1e3"],
          bool: [False, True]}


def _param(command: typer.core.TyperCommand, name: str):
    return next(p for p in command.params if p.name == name)


@pytest.mark.skipif(build_runtime_param is None, reason="this typer has no runtime converters")
@pytest.mark.parametrize("kind, command, option", [(str, ("pkgs", "ls"), "name"), (int, ("pkgs", "requeue"), "priority"),
                                                   (bool, ("pkgs", "ls"), "as_json")])
def test_same_value_or_error_as_typer(kind, command, option):
    group = typer.main.get_command(app)
    cmd = group.commands[command[0]].commands[command[1]]
    param = _param(cmd, option)
    ctx = cmd.make_context(command[1], [], resilient_parsing=True)
    theirs, ours = build_runtime_param(param.type_descriptor), _Converter(kind)
    for value in [None, *VALUES[kind]]:
        try:
            want = ("ok", theirs.coerce(value, param=param, ctx=ctx))
        except typer.BadParameter as exc:
            want = ("error", exc.format_message())
        try:
            got = ("ok", ours.coerce(value, param=param, ctx=ctx))
        except typer.BadParameter as exc:
            got = ("error", exc.format_message())
        assert got == want and type(got[1]) is type(want[1]), value


def test_every_text_int_and_flag_parameter_is_converted_without_typer():
    group = typer.main.get_command(app)
    ctx = group.make_context("rebuildctl", ["status"], resilient_parsing=True)
    _fast(group, ctx)
    kept = {p.name for p in group.get_params(ctx) if not isinstance(getattr(p, "_runtime_param", None), _Converter)}
    assert kept == set()  # --endpoint, --config, --verbose, --color and --help
    ls = group.commands["pkgs"].commands["ls"]
    _fast(ls, ctx)
    assert all(isinstance(p._runtime_param, _Converter) for p in ls.get_params(ctx))
    verify = group.commands["verify"]
    _fast(verify, ctx)  # a plain path is converted; paths that must exist and repeated options stay typer's
    assert {p.name for p in verify.params if p._runtime_param is None} == {"files", "rebuilder"}


def test_a_listing_never_imports_pydantic_nor_requests(tmp_path):
    code = ("import sys\nfrom pathlib import Path\nfrom typer.testing import CliRunner\nfrom jobs.ctl.cli import app\n"
            "from tests.httpd import serve\n"
            f"with serve(Path({str(tmp_path)!r})) as base:\n"
            "    r = CliRunner().invoke(app, ['-H', base, '-v', 'pkgs', 'ls', '--name', 'x', '--suite', 'extra'])\n"
            "print(r.exit_code, sorted(m for m in sys.modules if m.split('.')[0] in ('pydantic', 'requests', 'urllib3')"
            " or m == 'typer._adapters'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}).stdout.split()
    assert out == ["1", "[]"]  # no index at that site: an error, exit 1, and none of them imported


@pytest.mark.parametrize("value, code, message", [("abc", 2, "Invalid value for '--priority'"), ("1_000", 1, "no admin cookie"),
                                                  ("-3", 1, "no admin cookie")])
def test_integer_options_as_before(tmp_path, value, code, message):
    res = CliRunner().invoke(app, ["-H", tmp_path.as_uri(), "pkgs", "requeue", "--priority", value,
                                   "--store", (tmp_path / "store").as_uri()],
                             env={"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path), "REBUILDERD_COOKIE_PATH": ""})
    assert res.exit_code == code, res.output
    assert message in res.output
