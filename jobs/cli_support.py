"""What `rebuilder`'s commands share (jobs/cli.py): configs, the store, progress, serving, plain values.

Kept apart from the command definitions so that jobs/cli.py is the commands, their parameters
and their help; what a command needs beyond these is imported when it runs. `sync`'s and
`publish`'s bodies are here too, without typer, so that the console script's fast start
(jobs/cli_fast.py) runs the same code as the typer commands.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any


def rebuilder_config(opts):
    """The rebuilder config: --config / REBUILDER_CONFIG, else the default file (or the defaults)."""
    from jobs.core.config import load_rebuilder_config
    return load_rebuilder_config(opts.config)


def default_store_url(env: dict[str, str] | None = None) -> str:
    """The embedded default: a local directory under $XDG_DATA_HOME (~/.local/share/rebuilder)."""
    env = dict(os.environ if env is None else env)
    base = Path(env.get("XDG_DATA_HOME") or Path(env.get("HOME", "~")).expanduser() / ".local" / "share")
    return (base / "rebuilder").absolute().as_uri()


def job_store(opts, config):
    """The store named by --store / REBUILDER_STORE, else [store] url, else the embedded default."""
    from jobs.core.store import open_store
    return open_store(opts.store or config.store.url or default_store_url())


class NoProfiles(Exception):
    """The sync config names no profile and none was asked for (typer's usage error, exit 2)."""


def sync(opts, names: list[str] | None, profiles: Path | None, retries: int, timeout: float, echo) -> int:
    """`rebuilder sync`'s body: sync each profile named (all configured ones if none), one line each; its exit
    status. Shared by the typer command (jobs/cli.py) and the fast start (jobs/cli_fast.py)."""
    from jobs.core.cliapp import EXIT_TERMINAL, EXIT_TRANSIENT
    from jobs.core.config import load_sync_config
    from jobs.core.errors import RebuilderError
    from jobs.sync.fetch import Fetcher
    from jobs.sync.run import sync_profile

    config = rebuilder_config(opts)
    sync_config = load_sync_config(profiles)
    names = names or list(sync_config.profiles)
    if not names:
        from jobs.core.config.load import SYNC_FILE, locate_config

        file, _ = locate_config(SYNC_FILE, profiles, os.environ)
        why = 'has no [profile."<name>"] table' if file.exists() else "does not exist"
        raise NoProfiles(f"no sync profiles configured: {file} {why}")
    chosen = [sync_config.profile(n) for n in names]
    store = job_store(opts, config)
    fetcher = Fetcher(retries=retries, timeout=timeout)
    worst = 0
    with progress_bars():
        for p in chosen:
            try:
                summary = sync_profile(store, config, p, fetcher=fetcher)
                echo(summary.line())
            except RebuilderError as exc:  # above the bars on a terminal, whole (not wrapped at its width)
                from jobs.core import progress

                progress.line(f"sync {p.name}: failed, nothing changed: {exc}")
                worst = max(worst, EXIT_TRANSIENT if exc.transient else EXIT_TERMINAL)
    return worst


def publish(opts, echo) -> None:
    """`rebuilder publish`'s body: publish the store, print the summary line and (on stderr) up to 20 of each kind
    of refusal. Shared by the typer command (jobs/cli.py) and the fast start (jobs/cli_fast.py)."""
    from jobs.core.layout import SITE
    from jobs.core.store import open_store
    from jobs.publish.run import publish as run_publish

    config = rebuilder_config(opts)
    store = job_store(opts, config)
    site_store = open_store(config.store.site_url) if config.store.site_url else None
    with progress_bars():
        summary = run_publish(store, config, site_store=site_store, site_prefix="" if site_store else SITE)
    from jobs.core.progress import printable  # keys and details are a worker's bytes: one line each

    echo(summary.line())
    for rejected in summary.state.rejected[:20]:
        echo(printable(f"publish: rejected {rejected.key}: {rejected.reason}"), err=True)
    for refused in summary.state.untrusted_workers[:20]:
        echo(printable(f"publish: refused enrolment {refused.key}: {refused.reason} {refused.detail}"), err=True)
    for request in summary.state.requests_rejected[:20]:
        echo(printable(f"publish: rejected request {request.key}: {request.reason} {request.detail}"), err=True)


@contextmanager
def progress_bars() -> Iterator[None]:
    """Progress bars on a terminal; plain lines when stderr is a file, a pipe or the journal."""
    from jobs.core import progress
    with progress.use(progress.for_terminal()):
        yield


def worker_backends(wconf, path: Path | None = None) -> dict[str, Path]:
    """The backends a worker config enables, checked before anything is created; an error names
    the file they came from (``path``: what --worker-config gave), and says when it does not exist."""
    from jobs.core.config.load import WORKER_FILE, locate_config
    from jobs.work.run import check_backends
    backends = {b: Path(wconf.backend[b].path) for b in (wconf.supported_backends or wconf.backend)
                if b in wconf.backend}
    file, _ = locate_config(WORKER_FILE, path, os.environ)
    check_backends(backends, path=str(file), missing=not file.exists())
    return backends


def warn_if_unpublished(store, prefix: str) -> None:
    """Say so when nothing is published where `serve` looks (a mistyped --store serves only 404s)."""
    from jobs.core.errors import RebuilderError
    from jobs.core.store import NotFound

    try:
        store.head(prefix + "index.html")
    except NotFound:
        print(f"rebuilder serve: warning: nothing is published at {store.url}/{prefix} (no index.html): "
              "every page is a 404 until `rebuilder publish` runs on this store; check --store "
              "(or [store] url, site_url)", file=sys.stderr, flush=True)
    except (OSError, RebuilderError) as exc:  # unreachable now: serving may still work later
        print(f"rebuilder serve: warning: cannot look at {store.url}/{prefix}: {exc}", file=sys.stderr, flush=True)


def serve_until_interrupted(server, what: str) -> None:
    """Print where the site is served, then serve until Ctrl-C (or SIGTERM), and exit quietly.

    The first signal stops serving and the rest are ignored: a second Ctrl-C (or the same
    signal sent to the process and to its group) during the shutdown prints no traceback.
    """
    import signal

    def stop(signum, frame) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt

    host, port = server.server_address[:2]
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, stop)
        import typer

        typer.echo(f"{what} http://{host}:{port}/")
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def status_text(store) -> str:
    """What `rebuildctl -H <the store's site> status` prints (the real command, as a user runs it)."""
    import subprocess

    site = f"{store.url}/site"
    exe = Path(sys.executable).with_name("rebuildctl")
    if not exe.exists():
        return f"status: run `rebuildctl -H {site} status`"
    res = subprocess.run([str(exe), "-H", site, "status"], capture_output=True, text=True, timeout=60)
    return f"$ rebuildctl -H {site} status\n{res.stdout}{res.stderr}".rstrip()


def plain(value: Any) -> Any:
    """Dataclasses (and containers of them) as JSON-able values, secrets masked."""
    if is_dataclass(value) and not isinstance(value, type):
        value = asdict(value)
    if isinstance(value, dict):
        return {str(k): ("***" if k in ("cookie", "signup_secret") and v else plain(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def plain_sync(sync_config) -> dict:
    """The sync config as shown: a profile's keys its parser never reads are left out."""
    from jobs.core.config.sync_conf import DEBIAN_ONLY_KEYS, is_debian

    profiles = {}
    for name, profile in sync_config.profiles.items():
        shown = plain(profile)
        if not is_debian(profile):
            for key in DEBIAN_ONLY_KEYS:
                shown.pop(key, None)
        profiles[name] = shown
    return {"profiles": profiles}
