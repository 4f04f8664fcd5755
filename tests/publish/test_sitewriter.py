"""Incremental, ordered site writing: nothing rewritten needlessly, no link ever dangling, kills survived."""

from __future__ import annotations

import gzip
import json
import threading
import time

import pytest

from jobs.core.model import Status
from jobs.core.store import LocalStore, StoreUnavailable
from jobs.publish.site.build import build_site
from jobs.publish.site.sanitize import clean_report
from jobs.publish.site.sitewriter import MANIFEST_SCHEMA, PLACEHOLDER, Entry, Tier, read_manifest, write_site
from tests.faults import Fault, FaultyStore, Killed
from tests.publish.sitefix import NOW, arch_world, sync_arch
from tests.sync import alpm_builders as alpm

SUITE = "suites/archlinux/-/core/x86_64"
FEEDS = "api/v1/suites/archlinux/-/core/x86_64"


def make_site(world, now=NOW, *, incremental=True):
    """The site as a publish computes it: incremental against the published manifest, or all of it."""
    previous = read_manifest(world.store) if incremental else None
    return build_site(world.store, now=now, public_keys={"current": ["k"]}, rebuilder_name="t", previous=previous)


def puts(faulty: FaultyStore) -> list[str]:
    return [key.removeprefix("site/") for op, key in faulty.log if op == "put"]


def deletes(faulty: FaultyStore) -> list[str]:
    return [key.removeprefix("site/") for op, key in faulty.log if op == "delete"]


def assert_published(target, site, prefix="site/"):
    """The store holds the site's files (and the manifest), with their bytes and types.

    Build files are immutable and never deleted: the store may hold more of them.
    """
    keys = {info.key.removeprefix(prefix) for info in target.list(prefix)}
    listed = set(site.kept) | {k for k, f in site.files.items() if f.listed}
    every_run = {k for k, f in site.files.items() if f.every_run}  # written every run, never listed
    assert every_run == {"index.html", "api/v1/index.json", "api/v1/status.json"}
    assert {k for k in keys if not k.startswith("api/v0/builds/")} == \
        {k for k in listed | every_run | {"_manifest.parquet"} if not k.startswith("api/v0/builds/")}
    assert set(site.files) | set(site.kept) <= keys
    for key, file in site.files.items():
        blob = target.get(prefix + key)
        expected = file.data if file.copy_from is None else site.source.get(file.copy_from).data
        if file.sanitize:
            expected = clean_report(expected, key=key)
        assert blob.data == expected, key
        assert blob.info.content_type == file.content_type, key
    manifest = read_manifest(target, prefix)
    assert manifest.files == {**site.kept, **{k: Entry(f.digest, f.input) for k, f in site.files.items() if f.listed}}
    assert manifest.builds_upto == site.builds_upto and manifest.salt == site.salt


@pytest.fixture
def world(tmp_path):
    return arch_world(tmp_path)


def test_first_publish_writes_tier_by_tier_and_the_manifest_last(world):
    site = make_site(world)
    faulty = FaultyStore(world.store)
    stats = write_site(faulty, site)
    assert (stats.written, stats.deleted, stats.unchanged) == (len(site.files), 0, 0)
    order = puts(faulty)
    assert order[0] == "_pending.json" and order[-1] == "_manifest.parquet" and len(order) == len(site.files) + 3
    assert deletes(faulty) == ["_pending.json"]  # after the manifest
    # The static assets first, then a placeholder dashboard (every page links both), then tier by tier.
    assets = sorted(k for k in site.files if k.startswith("static/"))
    assert assets == ["static/diffoscope.css", "static/filter.js", "static/list.js", "static/search.js", "static/status.js",
                      "static/style.css"]
    assert sorted(order[1:1 + len(assets)]) == assets
    assert order[1 + len(assets)] == "index.html"
    tiers = [site.files[k].tier for k in order[2 + len(assets):-1]]
    assert tiers == sorted(tiers)
    assert order.index("packages/archlinux/bar.html") < order.index(f"{SUITE}/BAD.html") \
        < order.index(f"{SUITE}/index.html") < len(order) - 1 - order[::-1].index("index.html")
    assert order.index("api/v0/builds/3/log") < order.index("api/v0/pkgs/list") < order.index("api/v0/dashboard")
    assert_published(world.store, site)
    assert read_manifest(world.store).files  # schema checked on read
    assert MANIFEST_SCHEMA.encode() in world.store.get("site/_manifest.parquet").data


def test_a_second_run_with_nothing_changed_renders_and_writes_nothing_new(world):
    first = make_site(world)
    write_site(world.store, first)
    faulty = FaultyStore(world.store)
    again = make_site(world)
    # package pages and list parts whose inputs did not change are not even rendered
    assert not any(k.startswith(("packages/", "api/v1/packages/", "api/v0/builds/")) for k in again.files)
    assert {k for k in again.kept if k.startswith("packages/")} == {k for k in first.files if k.startswith("packages/")}
    stats = write_site(faulty, again)
    # Only the three files that say when publish ran: no pending list, no manifest.
    every_run = ["api/v1/index.json", "api/v1/status.json", "index.html"]
    assert (stats.written, stats.deleted, stats.unchanged) == (3, 0, len(again.files) + len(again.kept) - 3)
    assert sorted(puts(faulty)) == every_run and deletes(faulty) == []
    # Half an hour later only the running build's lease age and the time changed: "generated_at"
    # and "now" alone never count as a change, but "last published" always does.
    later = make_site(world, now=NOW.replace(minute=30))
    before = world.store.get("site/api/v1/status.json").data
    faulty.log.clear()
    assert write_site(faulty, later).written == 3
    assert sorted(puts(faulty)) == every_run
    after = json.loads(world.store.get("site/api/v1/status.json").data)
    assert after["published_at"] == "2026-05-01T12:30:00.000000Z" and world.store.get(
        "site/api/v1/status.json").data != before
    assert json.loads(world.store.get("site/api/v1/index.json").data)["generated_at"] == after["published_at"]
    dashboard = world.store.get("site/index.html").data.decode()
    assert "35 min" in dashboard and "Last published 2026-05-01 12:30 UTC" in dashboard


def test_one_new_result_rewrites_only_what_shows_it(world):
    write_site(world.store, make_site(world))
    world.results.add(world.rows["qux"], 1, Status.GOOD, built_at=NOW)
    world.results.compact()
    site = make_site(world)
    faulty = FaultyStore(world.store)
    stats = write_site(faulty, site)
    written = puts(faulty)
    assert written[0] == "_pending.json" and written[-1] == "_manifest.parquet"
    assert set(written[1:-1]) == {
        "api/v1/status.json",  # every run
        "maintainers/index.html", "api/v1/maintainers/index.json",  # Jane Doe's counts
        "maintainers/Jane%20Doe%20%3Cjane%40example.org%3E.atom",  # (her page is a shell: kept)
        "api/v1/maintainers/Jane%20Doe%20%3Cjane%40example.org%3E.json",
        "api/v0/builds/7/log",
        "packages/archlinux/qux.html", "api/v1/packages/archlinux/qux.json",
        # the lists' pages are static shells (static/list.js): only their feeds change
        f"{FEEDS}/UNKWN.json", f"{FEEDS}/GOOD.json", f"{FEEDS}/names.json",
        f"{FEEDS}/UNKWN.all.json", f"{FEEDS}/GOOD.all.json",
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
    assert set(deletes(faulty)) == gone | {"_pending.json"} and stats.deleted == 2
    log = [key.removeprefix("site/") for _, key in faulty.log]
    first_delete = min(log.index(k) for k in gone)
    # The lists link it from their feeds (their pages are shells static/list.js fills from them).
    for linking in (f"{FEEDS}/BAD.json", f"{FEEDS}/names.json", "api/v0/pkgs/list", "index.html"):
        assert log.index(linking) < first_delete
    assert log[-2:] == ["_manifest.parquet", "_pending.json"]
    assert not any(info.key.endswith("/bar.html") for info in world.store.list("site/"))
    assert_published(world.store, site)
    assert world.store.head("site/api/v0/builds/3/log")  # the history stays published


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
    again = build_site(world.store, now=NOW, public_keys={"current": ["k"]}, rebuilder_name="t",
                       previous=read_manifest(store, ""))
    assert write_site(store, again, prefix="").written == 3  # index.html, index.json, status.json


def test_force_and_an_unreadable_manifest_rewrite_everything(world):
    site = make_site(world)
    write_site(world.store, site)
    assert write_site(world.store, site, force=True).written == len(site.files)
    world.store.put("site/_manifest.parquet", b"{not parquet")
    assert read_manifest(world.store).files == {}
    assert write_site(world.store, site).written == len(site.files)
    assert_published(world.store, site)
    assert len(make_site(world).kept) > 10  # the manifest is whole again


def test_a_missing_source_is_retried_not_linked_forever(world):
    site = make_site(world)
    log = site.files["api/v0/builds/3/log"].copy_from
    data = world.store.get(log).data
    world.store.delete(log)
    stats = write_site(world.store, site)
    assert stats.written == len(site.files) - 1
    assert read_manifest(world.store).files["api/v0/builds/3/log"] == Entry("")
    again = make_site(world)
    assert {k for k in again.files if k.startswith("api/v0/builds/")} == \
        {k for k in site.files if k.startswith("api/v0/builds/3/")}  # only the build to retry
    world.store.put(log, data, content_encoding="gzip")
    assert write_site(world.store, again).written == len([k for k in again.files if k.startswith("api/v0/builds/")]) + 3
    assert "api/v0/builds/3/log" not in read_manifest(world.store).files
    assert world.store.get("site/api/v0/builds/3/log").data == data


def test_an_unfinished_publish_is_finished_by_the_next(world, tmp_path):
    first, second = two_sites(world, tmp_path)
    write_site(world.store, first)
    with pytest.raises(Killed):
        write_site(FaultyStore(world.store, kill_at=3), second)
    pending = read_manifest(world.store)
    assert pending.builds_upto == first.builds_upto
    assert any(entry == Entry("") for entry in pending.files.values())  # about to change: unknown
    rerun = make_site(world)
    write_site(world.store, rerun)
    assert_published(world.store, rerun)
    assert not any(info.key == "site/_pending.json" for info in world.store.list("site/"))


def test_tiers_of_the_site(world):
    site = make_site(world)
    tier = {k: f.tier for k, f in site.files.items()}
    assert tier["api/v0/builds/3/log"] == tier["packages/archlinux/bar.html"] == tier["static/style.css"] == Tier.LEAF
    assert tier[f"{SUITE}/BAD.html"] == tier["api/v0/pkgs/list"] == Tier.LIST
    assert tier[f"{SUITE}/index.html"] == Tier.SUITE
    assert tier["index.html"] == tier["api/v0/dashboard"] == tier["regressions.atom"] == Tier.TOP


def test_writes_of_one_step_run_concurrently_and_a_failure_stops_the_later_tiers(world, tmp_path):
    """Files of one tier are written several at once; a failed write leaves later tiers unwritten."""
    site = make_site(world)
    active, most, lock = [0], [0], threading.Lock()

    def overlapping(op, key):
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        time.sleep(0.05)
        with lock:
            active[0] -= 1

    slow = FaultyStore(LocalStore(tmp_path / "slow", fsync=False),
                       faults=[Fault("call", op="put", key="site/packages/*", callback=overlapping, times=0)])
    write_site(slow, site, writers=8)  # as on a network store (a local one gets one writer: writers_for)
    assert most[0] > 1  # leaf writes overlapped
    assert_published(slow.store, site)

    failing = FaultyStore(world.store, faults=[Fault("fail", op="put", key="site/packages/*", nth=2)])
    with pytest.raises(StoreUnavailable):
        write_site(failing, site)
    tiers = {site.files[k].tier for _, k in ((op, key.removeprefix("site/")) for op, key in failing.landed)
             if k in site.files and k != "index.html"}
    assert tiers == {Tier.LEAF}  # nothing that links to a leaf was written
    assert world.store.get("site/index.html").data == PLACEHOLDER  # only the first publish's placeholder
    assert not any(k == "site/_manifest.parquet" for _, k in failing.landed)
    write_site(world.store, make_site(world))  # the next publish finishes it
    assert_published(world.store, make_site(world))


def test_one_writer_writes_in_key_order_and_publishes_the_same(world, tmp_path):
    site = make_site(world)
    serial = FaultyStore(LocalStore(tmp_path / "serial", fsync=False))
    write_site(serial, site, writers=1)
    order = puts(serial)[1:-1]
    static = sorted(k for k in site.files if k.startswith("static/"))
    assert order == static + ["index.html"] + [  # the assets, the first publish's placeholder, the rest
        f.key for f in sorted(site.files.values(), key=lambda f: (f.tier, False, f.key)) if f.key not in static]
    assert_published(serial.store, site)


def _local_links(html: str) -> set[str]:
    import re
    return {m for m in re.findall(r'(?:href|src)="([^"#?]+)', html) if "://" not in m and not m.startswith("mailto:")}


def test_killed_at_any_write_of_a_first_publish_no_page_links_a_missing_file(world, tmp_path):
    """An interrupted first publish must not leave pages whose stylesheet or dashboard link is dead."""
    import posixpath

    site = make_site(world)
    probe = FaultyStore(LocalStore(tmp_path / "probe", fsync=False))
    write_site(probe, site, writers=1)
    for kill_at in range(1, probe.writes + 1):
        target = LocalStore(tmp_path / f"t-{kill_at}", fsync=False)
        with pytest.raises(Killed):
            write_site(FaultyStore(target, kill_at=kill_at, after=True), site, writers=1)
        keys = {o.key.removeprefix("site/") for o in target.list("site/")}
        for key in (k for k in keys if k.endswith(".html")):
            page = target.get("site/" + key).data.decode()
            for link in _local_links(page):
                resolved = posixpath.normpath(posixpath.join(posixpath.dirname(key), link))
                if resolved in ("static/style.css", "index.html"):
                    assert resolved in keys, f"killed after write {kill_at}: {key} links {link}, not written yet"


def test_a_gzip_build_file_a_browser_would_inflate_past_the_cap_is_not_published(world, caplog):
    """A log uploaded gzip is served gzip-encoded: a bomb (or a broken stream) would be inflated by a visitor's
    browser. Past `log_decoded` once inflated, it is not published (and retried, as a missing source is)."""
    from jobs.core.bounded import configured

    site = make_site(world)
    log = site.files["api/v0/builds/3/log"].copy_from
    inflated = len(gzip.decompress(world.store.get(log).data))
    with configured({"log_decoded": inflated - 1}):
        write_site(world.store, site)
    assert read_manifest(world.store).files["api/v0/builds/3/log"] == Entry("")  # to retry, not linked
    assert not any(info.key == "site/api/v0/builds/3/log" for info in world.store.list("site/api/v0/builds/3/"))
    assert f"api/v0/builds/3/log: {log} decompressed: larger than the limit of {inflated - 1} bytes; not published" \
        in caplog.text
    with configured({"log_decoded": inflated}):  # exactly at the cap: served
        write_site(world.store, make_site(world))
    assert world.store.get("site/api/v0/builds/3/log").data == world.store.get(log).data
