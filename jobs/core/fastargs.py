"""The fast starts' shared parts (`jobs.ctl.fast` for rebuildctl, `jobs.cli_fast` for rebuilder).

Importing typer (its vendored click, inspect, its parameter types) and building a command tree
costs tens of milliseconds of every process. A fast start parses the argument lists whose
meaning is certain with the declarative `Spec`s below and runs the command's body itself; any
other list (help, a mistyped or repeated option, `--x=y`, a value that is empty or starts with
"-") goes to the typer CLI, which then says what typer says. `standalone` runs a body the way
click's standalone mode runs a command (exit codes of an interrupt, a closed stdin or stdout),
`echo` prints as `typer.echo` does, and `text_streams_ok` tells whether it may.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any


class Spec:
    """The options of one command: option word → parameter name, for those taking a value, flags and counts;
    `arguments`: the name of the command's list of words (an argument of any number), if it takes one."""

    __slots__ = ("arguments", "counts", "flags", "values")

    def __init__(self, values: dict[str, str], flags: dict[str, str] | None = None,
                 counts: dict[str, str] | None = None, arguments: str | None = None) -> None:
        self.values, self.flags, self.counts = values, flags or {}, counts or {}
        self.arguments = arguments


def read_options(spec: Spec, argv: Sequence[str], i: int, found: dict[str, Any], *, stop_at_word: bool) -> int | None:
    """Read `spec`'s options (and its arguments, unless `stop_at_word`) from argv[i:] into `found`; the index of the
    first word that is not one, or None when an argument is anything the parser is not certain of (then typer
    reads the whole list)."""
    while i < len(argv):
        word = argv[i]
        if not word.startswith("-"):
            if stop_at_word:
                return i
            if spec.arguments is None or not word:
                return None
            found.setdefault(spec.arguments, []).append(word)
            i += 1
            continue
        if word in spec.counts:
            name = spec.counts[word]
            found[name] = found.get(name, 0) + 1
            i += 1
            continue
        name = spec.values.get(word) or spec.flags.get(word)
        if name is None or name in found:
            return None  # unknown, --help, --x=y, -vv, "--", a repeated option: typer's
        if word in spec.flags:
            found[name] = True
            i += 1
            continue
        if i + 1 >= len(argv) or not argv[i + 1] or argv[i + 1].startswith("-"):
            return None
        found[name] = argv[i + 1]
        i += 2
    return i


def text_streams_ok() -> bool:
    """Whether stdout and stderr are what click's echo writes to as they are (not ASCII, which click rewraps)."""
    import codecs

    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is None or codecs.lookup(stream.encoding or "ascii").name == "ascii":
                return False
        except (LookupError, AttributeError):
            return False
    return True


def echo(message: str, *, err: bool = False) -> None:
    """A line on stdout (or stderr), flushed, as `typer.echo` prints it: text with an escape sequence goes through
    typer's own echo (which removes colour codes when the stream is not a terminal)."""
    if "\x1b" in message:
        import typer

        typer.echo(message, err=err)
        return
    stream = sys.stderr if err else sys.stdout
    if stream is not None:
        stream.write(message + "\n")
        stream.flush()


class Pacified:
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


def standalone(command: Callable[[], int | None]) -> Callable[..., None]:
    """`command` run as click's standalone mode runs a command: the same exit codes for an interrupt, a closed
    stdin or a closed stdout, and the command's return value as the exit status (None: 0); this project's errors
    are left to `jobs.core.cliapp.run_app`, as typer leaves them."""
    def app(prog_name: str, standalone_mode: bool) -> None:
        try:
            code = command()
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
            sys.stdout, sys.stderr = Pacified(sys.stdout), Pacified(sys.stderr)
            sys.exit(1)
        sys.exit(code or 0)

    return app
