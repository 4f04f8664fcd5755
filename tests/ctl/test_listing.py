"""`pkgs ls` piped (`jobs.ctl.listing.package_lines`): the lines made from the whole lists' columns are exactly
`commands.lines` of `list_packages`' rows: order (ties kept in the lists' order), quoting, escapes, missing values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jobs.core.feeds import ALL_COLUMNS
from jobs.core.model import Status
from jobs.ctl.commands import Filters, lines, list_packages
from jobs.ctl.feeds import FeedInvalid, Limits, Site
from jobs.ctl.listing import package_lines

URLS = ['https://m/a.pkg', None, 'https://m/"quoted"\\b.pkg', "https://m/\x1b[31mred\u202e.pkg"]


def _row(name: str, version: str, arch: str, url: str | None, v0: int) -> list:
    row = {"name": name, "version": version, "artifact_architecture": arch, "artifact_url": url, "source_name": name,
           "source_version": version, "build_id": f"b-{v0}", "v0_build_id": v0, "built_at": None, "reason": None,
           "failure_class": None, "worker_name": None, "has_log": True, "has_diffoscope": False,
           "has_diffoscope_html": False, "has_attestation": False}
    return [row[c] for c in ALL_COLUMNS]


def _site(root: Path, *, quoted: bool = True) -> Site:
    suites = []
    for distro, release, component in (("archlinux", None, "extra"), ("debian", "trixie", "main"),
                                       ("debian", "bookworm", None)):
        lists = {}
        for i, status in enumerate(("GOOD", "BAD")):
            rows = [_row(name, version, arch, URLS[(n + i) % (4 if quoted else 2)], n)
                    for n, (name, version, arch) in enumerate([("zed", "1", "x86_64"), ("alpha", "2", "any"),
                                                               ("alpha", "10", "any"), ("mid\tdle", "1", "x86_64"),
                                                               ("alpha", "2", "any")])]
            key = f"api/v1/{distro}-{release}-{component}-{status}.all.json"
            (root / key).parent.mkdir(parents=True, exist_ok=True)
            (root / key).write_text(json.dumps({"suite": {"distro": distro, "release": release, "component": component,
                                                          "architecture": "x86_64"}, "status": status,
                                                "columns": list(ALL_COLUMNS), "rows": rows}))
            lists[status] = key
        suites.append({"distro": distro, "release": release, "component": component, "architecture": "x86_64",
                       "counts": {"good": 5, "bad": 5, "fail": 0, "unknown": 0}, "total": 10,
                       "percent_reproducible": 50.0, "queued": 0, "feeds": lists, "lists_all": lists})
    (root / "api/v1/index.json").write_text(json.dumps({"suites": suites}))
    return Site(root.as_uri())


@pytest.mark.parametrize("quoted", [True, False])
@pytest.mark.parametrize(("filters", "statuses"), [
    ({}, None), ({"distro": "debian"}, [Status.BAD]), ({"component": "main"}, None), ({"release": "nosuch"}, None),
    ({"name": "alpha"}, None), ({"name": "a*"}, None), ({"architecture": "any"}, [Status.GOOD])])
def test_the_lines_are_those_of_the_rows(tmp_path, quoted, filters, statuses):
    site = _site(tmp_path, quoted=quoted)
    rows = list_packages(site, Filters(**filters), statuses)
    count, text = package_lines(_site(tmp_path, quoted=quoted), Filters(**filters), statuses)
    assert count == len(rows) and text == (lines(rows) if rows else "")
    if not filters and quoted:
        assert count == 30 and '\\"quoted\\"\\\\b' in text and "\\x1b[31mred\\u202e" in text and "mid\\x09dle" in text


def test_a_wrong_typed_column_is_the_rows_error(tmp_path):
    site = _site(tmp_path)
    key = tmp_path / "api/v1/archlinux-None-extra-BAD.all.json"
    feed = json.loads(key.read_text())
    feed["rows"][2][ALL_COLUMNS.index("version")] = 7
    key.write_text(json.dumps(feed))
    with pytest.raises(FeedInvalid) as rows_error:
        list_packages(site, Filters())
    with pytest.raises(FeedInvalid) as lines_error:
        package_lines(Site(tmp_path.as_uri()), Filters())
    assert str(lines_error.value) == str(rows_error.value) and "version is int" in str(rows_error.value)


def test_a_whole_list_not_there_reads_the_others_once(tmp_path):
    # One whole list the index names is missing: the lines are then the rows' (list_packages), which read the
    # other whole lists again: twice their downloads and twice their cost against the memory budget, so a
    # budget the rows fit in refused the piped listing.
    _site(tmp_path)
    (tmp_path / "api/v1/debian-bookworm-None-BAD.all.json").unlink()
    rows_site = Site(tmp_path.as_uri())
    rows = list_packages(rows_site, Filters())
    lines_site = Site(tmp_path.as_uri(), limits=Limits(total_bytes=rows_site._parsed + 100))
    assert package_lines(lines_site, Filters()) == (len(rows), lines(rows)) and len(rows) == 25
    assert lines_site._parsed == rows_site._parsed


def test_the_table_shows_the_text_the_lines_show(tmp_path):
    # rich's Console turned ":name:" into an emoji: a version "1:thumbs_up:" was "1👍" in the table, a name
    # "pkg:cross_mark:" was "pkg❌", where the piped lines show them as the site gave them.
    from tests.ctl.support import ctl

    _site(tmp_path)
    key = tmp_path / "api/v1/debian-trixie-main-GOOD.all.json"
    feed = json.loads(key.read_text())
    feed["rows"][0][ALL_COLUMNS.index("name")] = "pkg:cross_mark:"
    feed["rows"][0][ALL_COLUMNS.index("version")] = "1:thumbs_up:"
    key.write_text(json.dumps(feed))
    piped = ctl("-H", tmp_path.as_uri(), "pkgs", "ls", "--distro", "debian", "--release", "trixie", "--status", "good")
    assert " pkg:cross_mark: 1:thumbs_up: (debian, trixie, main, x86_64) " in piped.stdout
    table = ctl("-C", "-H", tmp_path.as_uri(), "pkgs", "ls", "--distro", "debian", "--release", "trixie",
                "--status", "good", env={"COLUMNS": "200"})
    assert table.exit_code == 0 and "pkg:cross_mark:" in table.stdout and "1:thumbs_up:" in table.stdout
    assert "\u274c" not in table.stdout and "\U0001f44d" not in table.stdout


@pytest.mark.parametrize("claim", [{"status": "GOOD"}, {"suite": {"distro": "archlinux", "release": None,
                                                                  "component": "core", "architecture": "x86_64"}}])
@pytest.mark.parametrize("whole_missing", [False, True])
def test_a_list_claiming_another_status_or_suite_than_the_index_is_refused(tmp_path, claim, whole_missing):
    # The BAD list of archlinux/extra says it holds GOOD rows (or core's): `--status BAD` printed them as GOOD
    # (a site whose lists all lie alike is not caught: the filters asked for are what is checked).
    _site(tmp_path)
    key = tmp_path / "api/v1/archlinux-None-extra-BAD.all.json"
    key.write_text(json.dumps({**json.loads(key.read_text()), **claim}))
    if whole_missing:  # the rows' path (list_packages) reads the lists then
        (tmp_path / "api/v1/debian-bookworm-None-BAD.all.json").unlink()
    site = Site(tmp_path.as_uri())
    for read in (lambda: package_lines(site, Filters(), [Status.BAD]), lambda: list_packages(site, Filters(), [Status.BAD])):
        with pytest.raises(FeedInvalid, match=r"malformed site: a list read for the index's entries holds "
                                              r"(GOOD rows of archlinux/-/extra|BAD rows of archlinux/-/core)/x86_64"):
            read()
