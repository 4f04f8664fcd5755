"""The build root of backend ``debian-local``: an mmdebstrap tarball holding the exact build dependencies.

Also the helper that runs the tools (mmdebstrap, apt, tar, the build) with their output into the
build log, shared by debian_build.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath

from debian.deb822 import Deb822

from jobs.work.backends.debian_buildinfo import RebuildRefused
from jobs.work.backends.debian_config import SourceLine
from jobs.work.backends.script import SetupError
from jobs.work.backends.script import run as run_tool
from jobs.work.backends.script import say as _say


def run_step(argv: list[str], *, what: str, timeout: float, env: Mapping[str, str] | None = None,
             cwd: Path | None = None, capture: bool = False) -> subprocess.CompletedProcess:
    """Run a tool with its output into our log (or captured); raise RebuildRefused when it fails."""
    sys.stdout.flush()
    try:
        done = run_tool(argv, env=dict(env) if env is not None else None, cwd=cwd, stdin=subprocess.DEVNULL,
                        stdout=subprocess.PIPE if capture else sys.stdout,
                        stderr=subprocess.STDOUT, timeout=timeout, start_new_session=False)
    except FileNotFoundError:
        raise SetupError(f"{argv[0]} not found: debian-local needs mmdebstrap, apt and dpkg-dev") from None
    except subprocess.TimeoutExpired:
        raise RebuildRefused(f"{what} timed out after {timeout:.0f} s") from None
    if capture:
        out = done.stdout.decode("utf-8", errors="replace")
        sys.stdout.write(out)
        sys.stdout.flush()
    if done.returncode != 0:
        raise ToolFailed(what, done.returncode, done.stdout.decode("utf-8", errors="replace") if capture else "")
    return done


class ToolFailed(RebuildRefused):
    def __init__(self, what: str, status: int, output: str) -> None:
        super().__init__(f"{what} failed (status {status})")
        self.output = output


def host_architecture() -> str:
    done = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True, timeout=60)
    return done.stdout.strip()


# --- the build root ---------------------------------------------------------------------------------


def root_key(sources: Sequence[SourceLine], arch: str, variant: str, includes: Sequence[str]) -> str:
    """The cache key of a build root: everything that decides what mmdebstrap installs."""
    blob = json.dumps({"sources": [s.text() for s in sources if s.type == "deb"], "arch": arch, "variant": variant,
                       "include": sorted(includes)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def cached_root(cache: Path, sources: Sequence[SourceLine], *, arch: str, includes: Sequence[str],
                variant: str = "buildd", key_extra: str = "") -> Path:
    """Where make_root keeps the root of these inputs in ``cache`` (it may not exist yet)."""
    key = root_key([s for s in sources if s.type == "deb"], arch, variant, includes)
    if key_extra:
        key = hashlib.sha256(f"{key} {key_extra}".encode()).hexdigest()
    return cache / f"root-{key}.tar"


def make_root(sources: Sequence[SourceLine], *, arch: str, includes: Sequence[str], dest: Path,
              cache: Path | None, timeout: float, variant: str = "buildd", key_extra: str = "") -> Path:
    """A build root tarball with ``includes`` (``name`` or ``name=version``): from the cache or mmdebstrap."""
    debs = [s for s in sources if s.type == "deb"]
    key = root_key(debs, arch, variant, includes)
    if key_extra:
        key = hashlib.sha256(f"{key} {key_extra}".encode()).hexdigest()
    if cache is not None:
        cached = cached_root(cache, sources, arch=arch, includes=includes, variant=variant, key_extra=key_extra)
        if cached.is_file():
            _say(f"build root from the cache: {cached}")
            return cached
        cache.mkdir(parents=True, exist_ok=True)
        target = cache / f".root-{key}.{os.getpid()}.tar"
    else:
        target = dest
    argv = ["mmdebstrap", "--mode=root", f"--variant={variant}", f"--architectures={arch}", "--format=tar",
            "--skip=output/mknod"]
    if includes:
        argv.append("--include=" + ",".join(includes))
    for keyring in sorted({k for s in debs for k in s.keyrings()}):
        parent = str(PurePosixPath(keyring).parent)
        argv += [f"--setup-hook=mkdir -p \"$1\"{shlex.quote(parent)}",
                 f"--setup-hook=copy-in {shlex.quote(keyring)} {shlex.quote(parent)}"]
    argv += [debs[0].suite, str(target), *(s.text() for s in debs)]
    _say(f"making the build root: mmdebstrap --variant={variant} with {len(includes)} package(s)")
    try:
        run_step(argv, what="mmdebstrap", timeout=timeout, capture=True)
    except ToolFailed as e:
        target.unlink(missing_ok=True)
        missing = re.findall(r"Version '([^']+)' for '([^']+)' was not found", e.output)
        if missing:
            listed = ", ".join(f"{name}={version}" for version, name in missing[:5])
            raise RebuildRefused(f"build dependency not available from the configured sources: {listed}"
                                 + (" (and more)" if len(missing) > 5 else "")) from None
        unknown = re.findall(r"Unable to locate package (\S+)", e.output)
        if unknown:
            raise RebuildRefused(f"build dependency not available from the configured sources: "
                                 f"{', '.join(unknown[:5])}") from None
        raise
    except BaseException:  # stopped: a half-written root must not stay in the cache directory
        target.unlink(missing_ok=True)
        raise
    if cache is not None:
        final = cache / f"root-{key}.tar"
        os.replace(target, final)
        return final
    return target


def installed_versions(root_tar: Path, *, timeout: float) -> dict[str, str]:
    """name → version of every package installed in a root tarball (from its dpkg status)."""
    done = subprocess.run(["tar", "-xOf", str(root_tar), "./var/lib/dpkg/status"], capture_output=True,
                          timeout=timeout)
    if done.returncode != 0:
        raise RebuildRefused("the build root has no dpkg status")
    found = {}
    for para in Deb822.iter_paragraphs(done.stdout.decode("utf-8", errors="replace")):
        if "installed" in para.get("Status", ""):
            found[para["Package"]] = para["Version"]
            if para.get("Architecture") not in (None, "all"):
                found[f"{para['Package']}:{para['Architecture']}"] = para["Version"]
    return found
