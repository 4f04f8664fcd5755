"""The search index (jobs.publish.site.search): its keys, its buckets, bounded shards, written only on change.

`find` below is the client's algorithm (site/static/search.js) in Python: which shards a query
fetches and which of their records match. The browser test (tests/publish/test_search_browser.py)
runs the real script on a 100,000-package index.
"""

from __future__ import annotations

import dataclasses
import json
import random

import pytest

from jobs.core import urls
from jobs.core.model import Status
from jobs.publish.site import search
from jobs.publish.site.search import BINARY, MAINTAINER, SOURCE, Record
from jobs.publish.site.sitewriter import read_manifest, write_site
from tests.publish.sitefix import NOW, state_row, write_state
from tests.publish.test_pages import check_site, render, world  # noqa: F401 (the fixture)


def find(index: dict, shards: dict, query: str) -> set[str]:
    """Names of the records a query finds: the shards search.js fetches, filtered as it does."""
    q = search.lower(query.strip())[: index["key_chars"]]
    wanted = search.shard_form(q)
    found = set()
    for bucket, pages, _ in index["shards"]:
        if wanted.startswith(bucket) or bucket.startswith(wanted):
            for page in range(1, pages + 1):
                for r in shards[search.bucket_key(bucket, page)]["records"]:
                    if any(k.startswith(q) for k in search.keys(r[2]) + (search.keys(r[3]) if r[3] else [])):
                        found.add(r[2])
    return found


def test_keys_are_the_name_and_each_word_lowercased():
    assert search.keys("Python-Foo_bar") == ["python-foo_bar", "foo_bar", "bar"]
    assert search.keys("Jane Doe <jane@Example.org>") == ["jane doe <jane@example.org>", "doe <jane@example.org>",
                                                          "jane@example.org>", "example.org>", "org>"]
    assert search.keys("ÄBC") == ["Äbc"]  # only ASCII letters are lowercased (as in search.js)
    assert len(search.keys("a-" * 500)) == search.KEY_WORDS + 1
    assert all(len(k) <= search.KEY_CHARS for k in search.keys("x" * 1000 + "-y"))
    assert search.shard_form("py-qt6.Ä𝔸z") == "py_qt6__"


def _name(rng: random.Random, i: int) -> str:
    words = ["lib", "python", "perl", "qt6", "kde", "gnome", "rust", "go", "node", "font", "x", "a"]
    return "-".join(rng.choice(words) for _ in range(rng.randint(1, 3))) + f"-{i}"


def test_every_record_is_found_by_its_name_and_each_word_and_shards_are_bounded():
    rng = random.Random(7)
    recs = [Record(BINARY, rng.choice(["archlinux", "debian"]), _name(rng, i), f"src{i // 3}", ("1.0-1",))
            for i in range(20_000)]
    recs += [Record(SOURCE, "debian", f"onlysource{i}", "", ("2",)) for i in range(50)]
    recs += [Record(MAINTAINER, "", f"Maint {i} <m{i}@example.org>", count=3) for i in range(300)]
    index, shards = search.index_files(recs, NOW)
    assert all(len(body["records"]) <= search.SHARD_RECORDS for body in shards.values())
    assert {search.bucket_key(b, p) for b, n, _ in index["shards"] for p in range(1, n + 1)} == set(shards)
    buckets = [b for b, _, _ in index["shards"]]
    assert len(buckets) == len(set(buckets)) and len(shards) > 20
    for r in rng.sample(recs, 300):
        for key in search.keys(r.name):
            assert r.name in find(index, shards, key), (r.name, key)
        if r.kind == BINARY:
            assert r.name in find(index, shards, r.source)  # by pkgbase / source
    assert find(index, shards, "MAINT 12 <") == {"Maint 12 <m12@example.org>"}
    assert find(index, shards, "m120@exa") == {"Maint 120 <m120@example.org>"}
    assert find(index, shards, "nothing-like-this") == set()
    # A query of two characters needs few shards, whatever the size.
    wanted = search.shard_form("py")
    assert sum(1 for b, _, _ in index["shards"] if b.startswith(wanted) or wanted.startswith(b)) <= 40


def test_a_hostile_crowd_of_one_prefix_is_paged_not_unbounded():
    recs = [Record(BINARY, "archlinux", f"aaaaaaaaaaaa{i}", "", ("1",)) for i in range(2_500)]
    index, shards = search.index_files(recs, NOW)
    assert index["shards"] == [["aaaaaaaa", 3, 2_500]]
    assert [len(shards[search.bucket_key("aaaaaaaa", p)]["records"]) for p in (1, 2, 3)] == [1000, 1000, 500]
    assert len(find(index, shards, "aaaaaaaaaaaa24")) == 111  # 24, 240..249 and 2400..2499


def test_records_carry_a_url_only_when_it_is_not_the_plain_one():
    distros = {"archlinux": 0}
    assert Record(BINARY, "archlinux", "foo", "foo", ("1",)).json(distros) == [0, 0, "foo", "", "1", ""]
    evil = Record(BINARY, "archlinux", "<script>x", "base", tuple(str(i) for i in range(5)))
    assert evil.json(distros) == [0, 0, "<script>x", "base", "0, 1, 2, …",
                                  "packages/archlinux/%253Cscript%253Ex.html"]
    maint = Record(MAINTAINER, "", "index", count=2).json(distros)
    assert maint[-1] == urls.href(urls.maintainer_page("index")) and maint[4] == 2


def test_publish_writes_the_index_once_and_rewrites_it_only_when_the_package_set_changes(world):  # noqa: F811
    site = render(world)
    pages = check_site(site)
    index = json.loads(site.files[urls.SEARCH_INDEX].data)
    shards = {k: json.loads(f.data) for k, f in site.files.items() if k.startswith(urls.SEARCH_PREFIX + "k-")}
    assert index["records"] == len({r[2] for body in shards.values() for r in body["records"]}) > 0
    assert find(index, shards, "split-") == {"split-a", "split-b"}
    assert find(index, shards, "splitbase") == {"split-a", "split-b", "splitbase"}  # pkgbase, and its own page
    page = site.files[urls.SEARCH_PAGE].data.decode()
    assert "static/search.js" in page and "suites/archlinux/-/core/x86_64/names.html" in page  # the no-JS way
    assert urls.SEARCH_PAGE in pages
    for key in ("index.html", "packages/archlinux/foo.html"):
        assert 'role="search"' in site.files[key].data.decode()
    write_site(world.store, site)

    # Only verdicts change: the index is kept, not even computed.
    world.results.add(world.rows["qux"], 1, Status.GOOD, built_at=NOW)
    world.results.compact()
    again = render(world, previous=read_manifest(world.store))
    assert again.files["packages/archlinux/qux.html"]  # its page did change
    assert not [k for k in again.files if k.startswith(urls.SEARCH_PREFIX)]
    assert set(shards) | {urls.SEARCH_INDEX} <= set(again.kept)

    # A new package: the index is made again; the writer writes only the shards that changed.
    write_state(world.store, "more", [state_row("zzz-new", component="extra")])
    third = render(world, previous=read_manifest(world.store))
    assert urls.SEARCH_INDEX in third.files
    new_shards = {k: json.loads(f.data) for k, f in third.files.items() if k.startswith(urls.SEARCH_PREFIX + "k-")}
    assert find(json.loads(third.files[urls.SEARCH_INDEX].data), new_shards, "zzz") == {"zzz-new"}
    stats = write_site(world.store, third, previous=read_manifest(world.store))
    assert stats.written < len(third.files)


@pytest.mark.parametrize("name", ["<img src=x onerror=alert(1)>", "a\u202eb", "../../etc/passwd"])
def test_hostile_names_stay_data(tmp_path, name):
    from jobs.core.store import open_store
    from jobs.publish.site.build import build_site
    store = open_store((tmp_path / "s").as_uri())
    write_state(store, "h", [dataclasses.replace(state_row("ok", source="ok"), maintainers=(name,))])
    site = build_site(store, now=NOW, public_keys={"current": []}, rebuilder_name="r")
    shards = {k: json.loads(f.data) for k, f in site.files.items() if k.startswith(urls.SEARCH_PREFIX + "k-")}
    records = [r for body in shards.values() for r in body["records"] if r[0] == MAINTAINER]
    assert records and records[0][2] == name and records[0][5] == urls.href(urls.maintainer_page(name))
    assert all("/" not in k.removeprefix(urls.SEARCH_PREFIX) for k in shards)

