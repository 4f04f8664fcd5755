"""`rebuildctl`: reads the published feeds; admin verbs write signed requests.

The command names and flags follow rebuilderd's rebuildctl. Each command parses its
arguments, calls one function of `jobs.ctl.commands` and prints: a table on a terminal,
stable plain text when piped (a header line of column names, then tab-separated rows),
JSON with --json. Exit codes: 0 ok (a list that matches nothing too: it says so on
stderr), 1 error (for verify: some file or package not verified), 2 usage, 3 not found
or ambiguous (narrow the filter).
Shared plumbing (output forms, errors) is in `terminal`; `verify` lives in `cli_verify`.
"""

# No `from __future__ import annotations`: typer would evaluate the string annotations of every command
# on every start (9 ms of the 13 it took to build the CLI).

from typing import Annotated, Any, Optional

import typer

from jobs.core.cliapp import HELP_OPTIONS, print_version, run_app
from jobs.core.typer_params import FastGroup
from jobs.ctl import terminal
from jobs.ctl.cli_verify import verify
from jobs.ctl.ls import dash as _dash
from jobs.ctl.ls import flags as _flags
from jobs.ctl.terminal import (
    EXIT_NOT_FOUND,
    EXIT_USAGE,
    CtlOptions,
    clean,
    clean_text,
    errors,
    note,
    print_json,
    table,
    tty,
)

app = typer.Typer(name="rebuildctl", cls=FastGroup, no_args_is_help=True, pretty_exceptions_show_locals=False,
                  add_completion=False, rich_markup_mode=None, context_settings=HELP_OPTIONS,
                  help="Query a rebuilder's published verdicts; verify packages; queue and requeue builds.")
pkgs = typer.Typer(cls=FastGroup, no_args_is_help=True, help="Packages: list, logs, diffoscope, attestations, requeue.")
queue = typer.Typer(cls=FastGroup, no_args_is_help=True, help="The build queue: list, push, drop.")
workers = typer.Typer(cls=FastGroup, no_args_is_help=True, help="Workers known to the rebuilder.")
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
    version: Annotated[bool, typer.Option("--version", "-V", callback=print_version("rebuildctl"), is_eager=True,
                                          help="Print the version and exit.")] = False,
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
    """Per-suite counts and % reproducible, queue length, active builds and the workers.

    Reads api/v1/index.json, api/v0/dashboard and api/v1/workers.json. Piped, each table is a
    header line of column names then tab-separated rows. A site published without the
    workers feed gets its status and a note on stderr instead of the workers.
    Exit codes: 0 printed, 1 error, 2 usage.

    Example: rebuildctl -H https://rebuilder.example.org status
    """
    from jobs.ctl import cli_daemon, commands
    from jobs.ctl.daemon import detect
    from jobs.ctl.feeds import FeedNotFound

    with errors():
        site = terminal.site(ctx)
        try:
            report = commands.status(site)
        except FeedNotFound as exc:
            return cli_daemon.status(ctx, detect(site, exc), as_json)
    if report.workers_missing:
        note(f"{report.workers_missing} is not published (a `rebuilder publish` before the workers feed): "
             "no workers listed")
    if as_json:
        print_json(report.json())
        return
    rows = [[s.distro, _dash(s.release), _dash(s.component), s.architecture, str(s.good), str(s.bad), str(s.fail),
             str(s.unknown), f"{s.percent_reproducible:.1f}%", str(s.queued)] for s in report.suites]
    table(ctx, ["distro", "release", "component", "arch", "good", "bad", "fail", "unknown", "reproducible",
                 "queued"], rows)
    typer.echo(f"queue length: {report.queue_length}")
    typer.echo(f"active builds: {len(report.active_builds)}")
    for b in report.active_builds:
        typer.echo(clean(f"  {b.name} {b.version} ({b.distro}, {_dash(b.component)}, {b.architecture}) "
                         f"worker {_dash(b.worker_id)} since {_dash(b.started_at)}"))
    if report.workers is not None:
        typer.echo(f"workers: {len(report.workers)}")
        if report.workers:
            _workers_table(ctx, report.workers, ["name", "key id", "trust", "last seen", "current job"], short=True)


@pkgs.command("ls")
def pkgs_ls(
    ctx: typer.Context,
    distro: Distro = None, suite: Suite = None, release: Release = None, architecture: Arch = None,
    status: Annotated[Optional[str], typer.Option("--status", help=STATUS_HELP)] = None,
    name: Annotated[Optional[str], typer.Option("--name", help="Name or glob, e.g. 'python-*'.")] = None,
    as_json: Json = False,
) -> None:
    """List current packages and their status (reads only the status feeds it needs).

    Piped: one rebuildctl line per package, `[STATUS] name version (distro, release, component,
    arch) "url"`. Exit codes: 0 listed (also when nothing matches: a note says so on stderr),
    1 error, 2 usage.

    Example: rebuildctl pkgs ls --distro archlinux --suite core --status BAD
    """
    from jobs.ctl.ls import pkgs_ls as run

    run(ctx, distro=distro, suite=suite, release=release, architecture=architecture, status=_status(status),
        name=name, as_json=as_json)


def _show_file(ctx: typer.Context, what: str, name: str, version: str | None, distro: str | None,
               suite: str | None, release: str | None, architecture: str | None, *, paged: bool = False) -> None:
    from jobs.ctl import commands, daemon
    from jobs.ctl.daemon import detect
    from jobs.ctl.feeds import FeedNotFound
    from jobs.ctl.pager import page

    filters = commands.Filters(distro=distro, release=release, component=suite, architecture=architecture,
                               version=version)
    with errors():
        site = terminal.site(ctx)
        try:
            row = commands.find_build(site, name, filters, what)
        except FeedNotFound as exc:
            row = daemon.find_build(detect(site, exc), name, filters, what)
        text = commands.build_file(site, row, what)
    text = clean_text(text if text.endswith("\n") else text + "\n")
    if paged:
        page(text)
    else:
        typer.echo(text, nl=False)


Version = Annotated[Optional[str], typer.Option("--version", help="Package version.")]
Name = Annotated[str, typer.Argument(help="Package name.")]
BuildName = Annotated[str, typer.Argument(help="Binary package name, or source name (pkgbase) of one build.")]


@pkgs.command("log")
def pkgs_log(ctx: typer.Context, name: BuildName, version: Version = None, distro: Distro = None, suite: Suite = None,
             release: Release = None, architecture: Arch = None, no_pager: NoPager = False) -> None:
    """Print the build log of a package's current build.

    NAME is a binary package name or a source name (pkgbase); a source name whose packages
    come from one build (a split package) is that build. On a terminal the log goes through
    $PAGER (default: less -R). Exit codes: 0 printed, 1 error, 2 usage, 3 no such package or
    file, or several builds match (listed on stderr, with the flags that narrow the choice).

    Example: rebuildctl pkgs log hello-c --distro archlinux
    """
    _show_file(ctx, "log", name, version, distro, suite, release, architecture, paged=not no_pager)


@pkgs.command("diffoscope")
def pkgs_diffoscope(ctx: typer.Context, name: BuildName, version: Version = None, distro: Distro = None,
                    suite: Suite = None, release: Release = None, architecture: Arch = None,
                    no_pager: NoPager = False) -> None:
    """Print the diffoscope report of a package that did not reproduce.

    NAME is a binary package name or a source name (pkgbase), as for `pkgs log`. On a
    terminal the report goes through $PAGER (default: less -R). Exit codes: 0 printed,
    1 error, 2 usage, 3 no such package or file, or several builds match (listed on stderr,
    with the flags that narrow the choice).

    Example: rebuildctl pkgs diffoscope unrepro --version 1.0-1
    """
    _show_file(ctx, "diffoscope", name, version, distro, suite, release, architecture, paged=not no_pager)


@pkgs.command("attestation")
def pkgs_attestation(ctx: typer.Context, name: BuildName, version: Version = None, distro: Distro = None,
                     suite: Suite = None, release: Release = None, architecture: Arch = None) -> None:
    """Print the in-toto attestation (JSON) of a reproduced package.

    NAME is a binary package name or a source name (pkgbase), as for `pkgs log`. Exit codes:
    0 printed, 1 error, 2 usage, 3 no such package or file, or several builds match (listed
    on stderr, with the flags that narrow the choice).

    Example: rebuildctl pkgs attestation hello-c > hello-c.link
    """
    _show_file(ctx, "attestation", name, version, distro, suite, release, architecture)


@queue.command("ls")
def queue_ls(
    ctx: typer.Context,
    head: Annotated[bool, typer.Option("--head", help="Only the first 25 jobs.")] = False,
    planned: Annotated[bool, typer.Option("--planned", "-p", help="Also jobs not due yet (retries waiting).")] = False,
    distro: Distro = None, suite: Suite = None, release: Release = None, architecture: Arch = None,
    name: Annotated[Optional[str], typer.Option(
        "--name", help="Source or package name, or a glob, e.g. 'python-*'.")] = None,
    as_json: Json = False,
) -> None:
    """List queued jobs in the order workers claim them, as of the feed's publication.

    Reads api/v1/queue.json. Without --planned, jobs whose retry is not due yet are hidden.
    Piped: a header line of column names, then one tab-separated row per job ("-" for a
    missing value). Exit codes: 0 listed (also when nothing matches: a note says so on
    stderr), 1 error, 2 usage.

    Example: rebuildctl queue ls --head --planned
    """
    from jobs.ctl import cli_daemon, daemon
    from jobs.ctl.commands import Filters
    from jobs.ctl.queue import FeedMissing, list_queue, secs_to_human

    filters = Filters(distro=distro, release=release, component=suite, architecture=architecture, name=name)
    with errors():
        site = terminal.site(ctx)
        try:
            listing = list_queue(site, planned=planned, head=head, filters=filters)
        except FeedMissing:
            if (found := daemon.probe(site)) is None:
                raise
            return cli_daemon.queue_ls(ctx, found, head=head, filters=filters, as_json=as_json)
    now = listing.generated_at
    hidden = f", {listing.planned} not due yet (--planned lists them)" if listing.planned and not planned else ""
    if not listing.jobs:
        given = _flags(name=name, distro=distro, suite=suite, release=release, architecture=architecture)
        if given:
            note(f"no queued job matches {given}" + (" and is due" + hidden if hidden else ""))
        else:
            note("no queued job is due" + hidden if hidden else "the queue is empty")
    if as_json:
        print_json([j.raw for j in listing.jobs])
        return
    rows = []
    for j in listing.jobs:
        running = j.running_for(now)
        rows.append([j.queued_at.strftime("%Y-%m-%d %H:%M:%S"), j.source_name, j.source_version,
                     secs_to_human(running).strip() if running is not None else "-",
                     _dash(j.running and (j.running.worker_name or j.running.worker_key_id)),
                     j.not_before.strftime("%Y-%m-%d %H:%M:%S") if j.not_before and not j.due(now) else "-",
                     j.distro, _dash(j.release), _dash(j.component), j.architecture, str(j.priority)])
    table(ctx, ["queued at", "name", "version", "running for", "worker", "not before", "distro", "release",
                "component", "arch", "priority"], rows)
    if tty(ctx):
        typer.echo(f"{len(listing.jobs)} of {listing.total} jobs{hidden}, as of {now:%Y-%m-%d %H:%M:%S} UTC")


def _workers_table(ctx: typer.Context, found: list[Any], columns: list[str], *, short: bool) -> None:
    """The workers as a table of `columns` (of key id, name, trust, last seen, builds, current job)."""
    rows = []
    for w in found:
        c = w.current_job
        cells = {"key id": w.key_id[:16] if short else w.key_id, "name": _dash(w.name), "trust": w.trust,
                 "last seen": w.last_seen.strftime("%Y-%m-%d %H:%M:%S") if w.last_seen else "-",
                 "builds": str(w.builds),
                 "current job": f"{c.source_name} {c.source_version} ({c.distro}, {c.architecture})" if c else "-"}
        rows.append([cells[col] for col in columns])
    table(ctx, columns, rows)


@workers.command("ls")
def workers_ls(ctx: typer.Context, as_json: Json = False) -> None:
    """List the workers the rebuilder knows: key id, name, trust, last seen, builds, current job.

    Reads api/v1/workers.json. Piped: a header line, then one tab-separated row per worker
    with its whole key id. Exit codes: 0 listed (also when there is none: a note says so on
    stderr), 1 error, 2 usage.

    Example: rebuildctl workers ls --json
    """
    from jobs.ctl import cli_daemon, daemon
    from jobs.ctl.queue import FeedMissing, list_workers

    with errors():
        site = terminal.site(ctx)
        try:
            generated_at, found = list_workers(site)
        except FeedMissing:
            if (rebuilderd := daemon.probe(site)) is None:
                raise
            return cli_daemon.workers_ls(ctx, rebuilderd, as_json)
    if not found:
        note(f"no worker has reported to this rebuilder yet (as of {generated_at:%Y-%m-%d %H:%M:%S} UTC)")
    if as_json:
        print_json([w.raw for w in found])
        return
    _workers_table(ctx, found, ["key id", "name", "trust", "last seen", "builds", "current job"], short=tty(ctx))


app.command("verify")(verify)


SHELLS = ("bash", "zsh", "fish")


def _shell(value: str) -> str:
    if value not in SHELLS:  # said as click says it (an Enum's choice error is pydantic's "Value error, …")
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(map(repr, SHELLS))}.")
    return value


@app.command()
def completions(shell: Annotated[str, typer.Argument(
        help="bash, zsh or fish.", metavar="bash|zsh|fish", callback=_shell)]) -> None:
    """Print a shell completion script.

    Example: rebuildctl completions bash > /usr/share/bash-completion/completions/rebuildctl
    """
    from jobs.ctl.completions import completion_script

    typer.echo(completion_script(typer.main.get_command(app), shell))


# --- admin verbs ---------------------------------------------------------------------------

def _submit(ctx: typer.Context, store: str | None, verb: str, **fields: Any) -> None:
    from jobs.ctl import admin, cli_daemon, daemon

    opts = terminal.options(ctx)
    with errors():
        # -H naming a rebuilderd (no v1 index, a v0 dashboard): the verb goes to its v0 API
        if opts.endpoint and store is None and (found := daemon.probe(terminal.site(ctx))) is not None:
            return cli_daemon.submit(ctx, found, verb, **fields)
        target = admin.admin_target(opts.endpoint, opts.config, store)
        key = admin.submit(target, verb, **fields)
    typer.echo(f"{verb}: wrote {key}; the next publish applies it")


Priority = Annotated[int, typer.Option("--priority", help=(
    "Queue priority: lower runs sooner. Jobs are queued at 0 (manual, the default), 1 (new) and 2 (retry); "
    "any integer is allowed, e.g. -1 to run before all of them."))]


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

    Lower --priority runs sooner: 0 (manual, the default) runs before new (1) and retried (2)
    jobs. Exit codes: 0 request written, 1 error (no cookie or store: nothing written), 2 usage.

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

    Lower --priority runs sooner: 0 (manual, the default) runs before new (1) and retried (2)
    jobs; -1 runs before all of them. Exit codes: 0 request written, 1 error (no cookie or
    store: nothing written), 2 usage.

    Example: rebuildctl queue push archlinux core zstd --priority -1
    """
    _submit(ctx, store, "push", distro=distro, component=suite, name=name, version=version,
            architecture=architecture, priority=priority)


@queue.command("drop")
def queue_drop(ctx: typer.Context, distro: Distro_, suite: Suite_, name: Name, version: Version_ = None,
               architecture: Arch = None, store: Store = None) -> None:
    """Remove a package's jobs from the queue.

    Exit codes: 0 request written, 1 error (no cookie or store: nothing written), 2 usage.

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
