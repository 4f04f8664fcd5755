"""`rebuilder demo`: the embedded default, end to end, on one machine.

Builds the fixture repositories of the distros asked for — Arch Linux with makepkg (one split
package, one with an epoch, one deliberately unreproducible, one that fails to build), Debian
with dpkg-buildpackage in an mmdebstrap root (jobs/demo/debrepo.py: reproducible, arch:all,
binNMU, unreproducible, and one whose build dependency version is gone) — writes the three
config files (kept in the demo directory so an operator can read them), runs one cycle — sync,
two workers, publish — into a local-directory store, and returns what to serve. Everything
lives under one directory; running it again reuses the built repositories and the store.

Debian's build roots (mmdebstrap tarballs, ~450 MB each) are kept in
``REBUILDER_DEBIAN_ROOT_CACHE`` (default ``<directory>/debian-roots``): with them there, the
Debian demo runs offline; without, it says what it downloads, and from where, before it does.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from jobs.core import progress
from jobs.core.config import load_rebuilder_config, load_sync_config, load_worker_config
from jobs.core.errors import RebuilderError, TerminalError
from jobs.core.signing import ensure_key
from jobs.core.store import LocalStore
from jobs.cycle import CycleSummary, run_cycle
from jobs.demo.archrepo import FixtureRepo, build_fixture_repo, load_fixture_repo
from jobs.demo.debrepo import SUITE as DEBIAN_SUITE
from jobs.demo.debrepo import (
    UNBUILDABLE,
    DebianRepo,
    build_debian_repo,
    fixture_root,
    host_archive_line,
    load_debian_repo,
    require_debian_host,
)
from jobs.work.backends import shipped_backend
from jobs.work.backends.debian_buildinfo import read_buildinfo
from jobs.work.backends.debian_config import SourceLine, parse_sources
from jobs.work.backends.debian_root import cached_root, host_architecture

DISTROS = ("archlinux", "debian")


@dataclass
class Demo:
    """What the demo made: where the store is, and what one cycle did."""

    directory: Path
    store: LocalStore
    repo: FixtureRepo | None
    summary: CycleSummary
    debian: DebianRepo | None = None
    stopped: bool = False  # Ctrl-C (or SIGTERM) stopped the builds: what was done is published


STOPPING = ("demo: stopping: the running builds are stopped and their claims released; publishing what "
            "is done (run the demo again to build the rest)")


@contextlib.contextmanager
def _signals_stop(stop: threading.Event) -> Iterator[None]:
    """While the cycle runs, Ctrl-C (SIGINT) or SIGTERM sets ``stop``, as for `rebuilder run`.

    Without this, Ctrl-C ended only the main thread: the worker threads went on building the
    whole queue silently, and nothing was published (a second Ctrl-C left claims held until
    their lease expired). Now the workers stop their builds and release their claims, publish
    runs, and the demo ends.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    asked = threading.Event()
    finished = False

    def announce() -> None:
        # Not from the handler: it runs in the main thread, which may hold the output's lock.
        asked.wait()
        if not finished:
            progress.line(STOPPING)

    def handler(signum: int, frame: object) -> None:
        stop.set()
        asked.set()

    announcer = threading.Thread(target=announce, name="demo-stop", daemon=True)
    announcer.start()
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        finished = not stop.is_set()
        asked.set()
        announcer.join(timeout=10)


def _demo_secrets(path: Path) -> tuple[str, str]:
    """The demo's signup secret and admin cookie: made once, then read back."""
    try:
        signup, cookie = path.read_text().split()
        return signup, cookie
    except (OSError, ValueError):
        signup, cookie = secrets.token_hex(32), secrets.token_hex(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"{signup}\n{cookie}\n")
        return signup, cookie


BACKEND_SCRIPT = "rebuilder-backend-archlinux-local"


def demo_backend(name: str = "archlinux-local") -> Path:
    """A local backend as the installed console script, which a reinstall recreates
    at the same path (beside this Python, else on PATH); a path inside the package would vanish
    when the package is reinstalled another way (wheel ↔ editable). The script shipped in the
    source tree only when nothing is installed."""
    script = f"rebuilder-backend-{name}"
    beside = Path(sys.executable).parent / script
    if beside.is_file():
        return beside
    found = shutil.which(script)
    return Path(found) if found else shipped_backend(name)


def write_configs(directory: Path, repo: FixtureRepo | None,
                  debian: DebianRepo | None = None) -> tuple[Path, Path, Path]:
    """The demo's rebuilderd.conf, rebuilderd-sync.conf and rebuilderd-worker.conf."""
    conf = directory / "rebuilderd.conf"
    # Random secrets (weak ones are refused) kept for the next run, whose workers are enrolled
    # with them already, and the rebuilder key (a configured key must exist).
    signup, cookie = _demo_secrets(directory / "demo-secrets")
    ensure_key(directory / "rebuilderd.sign.key")
    conf.write_text(f'[worker]\nsignup_secret = "{signup}"\n[auth]\ncookie = "{cookie}"\n'
                    f'[publish]\nsigning_key = "{directory / "rebuilderd.sign.key"}"\n'
                    f'[store]\nurl = "{(directory / "store").as_uri()}"\n')
    sync = directory / "rebuilderd-sync.conf"
    profiles, archs, backends = [], [], []
    if repo is not None:
        profiles.append(f'[profile."demo"]\ndistro = "archlinux"\ncomponents = ["{repo.repo}"]\n'
                        f'architectures = ["{repo.arch}"]\nsource = "{repo.root.as_uri()}/$repo/os/$arch"\n')
        archs.append(repo.arch)
        backends.append(f'[backend."archlinux"]\npath = "{demo_backend()}"\n')
    if debian is not None:
        profiles.append(f'[profile."demo-debian"]\ndistro = "debian"\nsource = "{debian.repo.as_uri()}"\n'
                        f'releases = ["{DEBIAN_SUITE}"]\ncomponents = ["main"]\n'
                        f'architectures = ["all", "{debian.arch}"]\nkeyring = "{debian.keyring}"\n'
                        f'buildinfo_base_url = "{debian.buildinfo_dir.as_uri()}"\n')
        archs += [debian.arch, "all"]
        backends.append(f'[backend."debian"]\npath = "{demo_backend("debian-local")}"\n')
    sync.write_text("\n".join(profiles))
    worker = directory / "rebuilderd-worker.conf"
    supported = ", ".join(f'"{a}"' for a in dict.fromkeys(archs))
    worker.write_text(f'signup_secret = "{signup}"\nsupported_architectures = [{supported}]\n'
                      f'work_dir = "{directory / "workers"}"\n[build]\ntimeout = 1800\nsilent = true\n'
                      f'[diffoscope]\nenabled = true\ntimeout = 300\n' + "".join(backends))
    return conf, sync, worker


def debian_root_cache(directory: Path, env: Mapping[str, str] | None = None) -> Path:
    """Where the Debian demo keeps its build roots: REBUILDER_DEBIAN_ROOT_CACHE, else <directory>/debian-roots."""
    cache = (os.environ if env is None else env).get("REBUILDER_DEBIAN_ROOT_CACHE")
    return Path(cache) if cache else directory / "debian-roots"


def _say_debian_downloads(root: Path, archive: SourceLine, what: str) -> None:
    if root.is_file():
        progress.line(f"debian demo: {what}: cached ({root}), nothing to download")
    else:
        progress.line(f"debian demo: {what}: not cached; mmdebstrap downloads it from {archive.uri} "
                      f"{archive.suite} (~100 packages, ~450 MB unpacked) into {root.parent}")


def debian_demo_repo(directory: Path, cache: Path) -> DebianRepo:
    """The Debian fixture repository under ``directory/debian``: reused, else built (saying what it downloads)."""
    base = directory / "debian"
    try:
        repo = load_debian_repo(base)
        progress.line(f"debian demo: repository from {base} (built before)")
    except FileNotFoundError:
        why = require_debian_host()
        if why:
            raise TerminalError(f"rebuilder demo --distro debian: this host cannot build the Debian fixture: "
                                   f"{why}") from None
        archive = host_archive_line()
        assert archive is not None  # require_debian_host checked it
        _say_debian_downloads(fixture_root(archive, host_architecture(), cache), archive,
                              "the build root of the fixture packages")
        log = directory / "debian-build.log"
        progress.line(f"debian demo: building the fixture packages (mmdebstrap and dpkg-buildpackage output: {log})")
        try:
            with open(log, "a") as out, contextlib.redirect_stdout(out):
                repo = build_debian_repo(base, cache=cache, say=progress.line)
        except (RebuilderError, OSError, subprocess.SubprocessError) as e:
            raise TerminalError(f"building the Debian fixture failed: {e} (its log: {log})") from None
    sources = parse_sources(repo.sources_text)
    pinned = {tuple(f"{n}={v}" for n, v in read_buildinfo(path).installed) for path in repo.buildinfos()
              if path.parent.name not in UNBUILDABLE}
    for includes in sorted(pinned):
        _say_debian_downloads(cached_root(cache, sources, arch=repo.arch, includes=includes), repo.archive,
                              f"the rebuilds' root ({len(includes)} pinned build dependencies)")
    return repo


def run_demo(directory: Path, *, workers: int = 2, distros: tuple[str, ...] = ("archlinux",)) -> Demo:
    """Build (or reuse) the fixture repositories, then sync → work → publish into a local store."""
    unknown = [d for d in distros if d not in DISTROS]
    if unknown or not distros:
        raise ValueError(f"demo distros are {', '.join(DISTROS)}; got {', '.join(distros) or 'none'}")
    directory = directory.absolute()
    directory.mkdir(parents=True, exist_ok=True)
    repo = None
    if "archlinux" in distros:
        try:
            repo = load_fixture_repo(directory / "repo")
        except FileNotFoundError:
            progress.line(f"archlinux demo: building the fixture packages with makepkg (logs: {directory / 'repo' / 'logs'})")
            repo = build_fixture_repo(directory / "repo")
    backend_env: dict[str, str] = {}
    debian = None
    backends = {}
    if repo is not None:
        backend_env.update(REBUILDER_ARCHIVE=str(repo.archive_dir), REBUILDER_PKGBUILDS=str(repo.pkgbuild_dir))
        backends["archlinux"] = demo_backend()
    if "debian" in distros:
        cache = debian_root_cache(directory)
        debian = debian_demo_repo(directory, cache)
        sources = directory / "debian-sources.list"
        sources.write_text(debian.sources_text)
        backend_env.update(REBUILDER_DEBIAN_SOURCES=str(sources), REBUILDER_DEBIAN_ROOT_CACHE=str(cache),
                           REBUILDER_DEBIAN_BUILDINFO_KEYRING=str(debian.keyring))
        backends["debian"] = demo_backend("debian-local")
    # What the backends read from the worker's environment, for running the cycle again by hand.
    (directory / "rebuilderd-worker.env").write_text(
        "".join(f"export {k}={shlex.quote(v)}\n" for k, v in backend_env.items()))
    env = {**os.environ, **backend_env}
    conf, sync, worker = write_configs(directory, repo, debian)
    config = load_rebuilder_config(conf)
    wconf = load_worker_config(worker)
    store = LocalStore(directory / "store")
    stop = threading.Event()
    with _signals_stop(stop):
        summary = run_cycle(store, config, load_sync_config(sync), wconf, backends, workers=workers, env=env,
                            stop=stop)
    return Demo(directory, store, repo, summary, debian, stopped=stop.is_set())
