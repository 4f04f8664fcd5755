"""rebuildctl's fast start (`jobs.ctl.fast`): its parser agrees with the typer CLI, and so does what it prints.

A small synthetic site (bench.bench_ctl's, made by publish's own code) is listed both ways,
in process: through the typer app (CliRunner) and through `jobs.ctl.fast.parse`; stdout,
stderr and the exit code must be the same for every argument list the fast start accepts, and
every other list must be left to typer (parse returns None).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from unittest import mock

import pytest
import typer.main
from typer.testing import CliRunner

from jobs.core.fastargs import standalone
from jobs.ctl import fast
from jobs.ctl.cli import app
from tests.httpd import serve


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    from bench.bench_ctl import synthesize, write_site

    root = tmp_path_factory.mktemp("fast") / "site"
    summaries, by_suite = synthesize(300)
    write_site(root, summaries, by_suite)
    return root


@pytest.fixture(scope="module")
def http_site(site):
    with serve(site) as base:
        yield base


def _command(path: tuple[str, ...]):
    command = typer.main.get_command(app)
    for word in path:
        command = command.commands[word]
    return command


@pytest.mark.parametrize("path", [(), *fast.COMMANDS])
def test_the_spec_is_the_typer_commands_options(path):
    """Every option of the typer command is in the spec with the same parameter and kind, and nothing else is."""
    spec = fast.COMMANDS[path] if path else fast.GLOBAL
    command = _command(path)
    assert not [p for p in command.params if p.param_type_name == "argument"]
    words: dict[str, tuple[str, str]] = {}
    for param in command.params:
        if param.name == "version" and param.is_eager:  # --version/-V: its callback prints and exits; left to typer
            continue
        assert param.param_type_name == "option"
        assert not param.multiple and param.envvar is None and param.nargs == 1, param.name
        kind = "counts" if param.count else "flags" if param.is_flag else "values"
        for word in [*param.opts, *param.secondary_opts]:
            words[word] = (kind, param.name)
    ours = {word: (kind, name) for kind in ("values", "flags", "counts") for word, name in getattr(spec, kind).items()}
    assert ours == words
    help_words = set(_command(path).get_help_option_names(_command(path).make_context("x", [], resilient_parsing=True)))
    assert help_words.isdisjoint(ours)


def _typer(argv: list[str], env: dict[str, str]) -> tuple[str, str, int]:
    res = CliRunner().invoke(app, argv, catch_exceptions=False, env=env)
    return res.stdout, res.stderr, res.exit_code


def _fast(argv: list[str], env: dict[str, str]) -> tuple[str, str, int]:
    command = fast.parse(argv)
    assert command is not None, argv
    out, err = io.StringIO(), io.StringIO()
    with mock.patch.dict(os.environ, env), redirect_stdout(out), redirect_stderr(err):  # restored after
        try:
            standalone(command)("rebuildctl", True)
        except SystemExit as exc:
            code = exc.code
    return out.getvalue(), err.getvalue(), code


ACCEPTED = [
    [], ["--suite", "extra"], ["--status", "BAD"], ["--status", "bad", "--suite", "main"], ["--component", "core"],
    ["--name", "lib-*"], ["--name", "NAME"], ["--name", "NAME", "--architecture", "any"], ["--json", "--suite", "core"],
    ["--distro", "debian", "--release", "trixie", "--status", "FAIL"], ["--architecture", "x86_64", "--status", "UNKWN"],
    ["--suite", "nosuch"], ["--name", "nosuch", "--status", "GOOD"], ["--distro", "nosuch", "--json"],
]


@pytest.mark.parametrize("scheme", ["file", "http"])
@pytest.mark.parametrize("args", ACCEPTED, ids=" ".join)
def test_the_same_output_and_exit_code_both_ways(site, http_site, tmp_path, scheme, args):
    base = site.as_uri() if scheme == "file" else http_site
    name = sorted(p.name for p in (site / "api/v1/packages/archlinux").iterdir())[3].removesuffix(".json")
    args = [name if a == "NAME" else a for a in args]
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    for prefix in (["-H", base], ["-H", base + "/", "-v", "--verbose", "-v"], ["--endpoint", base, "-C"]):
        argv = [*prefix, "pkgs", "ls", *args]
        assert _fast(argv, env) == _typer(argv, env), argv


def test_the_endpoint_from_the_config_file_and_errors(site, tmp_path):
    conf = tmp_path / "ctl.conf"
    conf.write_text(f'[http]\nendpoint = "{site.as_uri()}"\n')
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "HOME": str(tmp_path)}
    got = {}
    for argv in (["-c", str(conf), "pkgs", "ls", "--suite", "core"],
                 ["-H", (tmp_path / "nosuch").as_uri(), "pkgs", "ls"],  # not a site: exit 1, one line
                 ["-H", "gopher://x", "pkgs", "ls", "--json"], ["-H", "notaurl", "pkgs", "ls"]):
        got[argv[1]] = _fast(argv, env)
        assert got[argv[1]] == _typer(argv, env), argv
    assert got[(tmp_path / "nosuch").as_uri()][2] == 1
    assert got[(tmp_path / "nosuch").as_uri()][1].startswith("rebuildctl: error:")
    # -H that is no URL rebuildctl reads is a usage error (exit 2), named
    assert got["gopher://x"][1:] == ("rebuildctl: usage: -H gopher://x: give an http://, https:// or file:// URL\n", 2)
    assert got["notaurl"][1:] == ("rebuildctl: usage: -H notaurl: give an http://, https:// or file:// URL\n", 2)


LEFT_TO_TYPER = [
    [], ["--help"], ["-h"], ["--version"], ["-V"], ["-H", "u", "-V", "pkgs", "ls"], ["pkgs"], ["pkgs", "ls", "--help"], ["pkgs", "ls", "-h"], ["status"], ["queue", "ls"],
    ["pkgs", "log", "x"], ["-H", "u", "pkgs", "ls", "--name=x"], ["-vv", "pkgs", "ls"], ["-Hx", "pkgs", "ls"],
    ["pkgs", "ls", "--status", "nope"], ["pkgs", "ls", "--name"], ["pkgs", "ls", "--name", ""],
    ["pkgs", "ls", "--name", "-x"], ["pkgs", "ls", "--suite", "a", "--suite", "b"],
    ["pkgs", "ls", "--suite", "a", "--component", "b"], ["pkgs", "ls", "--json", "--json"], ["pkgs", "ls", "extra"],
    ["pkgs", "ls", "-H", "u"], ["-H", "u", "-H", "v", "pkgs", "ls"], ["-C", "-C", "pkgs", "ls"], ["--", "pkgs", "ls"],
    ["pkgs", "ls", "--"], ["pkgs", "ls", "--bogus"], ["-H", "pkgs", "ls"], ["pkgs", "--json", "ls"],
    ["pkgs", "ls", "--status", "BAD", "--store", "x"], ["--endpoint"],
]


@pytest.mark.parametrize("argv", LEFT_TO_TYPER, ids=" ".join)
def test_anything_uncertain_is_left_to_typer(argv):
    assert fast.parse(argv) is None


def test_the_console_script_lists_without_typer_and_leaves_usage_errors_to_it(site, tmp_path):
    """As a process: a listing never imports typer; a bad --status is typer's usage error (exit 2)."""
    code = ("import sys, atexit\natexit.register(lambda: print('typer loaded:', 'typer' in sys.modules, "
            "file=sys.stderr))\nfrom jobs.ctl.fast import main\nsys.argv = ['rebuildctl', *sys.argv[1:]]\nmain()\n")
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    run = [sys.executable, "-c", code, "-H", site.as_uri(), "pkgs", "ls"]
    listed = subprocess.run([*run, "--suite", "core"], env=env, capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0 and "typer loaded: False" in listed.stderr
    assert listed.stdout.splitlines() == _typer(["-H", site.as_uri(), "pkgs", "ls", "--suite", "core"], env)[0].splitlines()
    bad = subprocess.run([*run, "--status", "nope"], env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "typer loaded: True" in bad.stderr and "--status" in bad.stderr
    assert bad.stdout == ""


def test_a_listing_over_http_loads_neither_typer_nor_dataclasses(site, tmp_path):
    """The fast path over loopback HTTP (the transport included) imports no `dataclasses` (nor `inspect`)."""
    from tests.ctl.support import Recording
    from tests.httpd import serve

    code = ("import sys, atexit\natexit.register(lambda: print('loaded:', sorted(m for m in ('typer', 'dataclasses', "
            "'inspect') if m in sys.modules), file=sys.stderr))\nfrom jobs.ctl.fast import main\n"
            "sys.argv = ['rebuildctl', *sys.argv[1:]]\nmain()\n")
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    with serve(site, Recording) as base:
        def ls(*extra: str) -> subprocess.CompletedProcess[str]:
            run = subprocess.run([sys.executable, "-c", code, "-H", base, "pkgs", "ls", *extra], env=env,
                                 capture_output=True, text=True, timeout=60)
            assert run.returncode == 0, run.stderr
            return run

        listed = ls("--suite", "core")  # a whole list over 64 KiB is parsed by orjson, which imports dataclasses
        assert "'typer'" not in listed.stderr
        name = listed.stdout.split("] ", 1)[1].split()[0]
        one = ls("--name", name)
        assert name in one.stdout and "loaded: []" in one.stderr
