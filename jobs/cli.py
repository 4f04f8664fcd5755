"""`rebuilder`: the scheduled jobs (sync, work, publish, run) and a few operator tools.

Each command parses its arguments, calls one function of `jobs.*` and turns domain
errors into a clean exit: 1 for a terminal error, 75 (EX_TEMPFAIL) for a transient one
so that a scheduler can simply try again, 3 for a job that is not built yet.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from jobs.core.errors import RebuilderError

EXIT_TERMINAL = 1
EXIT_NOT_BUILT = 3
EXIT_TRANSIENT = 75

app = typer.Typer(
    name="rebuilder",
    help="A rebuilder without a daemon: sync distro indexes, rebuild packages, publish verdicts.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # credentials live in locals
    add_completion=False,
    rich_markup_mode=None,  # plain help text: option help shows "[default: …]" literally
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
) -> None:
    ctx.obj = Options(config=config, store=store)


def _not_built(job: str, issue: int) -> None:
    typer.echo(f"rebuilder {job}: this job is not implemented yet (tracked in issue #{issue}); "
               "nothing was read or written.", err=True)
    raise typer.Exit(EXIT_NOT_BUILT)


@app.command()
def sync(
    ctx: typer.Context,
    profile: Annotated[Optional[list[str]], typer.Argument(
        help="Profiles to sync [default: all in the sync config].")] = None,
    profiles: Annotated[Optional[Path], typer.Option(
        "--profiles", envvar="REBUILDER_SYNC_CONFIG",
        help="Sync profiles file [default: /etc/rebuilderd-sync.conf].")] = None,
) -> None:
    """Read distro indexes and write package state and the queue.

    Prints one summary line per profile; a profile whose index is malformed, corrupt or
    unreachable changes nothing and makes the command exit non-zero (75 if retrying later
    may help), after the other profiles were synced.

    Example: rebuilder sync archlinux-core
    """
    from jobs.core.config import load_sync_config
    from jobs.sync.fetch import Fetcher
    from jobs.sync.job import sync_profile

    opts: Options = ctx.obj
    config = _rebuilder_config(opts)
    sync_config = load_sync_config(profiles)
    names = profile or list(sync_config.profiles)
    if not names:
        raise typer.BadParameter("no sync profiles configured", param_hint="--profiles")
    chosen = [sync_config.profile(n) for n in names]
    store = _open_store(opts, config)
    fetcher = Fetcher()
    worst = 0
    for p in chosen:
        try:
            with _progress(f"syncing {p.name}"):
                summary = sync_profile(store, config, p, fetcher=fetcher)
            typer.echo(summary.line())
        except RebuilderError as exc:
            typer.echo(f"sync {p.name}: failed, nothing changed: {exc}", err=True)
            worst = max(worst, EXIT_TRANSIENT if exc.transient else EXIT_TERMINAL)
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
    --once after one job. Prints one summary line when it stops.

    Example: rebuilder work --name worker1 --once
    """
    import signal

    from jobs.core.config import load_worker_config
    from jobs.work.identity import load_identity
    from jobs.work.loop import Worker

    opts: Options = ctx.obj
    config = _rebuilder_config(opts)
    wconf = load_worker_config(worker_config)
    backends = _worker_backends(wconf)  # before a key is created in the work dir
    worker = Worker(store=_open_store(opts, config), config=config, worker_config=wconf,
                    identity=load_identity(wconf, name), backends=backends, env=dict(os.environ))
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: worker.stop.set())
    stats = worker.run(once=once)
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
    from jobs.core.store import open_store
    from jobs.publish.run import publish as run_publish

    opts: Options = ctx.obj
    config = _rebuilder_config(opts)
    store = _open_store(opts, config)
    site_store = open_store(config.store.site_url) if config.store.site_url else None
    with _progress("publishing"):
        summary = run_publish(store, config, site_store=site_store, site_prefix="" if site_store else "site/")
    typer.echo(summary.line())
    for rejected in summary.state.rejected[:20]:
        typer.echo(f"publish: rejected {rejected.key}: {rejected.reason}", err=True)


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

    Example: rebuilder --store file:///var/lib/rebuilder run --workers 2 --budget 3600
    """
    import signal

    from jobs.core.config import load_sync_config, load_worker_config
    from jobs.core.store import open_store
    from jobs.cycle import run_cycle

    opts: Options = ctx.obj
    config = _rebuilder_config(opts)
    wconf = load_worker_config(worker_config)
    backends = _worker_backends(wconf)
    sync_config = load_sync_config(profiles)
    store = _open_store(opts, config)
    site_store = open_store(config.store.site_url) if config.store.site_url else None
    import threading
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    summary = run_cycle(store, config, sync_config, wconf, backends, workers=workers, budget=budget,
                        env=dict(os.environ), stop=stop, site_store=site_store)
    for line in summary.lines():
        typer.echo(line)
    if summary.failed_syncs:
        raise typer.Exit(EXIT_TERMINAL)


@app.command()
def serve(
    ctx: typer.Context,
    bind: Annotated[Optional[str], typer.Option("--bind", help="host:port [default: [http] bind_addr].")] = None,
) -> None:
    """Serve the store's published site over HTTP (previews and the demo; production uses any static host).

    Example: rebuilder --store file:///var/lib/rebuilder serve --bind 127.0.0.1:8484
    """
    from jobs.core.store import open_store
    from jobs.publish.serve import make_server

    opts: Options = ctx.obj
    config = _rebuilder_config(opts)
    if config.store.site_url:
        store, prefix = open_store(config.store.site_url), ""
    else:
        store, prefix = _open_store(opts, config), "site/"
    _serve_until_interrupted(make_server(store, bind or config.http.bind_addr, prefix=prefix),
                             f"serving {store.url}/{prefix} at")


@app.command()
def demo(
    directory: Annotated[Path, typer.Argument(help="Where the demo keeps its repository, configs and store.")] = Path(
        "rebuilder-demo"),
    bind: Annotated[str, typer.Option("--bind", help="host:port to serve the site on.")] = "127.0.0.1:8484",
    no_serve: Annotated[bool, typer.Option("--no-serve", help="Run the cycle, print, and exit.")] = False,
) -> None:
    """The embedded default end to end: build a fixture Arch repository with makepkg, sync it,
    rebuild it with two workers, publish, and serve the site.

    Needs root (makepkg builds in mount namespaces as the 'builder' user) and Debian's makepkg,
    pacman-package-manager, libarchive-tools, zstd, fakeroot, gcc and diffoscope-minimal.

    Example: sudo rebuilder demo /var/tmp/rebuilder-demo
    """
    from jobs.demo.run import run_demo
    from jobs.publish.serve import make_server

    with _progress("building the fixture repository and running one cycle"):
        result = run_demo(directory)
    for line in result.summary.lines():
        typer.echo(line)
    typer.echo(f"configs: {result.directory}/rebuilderd{{,-sync,-worker}}.conf; store: {result.store.url}")
    typer.echo(_status_text(result.store))
    if no_serve:
        return
    _serve_until_interrupted(make_server(result.store, bind), "site (Ctrl-C stops):")


def _serve_until_interrupted(server, what: str) -> None:
    """Print where the site is served, then serve until Ctrl-C."""
    host, port = server.server_address[:2]
    typer.echo(f"{what} http://{host}:{port}/")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def _worker_backends(wconf) -> dict[str, Path]:
    """The backends a worker config enables, checked before anything is created."""
    from jobs.work.loop import check_backends
    backends = {b: Path(wconf.backend[b].path) for b in (wconf.supported_backends or wconf.backend)
                if b in wconf.backend}
    check_backends(backends)
    return backends


def _status_text(store) -> str:
    """What `rebuildctl -H <the store's site> status` prints (the real command, as a user runs it)."""
    import subprocess

    site = f"{store.url}/site"
    exe = Path(sys.executable).with_name("rebuildctl")
    if not exe.exists():
        return f"status: run `rebuildctl -H {site} status`"
    res = subprocess.run([str(exe), "-H", site, "status"], capture_output=True, text=True, timeout=60)
    return f"$ rebuildctl -H {site} status\n{res.stdout}{res.stderr}".rstrip()


@app.command("check-config")
def check_config(
    ctx: typer.Context,
    worker_config: Annotated[Optional[Path], typer.Option(
        "--worker-config", envvar="REBUILDER_WORKER_CONFIG", help="Worker config file.")] = None,
    profiles: Annotated[Optional[Path], typer.Option(
        "--profiles", envvar="REBUILDER_SYNC_CONFIG", help="Sync profiles file.")] = None,
) -> None:
    """Load and validate every config file; print the effective settings as JSON.

    Example: rebuilder --config ./rebuilderd.conf check-config --profiles ./rebuilderd-sync.conf
    """
    from jobs.core.config import load_rebuilder_config, load_sync_config, load_worker_config

    opts: Options = ctx.obj
    effective = {
        "rebuilder": load_rebuilder_config(opts.config),
        "worker": load_worker_config(worker_config),
        "sync": load_sync_config(profiles),
    }
    typer.echo(json.dumps(_plain(effective), indent=2, sort_keys=True, default=str))


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


@contextmanager
def _progress(what: str) -> Iterator[None]:
    """A spinner on a terminal; nothing at all when stderr is a file or a pipe (cron, CI)."""
    if not sys.stderr.isatty():
        yield
        return
    from rich.console import Console
    with Console(stderr=True).status(what):
        yield


def _rebuilder_config(opts: Options):
    from jobs.core.config import load_rebuilder_config
    return load_rebuilder_config(opts.config)


def default_store_url(env: dict[str, str] | None = None) -> str:
    """The embedded default: a local directory under $XDG_DATA_HOME (~/.local/share/rebuilder)."""
    env = dict(os.environ if env is None else env)
    base = Path(env.get("XDG_DATA_HOME") or Path(env.get("HOME", "~")).expanduser() / ".local" / "share")
    return (base / "rebuilder").absolute().as_uri()


def _open_store(opts: Options, config):
    """The store named by --store / REBUILDER_STORE, else [store] url, else the embedded default."""
    from jobs.core.store import open_store
    return open_store(opts.store or config.store.url or default_store_url())


def _plain(value: Any) -> Any:
    """Dataclasses (and containers of them) as JSON-able values, secrets masked."""
    if is_dataclass(value) and not isinstance(value, type):
        value = asdict(value)
    if isinstance(value, dict):
        return {str(k): ("***" if k in ("cookie", "signup_secret") and v else _plain(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def run_app(typer_app: typer.Typer, prog: str) -> None:
    """Run a typer app, turning this project's errors into one clear line and an exit code.

    The process ends through `jobs.core.shutdown.exit_process`: Python's clean-up, then
    `os._exit`, so that pyarrow's native thread pools cannot abort it at exit (status 134).
    """
    from jobs.core.shutdown import exit_code, exit_process

    code = 0
    try:
        typer_app(prog_name=prog, standalone_mode=True)
    except RebuilderError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        code = EXIT_TRANSIENT if exc.transient else EXIT_TERMINAL
    except SystemExit as exc:
        code = exit_code(exc)
    except Exception:  # a bug: the traceback as Python (or typer) prints it, then the same clean exit
        sys.excepthook(*sys.exc_info())
        code = EXIT_TERMINAL
    exit_process(code)


def main() -> None:
    """Console-script entry point of `rebuilder`."""
    run_app(app, "rebuilder")
