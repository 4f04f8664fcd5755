"""Backend ``archlinux-local``: rebuild an Arch package from its ``.BUILDINFO`` with makepkg, offline.

It follows rebuilderd's backend contract (see ``jobs.work.backends``)::

    REBUILDERD_OUTDIR=<dir> rebuilder-backend-archlinux-local <name>-<ver>-<arch>.pkg.tar.zst

The script ``rebuilder-archlinux-local`` next to this module runs the same thing, for a worker
config that names a file: ``[backend."archlinux"] path = "…/rebuilder-archlinux-local"``
(the table is the distro's: jobs name the backend by their profile's distro).

Environment (the worker passes its own environment through to the backend):

``REBUILDERD_OUTDIR``
    Required. The rebuilt packages of the pkgbase (every split package) are written here, under the
    file names makepkg gives them, which are the published names when the rebuild matches.
``REBUILDER_PKGBUILDS``
    Required. A directory holding ``<pkgbase>/PKGBUILD`` and the files next to it that the
    PKGBUILD's ``source=()`` names. The PKGBUILD's sha256 must equal ``pkgbuild_sha256sum``.
``REBUILDER_ARCHIVE``
    Required. Where the packages named by ``installed = name-ver-rel-arch`` are found: a directory,
    or a ``file://`` URL of one, holding ``name-ver-rel-arch.pkg.tar.{zst,xz,gz,bz2}`` either flat
    or in the layout of the Arch Linux Archive (``<first letter of name>/<name>/<file>``).
    http(s) archives are not supported yet: mirror the needed files into a directory.
``REBUILDER_BUILD_USER``
    The unprivileged user makepkg runs as (default ``builder``, created when missing).
``REBUILDER_BUILD_TIMEOUT``
    Seconds before the build is killed (default 86400, rebuilderd's ``[build] timeout``). The
    worker's own timeout applies as well.

What it does (docs/design.md#how-arch-packages-are-rebuilt, the same steps as archlinux-repro, without the network):
read and check ``.BUILDINFO``; check the PKGBUILD's sha256; find every ``installed`` package in
the archive and put exactly those into a private pacman root; write a makepkg.conf with the
recorded PACKAGER, BUILDENV and OPTIONS; run makepkg with ``SOURCE_DATE_EPOCH=builddate`` at
``/startdir`` and ``/build`` in a private mount namespace (``jobs.work.backends.makepkg``).

Limits: it needs root (for the mount namespace) and makepkg, pacman, fakeroot, bsdtar, zstd and
util-linux; it runs on Debian. The recorded ``builddir``/``startdir`` must be ``/build`` and
``/startdir``, and the package must be ``.pkg.tar.zst``. The zstd command and level are not
recorded in ``.BUILDINFO``; the pinned ones of ``jobs.work.backends.makepkg`` are used, and the host's
makepkg/fakeroot versions end up in ``.PKGINFO``. So packages published with that same recipe
(such as the fixture repository) can be reproduced; Arch's own packages need the ``archlinux``
backend.

Exit status: 0 when makepkg completed (the worker then compares, the result may still be BAD);
1 when the rebuild could not run; 2 for a usage or configuration error. On a non-zero status
the last line of output is ``rebuilder-backend: FAIL: <reason>``.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit
from urllib.request import url2pathname

from jobs.core.errors import TerminalError
from jobs.work.backends.buildinfo import Buildinfo, read_buildinfo
from jobs.work.backends.makepkg import BUILDDIR, PKGEXT, STARTDIR, BuildFailed, BuildSettings, build_package, host_carch
from jobs.work.backends.script import SetupError, UsageError, main_on_input
from jobs.work.backends.script import say as _say

USAGE = "usage: rebuilder-backend-archlinux-local <package file> (with REBUILDERD_OUTDIR set)"
# Arch packages have been published with each of these; pacman -U reads them all.
ARCHIVE_EXTENSIONS = (".pkg.tar.zst", ".pkg.tar.xz", ".pkg.tar.gz", ".pkg.tar.bz2")
DEFAULT_TIMEOUT = 86400.0


class RebuildRefused(TerminalError):
    """The input asks for something this backend cannot or will not do (exit status 1)."""


@dataclass(frozen=True)
class LocalConfig:
    """The backend's configuration, read from the environment."""

    outdir: Path
    pkgbuilds: Path
    archive: Path
    user: str = "builder"
    timeout: float = DEFAULT_TIMEOUT

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> LocalConfig:
        """Read and check REBUILDERD_OUTDIR, REBUILDER_PKGBUILDS, REBUILDER_ARCHIVE and the optional ones."""
        def required(name: str, what: str) -> str:
            value = env.get(name, "")
            if not value:
                raise SetupError(f"{name} is not set: it must name {what}")
            return value

        outdir = Path(required("REBUILDERD_OUTDIR", "the directory for the rebuilt packages"))
        pkgbuilds = Path(required("REBUILDER_PKGBUILDS", "a directory of <pkgbase>/PKGBUILD"))
        archive = _archive_dir(required("REBUILDER_ARCHIVE", "the directory of packages to install"))
        for name, path in (("REBUILDER_PKGBUILDS", pkgbuilds), ("REBUILDER_ARCHIVE", archive)):
            if not path.is_dir():
                raise SetupError(f"{name}: {path} is not a directory")
        try:
            timeout = float(env.get("REBUILDER_BUILD_TIMEOUT") or DEFAULT_TIMEOUT)
        except ValueError:
            raise SetupError("REBUILDER_BUILD_TIMEOUT must be a number of seconds") from None
        return cls(outdir=outdir, pkgbuilds=pkgbuilds, archive=archive,
                   user=env.get("REBUILDER_BUILD_USER") or "builder", timeout=timeout)


@dataclass(frozen=True)
class RebuildPlan:
    """Everything a rebuild needs, checked before anything is built."""

    buildinfo: Buildinfo
    pkgbuild_dir: Path
    installed: tuple[Path, ...]
    settings: BuildSettings


def plan_rebuild(package: Path, config: LocalConfig) -> RebuildPlan:
    """Read the package's .BUILDINFO and find its PKGBUILD and installed packages; raise if any is wrong."""
    if not package.is_file():
        raise UsageError(f"input package not found: {package}")
    if not package.name.endswith(PKGEXT):
        raise RebuildRefused(f"only {PKGEXT} packages can be rebuilt here (makepkg.conf pins PKGEXT), "
                             f"not {package.name}")
    info = read_buildinfo(package)
    carch = host_carch()
    if info.pkgarch not in ("any", carch):
        raise RebuildRefused(f"{info.pkgarch} packages cannot be built on this {carch} host")
    if (info.builddir, info.startdir) != (BUILDDIR, STARTDIR):
        raise RebuildRefused(f"the package was built with builddir={info.builddir} startdir={info.startdir}; "
                             f"this backend builds only at builddir={BUILDDIR} startdir={STARTDIR}")
    pkgbuild_dir = config.pkgbuilds / info.pkgbase
    pkgbuild = pkgbuild_dir / "PKGBUILD"
    if not pkgbuild.is_file():
        raise RebuildRefused(f"no PKGBUILD for {info.pkgbase} in {config.pkgbuilds}")
    actual = hashlib.sha256(pkgbuild.read_bytes()).hexdigest()
    if actual != info.pkgbuild_sha256sum:
        raise RebuildRefused(f"PKGBUILD checksum mismatch: expected {info.pkgbuild_sha256sum}, got {actual} "
                             f"({pkgbuild})")
    installed = []
    for entry in info.installed:
        found = find_installed(config.archive, entry)
        if found is None:
            raise RebuildRefused(f"installed package not in archive: {entry}")
        installed.append(found)
    settings = BuildSettings(carch=carch, packager=info.packager, source_date_epoch=info.builddate,
                             buildenv=info.buildenv, options=info.options, user=config.user)
    return RebuildPlan(buildinfo=info, pkgbuild_dir=pkgbuild_dir, installed=tuple(installed), settings=settings)


def find_installed(archive: Path, entry: str) -> Path | None:
    """The package file of ``name-ver-rel-arch`` in the archive (flat or Arch Linux Archive layout)."""
    name = entry.rsplit("-", 3)[0]
    for folder in (archive, archive / name[0] / name):
        for extension in ARCHIVE_EXTENSIONS:
            candidate = folder / f"{entry}{extension}"
            if candidate.is_file():
                return candidate
    return None


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Run the backend: returns the exit status; the last line says why when it is not 0."""

    def body(package: Path) -> int:
        config = LocalConfig.from_env(os.environ if env is None else env)
        with tempfile.TemporaryDirectory(prefix="rebuilder-archlinux-local-") as tmp:
            log = Path(tmp, "makepkg.log")
            log.touch()
            plan = plan_rebuild(package, config)
            info = plan.buildinfo
            _say(f"rebuilding {info.pkgbase} {info.pkgver} ({info.pkgarch}) from the .BUILDINFO of {package.name}")
            _say(f"recorded: {info.buildtool} {info.buildtoolver}, SOURCE_DATE_EPOCH={info.builddate}, "
                 f"{len(plan.installed)} installed package(s)")
            try:
                with _LogFollower(log, sys.stdout.buffer):
                    built = build_package(plan.pkgbuild_dir, config.outdir, settings=plan.settings, log=log,
                                          installed=plan.installed, timeout=config.timeout)
            except BuildFailed as e:  # read the log before the temporary directory goes
                raise TerminalError(f"makepkg failed to build {e.pkgbase}: {_makepkg_error(e.log)}") from None
        names = sorted(path.name for path in built)
        _say(f"rebuilt into {config.outdir}: {', '.join(names)}")
        if package.name not in names:
            _say(f"note: the rebuild did not produce {package.name}")
        return 0

    return main_on_input(argv, USAGE, body)


def _archive_dir(value: str) -> Path:
    if value.startswith("/"):
        return Path(value)
    parts = urlsplit(value)
    if parts.scheme in ("http", "https"):
        raise SetupError("REBUILDER_ARCHIVE: http(s) archives are not supported yet; mirror the packages "
                         "into a directory and name that")
    if parts.scheme == "file":
        return Path(url2pathname(parts.path))
    if parts.scheme:
        raise SetupError(f"REBUILDER_ARCHIVE: unsupported URL scheme {parts.scheme!r}")
    return Path(value)


def _makepkg_error(log: Path) -> str:
    """makepkg's own last '==> ERROR:' line, which says which step failed."""
    errors = re.findall(r"^==> ERROR: (.+)$", log.read_text(errors="replace"), re.MULTILINE)
    return errors[-1].strip() if errors else "see the log above"


class _LogFollower:
    """Copy what is appended to ``path`` to ``sink`` while the block runs.

    So the worker sees the log as it grows, in the blocks build_package writes it in, and a build
    that is stopped keeps the log it had: the log file is flushed when build_package unwinds.
    """

    def __init__(self, path: Path, sink: BinaryIO) -> None:
        self.path, self.sink = path, sink
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._copy, name="log-follower", daemon=True)

    def __enter__(self) -> None:
        sys.stdout.flush()
        self.thread.start()

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()

    def _copy(self) -> None:
        with open(self.path, "rb") as source:
            while True:
                finished = self.done.is_set()  # read once more after the build ended
                chunk = source.read(64 * 1024)
                if chunk:
                    try:
                        self.sink.write(chunk)
                        self.sink.flush()
                    except (OSError, ValueError):
                        return  # nobody reads our output any more; the build goes on
                elif finished:
                    return
                else:
                    self.done.wait(0.1)


if __name__ == "__main__":
    sys.exit(main())
