"""What `rebuilder check-config` finds beyond a file that parses: cross-key and host problems.

Parsing already refuses anything a single key or table gets wrong. These checks look at the
configuration as a whole and at the machine it is meant for:

- config only (always): a sync method `rebuilder sync` does not have, `supported_backends`
  naming a backend without a script, no trusted worker, a Debian profile without a keyring,
  profiles whose jobs the worker config cannot build (backend or architecture);
- host (skipped with ``host=False``): every backend script exists and is executable, every
  configured keyring is a readable file. With ``root`` these paths are looked up under that
  directory, as on an image or a ``DESTDIR`` tree before it is booted.

Each problem is one line naming the file, the key and the fix.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from jobs.core.config.kinds import Where
from jobs.core.config.rebuilderd_conf import RebuilderConfig
from jobs.core.config.sync_conf import SYNC_METHODS, SyncConfig, is_debian
from jobs.core.config.worker_conf import WorkerConfig

ERROR, WARNING = "error", "warning"
DEBIAN_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


@dataclass(frozen=True)
class Problem:
    """One finding: ``severity`` is ``error`` (the job would fail or be unsafe) or ``warning``."""

    severity: str
    where: str  # file:key
    message: str

    def line(self) -> str:
        """The problem as it is printed."""
        return f"{self.severity}: {self.where}: {self.message}"


@dataclass(frozen=True)
class Files:
    """Which file each config came from (for messages) and whether it exists at all."""

    rebuilder: str
    worker: str
    sync: str
    worker_exists: bool = True


def host_path(path: str, root: Path | None) -> Path:
    """Where an absolute path of the config is on the checked tree (``root``), else as it is."""
    p = Path(path).expanduser()
    if root is not None and p.is_absolute():
        return root / p.relative_to(p.anchor)
    return p


def _at(file: str, key: str) -> str:
    return f"{file}:{key}"


def check_config(config: RebuilderConfig, worker: WorkerConfig, sync: SyncConfig, files: Files, *,
                 host: bool = True, root: Path | None = None) -> list[Problem]:
    """Every problem found, errors and warnings, in file order."""
    problems: list[Problem] = []
    problems += _trust(config, files.rebuilder)
    problems += _worker(worker, files, host=host, root=root)
    problems += _sync(sync, files.sync, host=host, root=root)
    if files.worker_exists and worker.backend:
        problems += _unbuildable(worker, sync, files.sync)
    return problems


def _trust(config: RebuilderConfig, file: str) -> list[Problem]:
    if config.worker.authorized_workers or config.worker.signup_secret:
        return []
    return [Problem(WARNING, _at(file, "worker"),
                    "neither authorized_workers nor signup_secret is set: publish accepts no worker's "
                    "results (fine on a host that only syncs or builds)")]


def _worker(worker: WorkerConfig, files: Files, *, host: bool, root: Path | None) -> list[Problem]:
    out = []
    if files.worker_exists and not worker.backend:
        out.append(Problem(WARNING, _at(files.worker, "backend"),
                           'no [backend."<name>"] table: `rebuilder work` cannot start with this file'))
    for name in worker.supported_backends or ():
        if name not in worker.backend:
            out.append(Problem(ERROR, _at(files.worker, "supported_backends"),
                               f"backend {name!r} has no [backend.{_quote(name)}] path: add one or remove "
                               f"{name!r} from the list"))
    if host:
        for name, backend in worker.backend.items():
            if problem := _script_problem(name, backend.path, root):
                out.append(Problem(ERROR, _at(files.worker, f"backend.{_quote(name)}.path"), problem))
    return out


def _script_problem(name: str, path: str, root: Path | None) -> str | None:
    """Why backend ``name``'s script at ``path`` cannot be run, with the fix; None if it can."""
    found = host_path(path, root)
    shown = f"{path!r}" + (f" (checked at {str(found)!r})" if str(found) != path else "")
    fix = _install_hint(name, path)
    if not found.exists():
        return f"backend {name!r}: script {shown} does not exist; {fix}"
    if not found.is_file():
        return f"backend {name!r}: script {shown} is not a regular file; {fix}"
    if not os.access(found, os.X_OK):
        return f"backend {name!r}: script {shown} is not executable; fix: chmod 0755 {path}"
    return None


def _install_hint(name: str, path: str) -> str:
    """The shipped script to install at ``path``: the one the path is named after (the table is
    named after the distro, so ``[backend."archlinux"]`` may well name the archlinux-local
    script), else the one of the backend's name."""
    from jobs.work.backends import SHIPPED, shipped_backend
    base = Path(path).name
    kind = next((k for k, script in SHIPPED.items() if base in (script, f"rebuilder-backend-{k}")), name)
    if kind in SHIPPED:
        return f"install the shipped one: install -D -m 0755 {shipped_backend(kind)} {path}"
    return "install the script there or correct the path"


def _sync(sync: SyncConfig, file: str, *, host: bool, root: Path | None) -> list[Problem]:
    out = []
    for name, profile in sync.profiles.items():
        at = f"profile.{_quote(name)}"
        if profile.sync_method not in SYNC_METHODS:
            key = "sync_method" if profile.sync_method != profile.distro else "distro"
            out.append(Problem(ERROR, _at(file, f"{at}.{key}"),
                               f"no sync method {profile.sync_method!r}: `rebuilder sync` reads "
                               f"{' and '.join(SYNC_METHODS)} indexes only"))
            continue
        if not is_debian(profile):
            continue
        if profile.keyring is None:
            out.append(Problem(WARNING, _at(file, f"{at}.keyring"),
                               "not set: InRelease signatures are not verified, only the index hashes; "
                               f"set keyring = {DEBIAN_KEYRING!r} (package debian-archive-keyring)"))
        elif host:
            ring = host_path(profile.keyring, root)
            if not ring.is_file() or not os.access(ring, os.R_OK):
                what = "does not exist" if not ring.exists() else "is not a readable file"
                out.append(Problem(ERROR, _at(file, f"{at}.keyring"),
                                   f"{profile.keyring!r} {what}; install debian-archive-keyring or "
                                   "correct the path"))
    return out


def _unbuildable(worker: WorkerConfig, sync: SyncConfig, file: str) -> list[Problem]:
    """Profiles whose jobs this worker config cannot build (backend or architecture missing)."""
    from jobs.sync.run import backend_of
    from jobs.work.claim import expand_architectures

    backends = set(worker.supported_backends or ())
    archs = expand_architectures(worker.supported_architectures)
    out = []
    for name, profile in sync.profiles.items():
        if profile.sync_method not in SYNC_METHODS:
            continue
        backend = backend_of(profile)
        missing = [a for a in profile.architectures if "*" not in archs and a not in archs]
        if backend not in backends:
            why = f"its jobs need backend {backend!r}, which this worker does not have"
        elif missing:
            why = f"its jobs of architecture {', '.join(map(repr, missing))} are not in supported_architectures"
        else:
            continue
        out.append(Problem(WARNING, _at(file, f"profile.{_quote(name)}"),
                           f"{why}: this host builds none of them (fine if other workers do)"))
    return out


def _quote(name: str) -> str:
    return Where("").entry(name).key
