"""The JSON feeds: rebuilderd's v0 shapes exactly, read the way its consumers read them; our v1 feeds."""

from __future__ import annotations

import gzip
import json
import re
import urllib.request

import pytest

from jobs.core import layout
from jobs.core.model import Status
from jobs.core.queue import read_queue
from jobs.publish.site.build import build_site
from jobs.publish.site.sitewriter import write_site
from tests.httpd import serve
from tests.publish.sitefix import NOW, arch_world

PKG_RELEASE_KEYS = {"name", "version", "status", "distro", "suite", "architecture", "artifact_url", "build_id",
                    "built_at", "has_diffoscope", "has_attestation"}
NAIVE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}")  # chrono NaiveDateTime: no zone, no Z
EXPECTED = {"foo": "GOOD", "bar": "BAD", "baz": "BAD", "qux": "UNKWN", "split-a": "GOOD", "split-b": "BAD",
            "regress": "BAD"}


@pytest.fixture
def published(tmp_path):
    world = arch_world(tmp_path)
    site = build_site(world.store, now=NOW, countersigned={}, public_keys={"current": ["-----BEGIN PUBLIC KEY-----"]},
                      rebuilder_name="test")
    write_site(world.store, site)
    return world, site


def feed(site, key):
    return json.loads(site.files[key].data)


def arch_repro_status(base_url: str) -> dict[str, tuple[str, int | None]]:
    """What arch-repro-status does (src/fetch.rs): GET the list with ?distro=, first record per name wins."""
    with urllib.request.urlopen(f"{base_url}/api/v0/pkgs/list?distro=archlinux", timeout=10) as response:
        records = json.load(response)
    found: dict[str, tuple[str, int | None]] = {}
    for record in records:
        assert set(record) == PKG_RELEASE_KEYS
        assert record["status"] in ("GOOD", "BAD", "UNKWN")  # its serde enum knows nothing else
        assert record["build_id"] is None or (isinstance(record["build_id"], int) and record["build_id"] > 0)
        assert record["built_at"] is None or NAIVE.fullmatch(record["built_at"])
        assert isinstance(record["has_diffoscope"], bool) and isinstance(record["has_attestation"], bool)
        found.setdefault(record["name"], (record["status"], record["build_id"]))
    return found


def test_pkgs_list_read_over_http_like_arch_repro_status(published):
    world, _ = published
    with serve(world.store.root / "site") as url:
        found = arch_repro_status(url)
        assert {name: status for name, (status, _) in found.items()} == EXPECTED
        # ... and it follows build ids to logs: /api/v0/builds/{build_id}/log
        with urllib.request.urlopen(f"{url}/api/v0/builds/{found['baz'][1]}/log", timeout=10) as response:
            assert b"A failure occurred in build()" in gzip.decompress(response.read())


def test_pkgs_list_exact_records(published):
    _, site = published
    records = {r["name"]: r for r in feed(site, "api/v0/pkgs/list")}
    assert records["bar"] == {"name": "bar", "version": "2.0-1", "status": "BAD", "distro": "archlinux",
                              "suite": "core", "architecture": "x86_64", "artifact_url": records["bar"]["artifact_url"],
                              "build_id": 3, "built_at": "2026-04-29T12:00:00.000000", "has_diffoscope": True,
                              "has_attestation": False}
    assert records["baz"]["status"] == "BAD"  # FAIL reads BAD in v0
    assert records["qux"]["build_id"] is None and records["qux"]["built_at"] is None
    assert records["foo"]["has_attestation"] is True
    assert records["bar"]["artifact_url"].endswith("/bar-2.0-1-x86_64.pkg.tar.zst")


def test_build_files_keep_type_and_encoding(published):
    world, site = published
    bar = {r["name"]: r for r in feed(site, "api/v0/pkgs/list")}["bar"]["build_id"]
    for what, content_type, encoding in (("log", "text/plain; charset=utf-8", "gzip"),
                                         ("diffoscope", "text/plain; charset=utf-8", "gzip"),
                                         ("diffoscope.html", "text/html; charset=utf-8", None)):  # cleaned
        info = world.store.head(f"site/api/v0/builds/{bar}/{what}")
        assert (info.content_type, info.content_encoding) == (content_type, encoding)
    assert gzip.decompress(world.store.get(f"site/api/v0/builds/{bar}/diffoscope").data) == b"--- a\n+++ b\n"
    foo = {r["name"]: r for r in feed(site, "api/v0/pkgs/list")}["foo"]["build_id"]
    info = world.store.head(f"site/api/v0/builds/{foo}/attestation")
    assert info.content_type == "application/json" and info.content_encoding is None
    assert json.loads(world.store.get(f"site/api/v0/builds/{foo}/attestation").data) == {"signed": {"_type": "link"}}


def test_countersigned_attestation_replaces_the_workers(tmp_path):
    world = arch_world(tmp_path)
    plain = build_site(world.store, now=NOW, public_keys={"current": []}, rebuilder_name="t")
    foo = next(r for r in feed(plain, "api/v0/pkgs/list") if r["name"] == "foo")["build_id"]
    build_id = feed(plain, "api/v1/packages/archlinux/foo.json")["builds"][0]["build_id"]
    signed = {"signed": {"_type": "link"}, "signatures": [{"keyid": "w"}, {"keyid": "rebuilder"}]}
    site = build_site(world.store, now=NOW, countersigned={build_id: signed}, public_keys={"current": []},
                      rebuilder_name="t")
    assert json.loads(site.files[f"api/v0/builds/{foo}/attestation"].data) == signed
    assert site.files[f"api/v0/builds/{foo}/attestation"].copy_from is None


def test_dashboard_shape(published):
    _, site = published
    dash = feed(site, "api/v0/dashboard")
    assert set(dash) == {"suites", "active_builds", "queue_length", "now"}
    assert dash["suites"] == {"core": {"good": 2, "unknown": 1, "bad": 4}}  # BAD + FAIL
    assert dash["now"] == "2026-05-01T12:00:00.000000" and dash["queue_length"] == 1
    (item,) = dash["active_builds"]
    assert set(item) == {"id", "pkgbase", "version", "queued_at", "worker_id", "started_at", "last_ping"}
    assert set(item["pkgbase"]) == {"name", "version", "distro", "suite", "architecture", "input_url", "artifacts"}
    assert item["pkgbase"]["name"] == "qux" and item["pkgbase"]["suite"] == "core" and item["worker_id"] == 1
    assert isinstance(item["id"], int) and NAIVE.fullmatch(item["started_at"]) and NAIVE.fullmatch(item["queued_at"])
    assert item["started_at"] == "2026-05-01T11:55:00.000000"
    assert item["pkgbase"]["artifacts"][0]["name"] == "qux"


def test_public_keys(published):
    _, site = published
    assert feed(site, "api/v0/public-keys") == {"current": ["-----BEGIN PUBLIC KEY-----"]}
    assert feed(site, "api/v1/meta/public-keys") == feed(site, "api/v0/public-keys")


def test_v1_index_and_suite_feeds(published):
    _, site = published
    index = feed(site, "api/v1/index.json")
    assert index["schema"] == "rebuilder.feed/1" and index["generated_at"] == "2026-05-01T12:00:00.000000Z"
    (suite,) = index["suites"]
    assert suite["counts"] == {"good": 2, "bad": 3, "fail": 1, "unknown": 1} and suite["percent_reproducible"] == 28.6
    assert suite["failure_classes"] == {"not-reproducible": 3, "ftbfs": 1}
    assert suite["feeds"]["BAD"] == "api/v1/suites/archlinux/-/core/x86_64/BAD.json"
    for url in [*suite["feeds"].values(), suite["page"], index["pkgs_list"], index["regressions"]]:
        assert url in site.files
    names = {s: [p["name"] for p in feed(site, suite["feeds"][s])["packages"]]
             for s in ("GOOD", "BAD", "FAIL", "UNKWN")}
    assert names == {"GOOD": ["foo", "split-a"], "BAD": ["bar", "regress", "split-b"], "FAIL": ["baz"],
                     "UNKWN": ["qux"]}
    bad = feed(site, suite["feeds"]["BAD"])
    assert bad["kind"] == "suite-status" and bad["status"] == "BAD" and bad["count"] == 3
    bar = bad["packages"][0]
    assert bar["failure_class"] == "not-reproducible" and bar["reason"] == "not reproducible: bar differs"
    assert bar["built_at"] == "2026-04-29T12:00:00.000000Z" and bar["v0_build_id"] == 3
    assert bar["files"]["diffoscope_html"] == "api/v0/builds/3/diffoscope.html"
    assert bar["page"] == "packages/archlinux/bar.html"
    ftbfs = feed(site, "api/v1/suites/archlinux/-/core/x86_64/class/ftbfs.json")
    assert [p["name"] for p in ftbfs["packages"]] == ["baz"]
    every = feed(site, "api/v1/suites/archlinux/-/core/x86_64/names.json")
    assert every["kind"] == "suite-names" and "parts" not in every  # short enough to be one part
    assert [p["name"] for p in every["packages"]] == ["bar", "baz", "foo", "qux", "regress", "split-a", "split-b"]


def test_the_index_the_suite_feed_and_each_status_list_name_its_whole_list(published):
    _, site = published
    (suite,) = feed(site, "api/v1/index.json")["suites"]
    base = "api/v1/suites/archlinux/-/core/x86_64"
    assert suite["lists_all"] == {s: f"{base}/{s}.all.json" for s in ("GOOD", "BAD", "FAIL", "UNKWN")}
    assert feed(site, f"{base}/index.json")["lists_all"] == suite["lists_all"]
    for status, url in suite["lists_all"].items():
        assert feed(site, suite["feeds"][status])["all"] == url
        whole = feed(site, url)
        assert (whole["kind"], whole["status"], whole["count"]) == ("suite-status-all", status,
                                                                     suite["counts"][status.lower().replace(
                                                                         "unkwn", "unknown")])
        assert list(whole) == ["schema", "kind", "generated_at", "suite", "status", "count", "columns", "rows"]
    bad = feed(site, suite["lists_all"]["BAD"])
    assert [dict(zip(bad["columns"], r))["name"] for r in bad["rows"]] == ["bar", "regress", "split-b"]


def test_package_feed(published):
    _, site = published
    regress = feed(site, "api/v1/packages/archlinux/regress.json")
    assert regress["schema"] == "rebuilder.feed/1" and regress["kind"] == "package"
    assert [(b["attempt"], b["status"]) for b in regress["builds"]] == [(2, "BAD"), (1, "GOOD")]
    assert regress["builds"][1]["files"]["attestation"] == "api/v0/builds/1/attestation"
    split = feed(site, "api/v1/packages/archlinux/splitbase.json")
    assert sorted(p["name"] for p in split["packages"]) == ["split-a", "split-b"]
    assert split["builds"][0]["artifacts"] == [{"name": "split-a", "status": "GOOD"},
                                               {"name": "split-b", "status": "BAD"}]


def test_every_json_feed_parses_and_v1_ones_carry_a_schema(published):
    _, site = published
    for key, file in site.files.items():
        if file.content_type != "application/json" or file.data is None:
            continue
        data = json.loads(file.data)
        if key.startswith("api/v1/") and key != "api/v1/meta/public-keys":
            assert data["schema"] == "rebuilder.feed/1" and "generated_at" in data, key


def test_statuses_in_feeds_are_the_enum_values(published):
    _, site = published
    for status in Status:
        key = f"api/v1/suites/archlinux/-/core/x86_64/{status.value}.json"
        assert all(p["status"] == status.value for p in feed(site, key)["packages"])


def test_queue_and_workers_feeds(published):
    _, site = published
    index = feed(site, "api/v1/index.json")
    queue, workers = feed(site, index["queue"]), feed(site, index["workers"])
    assert queue["kind"] == "queue" and queue["count"] == len(queue["jobs"]) == 6
    (running,) = [j for j in queue["jobs"] if j["running"]]
    assert running["source_name"] == "qux" and running["running"]["worker_name"] == "builder-1"
    assert set(running) == {"job_id", "attempt", "priority", "not_before", "queued_at", "distro", "release",
                            "releases", "component", "architecture", "source_name", "source_version", "backend",
                            "input_url", "artifacts", "running"}
    assert running["input_url"].startswith("file://") and set(running["artifacts"][0]) == {"name", "version", "url",
                                                                                            "architecture"}
    assert running["running"]["started_at"].endswith("Z") and running["component"] == "core"
    (worker,) = workers["workers"]
    assert worker["name"] == "builder-1" and worker["trust"] == "untrusted" and worker["builds"] == 6
    assert worker["current_job"]["source_name"] == "qux" and worker["last_seen"].endswith("Z")


def test_a_reported_attempt_is_not_running_though_its_claim_is_live(tmp_path):
    """Workers leave a reported claim to expire: its done receipt, listed beside it, ends it."""
    world = arch_world(tmp_path)
    job = read_queue(world.store).jobs[world.rows["qux"].job_id]
    world.store.put(layout.claim_notice_key(job.job_id, job.attempt, "done", "a" * 64), b"{}")
    site = build_site(world.store, now=NOW, countersigned={}, public_keys={"current": []}, rebuilder_name="test")
    queue = feed(site, feed(site, "api/v1/index.json")["queue"])
    assert [j["source_name"] for j in queue["jobs"] if j["running"]] == []
    assert "qux" in {j["source_name"] for j in queue["jobs"]}
