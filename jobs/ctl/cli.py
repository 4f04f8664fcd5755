"""`rebuildctl`: reads the published feeds; admin verbs write signed requests.

The command names and flags follow rebuilderd's rebuildctl. Each command parses its
arguments, calls one function of `jobs.ctl.commands` and prints: a table on a terminal,
stable plain text when piped, JSON with --json. Exit codes: 0 ok, 1 error (for verify:
some file or package not verified), 2 usage, 3 not found or ambiguous (narrow the filter).
Shared plumbing (output forms, errors) is in `terminal`; `verify` lives in `cli_verify`.
"""

# No `from __future__ import annotations`: typer would evaluate the string annotations of every command
# on every start (9 ms of the 13 it took to build the CLI).

from dataclasses import asdict
from enum import StrEnum
from typing import Annotated, Any, Optional

import typer

from jobs.cli import run_app
from jobs.ctl import terminal
from jobs.ctl.cli_verify import verify
from jobs.ctl.terminal import EXIT_NOT_FOUND, EXIT_USAGE, CtlOptions, errors, print_json, table, tty

app = typer.Typer(name="rebuildctl", no_args_is_help=True, pretty_exceptions_show_locals=False,
                  add_completion=False, rich_markup_mode=None,
                  help="Query a rebuilder's published verdicts; verify packages; queue and requeue builds.")
pkgs = typer.Typer(no_args_is_help=True, help="Packages: list, logs, diffoscope, attestations, requeue.")
queue = typer.Typer(no_args_is_help=True, help="The build queue: list, push, drop.")
workers = typer.Typer(no_args_is_help=True, help="Workers known to the rebuilder.")
app.add_typer(pkgs, name="pkgs")
app.add_typer(queue, name="queue")
app.add_typer(workers, name="workers")


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


# --- shared options ------------------------------------------------------------------------

Distro = Annotated[Optional[str], typer.Option("--distro", help="Distribution, e.g. archlinux.")]
Suite = Annotated[Optional[str], typer.Option("--suite", "--component", help="Component (rebuilderd's suite).")]
Release = Annotated[Optional[str], typer.Option("--release", help="Release, e.g. bookworm.")]
Arch = Annotated[Optional[str], typer.Option("--architecture", help="Architecture.")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON.")]
NoPager = Annotated[bool, typer.Option("--no-pager", help="Never page (also: $NOPAGER set, or stdout not a terminal).")]
Store = Annotated[Optional[str], typer.Option(
    "--store", envvar="REBUILDER_STORE", help="Store the requests go to [default: [store] url].")]
STATUS_HELP = "GOOD, BAD, FAIL or UNKWN."


def _status(text: str | None) -> Any:
    from jobs.core.model import Status

    if text is None:
        return None
    try:
        return Status.parse(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--status") from None


# --- reads -------------------------------------------------------------------------------

@app.command()
def status(ctx: typer.Context, as_json: Json = False) -> None:
    """Per-suite counts and % reproducible, queue length and active builds.

    Example: rebuildctl -H https://rebuilder.example.org status
    """
    from jobs.ctl import commands

    with errors():
        report = commands.status(terminal.site(ctx))
    if as_json:
        print_json(asdict(report))
        return
    rows = [[s.distro, s.release or "-", s.component or "-", s.architecture, str(s.good), str(s.bad), str(s.fail),
             str(s.unknown), f"{s.percent_reproducible:.1f}%", str(s.queued)] for s in report.suites]
    table(ctx, ["distro", "release", "component", "arch", "good", "bad", "fail", "unknown", "reproducible",
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
    with errors():
        rows = commands.list_packages(terminal.site(ctx), filters, [st] if st else None)
    if as_json:
        print_json([r.json() for r in rows])
        return
    if not tty(ctx):
        if rows:  # one write: a BAD list can be thousands of lines
            typer.echo("\n".join([r.line() for r in rows]))
        return
    table(ctx, ["status", "name", "version", "distro", "release", "component", "arch", "url"],
           [[r.status, r.name, r.version, r.distro, r.release or "<none>", r.component or "<none>", r.architecture,
             r.url or ""] for r in rows], status_col=0)


def _show_file(ctx: typer.Context, what: str, name: str, version: str | None, distro: str | None,
               suite: str | None, release: str | None, architecture: str | None, *, paged: bool = False) -> None:
    from jobs.ctl import commands
    from jobs.ctl.pager import page

    filters = commands.Filters(distro=distro, release=release, component=suite, architecture=architecture,
                               version=version)
    with errors():
        site = terminal.site(ctx)
        row = commands.find_build(site, name, filters, what)
        text = commands.build_file(site, row, what)
    text = text if text.endswith("\n") else text + "\n"
    if paged:
        page(text)
    else:
        typer.echo(text, nl=False)


Version = Annotated[Optional[str], typer.Option("--version", help="Package version.")]
Name = Annotated[str, typer.Argument(help="Package name.")]


@pkgs.command("log")
def pkgs_log(ctx: typer.Context, name: Name, version: Version = None, distro: Distro = None, suite: Suite = None,
             release: Release = None, architecture: Arch = None, no_pager: NoPager = False) -> None:
    """Print the build log of a package's current build (exit 3 if several match).

    On a terminal the log goes through $PAGER (default: less -R).

    Example: rebuildctl pkgs log hello-c --distro archlinux
    """
    _show_file(ctx, "log", name, version, distro, suite, release, architecture, paged=not no_pager)


@pkgs.command("diffoscope")
def pkgs_diffoscope(ctx: typer.Context, name: Name, version: Version = None, distro: Distro = None,
                    suite: Suite = None, release: Release = None, architecture: Arch = None,
                    no_pager: NoPager = False) -> None:
    """Print the diffoscope report of a package that did not reproduce.

    On a terminal the report goes through $PAGER (default: less -R).

    Example: rebuildctl pkgs diffoscope unrepro --version 1.0-1
    """
    _show_file(ctx, "diffoscope", name, version, distro, suite, release, architecture, paged=not no_pager)


@pkgs.command("attestation")
def pkgs_attestation(ctx: typer.Context, name: Name, version: Version = None, distro: Distro = None,
                     suite: Suite = None, release: Release = None, architecture: Arch = None) -> None:
    """Print the in-toto attestation (JSON) of a reproduced package.

    Example: rebuildctl pkgs attestation hello-c > hello-c.link
    """
    _show_file(ctx, "attestation", name, version, distro, suite, release, architecture)


@queue.command("ls")
def queue_ls(
    ctx: typer.Context,
    head: Annotated[bool, typer.Option("--head", help="Only the first 25 jobs.")] = False,
    planned: Annotated[bool, typer.Option("--planned", "-p", help="Also jobs not due yet (retries waiting).")] = False,
    as_json: Json = False,
) -> None:
    """List queued jobs in the order workers claim them, as of the feed's publication.

    Reads api/v1/queue.json. Without --planned, jobs whose retry is not due yet are hidden.

    Example: rebuildctl queue ls --head --planned
    """
    from jobs.ctl.queue import list_queue, queue_line, secs_to_human

    with errors():
        listing = list_queue(terminal.site(ctx), planned=planned, head=head)
    if as_json:
        print_json([j.raw for j in listing.jobs])
        return
    now = listing.generated_at
    if not tty(ctx):
        for job in listing.jobs:
            typer.echo(queue_line(job, now))
        return
    rows = []
    for j in listing.jobs:
        running = j.running_for(now)
        rows.append([j.queued_at.strftime("%Y-%m-%d %H:%M:%S"), f"{j.source_name} {j.source_version}",
                     secs_to_human(running) if running is not None else "",
                     j.running.worker_name or j.running.worker_key_id or "" if j.running else "",
                     j.not_before.strftime("%Y-%m-%d %H:%M") if j.not_before and not j.due(now) else "",
                     j.distro, j.release or "-", j.architecture, str(j.priority)])
    table(ctx, ["queued at", "package", "running for", "worker", "not before", "distro", "release", "arch",
                "priority"], rows)
    hidden = f", {listing.planned} not due yet (--planned)" if listing.planned and not planned else ""
    typer.echo(f"{len(listing.jobs)} of {listing.total} jobs{hidden}, as of {now:%Y-%m-%d %H:%M:%S} UTC")


@workers.command("ls")
def workers_ls(ctx: typer.Context, as_json: Json = False) -> None:
    """List the workers the rebuilder knows: key id, name, trust, last seen, builds, current job.

    Reads api/v1/workers.json.

    Example: rebuildctl workers ls --json
    """
    from jobs.ctl.queue import list_workers

    with errors():
        generated_at, found = list_workers(terminal.site(ctx))
    if as_json:
        print_json([w.raw for w in found])
        return
    rows = []
    for w in found:
        c = w.current_job
        job = f"{c.source_name} {c.source_version} ({c.distro}, {c.architecture})" if c else "-"
        rows.append([w.key_id if not tty(ctx) else w.key_id[:16], w.name or "-", w.trust,
                     w.last_seen.strftime("%Y-%m-%d %H:%M:%S") if w.last_seen else "-", str(w.builds), job])
    table(ctx, ["key id", "name", "trust", "last seen", "builds", "current job"], rows)


app.command("verify")(verify)


class Shell(StrEnum):
    bash = "bash"
    zsh = "zsh"
    fish = "fish"


@app.command()
def completions(shell: Annotated[Shell, typer.Argument(help="bash, zsh or fish.")]) -> None:
    """Print a shell completion script.

    Example: rebuildctl completions bash > /usr/share/bash-completion/completions/rebuildctl
    """
    from jobs.ctl.completions import completion_script

    typer.echo(completion_script(typer.main.get_command(app), shell.value))


# --- admin verbs ---------------------------------------------------------------------------

def _submit(ctx: typer.Context, store: str | None, verb: str, **fields: Any) -> None:
    from jobs.ctl import commands

    opts = terminal.options(ctx)
    with errors():
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
    from jobs.ctl.completions import register

    register()  # so that the completion scripts' callbacks (_REBUILDCTL_COMPLETE=…) are answered
    run_app(app, "rebuildctl")


__all__ = ["EXIT_NOT_FOUND", "EXIT_USAGE", "app", "main"]
