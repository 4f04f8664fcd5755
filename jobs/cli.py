"""`rebuilder`: the scheduled jobs (sync, work, publish, run) and a few operator tools.

Each command parses its arguments, calls one function of `jobs.*` and turns domain
errors into a clean exit: 1 for a terminal error, 75 (EX_TEMPFAIL) for a transient one
so that a scheduler can simply try again.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional

import typer

from jobs import cli_support as support
from jobs.core.cliapp import EXIT_TERMINAL, EXIT_TRANSIENT, HELP_OPTIONS, print_version, run_app
from jobs.core.layout import SITE
from jobs.core.typer_params import FastGroup

# Where `rebuilder demo` serves unless told otherwise, and how many ports after it it tries
# when that one is taken (8484 is also rebuilderd's own default port).
DEMO_BIND = "127.0.0.1:8484"
DEMO_PORT_FALLBACK = 100

app = typer.Typer(
    name="rebuilder",
    cls=FastGroup,  # parameters converted without pydantic where typer's result is certain
    help="A rebuilder without a daemon: sync distro indexes, rebuild packages, publish verdicts.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # credentials live in locals
    add_completion=False,
    rich_markup_mode=None,  # plain help text: option help shows "[default: …]" literally
    context_settings=HELP_OPTIONS,
)


@dataclass
class Options:
    """Global options shared by every command."""

    config: Path | None
    store: str | None


@app.callback()
def _global(
    ctx: typer.Context,
    config: Annotated[Optional[Path], typer.Option(
        "--config", envvar="REBUILDER_CONFIG",
        help="Rebuilder config file [default: /etc/rebuilderd.conf if present].")] = None,
    store: Annotated[Optional[str], typer.Option(
        "--store", envvar="REBUILDER_STORE",
        help="Store URL (file:///path or s3://bucket/prefix); overrides [store] url.")] = None,
    version: Annotated[bool, typer.Option(
        "--version", "-V", callback=print_version("rebuilder"), is_eager=True,
        help="Print the version and exit.")] = False,
) -> None:
    ctx.obj = Options(config=config, store=store)


@app.command()
def sync(
    ctx: typer.Context,
    profile: Annotated[Optional[list[str]], typer.Argument(
        help="Profiles to sync [default: all in the sync config].")] = None,
    profiles: Annotated[Optional[Path], typer.Option(
        "--profiles", envvar="REBUILDER_SYNC_CONFIG",
        help="Sync profiles file [default: /etc/rebuilderd-sync.conf].")] = None,
    retries: Annotated[int, typer.Option(
        "--retries", min=0, max=20,
        help="Retries of a failed mirror request (with exponential backoff) before the profile fails.")] = 5,
    timeout: Annotated[float, typer.Option(
        "--timeout", min=0.1, help="Seconds a mirror may take to accept a connection or to answer.")] = 60.0,
) -> None:
    """Read distro indexes and write package state and the queue.

    Prints one summary line per profile; a profile whose index is malformed, corrupt or
    unreachable changes nothing and makes the command exit non-zero (75 if retrying later
    may help), after the other profiles were synced. Each retry of a mirror request is one
    line on stderr (what failed, the URL, attempt n of m).

    Example: rebuilder sync archlinux-core
    """
    try:
        worst = support.sync(ctx.obj, profile, profiles, retries, timeout, typer.echo)
    except support.NoProfiles as exc:
        raise typer.BadParameter(str(exc), param_hint="--profiles") from None
    raise typer.Exit(worst)


@app.command()
def work(
    ctx: typer.Context,
    worker_config: Annotated[Optional[Path], typer.Option(
        "--worker-config", envvar="REBUILDER_WORKER_CONFIG",
        help="Worker config file [default: /etc/rebuilderd-worker.conf].")] = None,
    once: Annotated[bool, typer.Option("--once", help="Build at most one job, then exit (exit at once if none is due).")] = False,
    name: Annotated[Optional[str], typer.Option("--name", "-n", help="Worker name (own work dir and key).")] = None,
) -> None:
    """Claim due jobs, rebuild them, upload signed results.

    Runs until SIGTERM/SIGINT (then stops the build and releases its claim), or with
    --once after one job. Prints two lines per job on stderr (claimed; the verdict and
    how long it took) and one summary line when it stops. Against a store no sync has
    written to, says so (with --once: exits 75).

    Example: rebuilder work --name worker1 --once
    """
    import signal

    from jobs.core.config import load_worker_config
    from jobs.work.identity import load_identity
    from jobs.work.run import NothingSynced, Worker

    opts: Options = ctx.obj
    config = support.rebuilder_config(opts)
    wconf = load_worker_config(worker_config)
    backends = support.worker_backends(wconf, worker_config)  # before a key is created in the work dir
    worker = Worker(store=support.job_store(opts, config), config=config, worker_config=wconf,
                    identity=load_identity(wconf, name), backends=backends, env=dict(os.environ))
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: worker.stop.set())
    try:
        with support.progress_bars():
            stats = worker.run(once=once)
    except NothingSynced as exc:
        typer.echo(f"work {worker.identity.name}: {exc}", err=True)
        raise typer.Exit(EXIT_TRANSIENT) from None
    statuses = [b.split()[1] for b in stats.built]
    counts = ", ".join(f"{s} {statuses.count(s)}" for s in ("GOOD", "BAD", "FAIL") if s in statuses)
    typer.echo(f"work {worker.identity.name}: built {len(stats.built)}" + (f" ({counts})" if counts else "")
               + f", claims lost {len(stats.lost)}, stopped {len(stats.cancelled)}")


@app.command()
def publish(ctx: typer.Context) -> None:
    """Verify results, compact history, write the static site and JSON feeds.

    Safe to run twice at once: the second publisher says who holds the lock and exits 0.
    The site goes to the store's site/ prefix, or to [store] site_url when set.

    Example: rebuilder publish
    """
    support.publish(ctx.obj, typer.echo)


@app.command()
def run(
    ctx: typer.Context,
    profiles: Annotated[Optional[Path], typer.Option(
        "--profiles", envvar="REBUILDER_SYNC_CONFIG", help="Sync profiles file.")] = None,
    worker_config: Annotated[Optional[Path], typer.Option(
        "--worker-config", envvar="REBUILDER_WORKER_CONFIG", help="Worker config file.")] = None,
    workers: Annotated[int, typer.Option("--workers", min=1, max=64, help="Workers in this process.")] = 2,
    budget: Annotated[Optional[float], typer.Option(
        "--budget", min=1, help="Stop claiming new jobs after this many seconds.")] = None,
) -> None:
    """One full cycle: sync all profiles, work until the queue is empty, publish.

    Prints the summary lines of each step and, last, the verdicts of this cycle's builds
    (`run: GOOD 3, BAD 1, FAIL 1, UNKWN 0`); each job is two lines on stderr as it goes.
    Exits 1 if a sync failed for good, 75 if the failures may pass (network), or if the
    store has no package state after the syncs.

    Example: rebuilder --store file:///var/lib/rebuilder run --workers 2 --budget 3600
    """
    import signal

    from jobs.core.config import load_sync_config, load_worker_config
    from jobs.core.store import open_store
    from jobs.cycle import run_cycle

    opts: Options = ctx.obj
    config = support.rebuilder_config(opts)
    wconf = load_worker_config(worker_config)
    backends = support.worker_backends(wconf, worker_config)
    sync_config = load_sync_config(profiles)
    store = support.job_store(opts, config)
    site_store = open_store(config.store.site_url) if config.store.site_url else None
    import threading
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with support.progress_bars():
        summary = run_cycle(store, config, sync_config, wconf, backends, workers=workers, budget=budget,
                            env=dict(os.environ), stop=stop, site_store=site_store)
    for line in summary.lines():
        typer.echo(line)
    if summary.failed_syncs:
        raise typer.Exit(EXIT_TRANSIENT if summary.failed_transient else EXIT_TERMINAL)
    if summary.not_synced:
        raise typer.Exit(EXIT_TRANSIENT)


def _check_bind(value: Optional[str]) -> Optional[str]:
    """A --bind that is not HOST:PORT is a usage error (exit 2)."""
    from jobs.core.errors import ConfigError
    from jobs.serve.server import parse_bind

    if value is not None:
        try:
            parse_bind(value)
        except ConfigError as exc:
            raise typer.BadParameter(f"{value!r} is not HOST:PORT (e.g. 127.0.0.1:8484)") from exc
    return value


@app.command()
def serve(
    ctx: typer.Context,
    bind: Annotated[Optional[str], typer.Option("--bind", help="host:port [default: [http] bind_addr].",
                                                callback=_check_bind)] = None,
    static: Annotated[bool, typer.Option("--static", help="Serve the files only, as a static host would "
                                         "(no filtering, no admin endpoints, gzip as stored).")] = False,
    admin: Annotated[bool, typer.Option("--admin", help="Accept rebuildctl's admin POSTs (pkgs requeue, queue "
                                        "push/drop) authenticated by [auth] cookie, and store them as admin "
                                        "requests under the --store's requests/ for the next publish.")] = False,
) -> None:
    """Serve the store's published site over HTTP, with rebuilderd's v0 API in front of it.

    Upstream rebuildctl and the v0 consumers get filtered `pkgs/list`, `queue/list`, `workers`
    and decompressed logs (docs/api.md); --static serves the files as S3 or Pages would.

    Example: rebuilder --store file:///var/lib/rebuilder serve --bind 127.0.0.1:8484 --admin
    """
    from jobs.core.errors import ConfigError
    from jobs.core.store import open_store
    from jobs.serve.api import Api
    from jobs.serve.server import make_server

    opts: Options = ctx.obj
    config = support.rebuilder_config(opts)
    if static and admin:
        raise typer.BadParameter("--admin needs the API: drop --static", param_hint="--admin")
    if config.store.site_url:
        store, prefix = open_store(config.store.site_url), ""
    else:
        store, prefix = support.job_store(opts, config), SITE
    api = None
    if not static:
        requests = None
        if admin:
            if not config.auth.cookie:
                raise ConfigError("--admin needs an admin secret to check X-Auth-Cookie against", key="[auth] cookie",
                                  expected="a secret of at least 128 bits (pwgen -1s 32)")
            requests = support.job_store(opts, config) if config.store.site_url else store
        api = Api(store, prefix, cookie=config.auth.cookie, requests=requests)
    server = make_server(store, bind or config.http.bind_addr, prefix=prefix,
                         what="--bind" if bind else "--bind (or [http] bind_addr)", api=api)
    support.warn_if_unpublished(store, prefix)
    support.serve_until_interrupted(server, f"serving {store.url}/{prefix} at")


@app.command()
def demo(
    directory: Annotated[Path, typer.Argument(help="Where the demo keeps its repository, configs and store.")] = Path(
        "rebuilder-demo"),
    bind: Annotated[Optional[str], typer.Option(
        "--bind", callback=_check_bind,
        help=f"host:port to serve the site on [default: {DEMO_BIND}, or the next free port if it is in use; "
             "an address given here must be free].")] = None,
    no_serve: Annotated[bool, typer.Option("--no-serve", help="Run the cycle, print, and exit.")] = False,
    distro: Annotated[Optional[list[str]], typer.Option(
        "--distro", help="Which fixture repository to build and rebuild: archlinux or debian; repeat for both "
                         "[default: archlinux].")] = None,
) -> None:
    """The embedded default end to end: build a fixture repository, sync it, rebuild it with two
    workers, publish, and serve the site.

    Arch Linux (the default): makepkg builds in mount namespaces as the 'builder' user; needs
    root and Debian's makepkg, pacman-package-manager, libarchive-tools, zstd, fakeroot, gcc and
    diffoscope-minimal.

    Debian (--distro debian): dpkg-buildpackage builds in an mmdebstrap root of this host's Debian
    mirror, rebuilt with the debian-local backend; needs root, mmdebstrap, dpkg-dev, apt, gpg and
    diffoscope-minimal. Its build roots (~450 MB each) are kept in REBUILDER_DEBIAN_ROOT_CACHE
    (default DIRECTORY/debian-roots): with them there it runs offline, else it says what it
    downloads first.

    Ctrl-C during the builds stops them (their claims released), publishes what was done and
    exits 130; run it again to build the rest.

    \b
    Example: rebuilder demo /var/tmp/rebuilder-demo --bind 127.0.0.1:9000
    Example: rebuilder demo /var/tmp/rebuilder-demo --distro debian --distro archlinux
    """
    from jobs.core.store import LocalStore
    from jobs.demo.run import DISTROS, run_demo

    distros = tuple(dict.fromkeys(distro or ["archlinux"]))
    unknown = [d for d in distros if d not in DISTROS]
    if unknown:
        raise typer.BadParameter(f"{unknown[0]!r} is not one of {', '.join(DISTROS)}", param_hint="--distro")
    from jobs.serve.server import make_server

    server = None
    if not no_serve:
        # Listen before the cycle: a taken address fails now, not after the builds. The store
        # directory is where run_demo puts it; the server opens it lazily, per request.
        directory = directory.absolute()
        from jobs.serve.api import Api

        site = LocalStore(directory / "store")
        server = make_server(site, bind or DEMO_BIND, fallback=0 if bind else DEMO_PORT_FALLBACK,
                             api=Api(site, SITE))  # read-only: upstream rebuildctl works against the demo
    try:
        with support.progress_bars():
            result = run_demo(directory, distros=distros)
    except BaseException:
        if server is not None:
            server.server_close()
        raise
    for line in result.summary.lines():
        typer.echo(line)
    typer.echo(f"configs: {result.directory}/rebuilderd{{,-sync,-worker}}.conf; store: {result.store.url}")
    if result.stopped:  # Ctrl-C during the builds: published, not served
        if server is not None:
            server.server_close()
        raise typer.Exit(130)
    typer.echo(support.status_text(result.store))
    if server is None:
        return
    host, port = server.server_address[:2]
    if not bind and f"{host}:{port}" != DEMO_BIND:
        typer.echo(f"{DEMO_BIND} is in use (rebuilderd's default port?): serving on {host}:{port} instead")
    support.serve_until_interrupted(server, "site (Ctrl-C stops):")


@app.command("import-rebuilderd")
def import_rebuilderd(
    ctx: typer.Context,
    database: Annotated[Path, typer.Argument(help="rebuilderd's SQLite database (its rebuilderd.db), "
                                                  "of rebuilderd 0.20 to 0.25.")],
) -> None:
    """Import a rebuilderd database's verdicts, logs, diffoscope output, attestations and queue.

    Run `rebuilder sync` for the repositories the daemon synced first: verdicts are matched
    to the synced packages. Then `rebuilder publish` shows them. Safe to rerun and to kill.

    Example: rebuilder import-rebuilderd /var/lib/rebuilderd/rebuilderd.db
    """
    from jobs.importer.rebuilderd import import_rebuilderd as run_import

    opts: Options = ctx.obj
    config = support.rebuilder_config(opts)
    store = support.job_store(opts, config)
    summary = run_import(store, config, database)
    typer.echo(summary.line())
    for problem in summary.problems:
        typer.echo(f"import-rebuilderd: {problem}", err=True)


@app.command("check-config")
def check_config(
    ctx: typer.Context,
    worker_config: Annotated[Optional[Path], typer.Option(
        "--worker-config", envvar="REBUILDER_WORKER_CONFIG", help="Worker config file.")] = None,
    profiles: Annotated[Optional[Path], typer.Option(
        "--profiles", envvar="REBUILDER_SYNC_CONFIG", help="Sync profiles file.")] = None,
    no_host_checks: Annotated[bool, typer.Option(
        "--no-host-checks",
        help="Check the files only, not this machine (backend scripts, keyrings): for configs "
             "validated away from the host they are meant for, e.g. in a deployment repository's CI.")] = False,
    root: Annotated[Optional[Path], typer.Option(
        "--root", exists=True, file_okay=False, help="Check an installed tree (an image, a DESTDIR): default config files are read "
                       "from ROOT/etc and absolute paths in them (backend scripts, keyrings) are "
                       "looked up under ROOT.")] = None,
) -> None:
    """Load and validate every config file; print the effective settings as JSON.

    Then checks what a file alone cannot show: each backend script exists and is executable,
    each keyring is readable (not with --no-host-checks), each profile's sync method exists,
    some worker is trusted. Problems go to stderr, one line each ("error: FILE:KEY: what, fix");
    any error makes the exit status 1. A profile's Debian-only keys (releases, keyring,
    buildinfo_base_url) are not shown for an Arch profile, which never reads them.

    Example: rebuilder --config ./rebuilderd.conf check-config --profiles ./rebuilderd-sync.conf
    """
    from jobs.config_check import ERROR, Files
    from jobs.config_check import check_config as run_checks
    from jobs.core.config import load_rebuilder_config, load_sync_config, load_worker_config
    from jobs.core.config.load import ETC_DIR, REBUILDER_FILE, SYNC_FILE, WORKER_FILE, locate_config

    opts: Options = ctx.obj
    etc = root / ETC_DIR.relative_to("/") if root is not None else ETC_DIR
    located = {spec.filename: locate_config(spec, path, os.environ, etc)[0]
               for spec, path in ((REBUILDER_FILE, opts.config), (WORKER_FILE, worker_config), (SYNC_FILE, profiles))}
    config = load_rebuilder_config(opts.config, etc_dir=etc)
    wconf = load_worker_config(worker_config, etc_dir=etc)
    sync_config = load_sync_config(profiles, etc_dir=etc)
    worker_file = located[WORKER_FILE.filename]
    files = Files(str(located[REBUILDER_FILE.filename]), str(worker_file), str(located[SYNC_FILE.filename]),
                  worker_exists=worker_file.exists())
    effective = support.plain({"rebuilder": config, "worker": wconf, "sync": support.plain_sync(sync_config)})
    # The unset keys whose default is a path: what the jobs would use, not null (a worker's unset
    # work_dir is the directory it starts in: this one, for a worker started here).
    effective["rebuilder"]["publish"]["signing_key"] = config.publish.signing_key_path
    effective["worker"]["work_dir"] = wconf.work_dir if wconf.work_dir is not None else os.getcwd()
    typer.echo(json.dumps(effective, indent=2, sort_keys=True, default=str))
    problems = run_checks(config, wconf, sync_config, files, host=not no_host_checks, root=root)
    for problem in problems:
        typer.echo(f"rebuilder check-config: {problem.line()}", err=True)
    if any(p.severity == ERROR for p in problems):
        raise typer.Exit(EXIT_TERMINAL)


@app.command()
def keygen(
    path: Annotated[Path, typer.Argument(help="Where to write the PKCS#8 PEM private key.")],
) -> None:
    """Create an ed25519 signing key (the rebuilder's or a worker's) and print its public key.

    Example: rebuilder keygen /var/lib/rebuilderd/rebuilderd.sign.key
    """
    from jobs.core.signing import key_id, load_or_create_key, public_key_pem

    if path.exists():
        typer.echo(f"{path}: exists; refusing to overwrite a key", err=True)
        raise typer.Exit(EXIT_TERMINAL)
    key = load_or_create_key(path)
    typer.echo(public_key_pem(key.public_key()), nl=False)
    typer.echo(f"key id: {key_id(key.public_key())}")


def main() -> None:
    """Console-script entry point of `rebuilder`."""
    from jobs.core.progress import one_line_logs

    one_line_logs()
    run_app(app, "rebuilder")
