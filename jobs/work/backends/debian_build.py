"""The source package and the build of backend ``debian-local``: apt source, .dsc checks, dpkg-buildpackage."""

from __future__ import annotations

import hashlib
import re
import shlex
import shutil
from collections.abc import Sequence
from pathlib import Path

from debian.deb822 import Dsc

from jobs.work.backends.debian_buildinfo import MAX_BUILDINFO, DebianBuildinfo, RebuildRefused, strip_clearsign
from jobs.work.backends.debian_config import SourceLine
from jobs.work.backends.debian_root import ToolFailed, run_step
from jobs.work.backends.script import SetupError
from jobs.work.backends.script import say as _say

# --- the source package -----------------------------------------------------------------------------


def fetch_source(sources: Sequence[SourceLine], info: DebianBuildinfo, dest: Path, *, timeout: float) -> Path:
    """Download the source package with apt (checked against the signed Sources); check the .dsc; return it."""
    srcs = [s for s in sources if s.type == "deb-src"]
    if not srcs:
        raise SetupError("REBUILDER_DEBIAN_SOURCES has no 'deb-src' line for the source package")
    aptdir = dest / "apt"
    for sub in ("etc/apt/apt.conf.d", "etc/apt/preferences.d", "etc/apt/trusted.gpg.d", "var/lib/apt/lists/partial",
                "var/cache/apt/archives/partial", "var/lib/dpkg"):
        (aptdir / sub).mkdir(parents=True, exist_ok=True)
    (aptdir / "var/lib/dpkg/status").touch()
    (aptdir / "etc/apt/sources.list").write_text("".join(s.text() + "\n" for s in srcs))
    for host_keys in Path("/etc/apt/trusted.gpg.d").glob("*"):
        if host_keys.is_file():
            shutil.copy(host_keys, aptdir / "etc/apt/trusted.gpg.d" / host_keys.name)
    options = ["-o", f"Dir={aptdir}", "-o", "Dir::State::status=" + str(aptdir / "var/lib/dpkg/status"),
               "-o", "Debug::NoLocking=1", "-o", "APT::Sandbox::User=root", "-q"]
    try:
        run_step(["apt-get", *options, "update", "--error-on=any"], what="apt-get update (deb-src)", timeout=timeout,
             capture=True)
    except ToolFailed as e:
        errors = re.findall(r"^E: (.+)$", e.output, re.MULTILINE)
        if errors:
            raise RebuildRefused(f"apt-get update (deb-src) failed: {errors[0][:300]}") from None
        raise
    srcdir = dest / "src"
    srcdir.mkdir()
    spec = f"{info.source}={info.source_version}"
    try:
        run_step(["apt-get", *options, "source", "--download-only", spec], what="apt-get source", timeout=timeout,
             cwd=srcdir, capture=True)
    except ToolFailed as e:
        if "Can not find version" in e.output or "Unable to find a source package" in e.output:
            raise RebuildRefused(f"source package {spec} is not available from the configured sources") from None
        raise
    upstream = re.sub(r"^[0-9]+:", "", info.source_version)
    dsc = srcdir / f"{info.source}_{upstream}.dsc"
    if not dsc.is_file():
        raise RebuildRefused(f"apt did not download {dsc.name}")
    check_dsc(dsc)
    return dsc


def check_dsc(dsc: Path) -> None:
    """Every file the .dsc lists is beside it with the listed size and sha256."""
    with open(dsc, "rb") as f:
        data = f.read(MAX_BUILDINFO + 1)
    if len(data) > MAX_BUILDINFO:
        raise RebuildRefused(f"{dsc.name}: larger than {MAX_BUILDINFO} bytes")
    text = data.decode("utf-8", errors="replace")
    if text.startswith("-----BEGIN PGP SIGNED MESSAGE-----"):
        text = strip_clearsign(text, dsc)
    parsed = Dsc(text)
    rows = parsed.get("Checksums-Sha256") or []
    if not rows:
        raise RebuildRefused(f"{dsc.name}: no Checksums-Sha256")
    for row in rows:
        name = str(row.get("name", ""))
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+~-]{0,254}", name):
            raise RebuildRefused(f"{dsc.name}: unsafe file name {name[:100]!r}")
        path = dsc.parent / name
        if not path.is_file():
            raise RebuildRefused(f"{dsc.name}: {name} was not downloaded")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != row.get("sha256") or path.stat().st_size != int(row.get("size", -1)):
            raise RebuildRefused(f"{dsc.name}: checksum mismatch for {name}: expected {row.get('sha256')}, "
                                 f"got {digest}")


# --- the build --------------------------------------------------------------------------------------

# Runs as root in a private mount and PID namespace: unpack the root, mount /proc and /dev, create
# the user, unpack the source at the recorded path as the user, build as the user.
_BUILD_SCRIPT = r"""
set -eu
root=$1 user=$2 build_path=$3 dsc=$4 build_type=$5 envfile=$6 entryfile=$7
mount --make-rprivate /
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
chroot "$root" sh -c 'getent passwd "$1" >/dev/null || useradd --create-home --shell /bin/sh "$1"' - "$user"
parent=$(dirname "$build_path")
mkdir -p "$root$parent"
chroot "$root" chown "$user:" "$parent"
mkdir -p "$root/srv/rebuilder-source"
cp -- "$(dirname "$dsc")"/* "$root/srv/rebuilder-source/"
cp -- "$envfile" "$root/srv/rebuilder-env"
cp -- "$entryfile" "$root/srv/rebuilder-binnmu-entry"
chmod -R a+rX "$root/srv"
exec chroot --userspec="$user:$user" "$root" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/nonexistent \
    LOGNAME="$user" USER="$user" /bin/sh -c '
set -eu
set -a
. /srv/rebuilder-env
set +a
dpkg-source -x "/srv/rebuilder-source/$(basename "$1")" "$2"
cd "$2"
if [ -s /srv/rebuilder-binnmu-entry ]; then
    { cat /srv/rebuilder-binnmu-entry; echo; cat debian/changelog; } > debian/changelog.binnmu
    mv debian/changelog.binnmu debian/changelog
fi
exec dpkg-buildpackage -us -uc "$3"
' - "$dsc" "$build_path" "$build_type"
"""


def build(root_tar: Path, dsc: Path, info: DebianBuildinfo, work: Path, *, user: str, timeout: float) -> list[Path]:
    """Build in a fresh copy of the root; return the files dpkg-buildpackage wrote beside the Build-Path."""
    root = work / "root"
    root.mkdir()
    run_step(["tar", "-C", str(root), "--numeric-owner", "-xpf", str(root_tar)], what="unpacking the build root",
         timeout=timeout)
    envfile = work / "build.env"
    envfile.write_text("".join(f"{k}={shlex.quote(v)}\n" for k, v in sorted(info.environment.items())))
    entryfile = work / "binnmu-entry"
    entryfile.write_text(info.binary_only_changes)
    _say(f"building {info.source} {info.source_version} at {info.build_path} as {user}: "
         f"dpkg-buildpackage {info.build_type}, environment {' '.join(sorted(info.environment)) or '(none)'}")
    if info.binary_only_changes:
        _say(f"binNMU {info.version}: its Binary-Only-Changes entry goes first in debian/changelog")
    run_step(["unshare", "--mount", "--pid", "--fork", "--kill-child", "sh", "-c", _BUILD_SCRIPT, "-", str(root), user,
          info.build_path, str(dsc), info.build_type, str(envfile), str(entryfile)],
         what="dpkg-buildpackage", timeout=timeout)
    parent = root / info.build_path.lstrip("/")
    return sorted(p for p in parent.parent.iterdir() if p.is_file())
