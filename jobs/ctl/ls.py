"""`rebuildctl pkgs ls` once its arguments are parsed, without typer.

Both ways of starting run this: the typer command (`jobs.ctl.cli.pkgs_ls`) and the fast start
(`jobs.ctl.fast`), which parses a plain `pkgs ls` itself and never imports typer. `ctx` is
either's: a typer context or the fast start's `jobs.ctl.terminal.CtlOptions`.
"""

from __future__ import annotations

from typing import Any

from jobs.ctl import terminal
from jobs.ctl.terminal import echo, errors, note, print_json, table, tty

LS_COLUMNS = ["status", "name", "version", "distro", "release", "component", "arch", "url"]


def flags(**given: Any) -> str:
    """The filters given, as they were typed: "--name nosuch --status BAD"."""
    return " ".join(f"--{k.replace('_', '-')} {v}" for k, v in given.items() if v is not None)


def dash(value: Any) -> str:
    """A value for a table cell: "-" when missing, never a Python value such as None."""
    return "-" if value is None or value == "" else str(value)


def pkgs_ls(ctx: Any, *, distro: str | None, suite: str | None, release: str | None, architecture: str | None,
            status: Any, name: str | None, as_json: bool) -> None:
    """List current packages and their status: `status` is a `jobs.core.model.Status` or None."""
    from jobs.ctl import commands
    from jobs.ctl.feeds import FeedNotFound

    filters = commands.Filters(distro=distro, release=release, component=suite, architecture=architecture, name=name)
    piped = not as_json and not tty(ctx)
    with errors():
        site = terminal.site(ctx)
        try:
            if piped:  # the lines straight from the lists' columns (jobs.ctl.listing)
                from jobs.ctl.listing import package_lines

                count, text = package_lines(site, filters, [status] if status else None)
                if not count:
                    _none(name, status, distro, suite, release, architecture)
                elif text:  # one write: a BAD list can be thousands of lines
                    echo(text)
                return
            rows = commands.list_packages(site, filters, [status] if status else None)
        except FeedNotFound as exc:  # no v1 index: a rebuilderd's v0 API, if -H names one
            from jobs.ctl import daemon

            rows = daemon.list_packages(daemon.detect(site, exc), filters, [status] if status else None)
    if not rows:
        _none(name, status, distro, suite, release, architecture)
    if as_json:
        print_json([r.json() for r in rows])
        return
    if not tty(ctx):
        if rows:  # one write: a BAD list can be thousands of lines
            echo(commands.lines(rows))
        return
    table(ctx, LS_COLUMNS, [[r.status, r.name, r.version, r.distro, dash(r.release), dash(r.component),
                             r.architecture, dash(r.url)] for r in rows], status_col=0)


def _none(name: str | None, status: Any, distro: str | None, suite: str | None, release: str | None,
          architecture: str | None) -> None:
    given = flags(name=name, status=status.value if status else None, distro=distro, suite=suite,
                  release=release, architecture=architecture)
    note(f"no package matches {given}" if given else "no package is published")
