"""Rebuilders' sites published by the real jobs from one real set of builds, served on loopback.

`published` is one real sync → build → publish of the fixture repository. `second` is a
second rebuilder: a store holding the same worker results (results/, builds/, claims/,
workers/, state/, queue/) but none of the first one's publish output, published by the real
publish with its own signing key — so it verifies the same worker-signed results and
countersigns their attestations with a different key, as an independent rebuilder would.
`parted` is the first store published again with its lists cut into parts of one row, as
publish cuts lists longer than `urls.PAGE_SIZE` rows. Publish also writes each status list
whole (`<STATUS>.all.json`), which rebuildctl reads instead of the parts; `old` and
`parted_old` are the two sites as a publish before those whole lists left them, so that
the list feeds and their parts are read."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from jobs.core import urls
from jobs.core.config import parse_rebuilder_config
from jobs.core.signing import ensure_key
from jobs.core.store import open_store
from jobs.publish.run import publish
from tests.ctl.support import Recording, without_whole_lists
from tests.httpd import serve
from tests.publish.test_end_to_end import run_everything

# What a publish writes (its own state and output); the rest of a store is the shared input.
PUBLISH_OUTPUT = ("site", "history", "locks")


@pytest.fixture(scope="session")
def published(fixture_repo, tmp_path_factory):
    """One real sync → build → publish; returns the store directory and the publish config."""
    tmp = tmp_path_factory.mktemp("ctl")
    _, config, _ = run_everything((tmp / "store").as_uri(), fixture_repo, tmp)
    return tmp / "store", config


@pytest.fixture(scope="session")
def second(published, tmp_path_factory):
    """A second rebuilder (its own key) publishing the same worker results; returns its site directory."""
    tmp = tmp_path_factory.mktemp("ctl-second")
    ensure_key(tmp / "second.sign.key")  # a configured key must exist
    config = parse_rebuilder_config({"worker": {"signup_secret": "Fk3q9ZmT7vXc2LpW8nRb4HsY6dJg5QeA"},
                                     "publish": {"signing_key": str(tmp / "second.sign.key")}})
    return _republish(published, tmp, config)


def _republish(published, tmp: Path, config) -> Path:
    """A copy of the published store holding only the shared input, published again; its site directory."""
    store_dir = tmp / "store"
    shutil.copytree(published[0], store_dir)
    for prefix in PUBLISH_OUTPUT:
        for root in (store_dir, store_dir / ".rebuilder-meta"):  # the local store keeps metadata beside
            shutil.rmtree(root / prefix, ignore_errors=True)
    store = open_store(store_dir.as_uri())
    _queue_as_built(store)
    summary = publish(store, config)
    assert len(summary.state.accepted) == 5, summary.line()
    return store_dir / "site"


def _queue_as_built(store) -> None:
    """The queue as it was when the workers built (the first publish moved it on): each result's job
    at its attempt, as sync queued it from the package state. Publish checks results against it."""
    from datetime import datetime, timezone

    from jobs.core.layout import CLAIM_NOTICE_KEY, RESULT_KEY
    from jobs.core.model import JobRow
    from jobs.core.queue import update_queue
    from tests.publish.sitefix import snapshot

    attempts = {}
    for info in [*store.list("results/"), *store.list("claims/")]:
        # a worker's result: its done receipt (claims/<job>/<attempt>.done/<key id>.json), or, from
        # workers before results were receipts, results/<job>/<attempt>.json
        notice = CLAIM_NOTICE_KEY.fullmatch(info.key)
        found = (notice.group(1), notice.group(2)) if notice and notice.group(3) == "done" else None
        old = RESULT_KEY.fullmatch(info.key)
        found = found or (old.groups()[:2] if old else None)
        if found:
            attempts[found[0]] = int(found[1])
    by_job: dict = {}
    for row in snapshot(store):
        by_job.setdefault(row.job_id, []).append(row)
    now = datetime.now(timezone.utc)
    jobs = {jid: JobRow(job_id=jid, backend=rows[0].backend, architecture=rows[0].architecture,
                        input_url=rows[0].input_url, distro=rows[0].distro, releases=(rows[0].release,),
                        source_name=rows[0].source_name, source_version=rows[0].source_version,
                        artifacts=tuple(r.artifact for r in rows), priority=1, queued_at=now, not_before=None,
                        attempt=attempts[jid], retries=0)
            for jid, rows in by_job.items() if jid in attempts}
    update_queue(store, lambda _: jobs)


@pytest.fixture(scope="session")
def parted(published, tmp_path_factory):
    """The first rebuilder's results published with every list of more than one row cut into parts."""
    size = urls.PAGE_SIZE
    urls.PAGE_SIZE = 1  # the GOOD list (4 rows) is cut into four parts
    try:
        return _republish(published, tmp_path_factory.mktemp("ctl-parted"), published[1])
    finally:
        urls.PAGE_SIZE = size


@pytest.fixture(scope="session")
def parted_http(parted):
    with serve(parted, Recording) as base:
        yield base


@pytest.fixture(params=["http", "file"])
def parted_base(request, parted, parted_http):
    """The parted site, over loopback HTTP and as a file:// URL."""
    return parted_http if request.param == "http" else parted.as_uri()


@pytest.fixture(scope="session")
def parted_old(parted, tmp_path_factory):
    """The parted site without its whole lists: rebuildctl reads each list's parts."""
    return without_whole_lists(parted, tmp_path_factory.mktemp("ctl-parted-old") / "site")


@pytest.fixture(scope="session")
def parted_old_http(parted_old):
    with serve(parted_old, Recording) as base:
        yield base


@pytest.fixture(params=["http", "file"])
def parted_old_base(request, parted_old, parted_old_http):
    """The parted site without its whole lists, over loopback HTTP and as a file:// URL."""
    return parted_old_http if request.param == "http" else parted_old.as_uri()


@pytest.fixture(scope="session")
def old(published, tmp_path_factory):
    """The first rebuilder's site without its whole lists: rebuildctl reads each list's feed."""
    return without_whole_lists(published[0] / "site", tmp_path_factory.mktemp("ctl-old") / "site")


@pytest.fixture(params=["http", "file"])
def old_base(request, old):
    """The site without its whole lists, over loopback HTTP and as a file:// URL."""
    if request.param == "file":
        yield old.as_uri()
        return
    with serve(old) as base:
        yield base


@pytest.fixture(scope="session")
def http_base(published):
    with serve(published[0] / "site", Recording) as base:
        yield base


@pytest.fixture(scope="session")
def second_http(second):
    with serve(second) as base:
        yield base


@pytest.fixture(params=["http", "file"])
def base(request, published, http_base):
    """The first rebuilder's site, over loopback HTTP and as a file:// URL."""
    return http_base if request.param == "http" else (published[0] / "site").as_uri()


@pytest.fixture(params=["http", "file"])
def second_base(request, second, second_http):
    """The second rebuilder's site, over loopback HTTP and as a file:// URL."""
    return second_http if request.param == "http" else second.as_uri()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    """No user config, cookie or store leaks in; the ETag cache goes to tmp_path; no pager."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    for var in ("REBUILDERD_COOKIE_PATH", "REBUILDER_STORE", "PAGER", "NOPAGER", "LESS"):
        monkeypatch.delenv(var, raising=False)
