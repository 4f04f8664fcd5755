"""Backend ``debian-local``: rebuild Debian binary packages from a ``.buildinfo`` with mmdebstrap and dpkg-buildpackage.

It follows rebuilderd's backend contract (see ``jobs.work.backends``)::

    REBUILDERD_OUTDIR=<dir> rebuilder-backend-debian-local <source>_<version>_<arch>.buildinfo

The script ``rebuilder-debian-local`` next to this module runs the same thing, for a worker config
that names a file: ``[backend."debian"] path = "…/rebuilder-debian-local"``
(the table is the distro's: jobs name the backend by their profile's distro).

Environment (the worker passes its own environment through to the backend):

``REBUILDERD_OUTDIR``
    Required. The rebuilt ``.deb`` files are written here under dpkg's names, which are the
    published names when the rebuild matches.
``REBUILDER_DEBIAN_SOURCES``
    Required. apt one-line sources, one per line (or the path of a file holding them): ``deb``
    lines for the build root, ``deb-src`` lines for the source package, e.g.
    ``deb [signed-by=/etc/rebuilder/archive.gpg] http://mirror/debian bookworm main``. A
    ``signed-by`` keyring is copied into the build root. Lines without ``signed-by`` use the
    host's apt keyrings.
``REBUILDER_DEBIAN_SNAPSHOT``
    Optional. A snapshot-style URL template, e.g.
    ``https://snapshot.debian.org/archive/debian/{timestamp}/ sid main``: ``{timestamp}`` becomes the
    .buildinfo's Build-Date as ``YYYYMMDDTHHMMSSZ``, and the line is added as ``deb`` and
    ``deb-src`` source. Operators with snapshot access so get the exact old versions (debrebuild's
    role); without it only versions the configured sources still carry can be installed.
``REBUILDER_DEBIAN_ROOT_CACHE``
    Optional. A directory keeping the build roots (mmdebstrap tarballs) keyed by the sources,
    architecture and the exact package set, so a second rebuild with the same
    Installed-Build-Depends does not download them again.
``REBUILDER_DEBIAN_BUILDINFO_KEYRING``
    Optional. An OpenPGP keyring (binary, as apt's ``signed-by``): every .buildinfo must then be
    clearsigned by a key in it, checked with ``gpgv``; an unsigned one, a bad signature or an
    unknown key is a FAIL with that reason, and only the signed text is read. Unset, a clearsigned
    .buildinfo is read without checking its signature.
``REBUILDER_BUILD_USER``
    The unprivileged user the build runs as inside the root (default ``builder``; created there).
``REBUILDER_BUILD_TIMEOUT``
    Seconds before the build is killed (default 86400).

What it does (docs/operating.md#running-a-debian-rebuilder): read and check the .buildinfo
(Source, Version, Architecture, Build-Architecture, Build-Path, Environment,
Installed-Build-Depends); make a build root with ``mmdebstrap --variant=buildd`` and
``--include`` of every ``name=version`` of Installed-Build-Depends from the configured sources,
then check that the root holds exactly those versions; download the source package with apt
(checked against the signed Sources) and check the .dsc's own checksums; unpack it at the
recorded Build-Path and run ``dpkg-buildpackage`` (``-B``, ``-A`` or ``-b`` as the recorded
Architecture says) as the build user with the recorded Environment, in a private mount and PID
namespace; copy the ``.deb`` files out.

Limits: it needs root (mmdebstrap's root mode, chroot, mounts), mmdebstrap, apt and dpkg-dev; the
host architecture must be the Build-Architecture; Build-Path must lie under ``/build/`` (where
dpkg-genbuildinfo records it); cross builds are refused. A binNMU (``Source: name (version)``,
a ``+bN`` Version) is built as sbuild builds one: its Binary-Only-Changes entry is put first in
the unpacked source's ``debian/changelog``; one without that entry is refused.

Exit status: 0 when dpkg-buildpackage completed (the worker then compares, the result may still be
BAD); 1 when the rebuild could not run (a build-dependency version the sources do not carry, a
checksum mismatch, a failed build); 2 for a usage or configuration error. On a non-zero status the
last line of output is ``rebuilder-backend: FAIL: <reason>``.

The parts: debian_config (the environment and its apt sources), debian_buildinfo (reading and
checking the .buildinfo and its signature), debian_root (the mmdebstrap build root), debian_build
(the source package and dpkg-buildpackage). This module puts them together.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from jobs.work.backends.debian_build import build, fetch_source
from jobs.work.backends.debian_buildinfo import RebuildRefused, read_buildinfo
from jobs.work.backends.debian_config import LocalConfig
from jobs.work.backends.debian_root import host_architecture, installed_versions, make_root
from jobs.work.backends.script import UsageError, main_on_input
from jobs.work.backends.script import say as _say

USAGE = "usage: rebuilder-backend-debian-local <file.buildinfo> (with REBUILDERD_OUTDIR set)"


def rebuild(buildinfo: Path, config: LocalConfig, work: Path) -> list[Path]:
    """The whole rebuild of one .buildinfo into config.outdir; returns the files written."""
    if not buildinfo.is_file():
        raise UsageError(f"input .buildinfo not found: {buildinfo}")
    info = read_buildinfo(buildinfo, keyring=config.buildinfo_keyring)
    if config.buildinfo_keyring is not None:
        _say(f"{buildinfo.name}: signature good (a key in {config.buildinfo_keyring})")
    arch = host_architecture()
    if info.build_architecture != arch:
        raise RebuildRefused(f"built on {info.build_architecture}; this host is {arch}")
    _say(f"rebuilding {info.source} {info.source_version} ({' '.join(info.architectures)}) from {buildinfo.name}")
    _say(f"recorded: Build-Path {info.build_path}, {len(info.installed)} installed build dependencies")
    sources = config.sources_for(info)
    includes = [f"{name}={version}" for name, version in info.installed]
    root_tar = make_root(sources, arch=arch, includes=includes, dest=work / "root.tar", cache=config.root_cache,
                         timeout=config.timeout)
    have = installed_versions(root_tar, timeout=config.timeout)
    wrong = [f"{name}={version} (root has {have.get(name, 'none')})" for name, version in info.installed
             if have.get(name) != version]
    if wrong:
        raise RebuildRefused("the build root does not hold the recorded build dependencies: " + ", ".join(wrong[:5]))
    dsc = fetch_source(sources, info, work, timeout=config.timeout)
    _say(f"source {dsc.name}: checksums match")
    debs = [p for p in build(root_tar, dsc, info, work, user=config.user, timeout=config.timeout)
            if p.suffix in (".deb", ".udeb")]
    if not debs:
        raise RebuildRefused("dpkg-buildpackage wrote no .deb")
    config.outdir.mkdir(parents=True, exist_ok=True)
    written = []
    for deb in debs:
        target = config.outdir / deb.name
        shutil.copyfile(deb, target)
        written.append(target)
    _say(f"rebuilt into {config.outdir}: {', '.join(p.name for p in written)}")
    return written


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Run the backend: returns the exit status; the last line says why when it is not 0."""

    def body(buildinfo: Path) -> int:
        config = LocalConfig.from_env(os.environ if env is None else env)
        base = Path(os.environ.get("TMPDIR") or "/var/tmp")
        with tempfile.TemporaryDirectory(prefix="rebuilder-debian-local-", dir=base) as tmp:
            rebuild(buildinfo, config, Path(tmp))
        return 0

    return main_on_input(argv, USAGE, body)


if __name__ == "__main__":
    sys.exit(main())
