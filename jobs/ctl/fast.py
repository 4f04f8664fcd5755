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
definitions and runs many argument lists both ways, comparing output and exit codes.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any


class Spec:
    """The options of one command: option word → parameter name, for those taking a value, flags and counts."""

    __slots__ = ("counts", "flags", "values")

    def __init__(self, values: dict[str, str], flags: dict[str, str] | None = None,
                 counts: dict[str, str] | None = None) -> None:
        self.values, self.flags, self.counts = values, flags or {}, counts or {}


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


def _options(spec: Spec, argv: Sequence[str], i: int, found: dict[str, Any], *, stop_at_word: bool) -> int | None:
    """Read `spec`'s options from argv[i:] into `found`; the index of the first word that is not one, or None
    when an argument is anything the parser is not certain of (then typer reads the whole list)."""
    while i < len(argv):
        word = argv[i]
        if not word.startswith("-"):
            return i if stop_at_word else None
        if word in spec.counts:
            name = spec.counts[word]
            found[name] = found.get(name, 0) + 1
            i += 1
            continue
        name = spec.values.get(word) or spec.flags.get(word)
        if name is None or name in found:
            return None  # unknown, --help, --x=y, -vv, a repeated option: typer's
        if word in spec.flags:
            found[name] = True
            i += 1
            continue
        if i + 1 >= len(argv) or not argv[i + 1] or argv[i + 1].startswith("-"):
            return None
        found[name] = argv[i + 1]
        i += 2
    return i


def parse(argv: Sequence[str]) -> Callable[[], None] | None:
    """The command `argv` asks for, ready to run, if this parser is certain of its meaning; else None."""
    given: dict[str, Any] = {}
    i = _options(GLOBAL, argv, 0, given, stop_at_word=True)
    if i is None or tuple(argv[i:i + 2]) not in COMMANDS:
        return None
    path = tuple(argv[i:i + 2])
    spec = COMMANDS[path]
    params: dict[str, Any] = {}
    if _options(spec, argv, i + 2, params, stop_at_word=False) is None:
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


def _text_streams_ok() -> bool:
    """Whether stdout and stderr are what click's echo writes to as they are (not ASCII, which click rewraps)."""
    import codecs

    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is None or codecs.lookup(stream.encoding or "ascii").name == "ascii":
                return False
        except (LookupError, AttributeError):
            return False
    return True


class _Pacified:
    """A standard stream whose flush ignores a closed pipe (click's PacifyFlushWrapper, after EPIPE)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as exc:
            import errno

            if exc.errno != errno.EPIPE:
                raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _standalone(command: Callable[[], None]) -> Callable[..., None]:
    """`command` run as click's standalone mode runs a command: the same exit codes for an interrupt, a closed
    stdin or a closed stdout; this project's errors are left to `jobs.core.cliapp.run_app`, as typer leaves them."""
    def app(prog_name: str, standalone_mode: bool) -> None:
        try:
            command()
        except EOFError:
            print(file=sys.stderr)
            print("Aborted!", file=sys.stderr)
            sys.exit(1)
        except KeyboardInterrupt:
            sys.exit(130)
        except OSError as exc:
            import errno

            if exc.errno != errno.EPIPE:
                raise
            sys.stdout, sys.stderr = _Pacified(sys.stdout), _Pacified(sys.stderr)
            sys.exit(1)
        sys.exit(0)

    return app


def main() -> None:
    """Console-script entry point of `rebuildctl`: the fast start when `parse` is certain, else the typer CLI."""
    import os

    from jobs.ctl.completions import complete_var

    command = None
    if complete_var("rebuildctl") not in os.environ and _text_streams_ok():
        command = parse(sys.argv[1:])
    if command is None:
        from jobs.ctl.cli import main as typer_main

        typer_main()
        return
    from jobs.core.cliapp import run_app

    run_app(_standalone(command), "rebuildctl")
