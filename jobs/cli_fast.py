"""`rebuilder`'s start (the console script's entry point): a plain `rebuilder sync` or `publish` runs without typer.

Importing typer (its vendored click) and building `rebuilder`'s command tree (jobs/cli.py) is
about 0.12 billion instructions, 0.01-0.02 s of CPU, of every process (2.5% of a whole sync of a
15,000-package Arch db, more of a sync with nothing new). So `main` first tries `parse`, the same
declarative parser as rebuildctl's fast start (`jobs.core.fastargs`): it accepts only argument
lists whose meaning is certain — the global options (`GLOBAL`), then `sync` with its options or
`publish` alone (`COMMANDS`), each given at most once, each value a separate word that is not empty and does
not start with "-", --retries and --timeout plain decimals within their range, paths that typer
would take as they are, the profiles as words that do not start with "-" — with the environment
variables typer reads for the options not given (an empty one is unset, as to click), and runs
the command's body (`jobs.cli_support.sync` or `.publish`, which the typer commands call). Everything
else goes to the typer CLI (`jobs.cli`): no command, --help, a mistyped option, a missing value,
`--store=x`, "--", an out-of-range --retries, every other command. So help, usage errors and
their exit code 2 are typer's own; a sync config without profiles (typer's usage error too)
hands the same argument list to typer. tests/test_cli_fast.py checks the specs against the
typer command definitions and runs many argument lists both ways, comparing output and exit codes.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from jobs.core.fastargs import Spec, echo, read_options, standalone, text_streams_ok

# rebuilder's own options (`jobs.cli._global`), and the environment variables typer reads for them
GLOBAL = Spec(values={"--config": "config", "--store": "store"})
# The commands run without typer (`jobs.cli.sync`, `jobs.cli.publish`)
COMMANDS = {
    "sync": Spec(values={"--profiles": "profiles", "--retries": "retries", "--timeout": "timeout"},
                 arguments="profile"),
    "publish": Spec(values={}),
}
ENVVARS = {"config": "REBUILDER_CONFIG", "store": "REBUILDER_STORE", "profiles": "REBUILDER_SYNC_CONFIG"}
PATHS = frozenset({"config", "profiles"})
# What int() and float() read the same way as typer (`jobs.core.typer_params`), and the ranges of `jobs.cli.sync`
_PLAIN_INT = re.compile(r"[0-9]{1,18}")
_PLAIN_FLOAT = re.compile(r"[0-9]{1,15}(?:\.[0-9]{1,15})?")
RETRIES = (0, 20, 5)  # min, max, default
TIMEOUT = (0.1, 60.0)  # min, default


class _Options:
    """The global options, as `jobs.cli.Options` holds them for the commands."""

    __slots__ = ("config", "store")

    def __init__(self, config: Path | None, store: str | None) -> None:
        self.config, self.store = config, store


def _values(found: dict[str, Any], names: Sequence[str]) -> dict[str, Any] | None:
    """`names`' values as typer converts them: given, else from the environment, paths as `Path`; None if a value
    is anything typer might take otherwise (a path that exists but cannot be read: typer says so)."""
    values: dict[str, Any] = {}
    for name in names:
        value = found.get(name)
        if value is None and name in ENVVARS:
            value = os.environ.get(ENVVARS[name]) or None
        if value is not None and name in PATHS:
            if "\0" in value:
                return None
            value = Path(value)
            try:
                os.stat(value)
            except OSError:
                pass  # need not exist
            else:
                if not os.access(value, os.R_OK):
                    return None
        values[name] = value
    return values


def _number(text: str | None, plain: re.Pattern[str], kind: type, low: Any, high: Any, default: Any) -> Any:
    """A plain decimal within [low, high] as `kind`, the default if not given, None if typer should judge it."""
    if text is None:
        return default
    if not plain.fullmatch(text):
        return None
    value = kind(text)
    return value if low <= value and (high is None or value <= high) else None


def parse(argv: Sequence[str]) -> Callable[[], int | None] | None:
    """The command `argv` asks for, ready to run, if this parser is certain of its meaning; else None."""
    given: dict[str, Any] = {}
    i = read_options(GLOBAL, argv, 0, given, stop_at_word=True)
    if i is None or i >= len(argv) or argv[i] not in COMMANDS:
        return None
    params: dict[str, Any] = {}
    if read_options(COMMANDS[argv[i]], argv, i + 1, params, stop_at_word=False) is None:
        return None
    options = _values(given, ("config", "store"))
    if options is None:
        return None
    opts = _Options(**options)
    if argv[i] == "publish":
        def publish() -> None:
            from jobs import cli_support

            cli_support.publish(opts, echo)

        return publish
    paths = _values(params, ("profiles",))
    retries = _number(params.get("retries"), _PLAIN_INT, int, *RETRIES)
    timeout = _number(params.get("timeout"), _PLAIN_FLOAT, float, TIMEOUT[0], None, TIMEOUT[1])
    if paths is None or retries is None or timeout is None:
        return None

    def sync() -> int:
        from jobs import cli_support

        try:
            return cli_support.sync(opts, params.get("profile"), paths["profiles"], retries, timeout, echo)
        except cli_support.NoProfiles:
            from jobs.cli import app

            app(list(argv), prog_name="rebuilder", standalone_mode=True)  # typer's usage error, exit 2
            raise

    return sync


def main() -> None:
    """Console-script entry point of `rebuilder`: the fast start when `parse` is certain, else the typer CLI."""
    command = None
    if "_REBUILDER_COMPLETE" not in os.environ and text_streams_ok():
        command = parse(sys.argv[1:])
    if command is None:
        from jobs.cli import main as typer_main

        typer_main()
        return
    from jobs.core.cliapp import run_app
    from jobs.core.progress import one_line_logs

    one_line_logs()
    run_app(_typer_tracebacks(standalone(command)), "rebuilder")


def _typer_tracebacks(app: Callable[..., None]) -> Callable[..., None]:
    """`app`, whose exceptions that are no error of this project (a bug's) `run_app` shows through typer's
    traceback hook with the typer app's settings (a rich box, no locals), as `jobs.cli`'s typer app has them
    shown; typer is imported on that path only."""
    def run(prog_name: str, standalone_mode: bool) -> None:
        try:
            app(prog_name, standalone_mode)
        except Exception as exc:
            from jobs.core.errors import RebuilderError

            if not isinstance(exc, RebuilderError):  # run_app prints those itself, in one line
                import typer.main
                from typer.models import DeveloperExceptionConfig

                from jobs.cli import app as typer_app

                setattr(exc, typer.main._typer_developer_exception_attr_name, DeveloperExceptionConfig(
                    pretty_exceptions_enable=typer_app.pretty_exceptions_enable,
                    pretty_exceptions_show_locals=typer_app.pretty_exceptions_show_locals,
                    pretty_exceptions_short=typer_app.pretty_exceptions_short))
                sys.excepthook = typer.main.except_hook
            raise

    return run
