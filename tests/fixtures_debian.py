"""The Debian fixture of the tests: jobs/demo/debrepo.py's repository (which `rebuilder demo
--distro debian` builds too), with its build roots cached in ``REBUILDER_TEST_CACHE``/debian
(default ``/var/cache/rebuilder-tests/debian``), so only the first run downloads them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from jobs.demo.debrepo import (
    BINNMU,
    BINNMU_VERSION,
    EPOCH,
    GONE_VERSION,
    PACKAGES,
    REPRODUCIBLE,
    SUITE,
    UNBUILDABLE,
    UNREPRODUCIBLE,
    VERSION,
    DebianRepo,
    build_debian_repo,
    host_archive_line,
    require_debian_host,
)

DebianFixture = DebianRepo

__all__ = ["BINNMU", "BINNMU_VERSION", "EPOCH", "GONE_VERSION", "PACKAGES", "REPRODUCIBLE", "SUITE", "UNBUILDABLE",
           "UNREPRODUCIBLE", "VERSION", "DebianFixture", "build_fixture", "cache_dir", "debian_fixture", "host_archive_line",
           "require_debian_host"]


def cache_dir() -> Path:
    return Path(os.environ.get("REBUILDER_TEST_CACHE", "/var/cache/rebuilder-tests")) / "debian"


def build_fixture(base: Path) -> DebianRepo:
    """Build the fixture repository under ``base`` with the tests' root cache."""
    return build_debian_repo(base, cache=cache_dir())


@pytest.fixture(scope="session")
def debian_fixture(tmp_path_factory: pytest.TempPathFactory) -> DebianRepo:
    """The fixture repository, built once per test session (import this fixture into a test module)."""
    why = require_debian_host()
    if why:
        pytest.skip(f"the Debian fixture cannot be built here: {why}")
    return build_fixture(tmp_path_factory.mktemp("debian-fixture"))
