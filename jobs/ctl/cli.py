"""`rebuildctl`: reads the published feeds; admin verbs write signed requests.

The command names and flags follow rebuilderd's rebuildctl (see README). The commands
are filled in by issue #6; until then each one says so and exits 3 without doing anything.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from jobs.cli import EXIT_NOT_BUILT, run_app

app = typer.Typer(name="rebuildctl", no_args_is_help=True, pretty_exceptions_show_locals=False,
                  add_completion=False, rich_markup_mode=None,
                  help="Query a rebuilder's published verdicts; queue and requeue builds.")
pkgs = typer.Typer(no_args_is_help=True, help="Packages: list, logs, diffoscope, attestations, requeue.")
queue = typer.Typer(no_args_is_help=True, help="The build queue: list, push, drop.")
workers = typer.Typer(no_args_is_help=True, help="Workers known to the rebuilder.")
app.add_typer(pkgs, name="pkgs")
app.add_typer(queue, name="queue")
app.add_typer(workers, name="workers")


@app.callback()
def _global(
    endpoint: Annotated[Optional[str], typer.Option(
        "--endpoint", "-H", help="Base URL of the published site (http(s):// or file://).")] = None,
    config: Annotated[Optional[str], typer.Option("--config", "-c", help="Extra config file.")] = None,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More output.")] = 0,
    color: Annotated[bool, typer.Option("--color", "-C", help="Force colours.")] = False,
) -> None:
    """Global options, as in rebuilderd's rebuildctl."""


def _not_built(command: str) -> None:
    typer.echo(f"rebuildctl {command}: not implemented yet (tracked in issue #6); nothing was done.",
               err=True)
    raise typer.Exit(EXIT_NOT_BUILT)


@app.command()
def status() -> None:
    """Per-suite counts, queue length, active builds and workers.

    Example: rebuildctl -H https://rebuilder.example.org status
    """
    _not_built("status")


@pkgs.command("ls")
def pkgs_ls() -> None:
    """List packages and their status.

    Example: rebuildctl pkgs ls --distro archlinux --suite core --status BAD
    """
    _not_built("pkgs ls")


@queue.command("ls")
def queue_ls() -> None:
    """List queued jobs.

    Example: rebuildctl queue ls --head
    """
    _not_built("queue ls")


@workers.command("ls")
def workers_ls() -> None:
    """List workers.

    Example: rebuildctl workers ls
    """
    _not_built("workers ls")


def main() -> None:
    """Console-script entry point of `rebuildctl`."""
    run_app(app, "rebuildctl")
