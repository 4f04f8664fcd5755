"""Each maintainer's Atom feed (jobs.publish.site.maintainers): their packages' latest verdicts, newest first."""

from __future__ import annotations

import dataclasses
import json
import xml.etree.ElementTree as ET

from jobs.core import urls
from jobs.core.model import Status
from jobs.core.store import open_store
from jobs.publish.site.build import build_site
from tests.publish.sitefix import NOW, Results, state_row, write_state


def test_each_maintainer_has_an_atom_feed_of_their_verdicts(tmp_path):
    store = open_store((tmp_path / "s").as_uri())
    evil = "<b>Eve</b> <e@example.org>"
    rows = [dataclasses.replace(state_row(n, source=n), maintainers=(evil,)) for n in ("one", "two", "never")]
    write_state(store, "h", rows)
    results = Results(store)
    results.add(rows[0], 1, Status.GOOD, built_at=NOW)
    results.add(rows[1], 1, Status.BAD, built_at=NOW.replace(hour=13), reason="not reproducible: <x> differs")
    results.compact()
    site = build_site(store, now=NOW, public_keys={"current": []}, rebuilder_name="r")
    key = urls.maintainer_atom(evil)
    atom = "{http://www.w3.org/2005/Atom}"
    feed = ET.fromstring(site.files[key].data)
    assert site.files[key].content_type == "application/atom+xml"
    titles = [e.findtext(f"{atom}title") for e in feed.iter(f"{atom}entry")]
    assert titles == ["two 1-1 (archlinux / core / x86_64): BAD",  # newest first
                      "one 1-1 (archlinux / core / x86_64): GOOD"]
    assert feed.findtext(f"{atom}title") == f"r: packages of {evil}"
    assert [e.findtext(f"{atom}summary") for e in feed.iter(f"{atom}entry")][0] == "not reproducible: <x> differs"
    links = [link.get("href") for link in feed.iter(f"{atom}link") if link.get("rel") == "alternate"]
    assert "../packages/archlinux/two.html" in links
    page = site.files[urls.maintainer_page(evil)].data.decode()
    assert 'type="application/atom+xml"' in page and urls.href(key).removeprefix("maintainers/") in page
    assert json.loads(site.files[urls.maintainer_feed(evil)].data)["atom"] == urls.href(key)
