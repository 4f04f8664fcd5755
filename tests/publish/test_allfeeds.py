"""Whole status lists (`<STATUS>.all.json`): the list's rows, columnar, in the order of its parts; rendered only
when one of its parts changed; valid JSON whatever the names."""

from __future__ import annotations

import json

import duckdb
import pyarrow as pa
import pytest

from jobs.core import urls
from jobs.core.model import Status
from jobs.publish.site import feeds
from jobs.publish.site.build import build_site
from jobs.publish.site.plan import ListPart, ListRef
from jobs.publish.site.rows import SuiteKey
from jobs.publish.site.sitewriter import read_manifest, write_site
from tests.publish.sitefix import NOW, arch_world, state_row, write_state
from tests.publish.test_pages import HOSTILE, hostile_world

CORE = "api/v1/suites/archlinux/-/core/x86_64"
EXTRA = "api/v1/suites/archlinux/-/extra/x86_64"
STATUSES = [s.value for s in feeds.STATUSES]
EXTRA_NAMES = ["a1", "A2", "b1", "b2", "b3", "b4", "c-1", "samepre1", "samepre2", "samepre3", "samepre4", "samepre5"]


@pytest.fixture
def world(tmp_path):
    return arch_world(tmp_path)


def render(world, **kw):
    return build_site(world.store, now=NOW, public_keys={"current": []}, rebuilder_name="t", **kw)


def reader(site, store):
    """A site key's JSON: rendered in this run, or kept from the last one."""
    def read(key: str):
        data = site.files[key].data if key in site.files else store.get(f"site/{key}").data
        return json.loads(data)
    return read


def as_row(package: dict) -> list:
    """A list feed's package as a row of the whole list (`feeds.ALL_COLUMNS`)."""
    files = package["files"]
    derived = {"has_log": files["log"] is not None, "has_diffoscope_html": files["diffoscope_html"] is not None}
    return [derived[c] if c in derived else package[c] for c in feeds.ALL_COLUMNS]


def parts_rows(read, list_key: str) -> list[list]:
    """The rows of a status list as its feed, or its parts one after the other, give them."""
    listing = read(list_key)
    if "parts" not in listing:
        return [as_row(p) for p in listing["packages"]]
    return [as_row(p) for part in listing["parts"] for p in read(part["feed"])["packages"]]


def check_whole_lists(site, store) -> dict[str, dict]:
    """Every suite's whole lists equal their parts concatenated and are advertised where clients look."""
    read = reader(site, store)
    index = read(urls.INDEX_FEED)
    found = {}
    for suite in index["suites"]:
        path = urls.suite_path(suite["distro"], suite["release"], suite["component"], suite["architecture"])
        assert read(urls.suite_feed(path, "index"))["lists_all"] == suite["lists_all"]
        assert list(suite["lists_all"]) == STATUSES
        for status in STATUSES:
            key = suite["lists_all"][status]
            assert key == urls.status_all_feed(path, Status(status))
            whole, listing = read(key), read(suite["feeds"][status])
            assert listing["all"] == key
            assert (whole["schema"], whole["kind"], whole["status"]) == (feeds.SCHEMA, "suite-status-all", status)
            assert whole["suite"] == listing["suite"] and whole["columns"] == list(feeds.ALL_COLUMNS)
            assert whole["rows"] == parts_rows(read, suite["feeds"][status]), key
            assert whole["count"] == len(whole["rows"]) == listing["count"]
            found[key] = whole
    return found


def test_a_whole_list_is_its_parts_concatenated(world, monkeypatch):
    monkeypatch.setattr(urls, "PAGE_SIZE", 1)  # every list of two rows or more is cut into parts
    write_state(world.store, "more", [state_row(n, component="extra") for n in EXTRA_NAMES])
    site = render(world)
    found = check_whole_lists(site, world.store)
    assert set(found) == {f"{suite}/{s}.all.json" for suite in (CORE, EXTRA) for s in STATUSES}
    assert all(site.files[k].content_type == "application/json" for k in found)
    # The lists checked were cut into parts, several of them paged within a prefix.
    assert len(json.loads(site.files[f"{EXTRA}/UNKWN.json"].data)["parts"]) == 12
    assert len(json.loads(site.files[f"{CORE}/BAD.json"].data)["parts"]) == 3
    bad = found[f"{CORE}/BAD.all.json"]
    bar = dict(zip(bad["columns"], bad["rows"][0]))
    assert bar == {"name": "bar", "version": "2.0-1", "artifact_architecture": "x86_64",
                   "artifact_url": bar["artifact_url"], "source_name": "bar", "source_version": "2.0-1",
                   "build_id": bar["build_id"], "v0_build_id": 3, "built_at": "2026-04-29T12:00:00.000000Z",
                   "reason": "not reproducible: bar differs", "failure_class": "not-reproducible",
                   "worker_name": "builder-1", "has_log": True, "has_diffoscope": True, "has_diffoscope_html": True,
                   "has_attestation": False}
    # by prefix ("a1", "a2", …, "samepr" paged), then by name within one
    assert [r[0] for r in found[f"{EXTRA}/UNKWN.all.json"]["rows"]] == [
        "a1", "A2", "b1", "b2", "b3", "b4", "c-1", *(f"samepre{i}" for i in range(1, 6))]
    assert found[f"{CORE}/UNKWN.all.json"]["rows"][0][6:12] == [None] * 6  # never built


def test_whole_list_keys_cannot_be_a_part_or_a_class_list():
    ref = ListRef(SuiteKey("d", None, "c", "x86_64"), "status/GOOD")
    whole = urls.status_all_feed(ref.suite.path, Status.GOOD)
    assert whole == "api/v1/suites/d/-/c/x86_64/GOOD.all.json"
    assert whole not in {ListPart(ref, bucket, 1, 1, "").feed_key for bucket in ("", "all", "a", "good")}
    assert whole != ListRef(ref.suite, "class/all").feed_key and whole != ListRef(ref.suite, "names").feed_key


def test_only_the_whole_lists_whose_parts_changed_are_rendered(world):
    first = render(world)
    write_site(world.store, first)
    again = render(world, previous=read_manifest(world.store))
    assert not [k for k in again.files if k.endswith(".all.json")]
    assert {k for k in again.kept if k.endswith(".all.json")} == {f"{CORE}/{s}.all.json" for s in STATUSES}

    world.results.add(world.rows["qux"], 1, Status.GOOD, built_at=NOW)  # UNKWN → GOOD
    world.results.compact()
    site = render(world, previous=read_manifest(world.store))
    assert {k for k in site.files if k.endswith(".all.json")} == {f"{CORE}/GOOD.all.json", f"{CORE}/UNKWN.all.json"}
    assert {k for k in site.kept if k.endswith(".all.json")} == {f"{CORE}/BAD.all.json", f"{CORE}/FAIL.all.json"}
    assert all(site.files[k].input for k in site.files if k.endswith(".all.json"))  # kept by its digest next time
    write_site(world.store, site)
    found = check_whole_lists(site, world.store)
    assert [r[0] for r in found[f"{CORE}/GOOD.all.json"]["rows"]] == ["foo", "qux", "split-a"]
    assert found[f"{CORE}/UNKWN.all.json"]["rows"] == [] and found[f"{CORE}/UNKWN.all.json"]["count"] == 0


def test_a_changed_part_rewrites_its_whole_list_only(world, monkeypatch):
    monkeypatch.setattr(urls, "PAGE_SIZE", 3)
    write_state(world.store, "more", [state_row(n, component="extra") for n in EXTRA_NAMES])
    write_site(world.store, render(world))
    write_state(world.store, "more", [state_row(n, component="extra") for n in [*EXTRA_NAMES, "d1"]])
    site = render(world, previous=read_manifest(world.store))
    assert {k for k in site.files if k.endswith(".all.json")} == {f"{EXTRA}/UNKWN.all.json"}
    assert any(k.startswith(f"{EXTRA}/UNKWN/") for k in site.kept)  # most of its parts were kept
    write_site(world.store, site)
    found = check_whole_lists(site, world.store)
    assert "d1" in [r[0] for r in found[f"{EXTRA}/UNKWN.all.json"]["rows"]]


def test_hostile_names_round_trip(tmp_path):
    store = hostile_world(tmp_path)
    site = build_site(store, now=NOW, public_keys={"current": []}, rebuilder_name="r")
    found = check_whole_lists(site, store)
    for key in found:
        json.loads(site.files[key].data.decode("utf-8"))  # strict UTF-8, strict JSON
    rows = [dict(zip(w["columns"], r)) for w in found.values() for r in w["rows"]]
    assert set(HOSTILE) <= {r["name"] for r in rows}
    assert "<script>alert(2)</script>" in {r["source_name"] for r in rows}
    assert any("\x01\x0b" in (r["reason"] or "") for r in rows)  # control characters escaped, not dropped


def test_the_tables_rows_are_read_from_hold_only_utf8():
    # allfeeds relies on it: given a string that is not UTF-8 (only a forged Parquet file could
    # carry one), DuckDB's json_array writes no JSON at all. It refuses it when `pkgs` is built.
    con = duckdb.connect()
    try:
        names = pa.array([b"ok", b"ev\xffil"], pa.binary()).cast(pa.string(), safe=False)
        con.register("forged", pa.table({"name": names}))
        assert con.execute("SELECT CAST(json_array(name) AS VARCHAR) FROM forged").fetchall()[1] == ("",)
        with pytest.raises(duckdb.InvalidInputException):
            con.execute("CREATE TEMP TABLE pkgs AS SELECT * FROM forged")
    finally:
        con.close()
