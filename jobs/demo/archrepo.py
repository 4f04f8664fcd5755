"""A fixture Arch Linux repository, built on the spot with makepkg (jobs/work/backends/makepkg.py).

The packages cover the cases that a rebuilder must tell apart:

* ``hello-script``: ``any``, reproducible.
* ``hello-c``: compiled C with an epoch (``1:2.1-3``). It depends on hello-script, so its
  ``.BUILDINFO`` lists hello-script under ``installed=``.
* ``splitpkg``: one build whose pkgbase yields two packages, ``split-a`` and ``split-b``.
* ``unrepro``: random bytes in the payload, so no rebuild matches it.
* ``ftbfs``: its PKGBUILD fails unless ``REBUILDER_FIXTURE_PUBLISH`` is set. Only the publisher
  sets it, so the repository has a package that no rebuild can make.

The layout is that of an Arch mirror. A sync profile can use
``source = "<url of root>/$repo/os/$arch"`` (or a file:// URL of ``root``)::

    <root>/<repo>/os/<arch>/<repo>.db -> <repo>.db.tar.gz, <repo>.files, *.pkg.tar.zst
    <workdir>/pkgbuilds/<pkgbase>/PKGBUILD   exactly what was built (pkgbuild_sha256sum matches)
    <workdir>/archive/*.pkg.tar.zst          every package built, to install installed= from
    <workdir>/logs/<pkgbase>.log             makepkg output

Building again in the same workdir (e.g. with ``versions`` for an update) replaces the served
repository and the PKGBUILDs; the archive keeps every package ever built there, like Arch's.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tarfile
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Literal

import zstandard

from jobs.core import proc
from jobs.core.errors import MissingToolError, TerminalError
from jobs.work.backends.makepkg import PATH, BuildSettings, build_package, host_carch, prepare_host

REPO = "fixture"
# Only the publisher sets this; see the ftbfs PKGBUILD.
PUBLISH_ENV = {"REBUILDER_FIXTURE_PUBLISH": "1"}
# pkgbase -> the fixture pkgbases whose packages are installed (installed=) while it builds.
# They are listed in build order.
BUILD_INPUTS: dict[str, tuple[str, ...]] = {
    "hello-script": (), "splitpkg": (), "hello-c": ("hello-script",), "unrepro": (), "ftbfs": (),
}
PKGBASES = tuple(BUILD_INPUTS)
REPRODUCIBLE = frozenset({"hello-script", "hello-c", "splitpkg"})
UNREPRODUCIBLE = frozenset({"unrepro"})
FTBFS = frozenset({"ftbfs"})
MANIFEST = "fixture-repo.json"


@dataclass(frozen=True)
class BuiltPackage:
    """One package file of the fixture repository, as its .PKGINFO describes it."""

    pkgbase: str
    pkgname: str
    version: str  # [epoch:]pkgver-pkgrel
    arch: str
    filename: str
    path: Path  # inside the served repository directory
    sha256: str


@dataclass
class FixtureRepo:
    """A built fixture repository. Serve ``root``; rebuild from ``pkgbuild_dir`` and ``archive_dir``."""

    root: Path
    repo: str
    arch: str
    db_path: Path  # the <repo>.db symlink
    packages: list[BuiltPackage]
    pkgbuild_dir: Path
    archive_dir: Path
    settings: BuildSettings = field(default_factory=lambda: BuildSettings(carch=host_carch()))

    @property
    def repo_dir(self) -> Path:
        """``<root>/<repo>/os/<arch>``, the directory a mirror URL points at."""
        return self.db_path.parent

    @property
    def files_path(self) -> Path:
        """The ``<repo>.files`` symlink (desc plus file lists)."""
        return self.repo_dir / f"{self.repo}.files"

    def source_url(self, base: str) -> str:
        """The mirror URL of this repository under ``base`` (an http:// or file:// URL of ``root``)."""
        return f"{base.rstrip('/')}/{self.repo}/os/{self.arch}"

    def by_pkgbase(self) -> dict[str, list[BuiltPackage]]:
        """Packages grouped by pkgbase: one build each."""
        groups: dict[str, list[BuiltPackage]] = {}
        for package in self.packages:
            groups.setdefault(package.pkgbase, []).append(package)
        return groups

    def package(self, pkgname: str) -> BuiltPackage:
        """The package called ``pkgname``; KeyError if the repository has none."""
        for package in self.packages:
            if package.pkgname == pkgname:
                return package
        raise KeyError(pkgname)


def build_fixture_repo(
    workdir: Path, *, packages: Sequence[str] | None = None, versions: Mapping[str, str] | None = None,
    db_compression: Literal["gz", "zst"] = "gz", builder_user: str = "builder", jobs: int | None = None,
) -> FixtureRepo:
    """Build the fixture packages (all, or ``packages``) with makepkg and index them with repo-add.

    ``versions`` maps a pkgbase to the ``[epoch:]pkgver-pkgrel`` it is built at instead of the
    PKGBUILD's own, for example to publish an update. The result is also saved as
    ``workdir/fixture-repo.json`` (see load_fixture_repo).
    """
    selected = list(PKGBASES if packages is None else packages)
    _check_selection(selected, versions or {})
    if db_compression not in ("gz", "zst"):
        raise ValueError(f"db_compression must be 'gz' or 'zst', not {db_compression!r}")
    if shutil.which("repo-add", path=PATH) is None:
        raise MissingToolError("repo-add", "pacman-package-manager")
    settings = BuildSettings(carch=host_carch(), user=builder_user)
    prepare_host(builder_user)  # once, before the threads: it may create the user

    workdir = workdir.resolve()
    manifest = workdir / MANIFEST
    manifest.unlink(missing_ok=True)  # present only while it describes what is on disk
    pkgbuild_dir, archive_dir, logs = workdir / "pkgbuilds", workdir / "archive", workdir / "logs"
    repo_dir = workdir / "www" / REPO / "os" / settings.carch
    for d in (pkgbuild_dir, archive_dir, logs):
        d.mkdir(parents=True, exist_ok=True)
    for pkgbase in selected:
        write_pkgbuild(pkgbase, pkgbuild_dir / pkgbase, (versions or {}).get(pkgbase), settings.carch)

    order = [p for p in PKGBASES if p in selected]
    results: dict[str, Future[list[Path]]] = {}

    def build(pkgbase: str) -> list[Path]:
        # Inputs were submitted earlier, so a FIFO pool has already started them: no deadlock.
        installed = [path for dep in BUILD_INPUTS[pkgbase] for path in results[dep].result()]
        return build_package(pkgbuild_dir / pkgbase, archive_dir, settings=settings,
                             log=logs / f"{pkgbase}.log", installed=installed, env=PUBLISH_ENV)

    with ThreadPoolExecutor(max_workers=jobs or min(len(order), os.cpu_count() or 2)) as pool:
        for pkgbase in order:
            results[pkgbase] = pool.submit(build, pkgbase)
        built = [path for pkgbase in order for path in results[pkgbase].result()]

    # A rebuilt workdir serves only this build's packages; the archive keeps every version.
    shutil.rmtree(repo_dir, ignore_errors=True)
    repo_dir.mkdir(parents=True)
    packages_out = []
    for path in built:
        target = repo_dir / path.name
        shutil.copyfile(path, target)
        packages_out.append(describe_package(target))
    db = repo_dir / f"{REPO}.db.tar.{db_compression}"
    result = proc.run(["repo-add", "--quiet", "--nocolor", db.name, *(p.filename for p in packages_out)],
                      log=logs / "repo-add.log", timeout=120, cwd=repo_dir, env={"PATH": PATH},
                      tool_package="pacman-package-manager")
    if not result.ok:
        raise TerminalError(f"repo-add failed (exit {result.exit_code}); see {logs / 'repo-add.log'}")
    repo = FixtureRepo(root=workdir / "www", repo=REPO, arch=settings.carch, db_path=repo_dir / f"{REPO}.db",
                       packages=packages_out, pkgbuild_dir=pkgbuild_dir, archive_dir=archive_dir,
                       settings=settings)
    save_fixture_repo(repo, manifest)
    return repo


def write_pkgbuild(pkgbase: str, target: Path, version: str | None = None, carch: str | None = None) -> Path:
    """Copy the shipped PKGBUILD directory of ``pkgbase`` to ``target``, optionally at another version.

    An architecture-specific PKGBUILD ships with ``arch=('x86_64')``, which becomes ``carch``
    (default: this host's).
    """
    source = pkgbuild_source(pkgbase)
    target.mkdir(parents=True, exist_ok=True)
    for entry in source.iterdir():
        if entry.is_file():
            (target / entry.name).write_bytes(entry.read_bytes())
    pkgbuild = target / "PKGBUILD"
    text = pkgbuild.read_text().replace("arch=('x86_64')", f"arch=('{carch or host_carch()}')")
    pkgbuild.write_text(set_version(text, version) if version is not None else text)
    return pkgbuild


def pkgbuild_source(pkgbase: str) -> Traversable:
    """The PKGBUILD directory shipped in this package (package data, also found in a wheel)."""
    if pkgbase not in BUILD_INPUTS:
        raise ValueError(f"unknown fixture package {pkgbase!r} (expected one of {', '.join(PKGBASES)})")
    return files("jobs.demo") / "pkgbuilds" / pkgbase


_VERSION = re.compile(r"^(?:(?P<epoch>\d+):)?(?P<pkgver>[^:/\s-]+)-(?P<pkgrel>\d+(?:\.\d+)?)$")


def set_version(pkgbuild: str, version: str) -> str:
    """The PKGBUILD text with its ``epoch``/``pkgver``/``pkgrel`` set to ``[epoch:]pkgver-pkgrel``."""
    match = _VERSION.match(version)
    if match is None:
        raise ValueError(f"not an Arch version [epoch:]pkgver-pkgrel: {version!r}")
    lines = [line for line in pkgbuild.splitlines() if not line.startswith("epoch=")]
    out = []
    for line in lines:
        if line.startswith("pkgver="):
            if match["epoch"]:
                out.append(f"epoch={match['epoch']}")
            line = f"pkgver={match['pkgver']}"
        elif line.startswith("pkgrel="):
            line = f"pkgrel={match['pkgrel']}"
        out.append(line)
    return "\n".join(out) + "\n"


def describe_package(path: Path) -> BuiltPackage:
    """Read name, base, version and arch from a package's .PKGINFO; hash the file."""
    info: dict[str, str] = {}
    with open(path, "rb") as f, zstandard.ZstdDecompressor().stream_reader(f) as stream, \
            tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            if member.name == ".PKGINFO":
                text = tar.extractfile(member).read().decode()  # type: ignore[union-attr]
                for line in text.splitlines():
                    key, sep, value = line.partition(" = ")
                    if sep and not key.startswith("#"):
                        info.setdefault(key, value)
                break
    if not {"pkgname", "pkgver", "arch"} <= info.keys():
        raise ValueError(f"{path} has no usable .PKGINFO")
    return BuiltPackage(pkgbase=info.get("pkgbase", info["pkgname"]), pkgname=info["pkgname"],
                        version=info["pkgver"], arch=info["arch"], filename=path.name, path=path,
                        sha256=hashlib.sha256(path.read_bytes()).hexdigest())


def save_fixture_repo(repo: FixtureRepo, path: Path) -> None:
    """Write ``repo`` as JSON, so another process can use it without building again."""
    partial = path.with_name(path.name + ".part")
    partial.write_text(json.dumps(asdict(repo), default=str, indent=1))
    partial.replace(path)


def load_fixture_repo(workdir: Path) -> FixtureRepo:
    """The repository that build_fixture_repo saved in ``workdir``."""
    data = json.loads((workdir / MANIFEST).read_text())
    settings = data.pop("settings")
    settings = BuildSettings(**{k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()})
    packages = [BuiltPackage(**{**p, "path": Path(p["path"])}) for p in data.pop("packages")]
    return FixtureRepo(**{k: Path(v) if k not in ("repo", "arch") else v for k, v in data.items()},
                       packages=packages, settings=settings)


def _check_selection(selected: Sequence[str], versions: Mapping[str, str]) -> None:
    for pkgbase in [*selected, *versions]:
        pkgbuild_source(pkgbase)  # raises for an unknown name
    for pkgbase in selected:
        missing = [dep for dep in BUILD_INPUTS[pkgbase] if dep not in selected]
        if missing:
            raise ValueError(f"{pkgbase} is built with {', '.join(missing)} installed: select it too")
    stray = sorted(set(versions) - set(selected))
    if stray:
        raise ValueError(f"versions given for packages that are not built: {', '.join(stray)}")
    for version in versions.values():
        set_version("", version)  # raises for a malformed version
