"""Whole status lists (`<STATUS>.all.json`): `pkgs ls` reads one file per suite and status, prints exactly what
reading the list feeds and their parts prints, and reads those on a site published without whole lists;
`pkgs ls --name N` (one name) reads N's package feeds instead and prints the same."""

from __future__ import annotations

import itertools
import json

import pytest

from jobs.core import urls
from jobs.ctl.commands import Filters, _whole_rows, list_packages
from jobs.ctl.feeds import FeedInvalid, Site
from jobs.publish.site import feeds
from jobs.publish.site.rows import BuildLinks
from tests.ctl.support import Recording, copy_site, ctl
from tests.httpd import serve

SUITE = "/api/v1/suites/archlinux/-/fixture/x86_64"
ARGS = (["pkgs", "ls"], ["pkgs", "ls", "--json"], ["pkgs", "ls", "--status", "good"],
        ["pkgs", "ls", "--status", "bad", "--json"], ["pkgs", "ls", "--status", "unkwn", "--json"],
        ["pkgs", "ls", "--name", "split-*"], ["pkgs", "ls", "--architecture", "any", "--json"],
        ["pkgs", "ls", "--distro", "archlinux", "--suite", "fixture", "--status", "fail"],
        # one name (not a pattern): read from its package feeds, the same rows
        ["pkgs", "ls", "--name", "hello-c"], ["pkgs", "ls", "--name", "split-a", "--json"],
        ["pkgs", "ls", "--name", "unrepro", "--status", "bad"], ["pkgs", "ls", "--name", "unrepro", "--status", "good"],
        ["pkgs", "ls", "--name", "hello-c", "--architecture", "x86_64", "--suite", "fixture", "--json"],
        ["pkgs", "ls", "--name", "hello-c", "--suite", "nosuch"], ["pkgs", "ls", "--name", "splitpkg"],
        ["pkgs", "ls", "--name", "nosuch"], ["pkgs", "ls", "--name", "split-[ab]"])


def test_the_same_output_whichever_feeds_are_read(base, parted_http, old, parted_old_http):
    sites = {"whole lists": base, "whole lists of a parted site": parted_http, "list feeds": old.as_uri(),
             "parts": parted_old_http}
    for args in ARGS:
        out = {}
        for what, url in sites.items():
            res = ctl("-H", url, *args)
            assert res.exit_code == 0, (what, args, res.output)
            out[what] = res.stdout
        assert len(set(out.values())) == 1, (args, out)
    every = json.loads(ctl("-H", base, "pkgs", "ls", "--json").stdout)
    assert len(every) == 6 and {r["status"] for r in every} == {"GOOD", "BAD", "FAIL"}
    assert any(r["files"]["diffoscope"] for r in every) and any(r["files"]["attestation"] for r in every)


def test_pkgs_ls_reads_one_whole_list_per_suite_and_status(parted_http):
    Recording.seen.clear()
    assert len(ctl("-H", parted_http, "pkgs", "ls").stdout.splitlines()) == 6
    paths = [p for p, _ in Recording.seen]
    assert paths[0] == "/api/v1/index.json"
    assert sorted(paths[1:]) == sorted(f"{SUITE}/{s}.all.json" for s in ("GOOD", "BAD", "FAIL", "UNKWN"))
    Recording.seen.clear()
    assert len(ctl("-H", parted_http, "pkgs", "ls", "--status", "good").stdout.splitlines()) == 4
    assert [p for p, _ in Recording.seen] == ["/api/v1/index.json", f"{SUITE}/GOOD.all.json"]  # not its 4 parts
    # A warm cache revalidates the same two files.
    Recording.seen.clear()
    assert len(ctl("-H", parted_http, "pkgs", "ls", "--status", "good").stdout.splitlines()) == 4
    assert Recording.seen == [("/api/v1/index.json", 304), (f"{SUITE}/GOOD.all.json", 304)]


def test_one_name_is_read_from_its_package_feed(parted_http, parted, tmp_path):
    Recording.seen.clear()
    res = ctl("-H", parted_http, "pkgs", "ls", "--name", "split-a")
    assert res.exit_code == 0 and len(res.stdout.splitlines()) == 1 and "split-a" in res.stdout
    assert [p for p, _ in Recording.seen] == ["/api/v1/index.json", "/api/v1/packages/archlinux/split-a.json"]
    # a package feed that lists a package in a suite the index does not list: not shown
    site = copy_site(parted, tmp_path / "site")
    path = site / "api/v1/packages/archlinux/split-a.json"
    doc = json.loads(path.read_text())
    doc["packages"] += [{**doc["packages"][0], "component": "elsewhere"}, {**doc["packages"][0], "release": "x"}]
    path.write_text(json.dumps(doc))
    assert ctl("-H", site.as_uri(), "pkgs", "ls", "--name", "split-a").stdout == res.stdout
    path.write_text(json.dumps({**doc, "packages": [{"name": "split-a", "status": 3}]}))
    broken = ctl("-H", site.as_uri(), "pkgs", "ls", "--name", "split-a")
    assert broken.exit_code == 1 and "split-a.json" in broken.stderr and broken.stdout == ""


@pytest.mark.parametrize("scheme", ["http", "file"])
def test_a_missing_whole_list_is_read_from_its_feed(parted, parted_base, tmp_path, scheme):
    site = copy_site(parted, tmp_path / "site")
    (site / f"{SUITE.lstrip('/')}/GOOD.all.json").unlink()  # advertised, yet not there
    expected = ctl("-H", parted_base, "pkgs", "ls").stdout
    with serve(site, Recording) as http:
        Recording.seen.clear()
        res = ctl("-H", http if scheme == "http" else site.as_uri(), "pkgs", "ls")
        assert res.exit_code == 0 and res.stdout == expected
    if scheme == "http":
        paths = [p for p, _ in Recording.seen]
        assert f"{SUITE}/GOOD.json" in paths and sum(p.startswith(f"{SUITE}/GOOD/") for p in paths) == 4
        assert f"{SUITE}/BAD.all.json" in paths and f"{SUITE}/BAD.json" not in paths


@pytest.mark.parametrize("broken", [{"columns": ["version"]}, {"rows": [["too", "short"]]}, {"suite": None},
                                    {"rows": None}])
def test_a_broken_whole_list_is_a_clear_error(parted, tmp_path, broken):
    site = copy_site(parted, tmp_path / "site")
    path = site / f"{SUITE.lstrip('/')}/GOOD.all.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **broken}))
    res = ctl("-H", site.as_uri(), "pkgs", "ls", "--status", "good")
    assert res.exit_code == 1 and res.stdout == ""
    assert "whole-list feed" in res.stderr and "GOOD.all.json" in res.stderr
    with pytest.raises(FeedInvalid):
        list_packages(Site(site.as_uri()), Filters())


def test_the_files_of_a_whole_row_are_where_a_list_feed_puts_them():
    # rebuildctl derives them from the v0 id and the has_* flags: the same URLs publish writes.
    columns = list(feeds.ALL_COLUMNS)
    for v0_id, flags in itertools.product((None, 1, 7, 2_147_483_647), itertools.product((False, True), repeat=4)):
        values = {"name": "n", "version": "1", "artifact_architecture": "any", "artifact_url": "u", "v0_build_id": v0_id,
                  **dict(zip(("has_log", "has_diffoscope", "has_diffoscope_html", "has_attestation"), flags))}
        feed = {"suite": {"distro": "d", "release": None, "component": "c", "architecture": "x86_64"},
                "status": "BAD", "columns": columns, "rows": [[values.get(c) for c in columns]]}
        (row,) = _whole_rows(Site("file:///nowhere"), "k", feed)
        expected = feeds.links_json(BuildLinks(v0_id, *flags))
        assert row.files == expected and row.json()["files"] == expected, (v0_id, flags)
        assert (row.status, row.distro, row.release, row.suite_architecture) == ("BAD", "d", None, "x86_64")


def test_rows_read_whole_are_those_read_in_parts(parted, parted_old):
    whole = list_packages(Site(parted.as_uri()), Filters())
    parts = list_packages(Site(parted_old.as_uri()), Filters())
    assert [r.json() for r in whole] == [r.json() for r in parts] and len(whole) == 6
    assert [r.line() for r in whole] == [r.line() for r in parts]


def test_a_list_feed_package_that_is_no_package_record_is_a_clear_error(old, tmp_path):
    # Read through jobs.core.feeds.PackageRecord, the record publish writes: a field it cannot read names the feed.
    site = copy_site(old, tmp_path / "site")
    path = site / f"{SUITE.lstrip('/')}/GOOD.json"
    doc = json.loads(path.read_text())
    doc["packages"][0]["built_at"] = "yesterday"
    path.write_text(json.dumps(doc))
    res = ctl("-H", site.as_uri(), "pkgs", "ls", "--status", "good")
    assert res.exit_code == 1 and res.stdout == ""
    assert "malformed list feed" in res.stderr and "GOOD.json" in res.stderr


def test_a_dashboard_build_that_is_no_record_is_a_clear_error(old, tmp_path):
    site = copy_site(old, tmp_path / "site")
    path = site / urls.DASHBOARD
    doc = json.loads(path.read_text())
    doc["active_builds"] = [{"pkgbase": {"name": "n", "distro": "d", "suite": "", "architecture": "x"},
                             "version": "1", "started_at": "not a time"}]
    path.write_text(json.dumps(doc))
    res = ctl("-H", site.as_uri(), "status")
    assert res.exit_code == 1 and "malformed dashboard feed" in res.stderr and "dashboard" in res.stderr
