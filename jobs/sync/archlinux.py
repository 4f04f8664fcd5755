"""Arch Linux sync: repository databases → build inputs, one per pkgbase (rebuilderd `archlinux.rs`).

For each architecture and each repository (`components`) of the profile, the database
`<source with $repo/$arch>/<repo>.db` is fetched and parsed (`alpm_db`), the profile's
filters are applied, and the packages are grouped by `%BASE%` (split packages are built
together). Unlike rebuilderd, which merges a pkgbase across repositories into one group
(kpcyrd/rebuilderd#271: core and core-testing), each repository is grouped on its own, so a
version in testing is a build input of its own.

URLs: `$repo` and `$arch` are replaced by the percent-encoded names (rebuilderd's
`mirror_to_url`: a variable runs to the next `/`; any other variable is an error), and a file
name is appended percent-encoded (`quote(name, safe="")`), so the epoch's `:` becomes `%3A`
and `+` becomes `%2B`. rebuilderd and pacman append the raw name, which means the same file
to any HTTP server (servers decode the path), but `+` in a raw path is read as a space by
S3-style object stores, and a name must never reach a URL unescaped.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import quote, urlsplit

from jobs.core import progress
from jobs.core.config import SyncProfile
from jobs.core.errors import ConfigError
from jobs.sync.alpm_db import parse_db
from jobs.sync.columns import InputColumns
from jobs.sync.decompress import CorruptIndex
from jobs.sync.fetch import Fetcher
from jobs.sync.filters import Filter, select
from jobs.sync.records import BinaryEntry, BuildInput, IndexResult
from jobs.sync.tar_members import detect_compression

__all__ = ["CorruptIndex", "detect_compression", "group", "mirror_url", "parse_db", "read_index"]

log = logging.getLogger(__name__)

LEGACY_SOURCE = "https://mirrors.kernel.org/archlinux/$repo/os/$arch"
# Repository and architecture names as Arch has them (core-testing, x86_64, kde-unstable).
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
_VARIABLE = re.compile(r"\$[^/]*")


def mirror_url(source: str, *, repo: str, arch: str) -> str:
    """The mirror directory of one repo and architecture: `source` with `$repo`/`$arch` filled in.

    A source without a URL scheme is a local path and becomes a file:// URL.
    """
    local = urlsplit(source).scheme == ""

    def fill(match: re.Match[str]) -> str:
        if match.group() == "$repo":
            return repo if local else quote(repo, safe="")
        if match.group() == "$arch":
            return arch if local else quote(arch, safe="")
        raise ConfigError(f"unknown variable {match.group()!r} (known: $repo, $arch)", key="source")

    for key, name in (("components", repo), ("architectures", arch)):
        if not _SAFE_NAME.fullmatch(name):
            raise ConfigError(f"{name!r} is not a repository or architecture name", key=key,
                              expected="letters, digits and ._+-")
    url = _VARIABLE.sub(fill, source)
    if local:
        url = Path(url).absolute().as_uri()
    return url.rstrip("/")


def group(entries: Iterable[BinaryEntry], *, distro: str, architecture: str, backend: str) -> list[BuildInput]:
    """One build input per pkgbase (`%BASE%`), in pkgbase order.

    The base's *first* package, the one whose file name sorts first, gives the input URL
    (archlinux-repro reads the .BUILDINFO from it) and the source version. That does not
    depend on the order of `entries`, so the job id stays the same from sync to sync
    (rebuilderd HEAD takes the smallest URL: the same package within one repository).
    Artifacts are listed under `architecture`, `any` ones included; a base whose packages
    disagree on the version keeps them all (as rebuilderd does), with a warning.
    """
    return [BuildInput(distro=distro, release=None, architecture=architecture, backend=backend, source_name=base,
                       source_version=first.version, input_url=first.url, artifacts=tuple(artifacts))
            for base, first, artifacts in bases(entries, architecture)]


def bases(entries: Iterable[BinaryEntry], architecture: str) -> list[tuple[str, BinaryEntry, list[BinaryEntry]]]:
    """(pkgbase, its first package, its packages in artifact order) for each pkgbase, in pkgbase order (`group`)."""
    by_base: dict[str, list[BinaryEntry]] = {}
    for entry in entries:
        by_base.setdefault(entry.source_name, []).append(entry)
    out = []
    for base in sorted(by_base):
        artifacts = by_base[base]
        if len(artifacts) > 1:
            artifacts.sort(key=lambda e: (e.filename, e.url))
            _warn_versions(base, artifacts, architecture)
        first = artifacts[0]
        if len(artifacts) > 1:
            artifacts.sort(key=lambda e: (e.name, e.version, e.url))
        out.append((base, first, artifacts))
    return out


def _warn_versions(base: str, artifacts: list[BinaryEntry], architecture: str) -> None:
    versions = sorted({a.version for a in artifacts})
    if len(versions) > 1:
        first = artifacts[0]
        log.warning("pkgbase %s (%s, %s) lists several versions: %s; building %s from %s", base,
                    first.component, architecture, ", ".join(versions), first.version, first.url)


def read_index(profile: SyncProfile, fetcher: Fetcher, *,
               max_unpacked: int | None = None, columns: bool = False) -> IndexResult:
    """Every build input of an Arch profile: each architecture × repository database.

    `columns`: the inputs as `result.columns` (`jobs.sync.columns.InputColumns`, what the sync
    job writes its snapshot and queue from) instead of a `BuildInput` per pkgbase.
    """
    if not profile.architectures:
        raise ConfigError("an archlinux profile needs at least one architecture",
                          key=f"profile.{profile.name}.architectures")
    if not profile.components:
        raise ConfigError("an archlinux profile needs at least one repository",
                          key=f"profile.{profile.name}.components")
    source = profile.source
    if source.endswith(".db"):
        log.warning("profile %s: legacy source %r, using %s; set source to a mirror URL with $repo and $arch",
                    profile.name, source, LEGACY_SOURCE)
        source = LEGACY_SOURCE
    result = IndexResult()
    if columns:
        result.columns = InputColumns(distro=profile.distro, backend=profile.distro)
    for arch in profile.architectures:
        for repo in profile.components:
            base_url = mirror_url(source, repo=repo, arch=arch)
            db_url = f"{base_url}/{quote(repo, safe='')}.db"
            fetched = fetcher.fetch(db_url)
            entries, skipped = parse_db(fetched.data, repo=repo, base_url=base_url, location=db_url,
                                        max_unpacked=max_unpacked)
            progress.advance("parse", len(entries) + len(skipped))
            result.skipped.extend(skipped)
            taken = entries if Filter.of(profile).takes_everything else select(profile, entries)
            if result.columns is not None:
                result.columns.add(arch, repo, bases(taken, arch))
            else:
                result.inputs.extend(group(taken, distro=profile.distro, architecture=arch, backend=profile.distro))
            result.sources[db_url] = fetched.sha256
            result.validators[db_url] = fetched.validator
    return result
