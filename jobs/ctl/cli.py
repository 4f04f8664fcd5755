"""`rebuildctl`: reads the published feeds; admin verbs write signed requests.

The command names and flags follow rebuilderd's rebuildctl. Each command parses its
arguments, calls one function of `jobs.ctl.commands` and prints: a table on a terminal,
stable plain text when piped, JSON with --json. Exit codes: 0 ok, 1 error, 2 usage,
3 not found or ambiguous (narrow the filter).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Annotated, Any, Optional

import typer

from jobs.cli import EXIT_NOT_BUILT, EXIT_TERMINAL, run_app
from jobs.core.errors import RebuilderError

EXIT_USAGE = 2
EXIT_NOT_FOUND = 3

app = typer.Typer(name="rebuildctl", no_args_is_help=True, pretty_exceptions_show_locals=False,
                  add_completion=False, rich_markup_mode=None,
                  help="Query a rebuilder's published verdicts; queue and requeue builds.")
pkgs = typer.Typer(no_args_is_help=True, help="Packages: list, logs, diffoscope, attestations, requeue.")
queue = typer.Typer(no_args_is_help=True, help="The build queue: list, push, drop.")
workers = typer.Typer(no_args_is_help=True, help="Workers known to the rebuilder.")
app.add_typer(pkgs, name="pkgs")
app.add_typer(queue, name="queue")
app.add_typer(workers, name="workers")


@dataclass
class CtlOptions:
    endpoint: str | None
    config: str | None
    verbose: int
    color: bool


@app.callback()
def _global(
    ctx: typer.Context,
    endpoint: Annotated[Optional[str], typer.Option(
        "--endpoint", "-H", help="Base URL of the published site (http(s):// or file://).")] = None,
    config: Annotated[Optional[str], typer.Option("--config", "-c", help="Extra config file.")] = None,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More output.")] = 0,
    color: Annotated[bool, typer.Option("--color", "-C", help="Force colours.")] = False,
) -> None:
    """Global options, as in rebuilderd's rebuildctl."""
    ctx.obj = CtlOptions(endpoint.rstrip("/") if endpoint else None, config, verbose, color)


# --- shared plumbing ---------------------------------------------------------------------

Distro = Annotated[Optional[str], typer.Option("--distro", help="Distribution, e.g. archlinux.")]
Suite = Annotated[Optional[str], typer.Option("--suite", "--component", help="Component (rebuilderd's suite).")]
Release = Annotated[Optional[str], typer.Option("--release", help="Release, e.g. bookworm.")]
Arch = Annotated[Optional[str], typer.Option("--architecture", help="Architecture.")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON.")]
Store = Annotated[Optional[str], typer.Option(
    "--store", envvar="REBUILDER_STORE", help="Store the requests go to [default: [store] url].")]
STATUS_HELP = "GOOD, BAD, FAIL or UNKWN."

_COLOURS = {"GOOD": "green", "BAD": "red", "FAIL": "magenta", "UNKWN": "yellow"}


@contextmanager
def _errors() -> Iterator[None]:
    """Domain errors as one line on stderr and an exit code."""
    from jobs.ctl.commands import Ambiguous, NoMatch

    try:
        yield
    except Ambiguous as exc:
        typer.echo(f"rebuildctl: {exc}:", err=True)
        for row in exc.candidates:
            typer.echo(f"  {row.line()}", err=True)
        raise typer.Exit(EXIT_NOT_FOUND) from None
    except NoMatch as exc:
        typer.echo(f"rebuildctl: {exc}", err=True)
        raise typer.Exit(EXIT_NOT_FOUND) from None
    except RebuilderError as exc:
        typer.echo(f"rebuildctl: error: {exc}", err=True)
        raise typer.Exit(EXIT_TERMINAL) from None


def _site(ctx: typer.Context):
    from jobs.core.config import load_ctl_config
    from jobs.ctl.commands import open_site

    opts: CtlOptions = ctx.obj
    config = None if opts.endpoint else load_ctl_config(opts.config)
    return open_site(opts.endpoint, config)


def _status(text: str | None) -> Any:
    from jobs.core.model import Status

    if text is None:
        return None
    try:
        return Status.parse(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--status") from None


def _tty(ctx: typer.Context) -> bool:
    return sys.stdout.isatty() or ctx.obj.color


def _table(ctx: typer.Context, columns: list[str], rows: list[list[str]], status_col: int | None = None) -> None:
    """A rich table on a terminal; tab-separated lines (stable, for scripts) when piped."""
    if not _tty(ctx):
        for row in rows:
            typer.echo("\t".join(row))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(*columns, box=None, header_style="bold")
    for row in rows:
        cells = list(row)
        if status_col is not None:
            cells[status_col] = f"[{_COLOURS.get(row[status_col], 'white')}]{row[status_col]}[/]"
        table.add_row(*cells)
    Console(force_terminal=ctx.obj.color or None).print(table)


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, default=lambda o: asdict(o)))


# --- reads -------------------------------------------------------------------------------

@app.command()
def status(ctx: typer.Context, as_json: Json = False) -> None:
    """Per-suite counts and % reproducible, queue length and active builds.

    Example: rebuildctl -H https://rebuilder.example.org status
    """
    from jobs.ctl import commands

    with _errors():
        report = commands.status(_site(ctx))
    if as_json:
        _print_json(asdict(report))
        return
    rows = [[s.distro, s.release or "-", s.component or "-", s.architecture, str(s.good), str(s.bad), str(s.fail),
             str(s.unknown), f"{s.percent_reproducible:.1f}%", str(s.queued)] for s in report.suites]
    _table(ctx, ["distro", "release", "component", "arch", "good", "bad", "fail", "unknown", "reproducible",
                 "queued"], rows)
    typer.echo(f"queue length: {report.queue_length}")
    typer.echo(f"active builds: {len(report.active_builds)}")
    for b in report.active_builds:
        typer.echo(f"  {b.name} {b.version} ({b.distro}, {b.component or '<none>'}, {b.architecture}) "
                   f"worker {b.worker_id} since {b.started_at}")


@pkgs.command("ls")
def pkgs_ls(
    ctx: typer.Context,
    distro: Distro = None, suite: Suite = None, release: Release = None, architecture: Arch = None,
    status: Annotated[Optional[str], typer.Option("--status", help=STATUS_HELP)] = None,
    name: Annotated[Optional[str], typer.Option("--name", help="Name or glob, e.g. 'python-*'.")] = None,
    as_json: Json = False,
) -> None:
    """List current packages and their status (reads only the status feeds it needs).

    Example: rebuildctl pkgs ls --distro archlinux --suite core --status BAD
    """
    from jobs.ctl import commands

    st = _status(status)
    filters = commands.Filters(distro=distro, release=release, component=suite, architecture=architecture, name=name)
    with _errors():
        rows = commands.list_packages(_site(ctx), filters, [st] if st else None)
    if as_json:
        _print_json([asdict(r) for r in rows])
        return
    if not _tty(ctx):
        for r in rows:
            typer.echo(r.line())
        return
    _table(ctx, ["status", "name", "version", "distro", "release", "component", "arch", "url"],
           [[r.status, r.name, r.version, r.distro, r.release or "<none>", r.component or "<none>", r.architecture,
             r.url or ""] for r in rows], status_col=0)


def _show_file(ctx: typer.Context, what: str, name: str, version: str | None, distro: str | None,
               suite: str | None, release: str | None, architecture: str | None) -> None:
    from jobs.ctl import commands

    filters = commands.Filters(distro=distro, release=release, component=suite, architecture=architecture,
                               version=version)
    with _errors():
        site = _site(ctx)
        row = commands.find_build(site, name, filters, what)
        text = commands.build_file(site, row, what)
    typer.echo(text, nl=not text.endswith("\n"))


Version = Annotated[Optional[str], typer.Option("--version", help="Package version.")]
Name = Annotated[str, typer.Argument(help="Package name.")]


@pkgs.command("log")
def pkgs_log(ctx: typer.Context, name: Name, version: Version = None, distro: Distro = None, suite: Suite = None,
             release: Release = None, architecture: Arch = None) -> None:
    """Print the build log of a package's current build (exit 3 if several match).

    Example: rebuildctl pkgs log hello-c --distro archlinux
    """
    _show_file(ctx, "log", name, version, distro, suite, release, architecture)


@pkgs.command("diffoscope")
def pkgs_diffoscope(ctx: typer.Context, name: Name, version: Version = None, distro: Distro = None,
                    suite: Suite = None, release: Release = None, architecture: Arch = None) -> None:
    """Print the diffoscope report of a package that did not reproduce.

    Example: rebuildctl pkgs diffoscope unrepro --version 1.0-1
    """
    _show_file(ctx, "diffoscope", name, version, distro, suite, release, architecture)


@pkgs.command("attestation")
def pkgs_attestation(ctx: typer.Context, name: Name, version: Version = None, distro: Distro = None,
                     suite: Suite = None, release: Release = None, architecture: Arch = None) -> None:
    """Print the in-toto attestation (JSON) of a reproduced package.

    Example: rebuildctl pkgs attestation hello-c > hello-c.link
    """
    _show_file(ctx, "attestation", name, version, distro, suite, release, architecture)


@queue.command("ls")
def queue_ls(ctx: typer.Context) -> None:
    """List queued jobs (not published: see `rebuildctl status` for queue length and active builds).

    Example: rebuildctl queue ls --head
    """
    typer.echo("rebuildctl queue ls: the site publishes no queue feed (only the queue length and the active "
               "builds, shown by `rebuildctl status`); nothing was read.", err=True)
    raise typer.Exit(EXIT_NOT_BUILT)


@workers.command("ls")
def workers_ls() -> None:
    """List workers.

    Example: rebuildctl workers ls
    """
    typer.echo("rebuildctl workers ls: not implemented yet (tracked in issue #6); nothing was done.", err=True)
    raise typer.Exit(EXIT_NOT_BUILT)


# --- admin verbs ---------------------------------------------------------------------------

def _submit(ctx: typer.Context, store: str | None, verb: str, **fields: Any) -> None:
    from jobs.ctl import commands

    opts: CtlOptions = ctx.obj
    with _errors():
        target = commands.admin_target(opts.endpoint, opts.config, store)
        key = commands.submit(target, verb, **fields)
    typer.echo(f"{verb}: wrote {key}; the next publish applies it")


Priority = Annotated[int, typer.Option("--priority", help="Queue priority (higher first).")]


@pkgs.command("requeue")
def pkgs_requeue(
    ctx: typer.Context,
    distro: Distro = None, suite: Suite = None, release: Release = None, architecture: Arch = None,
    status: Annotated[Optional[str], typer.Option("--status", help=STATUS_HELP)] = None,
    name: Annotated[Optional[str], typer.Option("--name", help="Name or glob.")] = None,
    priority: Priority = 0,
    reset: Annotated[bool, typer.Option("--reset", help="Also restart the retry count at 0.")] = False,
    store: Store = None,
) -> None:
    """Queue every matching package again (a signed request the next publish applies).

    Example: rebuildctl pkgs requeue --status BAD --reset
    """
    st = _status(status)
    _submit(ctx, store, "requeue", distro=distro, release=release, component=suite, architecture=architecture,
            name=name, status=st.value if st else None, priority=priority, reset=reset)


Distro_ = Annotated[str, typer.Argument(help="Distribution, e.g. archlinux.")]
Suite_ = Annotated[str, typer.Argument(help="Component (rebuilderd's suite).")]
Version_ = Annotated[Optional[str], typer.Argument(help="Version [default: the latest].")]


@queue.command("push")
def queue_push(ctx: typer.Context, distro: Distro_, suite: Suite_, name: Name, version: Version_ = None,
               architecture: Arch = None, priority: Priority = 0, store: Store = None) -> None:
    """Queue one package (its latest version unless given) for a rebuild.

    Example: rebuildctl queue push archlinux core zstd --priority 10
    """
    _submit(ctx, store, "push", distro=distro, component=suite, name=name, version=version,
            architecture=architecture, priority=priority)


@queue.command("drop")
def queue_drop(ctx: typer.Context, distro: Distro_, suite: Suite_, name: Name, version: Version_ = None,
               architecture: Arch = None, store: Store = None) -> None:
    """Remove a package's jobs from the queue.

    Example: rebuildctl queue drop archlinux core zstd
    """
    _submit(ctx, store, "drop", distro=distro, component=suite, name=name, version=version,
            architecture=architecture)


def main() -> None:
    """Console-script entry point of `rebuildctl`."""
    run_app(app, "rebuildctl")


__all__ = ["EXIT_NOT_FOUND", "EXIT_USAGE", "app", "main"]
