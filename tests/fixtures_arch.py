"""Fixtures for tests that need the fixture Arch repository (jobs/demo), and a loopback HTTP server.

Import the fixtures into a conftest.py: ``from tests.fixtures_arch import fixture_repo, fixture_repo_url``.
``fixture_repo`` is built once per test session. Under pytest-xdist, the workers share it through
a file lock. Treat it as read-only: a test that changes a repository builds its own with
``build_fixture_repo(tmp_path, ...)``.
"""

from __future__ import annotations

import fcntl
import io
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import zstandard

from jobs.demo.archrepo import FixtureRepo, build_fixture_repo, load_fixture_repo
from jobs.work.backends.makepkg import TOOLS
from tests.httpd import serve as http_server
from tests.tools import missing, require_tool


def require_makepkg_host() -> None:
    """Skip (laptop) or fail (CI) unless this machine can build the fixture packages."""
    for tool, package in {**TOOLS, "repo-add": "pacman-package-manager", "gcc": "gcc"}.items():
        require_tool(tool, package)
    if os.geteuid() != 0:
        missing("root", "makepkg builds run in mount namespaces (unshare -m) and switch to user 'builder'")


@pytest.fixture(scope="session")
def fixture_repo(tmp_path_factory: pytest.TempPathFactory) -> FixtureRepo:
    """The fixture repository (all packages), built once per session; do not modify it."""
    require_makepkg_host()
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # shared by every worker of this run
    workdir = base / "fixture-arch-repo"
    with open(base / "fixture-arch-repo.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return load_fixture_repo(workdir)
        except FileNotFoundError:
            return build_fixture_repo(workdir)


@pytest.fixture(scope="session")
def fixture_repo_url(fixture_repo: FixtureRepo) -> Iterator[str]:
    """Base URL serving ``fixture_repo.root``; its mirror URL is ``fixture_repo.source_url(base)``."""
    with http_server(fixture_repo.root) as url:
        yield url


def package_member(path: Path, name: str) -> bytes:
    """One member (e.g. ``.BUILDINFO``) of a ``.pkg.tar.zst``."""
    with open(path, "rb") as f, zstandard.ZstdDecompressor().stream_reader(f) as stream, \
            tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            if member.name == name:
                return tar.extractfile(member).read()  # type: ignore[union-attr]
    raise KeyError(f"{name} not in {path}")


def key_values(text: str) -> dict[str, list[str]]:
    """``key = value`` lines (.BUILDINFO, .PKGINFO) as key -> values, in order."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(" = ")
        if sep and not line.startswith("#"):
            out.setdefault(key.strip(), []).append(value)
    return out


def read_repo_db(data: bytes) -> dict[str, dict[str, list[str]]]:
    """A repo-add database (any compression tarfile or zstd reads) as ``dir name -> section -> values``."""
    if data[:4] == b"\x28\xb5\x2f\xfd":
        data = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()
    entries: dict[str, dict[str, list[str]]] = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar:
            if not member.isfile() or not member.name.endswith("/desc"):
                continue
            sections: dict[str, list[str]] = {}
            current = None
            for line in tar.extractfile(member).read().decode().splitlines():  # type: ignore[union-attr]
                if line.startswith("%") and line.endswith("%"):
                    current = sections.setdefault(line.strip("%"), [])
                elif line and current is not None:
                    current.append(line)
            entries[member.name.rsplit("/", 1)[0]] = sections
    return entries
