"""rebuildctl's start (the console script's entry point): a plain `pkgs ls` runs without importing typer.

Importing typer (its vendored click, inspect, its parameter types) and building the command
tree is 40-50 ms, more than reading a 15,000-line listing. So `main` first tries `parse`: a
small declarative parser (`GLOBAL`, `COMMANDS`) that accepts only argument lists whose meaning
is certain — the global options and the command's own options, each given at most once,
each value a separate word that is not empty and does not start with "-", a known --status —
and runs the command's body (`jobs.ctl.ls`, the same function the typer command calls).
Everything else goes to the typer CLI (`jobs.ctl.cli`): --help, a mistyped option, a missing
value, `--name=x`, `-vv`, a bad --status, shell completion requests, every other command. So
help, usage errors and their exit code 2 are typer's own, and a parsed argument list means
what it means to typer: tests/ctl/test_fast.py checks the spec against the typer command
definitions and runs many argument lists both ways, comparing output and exit codes. The parser,
the standalone runner and the stream check are shared with `rebuilder`'s fast start (`jobs.core.fastargs`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

from jobs.core.fastargs import Spec, read_options, standalone, text_streams_ok

# rebuildctl's own options (`jobs.ctl.cli._global`)
GLOBAL = Spec(values={"--endpoint": "endpoint", "-H": "endpoint", "--config": "config", "-c": "config"},
              flags={"--color": "color", "-C": "color"}, counts={"--verbose": "verbose", "-v": "verbose"})
# The commands run without typer (`jobs.ctl.cli.pkgs_ls`)
COMMANDS = {
    ("pkgs", "ls"): Spec(values={"--distro": "distro", "--suite": "suite", "--component": "suite",
                                 "--release": "release", "--architecture": "architecture", "--status": "status",
                                 "--name": "name"},
                         flags={"--json": "as_json"}),
}


def parse(argv: Sequence[str]) -> Callable[[], None] | None:
    """The command `argv` asks for, ready to run, if this parser is certain of its meaning; else None."""
    given: dict[str, Any] = {}
    i = read_options(GLOBAL, argv, 0, given, stop_at_word=True)
    if i is None or tuple(argv[i:i + 2]) not in COMMANDS:
        return None
    path = tuple(argv[i:i + 2])
    spec = COMMANDS[path]
    params: dict[str, Any] = {}
    if read_options(spec, argv, i + 2, params, stop_at_word=False) is None:
        return None
    from jobs.ctl.terminal import CtlOptions

    endpoint = given.get("endpoint")
    opts = CtlOptions(endpoint.rstrip("/") if endpoint else None, given.get("config"), given.get("verbose", 0),
                      given.get("color", False))
    if path == ("pkgs", "ls"):
        status = params.get("status")
        if status is not None:
            from jobs.core.model import Status

            try:
                status = Status.parse(status)
            except ValueError:
                return None  # typer says what is wrong with it
        from jobs.ctl.ls import pkgs_ls

        values = {name: params.get(name) for name in ("distro", "suite", "release", "architecture", "name")}
        return lambda: pkgs_ls(opts, **values, status=status, as_json=params.get("as_json", False))
    return None


def main() -> None:
    """Console-script entry point of `rebuildctl`: the fast start when `parse` is certain, else the typer CLI."""
    import os

    from jobs.ctl.completions import complete_var

    command = None
    if complete_var("rebuildctl") not in os.environ and text_streams_ok():
        command = parse(sys.argv[1:])
    if command is None:
        from jobs.ctl.cli import main as typer_main

        typer_main()
        return
    from jobs.core.cliapp import run_app

    run_app(standalone(command), "rebuildctl")
