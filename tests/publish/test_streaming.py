"""Package pages written as they are rendered (`SiteStream`): the same site, the same order, kills survived."""

from __future__ import annotations

import posixpath
import shutil

import pytest

from jobs.core.model import Status
from jobs.core.store import LocalStore
from jobs.publish.site.build import build_site
from jobs.publish.site.sitewriter import read_manifest, write_site
from jobs.publish.site.streaming import SiteStream
from tests.faults import FaultyStore, Killed
from tests.publish.sitefix import NOW, arch_world, sync_arch
from tests.sync import alpm_builders as alpm


@pytest.fixture
def world(tmp_path):
    return arch_world(tmp_path)


def publish_site(source, target, *, stream: bool, batch: int = 3, writers: int = 8, now=NOW):
    """build_site + write_site from `source` into `target`, package pages streamed or held."""
    previous = read_manifest(target)
    write_to = SiteStream(target, previous=previous, batch=batch, writers=writers) if stream else None
    site = build_site(source, now=now, public_keys={"current": ["k"]}, rebuilder_name="t", previous=previous,
                      write_to=write_to)
    return site, write_site(target, site, previous=previous, writers=writers)


def published(store) -> dict[str, tuple[bytes, str | None]]:
    """Every object of the site but its manifest (compared by `read_manifest`), with its bytes and type."""
    out = {}
    for info in store.list("site/"):
        if info.key != "site/_manifest.parquet":
            blob = store.get(info.key)
            out[info.key] = (blob.data, blob.info.content_type)
    return out


def change(world, tmp_path):
    """A new result, a vanished package and a new one."""
    world.results.add(world.rows["qux"], 1, Status.FAIL, built_at=NOW, reason="download failed: x: HTTP 404")
    world.results.compact()
    sync_arch(world.store, tmp_path / "mirror", [alpm.package(n, "1-1") for n in ("foo", "baz", "qux", "new")])


def test_streamed_pages_publish_the_same_site(world, tmp_path):
    held, streamed = (LocalStore(tmp_path / name, fsync=False) for name in ("held", "streamed"))
    for step in ("first", "second"):
        if step == "second":
            change(world, tmp_path)
        site, held_stats = publish_site(world.store, held, stream=False)
        streamed_site, stats = publish_site(world.store, streamed, stream=True)
        assert not any(k.startswith("packages/") for k in streamed_site.files)  # written, not held
        assert streamed_site.stream.entries and streamed_site.stream.written
        assert published(streamed) == published(held), step
        assert read_manifest(streamed) == read_manifest(held)
        assert (stats.written, stats.deleted, stats.unchanged) == \
            (held_stats.written, held_stats.deleted, held_stats.unchanged)
    assert [i.key for i in streamed.list("site/_pending")] == []


def test_a_publish_with_nothing_new_writes_no_pending_list(world, tmp_path):
    target = FaultyStore(LocalStore(tmp_path / "t", fsync=False))
    publish_site(world.store, target.store, stream=True)
    publish_site(world.store, target, stream=True)
    assert {key.removeprefix("site/") for _op, key in target.log} == {"index.html", "api/v1/index.json",
                                                                      "api/v1/status.json"}


def test_leaves_go_first_then_the_pages_that_link_them(world, tmp_path):
    target = FaultyStore(LocalStore(tmp_path / "t", fsync=False))
    publish_site(world.store, target, stream=True, writers=1)
    log = [key.removeprefix("site/") for op, key in target.log if op == "put"]
    assert log[0] == "_pending.json"
    last_static = max(i for i, k in enumerate(log) if k.startswith("static/"))
    assert log[last_static + 1] == "index.html"  # the first publish's placeholder, once the stylesheet is there
    first_page = min(i for i, k in enumerate(log) if k.startswith("packages/"))
    builds = [i for i, k in enumerate(log) if k.startswith("api/v0/builds/")]
    assert builds and max(builds) < first_page
    assert log[-1] == "_manifest.parquet"


@pytest.mark.full("two publishes per write of a streamed publish")
@pytest.mark.parametrize("first_publish", [True, False])
def test_killed_at_any_write_of_a_streamed_publish_the_next_converges(world, tmp_path, first_publish):
    before = tmp_path / "before"
    shutil.copytree(tmp_path / "store", before)
    change(world, tmp_path)
    old = LocalStore(before)
    reference = LocalStore(tmp_path / "reference", fsync=False)
    if not first_publish:
        publish_site(old, reference, stream=True)
    probe = FaultyStore(LocalStore(tmp_path / "probe", fsync=False))
    if not first_publish:
        publish_site(old, probe.store, stream=True)
    publish_site(world.store, probe, stream=True, writers=1)
    publish_site(world.store, reference, stream=True)
    expected = published(reference)
    # The writes build_site makes through the stream (write_site's own are killed in test_sitewriter),
    # and the first one after them.
    leaves = ("site/_pending.json", "site/static/", "site/api/v0/builds/", "site/packages/", "site/api/v1/packages/",
              "site/index.html", "site/api/v0/public-keys", "site/api/v1/meta/public-keys")
    streamed = next(i for i, (_op, key) in enumerate(probe.log) if i and not key.startswith(leaves))
    assert streamed > 5
    for kill_at in range(1, streamed + 2):
        target = LocalStore(tmp_path / f"t-{kill_at}", fsync=False)
        if not first_publish:
            publish_site(old, target, stream=True)
        with pytest.raises(Killed):
            publish_site(world.store, FaultyStore(target, kill_at=kill_at, after=True), stream=True, writers=1)
        keys = {o.key.removeprefix("site/") for o in target.list("site/")}
        for key in (k for k in keys if k.endswith(".html")):
            page = target.get("site/" + key).data.decode()
            for link in ("static/style.css", "index.html"):
                if link in {posixpath.normpath(posixpath.join(posixpath.dirname(key), m))
                            for m in _local_links(page)}:
                    assert link in keys, f"killed after write {kill_at}: {key} links {link}, not written yet"
        publish_site(world.store, target, stream=True)
        assert published(target) == expected, kill_at
        assert read_manifest(target) == read_manifest(reference)
        shutil.rmtree(tmp_path / f"t-{kill_at}")


def _local_links(html: str) -> set[str]:
    import re
    return {m for m in re.findall(r'(?:href|src)="([^"#?]+)', html) if "://" not in m and not m.startswith("mailto:")}
