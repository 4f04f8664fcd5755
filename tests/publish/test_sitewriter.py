"""Incremental, ordered site writing: nothing rewritten needlessly, no link ever dangling, kills survived."""

from __future__ import annotations

import pytest

from jobs.core.model import Status
from jobs.core.store import LocalStore
from jobs.publish.site import build_site
from jobs.publish.sitewriter import MANIFEST_SCHEMA, Tier, read_manifest, write_site
from tests.faults import FaultyStore, Killed
from tests.publish.sitefix import NOW, arch_world, sync_arch
from tests.sync import alpm_builders as alpm

SUITE = "suites/archlinux/-/core/x86_64"
FEEDS = "api/v1/suites/archlinux/-/core/x86_64"


def make_site(world, now=NOW):
    return build_site(world.store, now=now, public_keys={"current": ["k"]}, rebuilder_name="t")


def puts(faulty: FaultyStore) -> list[str]:
    return [key.removeprefix("site/") for op, key in faulty.log if op == "put"]


def deletes(faulty: FaultyStore) -> list[str]:
    return [key.removeprefix("site/") for op, key in faulty.log if op == "delete"]


def assert_published(target, site, prefix="site/"):
    """The store holds exactly the site's files (and the manifest), with their bytes and types."""
    keys = {info.key.removeprefix(prefix) for info in target.list(prefix)}
    assert keys == set(site.files) | {"_manifest.json"}
    for key, file in site.files.items():
        blob = target.get(prefix + key)
        expected = file.data if file.copy_from is None else site.source.get(file.copy_from).data
        assert blob.data == expected, key
        assert blob.info.content_type == file.content_type, key
    assert read_manifest(target, prefix) == {k: f.digest for k, f in site.files.items()}


@pytest.fixture
def world(tmp_path):
    return arch_world(tmp_path)


def test_first_publish_writes_tier_by_tier_and_the_manifest_last(world):
    site = make_site(world)
    faulty = FaultyStore(world.store)
    stats = write_site(faulty, site)
    assert (stats.written, stats.deleted, stats.unchanged) == (len(site.files), 0, 0)
    order = puts(faulty)
    assert order[0] == order[-1] == "_manifest.json" and len(order) == len(site.files) + 2
    tiers = [site.files[k].tier for k in order[1:-1]]
    assert tiers == sorted(tiers)
    assert order.index("packages/archlinux/bar.html") < order.index(f"{SUITE}/BAD.html") \
        < order.index(f"{SUITE}/index.html") < order.index("index.html")
    assert order.index("api/v0/builds/3/log") < order.index("api/v0/pkgs/list") < order.index("api/v0/dashboard")
    assert_published(world.store, site)
    assert read_manifest(world.store)  # schema checked on read
    assert MANIFEST_SCHEMA in world.store.get("site/_manifest.json").data.decode()


def test_a_second_run_with_nothing_changed_writes_nothing(world):
    write_site(world.store, make_site(world))
    faulty = FaultyStore(world.store)
    again = make_site(world)
    stats = write_site(faulty, again)
    assert (stats.written, stats.deleted, stats.unchanged) == (0, 0, len(again.files))
    assert faulty.log == []
    # Half an hour later only the running build's lease age changed: "generated_at" and
    # "now" alone never count as a change.
    later = make_site(world, now=NOW.replace(minute=30))
    assert write_site(faulty, later).written == 1
    assert puts(faulty) == ["_manifest.json", "index.html", "_manifest.json"]
    assert "35 min" in world.store.get("site/index.html").data.decode()


def test_one_new_result_rewrites_only_what_shows_it(world):
    write_site(world.store, make_site(world))
    world.results.add(world.rows["qux"], 1, Status.GOOD, built_at=NOW)
    world.results.compact()
    site = make_site(world)
    faulty = FaultyStore(world.store)
    stats = write_site(faulty, site)
    written = puts(faulty)
    assert written[0] == written[-1] == "_manifest.json"
    assert set(written[1:-1]) == {
        "api/v0/builds/7/log",
        "packages/archlinux/qux.html", "api/v1/packages/archlinux/qux.json",
        f"{SUITE}/UNKWN.html", f"{SUITE}/GOOD.html", f"{SUITE}/names/q.html",
        f"{FEEDS}/UNKWN.json", f"{FEEDS}/GOOD.json", f"{FEEDS}/names/q.json",
        f"{SUITE}/index.html", f"{FEEDS}/index.json",
        "api/v0/pkgs/list", "api/v0/dashboard", "api/v1/index.json", "index.html",
        "api/v1/workers.json",  # its last build and build count
    }
    assert stats.written == len(written) - 2 and stats.deleted == 0
    assert_published(world.store, site)


def test_vanished_files_are_deleted_after_the_pages_that_linked_them(world, tmp_path):
    write_site(world.store, make_site(world))
    mirror = tmp_path / "mirror"
    sync_arch(world.store, mirror, [alpm.package(n, v) for n, v in (("foo", "1.0-1"), ("baz", "1-1"), ("qux", "3-1"),
                                                                     ("regress", "5-1"))]
              + [alpm.package("split-a", "1-1", base="splitbase"), alpm.package("split-b", "1-1", base="splitbase")])
    site = make_site(world)
    faulty = FaultyStore(world.store)
    stats = write_site(faulty, site)
    gone = {"packages/archlinux/bar.html", "api/v1/packages/archlinux/bar.json"}
    assert set(deletes(faulty)) == gone and stats.deleted == 2
    log = [key.removeprefix("site/") for _, key in faulty.log]
    first_delete = min(log.index(k) for k in gone)
    for linking in (f"{SUITE}/BAD.html", f"{SUITE}/names/b.html", "api/v0/pkgs/list", "index.html"):
        assert log.index(linking) < first_delete
    assert log[-1] == "_manifest.json"
    assert not any(info.key.endswith("/bar.html") for info in world.store.list("site/"))
    assert_published(world.store, site)
    assert "api/v0/builds/3/log" in site.files  # the history stays published


def two_sites(world, tmp_path):
    """A published site, and the next one: a new result, a vanished package and a new page of a list."""
    first = make_site(world)
    world.results.add(world.rows["qux"], 1, Status.FAIL, built_at=NOW, reason="download failed: x: HTTP 404")
    world.results.compact()
    sync_arch(world.store, tmp_path / "mirror", [alpm.package(n, "1-1") for n in ("foo", "baz", "qux", "new")])
    return first, make_site(world)


@pytest.mark.parametrize("then", ["second", "first"])
def test_killed_at_any_write_the_next_publish_converges(world, tmp_path, then):
    first, second = two_sites(world, tmp_path)
    probe = FaultyStore(LocalStore(tmp_path / "probe", fsync=False))
    write_site(probe.store, first)
    write_site(probe, second)
    total = probe.writes
    assert total > 10
    # Killed before write N leaves what killed after write N-1 leaves: only the first
    # write needs both.
    final = second if then == "second" else first  # the rerun may compute the old site again
    for kill_at, after in [(1, False)] + [(n, True) for n in range(1, total + 1)]:
        target = LocalStore(tmp_path / f"t-{then}-{kill_at}-{after}", fsync=False)
        write_site(target, first)
        with pytest.raises(Killed):
            write_site(FaultyStore(target, kill_at=kill_at, after=after), second)
        write_site(target, final)
        assert_published(target, final)


def test_a_separate_site_store_gets_copies_of_the_build_files(world, store):
    site = make_site(world)
    write_site(store, site, prefix="")
    info = store.head("api/v0/builds/4/log")
    assert (info.content_type, info.content_encoding) == ("text/plain; charset=utf-8", "gzip")
    assert store.head("api/v0/pkgs/list").content_type == "application/json"
    assert store.head("index.html").content_type == "text/html; charset=utf-8"
    assert store.head("regressions.atom").content_type == "application/atom+xml"
    assert store.head("static/style.css").content_type == "text/css; charset=utf-8"
    assert store.head("static/filter.js").content_type == "text/javascript; charset=utf-8"
    assert_published(store, site, prefix="")
    assert write_site(store, site, prefix="").written == 0


def test_force_and_an_unreadable_manifest_rewrite_everything(world):
    site = make_site(world)
    write_site(world.store, site)
    assert write_site(world.store, site, force=True).written == len(site.files)
    world.store.put("site/_manifest.json", b"{not json")
    assert write_site(world.store, site).written == len(site.files)
    assert_published(world.store, site)


def test_a_missing_source_is_retried_not_linked_forever(world):
    site = make_site(world)
    log = site.files["api/v0/builds/3/log"].copy_from
    data = world.store.get(log).data
    world.store.delete(log)
    stats = write_site(world.store, site)
    assert stats.written == len(site.files) - 1
    assert read_manifest(world.store)["api/v0/builds/3/log"] == ""
    world.store.put(log, data, content_encoding="gzip")
    assert write_site(world.store, site).written == 1


def test_tiers_of_the_site(world):
    site = make_site(world)
    tier = {k: f.tier for k, f in site.files.items()}
    assert tier["api/v0/builds/3/log"] == tier["packages/archlinux/bar.html"] == tier["static/style.css"] == Tier.LEAF
    assert tier[f"{SUITE}/BAD.html"] == tier["api/v0/pkgs/list"] == Tier.LIST
    assert tier[f"{SUITE}/index.html"] == Tier.SUITE
    assert tier["index.html"] == tier["api/v0/dashboard"] == tier["regressions.atom"] == Tier.TOP
