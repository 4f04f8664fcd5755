r"""What every rebuildctl command shares at the edge: global options, output forms, errors to exit codes.

A table on a terminal (rich); when piped, a header line of column names then tab-separated
rows (a missing value is "-", never a Python value), or rebuildctl-style lines; JSON with
--json; domain errors and notes ("nothing matches") become one line on stderr, errors with
an exit code (cli.py lists them).

Every string from a site is printed through `clean` (one line) or `clean_text` (a log or
report, keeping newlines and tabs), on a terminal and piped alike: C0 and C1 control
characters (escape sequences, carriage returns), bidi overrides and isolates, and line/
paragraph separators are shown as visible escapes (`\x1b`, `\u202e`) instead of reaching
the terminal (`jobs.ctl.escape`). `--json` output is JSON with every non-ASCII character `\u`-escaped.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from jobs.core.cliapp import EXIT_TERMINAL, EXIT_USAGE
from jobs.core.errors import RebuilderError
from jobs.core.record import asdict, is_record, record
from jobs.ctl.escape import clean, clean_text  # noqa: F401 (clean_text: the commands take both from here)

if TYPE_CHECKING:
    import typer

EXIT_NOT_FOUND = 3  # beyond the shared codes of jobs.core.cliapp: not found or ambiguous

COLOURS = {"GOOD": "green", "BAD": "red", "FAIL": "magenta", "UNKWN": "yellow"}

@record
class CtlOptions:
    """The global options (`rebuildctl -H URL -c FILE -v -C`)."""

    endpoint: str | None
    config: str | None
    verbose: int
    color: bool


def options(ctx: typer.Context | CtlOptions) -> CtlOptions:
    """The global options of a typer context, or those parsed by the fast start (`jobs.ctl.fast`)."""
    return ctx if type(ctx) is CtlOptions else ctx.find_root().obj


def echo(message: str, *, err: bool = False) -> None:
    """A line on stdout (or stderr), flushed: what `typer.echo` does with text that holds no escape sequence
    (everything printed here went through `clean` or is JSON, which escapes them), without importing typer."""
    stream = sys.stderr if err else sys.stdout
    if stream is not None:
        stream.write(message + "\n")
        stream.flush()


@contextmanager
def errors() -> Iterator[None]:
    """Domain errors as one line on stderr and an exit code (SystemExit: click lets it through, as typer.Exit's code)."""
    from jobs.ctl.commands import Ambiguous, NoMatch

    try:
        yield
    except Ambiguous as exc:
        echo(f"rebuildctl: {clean(exc)}:", err=True)
        for row in exc.candidates:
            echo(f"  {row.line()}", err=True)
        raise SystemExit(EXIT_NOT_FOUND) from None
    except NoMatch as exc:
        echo(f"rebuildctl: {clean(_text(exc))}", err=True)
        raise SystemExit(EXIT_NOT_FOUND) from None
    except RebuilderError as exc:
        echo(f"rebuildctl: error: {clean(_text(exc))}", err=True)
        raise SystemExit(EXIT_TERMINAL) from None


def _text(exc: RebuilderError) -> str:
    """An error's message and its fields as words ("(url: http://…)"), not as Python reprs ("url='…'")."""
    if type(exc).__str__ is not RebuilderError.__str__ or not exc.fields:
        return str(exc)
    return f"{exc.message} ({', '.join(f'{k}: {v}' for k, v in exc.fields.items())})"


def note(message: str) -> None:
    """A one-line note on stderr (e.g. that a filter matched nothing); stdout stays the data."""
    echo(f"rebuildctl: {clean(message)}", err=True)


def usage(message: str) -> SystemExit:
    """A usage error (exit 2) the way click reports one, for checks click cannot express."""
    echo(f"rebuildctl: usage: {message}", err=True)
    return SystemExit(EXIT_USAGE)


def endpoint(ctx: typer.Context | CtlOptions) -> str:
    """The -H endpoint, else `[http] endpoint` of the merged config, else rebuilderd's default."""
    from jobs.ctl.feeds import DEFAULT_ENDPOINT

    opts = options(ctx)
    if opts.endpoint:
        if opts.endpoint.partition("://")[0].lower() not in ("http", "https", "file"):
            raise usage(f"-H {clean(opts.endpoint[:200])}: give an http://, https:// or file:// URL")
        return opts.endpoint
    from jobs.core.config import load_ctl_config  # pydantic: only when the config file is read

    return load_ctl_config(opts.config).http.endpoint or DEFAULT_ENDPOINT


def site(ctx: typer.Context | CtlOptions, url: str | None = None):
    """The published site at `url` (default: the endpoint), with the ETag cache."""
    from jobs.ctl.commands import open_site

    return open_site(url or endpoint(ctx))


def tty(ctx: typer.Context | CtlOptions) -> bool:
    """Whether to draw for a person: stdout is a terminal, or -C forces it."""
    return sys.stdout.isatty() or options(ctx).color


def coloured(status: str) -> str:
    """Rich markup colouring a status (already markup-escaped)."""
    return f"[{COLOURS.get(status, 'white')}]{status}[/]"


def table(ctx: typer.Context | CtlOptions, columns: list[str], rows: list[list[str]], status_col: int | None = None) -> None:
    """A rich table on a terminal; when piped, a line of column names then tab-separated rows (stable, for scripts)."""
    rows = [[clean(c) for c in row] for row in rows]  # from untrusted feeds: no escapes, no tabs, no newlines
    if not tty(ctx):
        echo("\n".join(["\t".join(columns), *("\t".join(row) for row in rows)]))
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    grid = Table(*columns, box=None, header_style="bold")
    for row in rows:
        cells = [escape(c) for c in row]  # names come from untrusted feeds: no markup from them
        if status_col is not None:
            cells[status_col] = coloured(escape(row[status_col]))
        grid.add_row(*cells)
    Console(force_terminal=options(ctx).color or None, emoji=False).print(grid)  # ":smile:" stays text


def _plain(value: Any) -> Any:
    if is_record(value):
        return asdict(value)
    if hasattr(type(value), "__dataclass_fields__") and not isinstance(value, type):
        from dataclasses import asdict as dataclass_dict

        return dataclass_dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def print_json(value: Any) -> None:
    try:
        text = json.dumps(value, indent=2, default=_plain)
    except RecursionError:  # a feed's object printed as it is (queue, workers): orjson reads 1024 levels, this ~990
        echo("rebuildctl: error: the site's JSON nests too deep to print as JSON", err=True)
        raise SystemExit(EXIT_TERMINAL) from None
    echo(text)
