"""`rebuilder demo`: the embedded default, end to end, on one machine.

Builds the fixture repository with makepkg (one split package, one with an epoch, one
deliberately unreproducible, one that fails to build), writes the three config files
(kept in the demo directory so an operator can read them), runs one cycle — sync, two
workers, publish — into a local-directory store, and returns what to serve. Everything
lives under one directory; running it again reuses the built repository and the store.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from jobs.core.config import load_rebuilder_config, load_sync_config, load_worker_config
from jobs.core.signing import ensure_key
from jobs.core.store import LocalStore
from jobs.cycle import CycleSummary, run_cycle
from jobs.demo.archrepo import FixtureRepo, build_fixture_repo, load_fixture_repo
from jobs.work.backends import shipped_backend


@dataclass
class Demo:
    """What the demo made: where the store is, and what one cycle did."""

    directory: Path
    store: LocalStore
    repo: FixtureRepo
    summary: CycleSummary


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


def demo_backend() -> Path:
    """The archlinux-local backend as the installed console script, which a reinstall recreates
    at the same path (beside this Python, else on PATH); a path inside the package would vanish
    when the package is reinstalled another way (wheel ↔ editable). The script shipped in the
    source tree only when nothing is installed."""
    beside = Path(sys.executable).parent / BACKEND_SCRIPT
    if beside.is_file():
        return beside
    found = shutil.which(BACKEND_SCRIPT)
    return Path(found) if found else shipped_backend("archlinux-local")


def write_configs(directory: Path, repo: FixtureRepo) -> tuple[Path, Path, Path]:
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
    sync.write_text(f'[profile."demo"]\ndistro = "archlinux"\ncomponents = ["{repo.repo}"]\n'
                    f'architectures = ["{repo.arch}"]\nsource = "{repo.root.as_uri()}/$repo/os/$arch"\n')
    worker = directory / "rebuilderd-worker.conf"
    worker.write_text(f'signup_secret = "{signup}"\nsupported_architectures = ["{repo.arch}"]\n'
                      f'work_dir = "{directory / "workers"}"\n[build]\ntimeout = 600\nsilent = true\n'
                      f'[diffoscope]\nenabled = true\ntimeout = 300\n'
                      f'[backend."archlinux"]\npath = "{demo_backend()}"\n')
    return conf, sync, worker


def run_demo(directory: Path, *, workers: int = 2) -> Demo:
    """Build (or reuse) the fixture repository, then sync → work → publish into a local store."""
    directory = directory.absolute()
    directory.mkdir(parents=True, exist_ok=True)
    try:
        repo = load_fixture_repo(directory / "repo")
    except FileNotFoundError:
        repo = build_fixture_repo(directory / "repo")
    conf, sync, worker = write_configs(directory, repo)
    config = load_rebuilder_config(conf)
    wconf = load_worker_config(worker)
    store = LocalStore(directory / "store")
    env = {**os.environ, "REBUILDER_ARCHIVE": str(repo.archive_dir), "REBUILDER_PKGBUILDS": str(repo.pkgbuild_dir)}
    summary = run_cycle(store, config, load_sync_config(sync), wconf, {"archlinux": demo_backend()},
                        workers=workers, env=env)
    return Demo(directory, store, repo, summary)
