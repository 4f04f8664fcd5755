"""The rebuild backends shipped with rebuilder, and the contract every backend follows.

A backend is an external command, as in rebuilderd (docs/design.md#invariants, invariant 8;
docs/design.md#build-execution-and-the-backend-contract)::

    REBUILDERD_OUTDIR=<dir> <backend> <input-file>

* ``<input-file>`` is the downloaded build input: for Arch the first package file of the pkgbase,
  for Debian the ``.buildinfo``.
* The backend writes every rebuilt artifact into ``$REBUILDERD_OUTDIR`` under the **same file name**
  as the published one. The worker compares them byte for byte; a missing file is BAD.
* stdout and stderr are the build log.
* Exit status 0 means the rebuild ran to the end, whether or not it matches. A non-zero status
  means it could not run (missing tool, bad input, failed build). The last line of output then is
  ``rebuilder-backend: FAIL: <reason>``, which the worker puts into the result (failure_reason).

Shipped backends (worker config: ``[backend."<distro>"] path = "<path>"``: the table is named after
the distro whose jobs it builds, as sync names a job's backend after its profile's distro, so
``archlinux-local`` goes under ``[backend."archlinux"]``):

========================  ====================================================================
``archlinux-local``       ``rebuilder-archlinux-local`` (module archlinux_local): makepkg from
                          ``.BUILDINFO`` with a local PKGBUILD tree and package archive, offline
``archlinux``             ``rebuilder-archlinux.sh``: archlinux-repro, on an Arch Linux host
``debian-local``          ``rebuilder-debian-local`` (module debian_local): mmdebstrap root with
                          the exact Installed-Build-Depends from configured apt sources, then
                          dpkg-buildpackage from ``.buildinfo``
``debian``                ``rebuilder-debian.sh``: debrebuild, with snapshot.debian.org access
========================  ====================================================================
"""

from __future__ import annotations

import os
import re
from importlib.resources import files
from pathlib import Path

FAIL_PREFIX = "rebuilder-backend: FAIL: "
# A backend that exits with this status (sysexits EX_CONFIG) says the host cannot build anything as it
# is set up: the worker reports nothing for the job, releases its claim and stops (docs/design.md).
SETUP_EXIT = 78

SHIPPED = {
    "archlinux-local": "rebuilder-archlinux-local",
    "archlinux": "rebuilder-archlinux.sh",
    "debian-local": "rebuilder-debian-local",
    "debian": "rebuilder-debian.sh",
}

_FAIL_LINE = re.compile(rb"^rebuilder-backend: FAIL: (.+?)\r?$", re.MULTILINE)


def shipped_backend(name: str) -> Path:
    """The path of a backend script shipped in this package (KeyError for an unknown name)."""
    return Path(str(files(__name__) / SHIPPED[name]))


def backend_argv(script: Path, input_file: Path) -> list[str]:
    """How to run ``script`` on ``input_file``: directly, or with ``sh`` when a wheel dropped its exec bit.

    Every shipped script is POSIX sh, so ``sh <script>`` is equivalent to running it.
    """
    if os.access(script, os.X_OK):
        return [str(script), str(input_file)]
    return ["sh", str(script), str(input_file)]


def failure_reason(log_tail: bytes) -> str | None:
    """The reason of the last ``rebuilder-backend: FAIL:`` line in the end of a build log, if any."""
    found = _FAIL_LINE.findall(log_tail)
    return found[-1].decode("utf-8", errors="replace").strip() if found else None
