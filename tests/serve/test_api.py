"""`rebuilder serve`'s v0 API over a real published site, called over loopback HTTP the way
upstream rebuildctl 0.23 calls it (the wire it sends: docs/api.md), every endpoint and filter."""

from __future__ import annotations

import gzip
import json
import threading
from datetime import timedelta

import pytest
import requests

from jobs.core.model import Status
from jobs.publish.site.build import build_site
from jobs.publish.site.sitewriter import write_site
from jobs.publish.state.requests import apply_loaded, current_state_rows, load_requests
from jobs.serve.api import Api, accepts_gzip, inflate
from jobs.serve.server import make_server
from tests.publish.sitefix import NOW, arch_world
from tests.publish.test_verify import config_for

COOKIE = "Fk3q9ZmT7vXc2LpW8nRb4HsY6dJg5QeA"


@pytest.fixture
def world(tmp_path):
    world = arch_world(tmp_path)
    site = build_site(world.store, now=NOW, countersigned={}, public_keys={"current": ["-----BEGIN PUBLIC KEY-----"]},
                      rebuilder_name="test")
    write_site(world.store, site)
    return world


def _serve(store, api):
    server = make_server(store, "127.0.0.1:0", api=api)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def api_url(world):
    api = Api(world.store, "site/", cookie=COOKIE, requests=world.store, clock=lambda: NOW + timedelta(minutes=1))
    server, thread, url = _serve(world.store, api)
    yield url
    server.shutdown()
    server.server_close()
    thread.join()


def get(url, path, **kw):
    return requests.get(url + path, timeout=10, **kw)


def names(response) -> list[str]:
    assert response.status_code == 200, response.text
    return sorted(r["name"] for r in response.json())


# --- pkgs/list --------------------------------------------------------------------------

def test_pkgs_list_unfiltered_is_the_published_list(api_url, world):
    published = json.loads(world.store.get("site/api/v0/pkgs/list").data)
    response = get(api_url, "/api/v0/pkgs/list")
    assert response.json() == published and len(published) == 7
    assert response.headers["Content-Type"] == "application/json"


@pytest.mark.parametrize(("query", "expected"), [
    ("status=BAD", ["bar", "baz", "regress", "split-b"]),  # FAIL reads BAD in v0
    ("status=GOOD", ["foo", "split-a"]),
    ("status=UNKWN", ["qux"]),
    ("name=foo", ["foo"]),
    ("name=fo", []),  # exact, not a prefix or LIKE
    ("name=split-*", []),  # no glob either
    ("distro=archlinux", ["bar", "baz", "foo", "qux", "regress", "split-a", "split-b"]),
    ("distro=debian", []),
    ("suite=core", ["bar", "baz", "foo", "qux", "regress", "split-a", "split-b"]),
    ("suite=extra", []),
    ("architecture=x86_64", ["bar", "baz", "foo", "qux", "regress", "split-a", "split-b"]),
    ("architecture=any", []),
    ("name=split-b&status=BAD&distro=archlinux&suite=core&architecture=x86_64", ["split-b"]),  # rebuildctl's order
    ("name=split-b&status=GOOD", []),
    ("unknown=1&name=foo", ["foo"]),  # unknown parameters are ignored, as upstream's query struct does
])
def test_pkgs_list_filters_as_upstream(api_url, query, expected):
    assert names(get(api_url, f"/api/v0/pkgs/list?{query}")) == expected


@pytest.mark.parametrize("query", ["status=FAIL", "status=FAILED", "status=good", "name=a&name=b"])
def test_pkgs_list_refuses_what_upstream_refuses(api_url, query):
    response = get(api_url, f"/api/v0/pkgs/list?{query}")
    assert response.status_code == 400 and response.text.startswith("Query deserialize error: ")
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"


def test_pkgs_list_last_modified_and_304(api_url):
    response = get(api_url, "/api/v0/pkgs/list?name=foo")
    stamp = response.headers["Last-Modified"]
    assert stamp == "Fri, 01 May 2026 00:00:00 GMT"  # the newest built_at (regress, NOW - 12 h)
    again = get(api_url, "/api/v0/pkgs/list?name=foo", headers={"If-Modified-Since": stamp})
    assert again.status_code == 304 and again.content == b""
    older = get(api_url, "/api/v0/pkgs/list", headers={"If-Modified-Since": "Thu, 30 Apr 2026 00:00:00 GMT"})
    assert older.status_code == 200 and len(older.json()) == 7


def test_pkgs_list_epoch_colon_is_raw(tmp_path):
    """Sync percent-encodes the file name; the v0 list gives the epoch's ":" raw, as rebuilderd does."""
    from jobs.core.store import open_store
    from tests.publish.sitefix import sync_arch
    from tests.sync import alpm_builders as alpm

    store = open_store((tmp_path / "store").as_uri())
    sync_arch(store, tmp_path / "mirror", [alpm.package("epochy", "2:1.0-3"), alpm.package("plus", "1.0+git-1")])
    site = build_site(store, now=NOW, countersigned={}, public_keys={"current": []}, rebuilder_name="t")
    v0 = {r["name"]: r["artifact_url"] for r in json.loads(site.files["api/v0/pkgs/list"].data)}
    assert v0["epochy"].endswith("/core/os/x86_64/epochy-2:1.0-3-x86_64.pkg.tar.zst"), v0
    assert v0["plus"].endswith("/plus-1.0%2Bgit-1-x86_64.pkg.tar.zst")  # "+" stays encoded (S3 reads it as " ")
    v1 = json.loads(site.files["api/v1/packages/archlinux/epochy.json"].data)["packages"][0]["artifact_url"]
    assert v1.endswith("/epochy-2%3A1.0-3-x86_64.pkg.tar.zst")  # our own feeds keep the encoded form


def test_pkgs_list_gives_split_packages_their_groups_architecture(tmp_path):
    """rebuilderd's sync gives a pkgbase the architecture of its first package, and the daemon every
    artifact of it (rebuildctl 0.23.1's sync-profile POSTs `"architecture": "any"` for a base whose
    first package is `any`); our own feeds keep each artifact's."""
    from jobs.core.store import open_store
    from tests.publish.sitefix import sync_arch
    from tests.sync import alpm_builders as alpm

    store = open_store((tmp_path / "store").as_uri())
    sync_arch(store, tmp_path / "mirror", [
        alpm.package("grp-any", "1-1", base="grp", arch="any"), alpm.package("grp-bin", "1-1", base="grp"),
        alpm.package("a-bin", "2-1", base="other"), alpm.package("b-any", "2-1", base="other", arch="any"),
        alpm.package("alone", "3-1", arch="any")])
    site = build_site(store, now=NOW, countersigned={}, public_keys={"current": []}, rebuilder_name="t")
    v0 = {r["name"]: r["architecture"] for r in json.loads(site.files["api/v0/pkgs/list"].data)}
    assert v0 == {"grp-any": "any", "grp-bin": "any", "a-bin": "x86_64", "b-any": "x86_64", "alone": "any"}
    v1 = json.loads(site.files["api/v1/packages/archlinux/grp.json"].data)["packages"]
    assert {p["name"]: p["artifact_architecture"] for p in v1} == {"grp-any": "any", "grp-bin": "x86_64"}


# --- queue/list, workers, index ------------------------------------------------------------

def test_queue_list_is_v0_shaped(api_url, world):
    response = requests.post(api_url + "/api/v0/queue/list", json={"limit": None}, timeout=10)
    body = response.json()
    assert set(body) == {"now", "queue"} and body["now"] == "2026-05-01T12:01:00.000000"
    queue = json.loads(world.store.get("site/api/v1/queue.json").data)["jobs"]
    assert [i["pkgbase"]["name"] for i in body["queue"]] == [j["source_name"] for j in queue]
    (running,) = [i for i in body["queue"] if i["started_at"] is not None]
    assert running["pkgbase"]["name"] == "qux" and running["worker_id"] == 1
    assert running["pkgbase"]["artifacts"][0]["url"].endswith("/qux-3-1-x86_64.pkg.tar.zst")
    assert running["pkgbase"]["input_url"] and running["started_at"] == "2026-05-01T11:55:00.000000"
    assert [i["id"] for i in body["queue"]] == list(range(1, len(queue) + 1))
    limited = requests.post(api_url + "/api/v0/queue/list", json={"limit": 2}, timeout=10).json()
    assert len(limited["queue"]) == 2
    assert requests.post(api_url + "/api/v0/queue/list", json={"limit": "x"}, timeout=10).status_code == 400
    assert requests.post(api_url + "/api/v0/queue/list", data=b"{", timeout=10).status_code == 400
    assert get(api_url, "/api/v0/queue/list").status_code == 405


def test_workers_need_the_cookie(api_url):
    assert get(api_url, "/api/v0/workers").status_code == 403
    assert get(api_url, "/api/v0/workers", headers={"X-Auth-Cookie": COOKIE[:-1] + "x"}).status_code == 403
    response = get(api_url, "/api/v0/workers", headers={"X-Auth-Cookie": COOKIE})
    (worker,) = response.json()
    assert worker["name"] == "builder-1" and worker["online"] is True
    assert worker["status"] == "working hard on qux 3-1" and worker["last_ping"] == "2026-05-01T11:55:00.000000"
    assert {"id", "key", "addr", "address", "status", "last_ping", "online"} <= set(worker)


def test_index_says_api_mode_where_the_file_says_static(api_url, world):
    assert json.loads(world.store.get("site/api/v1/index.json").data)["mode"] == "static"
    assert get(api_url, "/api/v1/index.json").json()["mode"] == "api"


def test_unknown_and_unsupported_endpoints(api_url):
    response = get(api_url, "/api/v0/nothing")
    assert response.status_code == 404 and response.text == "Not found"
    for path in ("/api/v0/pkgs/sync", "/api/v0/queue/pop", "/api/v0/build/report"):
        assert requests.post(api_url + path, json={}, timeout=10).status_code == 501
    assert requests.post(api_url + "/index.html", json={}, timeout=10).status_code == 405
    assert get(api_url, "/api/v0/dashboard").json()["queue_length"] == 1  # static files still served


# --- content negotiation ------------------------------------------------------------------

def test_logs_are_decompressed_for_clients_without_gzip(api_url, world):
    build = {r["name"]: r for r in get(api_url, "/api/v0/pkgs/list").json()}["baz"]["build_id"]
    stored = world.store.get(f"site/api/v0/builds/{build}/log").data
    plain = get(api_url, f"/api/v0/builds/{build}/log", headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers and plain.content == gzip.decompress(stored)
    assert b"A failure occurred in build()" in plain.content
    raw = requests.get(api_url + f"/api/v0/builds/{build}/log", headers={"Accept-Encoding": "gzip"}, timeout=10,
                       stream=True)
    assert raw.headers["Content-Encoding"] == "gzip" and raw.raw.read() == stored


def test_a_corrupt_gzip_file_ends_early_and_the_server_goes_on(api_url, world):
    import secrets

    text = secrets.token_hex(200000).encode()  # 400,000 bytes that compress to ~200,000
    whole = gzip.compress(text, mtime=0)
    world.store.put("site/api/v0/builds/999/log", whole[:50000] + b"\xff" * 4096 + whole[54096:],
                    content_type="text/plain; charset=utf-8", content_encoding="gzip")
    try:
        response = get(api_url, "/api/v0/builds/999/log", headers={"Accept-Encoding": "identity"})
        assert response.content != text and len(response.content) < len(text)
    except requests.ConnectionError:
        pass  # cut off mid-body: as good an answer
    assert get(api_url, "/api/v0/pkgs/list?name=foo").status_code == 200


@pytest.mark.parametrize(("header", "gz"), [(None, False), ("", False), ("identity", False), ("gzip", True),
                                            ("br, gzip;q=0.5", True), ("gzip;q=0", False), ("*", True),
                                            ("GZIP", True), ("deflate, x-gzip", True), ("gzip;q=x", False)])
def test_accepts_gzip(header, gz):
    assert accepts_gzip(header) is gz


def test_inflate_is_bounded():
    import io

    bomb = gzip.compress(b"\0" * (10 << 20))
    assert sum(len(c) for c in inflate(io.BytesIO(bomb), limit=1 << 20)) == 1 << 20
    assert b"".join(inflate(io.BytesIO(gzip.compress(b"hello")))) == b"hello"


# --- admin --------------------------------------------------------------------------------

ADMIN_BODIES = {
    "/api/v0/pkg/requeue": {"name": "split-b", "status": "BAD", "priority": 3, "distro": "archlinux", "suite": "core",
                            "architecture": "x86_64", "reset": True},
    "/api/v0/queue/push": {"name": "foo", "version": None, "priority": 5, "distro": "archlinux", "suite": "core",
                           "architecture": None},
    "/api/v0/queue/drop": {"name": "qux", "version": "3-1", "distro": "archlinux", "suite": "core",
                           "architecture": "x86_64"},
}


@pytest.mark.parametrize("path", sorted(ADMIN_BODIES))
def test_admin_posts_need_the_cookie(api_url, world, path):
    for headers in ({}, {"X-Auth-Cookie": "wrong"}, {"X-Auth-Cookie": COOKIE + "x"}):
        response = requests.post(api_url + path, json=ADMIN_BODIES[path], headers=headers, timeout=10)
        assert response.status_code == 403 and response.text == "Authentication failed\n"
    assert list(world.store.list("requests/")) == []


@pytest.mark.parametrize(("path", "verb"), [("/api/v0/pkg/requeue", "requeue"), ("/api/v0/queue/push", "push"),
                                            ("/api/v0/queue/drop", "drop")])
def test_admin_posts_become_signed_requests(api_url, world, tmp_path, path, verb):
    response = requests.post(api_url + path, json=ADMIN_BODIES[path], headers={"X-Auth-Cookie": COOKIE}, timeout=10)
    assert response.status_code == 200 and response.json() is None
    (loaded,), rejected = load_requests(world.store, config_for(tmp_path, cookie=COOKIE))
    assert rejected == [] and loaded.verb == verb
    body = ADMIN_BODIES[path]
    assert (loaded.name, loaded.distro, loaded.component, loaded.architecture) == (
        body["name"], body["distro"], body["suite"], body["architecture"])
    if verb == "requeue":
        assert loaded.status is Status.BAD and loaded.reset is True and loaded.priority == 3
    if verb == "push":
        assert loaded.version is None and loaded.priority == 5
    if verb == "drop":
        assert loaded.version == "3-1"


def test_admin_names_match_exactly(api_url, world, tmp_path):
    """A glob character in a name is the character (upstream compares names), not a pattern."""
    body = {**ADMIN_BODIES["/api/v0/pkg/requeue"], "name": "split-*", "status": None}
    requests.post(api_url + "/api/v0/pkg/requeue", json=body, headers={"X-Auth-Cookie": COOKIE}, timeout=10)
    (loaded,), _ = load_requests(world.store, config_for(tmp_path, cookie=COOKIE))
    rows = current_state_rows(world.store)
    jobs, _ = apply_loaded({}, [loaded], state_rows=rows, history={}, latest_attempts={}, now=NOW)
    assert jobs == {} or all(j.source_name != "splitbase" for j in jobs.values())
    exact = {**body, "name": "split-b"}
    requests.post(api_url + "/api/v0/pkg/requeue", json=exact, headers={"X-Auth-Cookie": COOKIE}, timeout=10)
    loaded, _ = load_requests(world.store, config_for(tmp_path, cookie=COOKIE))
    (req,) = [r for r in loaded if r.name != "split-[*]"]
    jobs, _ = apply_loaded({}, [req], state_rows=rows, history={}, latest_attempts={}, now=NOW)
    assert [j.source_name for j in jobs.values()] == ["splitbase"]


@pytest.mark.parametrize(("path", "body", "status"), [
    ("/api/v0/queue/push", {"name": None, "distro": "archlinux", "suite": "core"}, 400),
    ("/api/v0/queue/push", {"name": "foo", "distro": "archlinux", "suite": "core", "priority": "high"}, 400),
    ("/api/v0/pkg/requeue", {"status": "WORSE"}, 400),
    ("/api/v0/pkg/requeue", {"reset": "yes"}, 400),
    ("/api/v0/pkg/requeue", [1, 2], 400),
])
def test_admin_bad_bodies_are_400_and_store_nothing(api_url, world, path, body, status):
    response = requests.post(api_url + path, json=body, headers={"X-Auth-Cookie": COOKIE}, timeout=10)
    assert response.status_code == status and response.text.startswith("Json deserialize error: ")
    assert list(world.store.list("requests/")) == []


def test_oversized_and_lengthless_bodies(api_url, world):
    big = b'{"name": "' + b"a" * (70 << 10) + b'"}'
    response = requests.post(api_url + "/api/v0/pkg/requeue", data=big, headers={"X-Auth-Cookie": COOKIE},
                             timeout=10)
    assert response.status_code == 413 and list(world.store.list("requests/")) == []


def test_without_admin_the_posts_are_501(world):
    server, thread, url = _serve(world.store, Api(world.store, "site/", cookie=COOKIE))
    try:
        response = requests.post(url + "/api/v0/queue/push", json=ADMIN_BODIES["/api/v0/queue/push"],
                                 headers={"X-Auth-Cookie": COOKIE}, timeout=10)
        assert response.status_code == 501 and "--admin" in response.text
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_without_a_cookie_everything_admin_is_403(world):
    server, thread, url = _serve(world.store, Api(world.store, "site/"))
    try:
        assert get(url, "/api/v0/workers", headers={"X-Auth-Cookie": ""}).status_code == 403
        response = requests.post(url + "/api/v0/queue/drop", json=ADMIN_BODIES["/api/v0/queue/drop"],
                                 headers={"X-Auth-Cookie": ""}, timeout=10)
        assert response.status_code == 403
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_static_mode_is_unchanged(world):
    server, thread, url = _serve(world.store, None)
    try:
        assert len(get(url, "/api/v0/pkgs/list?name=foo").json()) == 7  # a static host ignores the query
        assert requests.post(url + "/api/v0/queue/list", json={}, timeout=10).status_code == 405
        build = get(url, "/api/v0/pkgs/list").json()[0]["build_id"]
        raw = requests.get(url + f"/api/v0/builds/{build}/log", headers={"Accept-Encoding": "identity"},
                           timeout=10, stream=True)
        assert raw.headers["Content-Encoding"] == "gzip"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# --- the command --------------------------------------------------------------------------

def test_serve_admin_needs_a_cookie_and_the_api(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    rebuilder = str(Path(sys.executable).parent / "rebuilder")
    (tmp_path / "empty.conf").write_text("")
    base = [rebuilder, "--config", str(tmp_path / "empty.conf"), "--store", (tmp_path / "s").as_uri(), "serve",
            "--bind", "127.0.0.1:0"]
    res = subprocess.run([*base, "--admin"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 1 and res.stderr.count("\n") == 1, res.stderr
    assert "[auth] cookie" in res.stderr and "--admin" in res.stderr
    res = subprocess.run([*base, "--admin", "--static"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "--admin needs the API" in res.stderr


def test_a_client_that_sends_nothing_is_cut_off_at_the_idle_limit(world):
    """A connection that never sends its request does not hold a server thread for ever."""
    import socket
    import time

    from jobs.core.bounded import configured

    with configured({"serve_idle": 1}):
        server, thread, url = _serve(world.store, None)
    try:
        port = server.server_address[1]
        idle = socket.create_connection(("127.0.0.1", port), timeout=10)
        started = time.monotonic()
        assert idle.recv(1024) == b""  # closed by the server, not by our timeout
        assert 0.5 < time.monotonic() - started < 5
        idle.close()
        # A client that does send is served as before.
        assert requests.get(f"{url}/api/v0/pkgs/list", timeout=10).status_code == 200
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_an_if_modified_since_past_the_calendar_is_no_condition(api_url):
    # parsedate_to_datetime raises OverflowError (not ValueError) for a year past a C int: it escaped.
    response = get(api_url, "/api/v0/pkgs/list", headers={"If-Modified-Since": "1 Jan 99999999999 00:00:00 GMT"})
    assert response.status_code == 200 and len(response.json()) == 7
