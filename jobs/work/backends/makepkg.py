"""Build one PKGBUILD with makepkg so that a second build gives the same bytes.

This is the recipe the fixture repository is published with, and the one a rebuild must repeat
(docs/design.md#how-arch-packages-are-rebuilt, makepkg on Debian):

* makepkg runs as an unprivileged user (it refuses root), with a clean environment, a fixed
  ``SOURCE_DATE_EPOCH`` and a private ``makepkg.conf`` (``--config``). That file pins PACKAGER,
  BUILDENV, OPTIONS, PKGEXT and the zstd command, so the host's ``/etc/makepkg.conf`` does not
  matter. Debian ships ``PKGEXT='.pkg.tar.gz'``, for example. ``--config`` also turns off
  ``~/.makepkg.conf``.
* The build happens at the paths that ``.BUILDINFO`` records, ``startdir=/startdir`` and
  ``builddir=/build``, as Arch's devtools do. Each build runs in its own mount namespace
  (``unshare -m``), and two per-build directories are bind-mounted there. So parallel builds do
  not collide, and the caller's directories need not be readable by the build user.
* ``PACMAN`` points to a wrapper around a private pacman root. That root holds exactly the
  ``installed`` packages (``pacman -U --dbonly``). This makes ``installed=`` in ``.BUILDINFO``
  real, and makepkg's dependency check (``pacman -T``) runs against it.

The caller must be root, for the mount namespace. The build user is created if it is missing.
"""

from __future__ import annotations

import os
import platform
import pwd
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from jobs.core import proc
from jobs.core.errors import MissingToolError, TerminalError

SOURCE_DATE_EPOCH = 1700000000
PACKAGER = "Fixture Builder <fixture@example.org>"
STARTDIR = "/startdir"
BUILDDIR = "/build"
BUILDENV = ("!distcc", "!color", "!ccache", "check", "!sign")
OPTIONS = ("strip", "docs", "!libtool", "!staticlibs", "emptydirs", "zipman", "purge", "!debug", "!lto")
# Not recorded in .BUILDINFO, so a rebuild must use the same value. Single-threaded, level 19.
COMPRESSZST = ("zstd", "-c", "-z", "-q", "-19", "-")
PKGEXT = ".pkg.tar.zst"
# /usr/local is left out of PATH, so that tools installed there by hand cannot leak into a build.
PATH = "/usr/bin:/bin:/usr/sbin:/sbin"
# Inside the namespace, /build also holds what the build user must read: the config, the pacman
# wrapper and the pacman root. makepkg only uses /build/<pkgbase>/.
_PRIVATE = f"{BUILDDIR}/.rebuilder"

# tool -> Debian package that provides it
TOOLS = {
    "makepkg": "makepkg", "pacman": "pacman-package-manager", "fakeroot": "fakeroot",
    "bsdtar": "libarchive-tools", "zstd": "zstd", "unshare": "util-linux", "setpriv": "util-linux",
}
_PROVIDERS = {**TOOLS, "useradd": "passwd"}


class BuildFailed(TerminalError):
    """makepkg did not produce packages; ``log`` holds its output."""

    def __init__(self, pkgbase: str, log: Path, tail: str) -> None:
        super().__init__(f"makepkg failed for {pkgbase}; last lines of {log}:\n{tail}", pkgbase=pkgbase)
        self.pkgbase, self.log = pkgbase, log


@dataclass(frozen=True)
class BuildSettings:
    """Everything about a build that is not in the PKGBUILD; a rebuild reads most of it from .BUILDINFO."""

    carch: str
    packager: str = PACKAGER
    source_date_epoch: int = SOURCE_DATE_EPOCH
    buildenv: tuple[str, ...] = BUILDENV
    options: tuple[str, ...] = OPTIONS
    user: str = "builder"


def host_carch() -> str:
    """The Arch name of this machine's architecture (``x86_64``, ``aarch64``, ...)."""
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(platform.machine().lower(), platform.machine())


def makepkg_conf(settings: BuildSettings) -> str:
    """The private makepkg.conf: every setting that changes the package bytes is pinned here."""
    def arr(values: Sequence[str]) -> str:
        return "(" + " ".join(f"'{v}'" for v in values) + ")"
    return "\n".join([
        "DLAGENTS=('file::/usr/bin/curl -gqC - -o %o %u')",
        "VCSCLIENTS=()",
        f"CARCH='{settings.carch}'",
        f"CHOST='{settings.carch}-pc-linux-gnu'",
        "CPPFLAGS=''", "CFLAGS='-O2 -pipe'", "CXXFLAGS='-O2 -pipe'", "LDFLAGS=''", "MAKEFLAGS=''",
        f"BUILDENV={arr(settings.buildenv)}",
        f"OPTIONS={arr(settings.options)}",
        "INTEGRITY_CHECK=(sha256)",
        "STRIP_BINARIES='--strip-all'", "STRIP_SHARED='--strip-unneeded'", "STRIP_STATIC='--strip-debug'",
        "MAN_DIRS=({usr{,/local}{,/share},opt/*}/{man,info})",
        "DOC_DIRS=(usr/{,local/}{,share/}{doc,gtk-doc} opt/*/{doc,gtk-doc})",
        "PURGE_TARGETS=(usr/{,share}/info/dir .packlist *.pod)",
        "DBGSRCDIR='/usr/src/debug'",
        "COMPRESSGZ=(gzip -c -f -n)",
        f"COMPRESSZST={arr(COMPRESSZST)}",
        f"PKGEXT='{PKGEXT}'", "SRCEXT='.src.tar.gz'",
        f"BUILDDIR='{BUILDDIR}'",
        f"PACKAGER='{settings.packager}'",
        "",
    ])


def prepare_host(user: str = "builder") -> pwd.struct_passwd:
    """Check the tools, root, the build user (created if missing) and the two mount points."""
    for tool, package in TOOLS.items():
        if shutil.which(tool, path=PATH) is None:
            raise MissingToolError(tool, package)
    if os.geteuid() != 0:
        raise TerminalError("building packages needs root (mount namespaces); makepkg itself runs as "
                            f"the unprivileged user {user!r}")
    try:
        account = pwd.getpwnam(user)
    except KeyError:  # as infra/test.sh does; useradd comes with Debian's passwd package
        _run(["useradd", "-m", user], Path(os.devnull), what="useradd", timeout=60)
        account = pwd.getpwnam(user)
    for mountpoint in (STARTDIR, BUILDDIR):
        os.makedirs(mountpoint, mode=0o755, exist_ok=True)
    if not proc.run(["unshare", "--mount", "true"], log=Path(os.devnull), timeout=30, env={"PATH": PATH}).ok:
        raise TerminalError("cannot create a mount namespace (unshare --mount); in a container this needs "
                            "CAP_SYS_ADMIN, e.g. a privileged container")
    return account


def build_package(src: Path, outdir: Path, *, settings: BuildSettings, log: Path,
                  installed: Sequence[Path] = (), env: Mapping[str, str] | None = None,
                  timeout: float = 600) -> list[Path]:
    """Run makepkg on the PKGBUILD directory ``src``; copy the packages into ``outdir`` and return them.

    ``installed`` are package files that go into the private pacman root. ``env`` adds variables to
    the clean build environment.
    """
    absent = [str(p) for p in installed if not Path(p).is_file()]
    if absent:
        raise TerminalError("packages to install for the build are missing", pkgbase=src.name,
                            missing=", ".join(absent))
    account = prepare_host(settings.user)
    outdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="makepkg-") as tmp, open(log, "wb", buffering=0) as sink:
        startdir, builddir = Path(tmp, "startdir"), Path(tmp, "build")
        shutil.copytree(src, startdir, ignore=shutil.ignore_patterns(f"*{PKGEXT}", "src", "pkg"))
        private = builddir / ".rebuilder"
        root = private / "root"
        (root / "var/lib/pacman/local").mkdir(parents=True)
        (private / "makepkg.conf").write_text(makepkg_conf(settings))
        (private / "pacman.conf").write_text(
            "[options]\nArchitecture = auto\nSigLevel = Never\nLocalFileSigLevel = Never\n")
        wrapper = private / "pacman"
        wrapper.write_text(f'#!/bin/sh\nexec /usr/bin/pacman --config {_PRIVATE}/pacman.conf '
                           f'--root {_PRIVATE}/root --dbpath {_PRIVATE}/root/var/lib/pacman "$@"\n')
        wrapper.chmod(0o755)
        pacman = ["pacman", "--config", private / "pacman.conf", "--root", root,
                  "--dbpath", root / "var/lib/pacman", "--logfile", private / "pacman.log"]
        # Either command also writes ALPM_DB_VERSION, without which the build user's read-only
        # `pacman -Qi` fails ("database is incorrect version") and installed= ends up empty.
        if installed:
            _run([*pacman, "-U", "--dbonly", "--noscriptlet", "--nodeps", "--nodeps", "--noconfirm",
                  "--noprogressbar", *installed], sink, what="pacman -U", timeout=120)
        else:
            _run([*pacman, "-Dk"], sink, what="pacman -Dk", timeout=120)
        for path in (startdir, builddir):
            _chown_tree(path, account.pw_uid, account.pw_gid, skip=root)
        clean_env = {
            "PATH": PATH, "HOME": account.pw_dir, "USER": settings.user, "LOGNAME": settings.user,
            "LANG": "C.UTF-8", "TZ": "UTC", "SOURCE_DATE_EPOCH": str(settings.source_date_epoch),
            "PACMAN": f"{_PRIVATE}/pacman", **(env or {}),
        }
        script = ('set -eu; mount --bind "$1" "$3"; mount --bind "$2" "$4"; cd "$3"; shift 4; exec "$@"')
        argv = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, "sh",
                startdir, builddir, STARTDIR, BUILDDIR,
                "setpriv", f"--reuid={account.pw_uid}", f"--regid={account.pw_gid}", "--init-groups", "--",
                "env", "-i", *(f"{k}={v}" for k, v in clean_env.items()),
                "makepkg", "--config", f"{_PRIVATE}/makepkg.conf", "--force", "--noconfirm", "--noprogressbar"]
        result = proc.run(argv, log=sink, timeout=timeout, env={"PATH": PATH}, tool_package="util-linux")
        built = sorted(startdir.glob(f"*{PKGEXT}"))
        if not result.ok or not built:
            sink.flush()
            raise BuildFailed(src.name, log, _tail(log))
        moved = []
        for package in built:
            target = outdir / package.name
            shutil.copyfile(package, target)
            moved.append(target)
        return moved


def _run(argv: Sequence[object], log: Path | BinaryIO, *, what: str, timeout: float) -> None:
    """Run a preparation command as root; raise naming the command when it fails."""
    argv = [str(a) for a in argv]
    result = proc.run(argv, log=log, timeout=timeout, env={"PATH": PATH}, tool_package=_PROVIDERS.get(argv[0]))
    if not result.ok:
        raise TerminalError(f"{what} failed (exit {result.exit_code})", argv=" ".join(argv))


def _chown_tree(top: Path, uid: int, gid: int, *, skip: Path) -> None:
    """Give ``top`` to the build user, except the pacman root (root-owned, world-readable)."""
    os.chown(top, uid, gid)
    for dirpath, dirnames, filenames in os.walk(top):
        if Path(dirpath) == skip.parent:
            dirnames[:] = [d for d in dirnames if Path(dirpath, d) != skip]
        for name in dirnames + filenames:
            os.chown(Path(dirpath, name), uid, gid)


def _tail(log: Path, lines: int = 25) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
