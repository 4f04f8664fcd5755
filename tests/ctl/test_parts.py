"""Long lists published in parts, by a publish before the whole-list feeds: `pkgs ls` reads every part, a few at
a time, in order; the transport under it."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from jobs.ctl.commands import Filters, ListPartMissing, list_packages
from jobs.ctl.feeds import FeedNotFound, Site
from tests.ctl.support import Recording, copy_site, ctl
from tests.httpd import _QuietHandler, serve

GOOD = "/api/v1/suites/archlinux/-/fixture/x86_64/GOOD"


def test_pkgs_ls_reads_a_list_in_parts_like_a_whole_one(old_base, parted_old_base):
    for args in (["pkgs", "ls"], ["pkgs", "ls", "--status", "good", "--json"], ["pkgs", "ls", "--name", "split-*"]):
        whole, parts = ctl("-H", old_base, *args), ctl("-H", parted_old_base, *args)
        assert parts.exit_code == 0, parts.output
        assert parts.stdout == whole.stdout and parts.stdout


def test_the_parts_of_a_list_are_read_after_it(parted_old, parted_old_http):
    parts = [f"/{p['feed']}" for p in json.loads((parted_old / f"{GOOD.lstrip('/')}.json").read_text())["parts"]]
    assert len(parts) >= 2  # four rows cut into parts of one
    Recording.seen.clear()
    res = ctl("-H", parted_old_http, "pkgs", "ls", "--status", "good")
    assert [line[8:].split()[0] for line in res.stdout.splitlines()] == ["hello-c", "hello-script", "split-a",
                                                                         "split-b"]
    paths = [p for p, _ in Recording.seen]
    assert paths[:2] == ["/api/v1/index.json", f"{GOOD}.json"] and sorted(paths[2:]) == sorted(parts)


def test_a_warm_cache_revalidates_every_part(parted_old_http):
    ctl("-H", parted_old_http, "pkgs", "ls", "--status", "good")
    Recording.seen.clear()
    assert len(ctl("-H", parted_old_http, "pkgs", "ls", "--status", "good").stdout.splitlines()) == 4
    assert len(Recording.seen) > 3 and {code for _, code in Recording.seen} == {304}  # index, list, parts


@pytest.mark.parametrize("scheme", ["http", "file"])
def test_a_missing_part_is_a_clear_error(parted_old, tmp_path, scheme):
    site = copy_site(parted_old, tmp_path / "site")
    last = json.loads((site / f"{GOOD.lstrip('/')}.json").read_text())["parts"][-1]["feed"]
    (site / last).unlink()  # as if a publish had replaced the list meanwhile
    with serve(site) as http:
        base = http if scheme == "http" else site.as_uri()
        res = ctl("-H", base, "pkgs", "ls", "--status", "good")
        assert res.exit_code == 1 and res.stdout == ""
        assert "a part of a list is not published" in res.stderr and "run the command again" in res.stderr
        assert last in res.stderr and "GOOD.json" in res.stderr
        with pytest.raises(ListPartMissing) as caught:
            list_packages(Site(base), Filters())
        assert caught.value.transient
        assert ctl("-H", base, "pkgs", "ls", "--status", "bad").exit_code == 0  # a list in one piece is fine


class _SlowFirst(_QuietHandler):
    """Answers `<n>.json` after (8 - n) × 30 ms, so later feeds are ready first; counts requests in flight."""

    lock = threading.Lock()
    in_flight = 0
    most = 0

    def do_GET(self) -> None:
        cls = type(self)
        with cls.lock:
            cls.in_flight += 1
            cls.most = max(cls.most, cls.in_flight)
        try:
            time.sleep((8 - int(Path(self.path).stem)) * 0.03)
            super().do_GET()
        finally:
            with cls.lock:
                cls.in_flight -= 1


def test_feeds_fetched_together_come_back_in_order(tmp_path):
    for n in range(8):
        (tmp_path / f"{n}.json").write_text(json.dumps({"n": n}))
    with serve(tmp_path, _SlowFirst) as base:
        site = Site(base, cache=tmp_path / "cache")
        assert [f["n"] for f in site.json_each([f"{n}.json" for n in range(8)])] == list(range(8))
        assert _SlowFirst.most > 1  # fetched concurrently, yet yielded in the order asked


@pytest.mark.parametrize("scheme", ["http", "file"])
def test_json_each_missing_feeds(tmp_path, scheme):
    (tmp_path / "a.json").write_text('{"a": 1}')
    (tmp_path / "c.json").write_text('{"c": 3}')
    with serve(tmp_path) as http:
        site = Site(http if scheme == "http" else tmp_path.as_uri())
        keys = ["a.json", "b.json", "c.json"]
        assert list(site.json_each(keys, missing_ok=True)) == [{"a": 1}, None, {"c": 3}]
        feeds = site.json_each(keys)
        assert next(feeds) == {"a": 1}
        with pytest.raises(FeedNotFound) as caught:
            next(feeds)
        assert caught.value.url.endswith("/b.json")


def test_the_proxy_of_the_environment_is_still_used(http_base, parted_http, monkeypatch):
    # The session reads the environment once per host, not per request: it must still read it.
    for var in ("HTTP_PROXY", "NO_PROXY", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("http_proxy", parted_http)  # a plain file server: it answers 404 to a proxied request
    monkeypatch.setenv("no_proxy", "")
    Recording.seen.clear()
    site = Site(http_base)
    for _ in range(2):
        with pytest.raises(FeedNotFound):
            site.json("api/v1/index.json")
    assert Recording.seen == [(f"{http_base}/api/v1/index.json", 404)] * 2  # asked through the proxy
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    Recording.seen.clear()
    assert Site(http_base).json("api/v1/index.json")["suites"]
    assert Recording.seen == [("/api/v1/index.json", 200)]


def test_an_unreadable_cache_entry_is_fetched_again(http_base, tmp_path):
    site = Site(http_base, cache=tmp_path / "c")
    first = site.json("api/v1/index.json")
    (entry,) = (tmp_path / "c").iterdir()
    for junk in (b"", b"not json\n{}", b'["a list"]\n{}', b'{"etag": "x"}'):  # the last: no body line
        entry.write_bytes(junk)
        Recording.seen.clear()
        assert Site(http_base, cache=tmp_path / "c").json("api/v1/index.json") == first
        assert Recording.seen == [("/api/v1/index.json", 200)]
    head, body = entry.read_bytes().split(b"\n", 1)  # rewritten whole: the validators, then the body
    assert json.loads(head)["last_modified"] and json.loads(body) == first
