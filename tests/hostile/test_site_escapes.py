"""Attacks on what publish writes from hostile input, each once a hole (see each section).

- the site's own JavaScript (list rows, search results) showed bidi overrides and controls
  that the pages replace by U+FFFD (headless Chromium);
- a signed result timed in the year 1, 9999 or 2999 crashed every later publish or pinned a verdict;
- a claim object with impossible times or a lone-surrogate holder or worker name crashed publish;
- an unverified worker record with a lone-surrogate name crashed publish;
- a local store's file name that is not UTF-8 made the rejected feed JSON strict parsers refuse.

What the site's own JavaScript shows of hostile text, in a real browser.

The pages publish renders print every string from outside through `text.printable`: a bidi
override, an isolate, a C0/C1 control or a line separator is shown as U+FFFD (a package named
"\\u202egnp.exe" must not display as "exe.png"). The suite lists, the maintainer pages and the
search page are filled in the browser from the JSON feeds, where the same values are exact (the
feeds are data, not display): the scripts must show them by the same rule, or a name that the
package page shows as "\\ufffdgnp.exe" reads "exe.png" on every list.

The state rows are forged the way a leaked sync credential could (no index parser accepts these
names), published by the real `build_site`/`write_site`, served over loopback HTTP and read in
headless Chromium.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from jobs.core import urls
from jobs.core.model import Status
from jobs.core.store import open_store
from jobs.publish.site.build import build_site
from jobs.publish.site.sitewriter import write_site
from jobs.publish.site.text import NOT_XML
from tests.httpd import serve
from tests.publish.sitefix import NOW, Results, state_row, write_state
from tests.publish.test_end_to_end import _chromium

pytestmark = [pytest.mark.full("headless Chromium"), pytest.mark.usefixtures("_no_proxy")]

# Each a name no index parser accepts (str.isprintable is False) but forged state can carry.
NAMES = {
    "rlo": "\u202egnp.exe",  # right-to-left override: displays as "exe.png"
    "isolate": "a\u2067b\u2069c",  # right-to-left isolate and its pop
    "mark": "x\u200fy\u061cz",  # right-to-left mark, Arabic letter mark
    "c1": "n\x85m\x9bq",  # NEXT LINE, CSI (a C1 terminal escape)
    "c0": "t\x1b[31mu\x07v",  # an ANSI colour escape and BEL
    "lsep": "line\u2028sep\u2029par",
}
MAINTAINER = "\u202eMallory <m@example.org>"
SUITE = "suites/archlinux/-/core/x86_64"


@pytest.fixture
def _no_proxy(monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("escapes")
    store = open_store((root / "store").as_uri())
    rows = [dataclasses.replace(state_row(name, version="1" + name, source="src" + name), maintainers=(MAINTAINER,))
            for name in NAMES.values()]
    write_state(store, "hostile", rows)
    results = Results(store)
    for row in rows:
        results.add(row, 1, Status.BAD, built_at=NOW, reason="differs")
    results.compact()
    write_site(store, build_site(store, now=NOW, public_keys={"current": []}, rebuilder_name="r"))
    return root / "store" / "site"


def _unsafe(texts: list[str]) -> list[str]:
    return [t for t in texts if NOT_XML.search(t)]


def _wait_loaded(browser, selector: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    WebDriverWait(browser, 10).until(lambda b: b.find_element(By.CSS_SELECTOR, selector).get_attribute("data-loaded"))


# The text of every cell of the table, as the DOM holds it (not `.text`, which the driver normalises).
_CELLS = "return Array.from(document.querySelectorAll('table.packages tbody td')).map(td => td.textContent);"


def test_the_package_page_shows_them_as_replacement_characters(site: Path):
    # The rule the scripts must follow, as the server-rendered page applies it (no browser needed).
    page = (site / urls.package_page("archlinux", NAMES["rlo"])).read_text(encoding="utf-8")
    assert "\ufffdgnp.exe" in page and "\u202e" not in page


def test_list_pages_show_bidi_and_control_characters_as_replacement_characters(site: Path):
    browser = _chromium()
    try:
        with serve(site) as base:
            for page in ("names.html", "BAD.html"):
                browser.get(f"{base}/{SUITE}/{page}")
                _wait_loaded(browser, "table[data-list]")
                cells = browser.execute_script(_CELLS)
                assert any(c.startswith("\ufffdgnp.exe") for c in cells), cells
                assert _unsafe(cells) == [], page
            browser.get(f"{base}/{urls.href(urls.maintainer_page(MAINTAINER))}")
            _wait_loaded(browser, "table[data-list]")
            cells = browser.execute_script(_CELLS)
            assert any(c.startswith("\ufffdgnp.exe") for c in cells), cells
            assert _unsafe(cells) == []
    finally:
        browser.quit()


def test_search_results_show_bidi_and_control_characters_as_replacement_characters(site: Path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    browser = _chromium()
    try:
        with serve(site) as base:
            for query in ("exe", "src", "example"):  # a package, a source, the maintainer
                browser.get(f"{base}/{urls.SEARCH_PAGE}?q={query}")
                WebDriverWait(browser, 10).until(
                    lambda b, q=query: b.find_element(By.ID, "search-results").get_attribute("data-query") == q)
                shown = browser.execute_script(
                    "return Array.from(document.querySelectorAll('#search-results li')).map(li => li.textContent);")
                assert shown, query
                assert _unsafe(shown) == [], (query, shown)
            browser.get(f"{base}/{urls.SEARCH_PAGE}?q=%E2%80%AEnothing")  # a link someone sends: the query shown
            WebDriverWait(browser, 10).until(
                lambda b: b.find_element(By.ID, "search-results").get_attribute("data-query") == "\u202enothing")
            status = browser.execute_script("return document.getElementById('search-status').textContent")
            assert "\ufffdnothing" in status and _unsafe([status]) == [], status
    finally:
        browser.quit()


@pytest.mark.parametrize("script", ["list.js", "search.js"])
def test_the_scripts_replace_what_the_pages_replace(script: str):
    import codecs
    import re

    from jobs.core.resources import site_static
    source = (site_static() / script).read_text(encoding="utf-8")
    found = re.search(r"var NOT_SHOWN = /(\[[^\]]*\])/gu;", source)
    assert found, script
    # The JavaScript class, its \x and \u escapes read, is text.NOT_XML's own.
    assert codecs.decode(found.group(1), "unicode_escape") == NOT_XML.pattern


# --- build times at the ends of the calendar ---------------------------------------------------------------------

# A trusted worker's signed result may claim any started_at/built_at. Drawn on the package's
# history strip (svg.history_strip pads the span), summed into the schedule (history.retry_due)
# or compared as "the newest build", a date at either end of the calendar overflowed and brought
# every later publish down, and one far in the future made its verdict the newest for good.
TIMES = {
    "year-9999": {"started_at": "9999-12-31T23:00:00.000000Z", "built_at": "9999-12-31T23:59:59.999999Z"},
    "year-1": {"started_at": "0001-01-01T00:00:00.000000Z", "built_at": "0001-01-01T00:10:00.000000Z"},
    "year-2999": {"started_at": "2999-01-01T00:00:00.000000Z", "built_at": "2999-01-01T00:10:00.000000Z"},
    "started-in-1969": {"started_at": "1969-12-31T23:59:59.000000Z"},
}


@pytest.mark.parametrize("name", list(TIMES))
def test_a_result_built_outside_its_time_is_rejected_and_publish_goes_on(name: str, tmp_path: Path):
    import json

    from tests.hostile import worlds
    from tests.hostile.manifest import Case
    from tests.hostile.test_corpus import CONTROL, check_clean, check_result

    generated = tmp_path / "generated"
    generated.mkdir()
    (generated / f"{name}.json").write_text(json.dumps({"result": TIMES[name]}))
    case = Case(id=f"result-{name}", kind="result", input=f"{name}.json", generated=True, isolated=True,
                breaks=f"a build timed {TIMES[name]}", expect="skip: counted, timestamp")
    world = worlds.result_world(tmp_path, [CONTROL, case], generated)
    check_result(CONTROL, world)
    check_result(case, world)
    check_clean(world)


# --- claims with times no clock gives -----------------------------------------------------------------------------

# Anyone with a worker's store credentials can write a claim object (claims are leases, not
# signed). Publish shows the live ones as running builds, turning their float times into dates:
# a time of 1e20 seconds, -1e12, NaN or Infinity raised (OverflowError, ValueError) on every
# publish while the job stayed queued at that attempt.
# A holder or a worker name that is a lone surrogate (JSON's "\ud800") fits no Arrow string
# and raised UnicodeEncodeError the same way.
BAD_TIMES = {"acquired-1e20": {"acquired_at": 1e20}, "expires-1e300": {"expires_at": 1e300},
             "renewed-nan": {"renewed_at": float("nan")}, "expires-infinity": {"expires_at": float("inf")},
             "acquired-before-1": {"acquired_at": -1e12}, "holder-surrogate": {"holder": "k\ud800"}}


@pytest.mark.parametrize("name", list(BAD_TIMES))
def test_a_claim_with_impossible_times_is_no_claim_and_publish_goes_on(name: str, tmp_path: Path):
    import json

    from jobs.core.layout import claim_key
    from jobs.core.lease import SCHEMA
    from tests.hostile import forge, worlds
    from tests.hostile.test_corpus import check_clean
    from tests.publish.test_verify import config_for

    store = worlds._store(tmp_path / "store")
    world = worlds.World(store, tmp_path / "store", set())
    row = forge.row_for(f"claimed-{name}")
    write_state(store, "claims", [row])
    forge.queue_rows(store, [row])
    now = NOW.timestamp()
    lease = {"schema": SCHEMA, "holder": "k" * 16, "token": "t" * 32, "acquired_at": now - 60,
             "renewed_at": now - 60, "expires_at": now + 600, "generation": 1, "released": False,
             "meta": {"worker": "w"}, **BAD_TIMES[name]}
    store.put(claim_key(row.job_id, 1), json.dumps(lease).encode())  # Python's json writes NaN and Infinity
    world.publish(config_for(tmp_path, authorized=forge.Keys().trusted()))
    check_clean(world)
    assert world.site is not None
    running = json.loads((world.site.root / "api/v0/dashboard").read_text())["active_builds"]
    assert running == [], running  # not a live claim: nobody is shown building it


# --- worker records nobody verified ---------------------------------------------------------------------------------

# The workers feed names every key id with a record under workers/, verified or not (an
# unverified one as "untrusted"), taking the name from the record. JSON may spell a lone
# surrogate ("\ud800"): no Arrow string holds it, and publish raised UnicodeEncodeError on every
# run while the record stood there. Any such name, or one with controls or a bidi override, or
# longer than a worker name may be, is not shown: the key id stands for it.
UNVERIFIED_NAMES = {"lone-surrogate": "ev\ud800il", "bidi": "\u202eyrtsiger", "control": "a\x1b[2Jb",
                    "long": "w" * 10_000}


@pytest.mark.parametrize("name", list(UNVERIFIED_NAMES))
def test_an_unverified_worker_record_names_nobody_and_publish_goes_on(name: str, tmp_path: Path):
    import json

    from tests.hostile import forge, worlds
    from tests.hostile.test_corpus import check_clean
    from tests.publish.test_verify import config_for

    store = worlds._store(tmp_path / "store")
    world = worlds.World(store, tmp_path / "store", set())
    row = forge.row_for(f"record-{name}")
    write_state(store, "workers", [row])
    forge.queue_rows(store, [row])
    kid = "a" * 64
    store.put(f"workers/{kid}.json", json.dumps({"signed": {"name": UNVERIFIED_NAMES[name]}}).encode())
    world.publish(config_for(tmp_path, authorized=forge.Keys().trusted()))
    check_clean(world)
    assert world.site is not None
    workers = json.loads((world.site.root / "api/v1/workers.json").read_text())["workers"]
    assert [(w["name"], w["trust"]) for w in workers if w["key_id"] == kid] == [(kid, "untrusted")]


def test_an_unverified_worker_record_with_a_plain_name_is_shown_by_it(tmp_path: Path):
    import json

    from tests.hostile import forge, worlds
    from tests.publish.test_verify import config_for

    store = worlds._store(tmp_path / "store")
    world = worlds.World(store, tmp_path / "store", set())
    write_state(store, "workers", [forge.row_for("record-plain")])
    kid = "b" * 64
    store.put(f"workers/{kid}.json", json.dumps({"signed": {"name": "builder <two>"}}).encode())
    world.publish(config_for(tmp_path, authorized=forge.Keys().trusted()))
    assert world.site is not None
    workers = json.loads((world.site.root / "api/v1/workers.json").read_text())["workers"]
    assert [w["name"] for w in workers if w["key_id"] == kid] == ["builder <two>"]


def test_a_claim_whose_worker_name_is_a_lone_surrogate_shows_its_holder(tmp_path: Path):
    import json

    from jobs.core.layout import claim_key
    from jobs.core.lease import SCHEMA
    from tests.hostile import forge, worlds
    from tests.hostile.test_corpus import check_clean
    from tests.publish.test_verify import config_for

    store = worlds._store(tmp_path / "store")
    world = worlds.World(store, tmp_path / "store", set())
    row = forge.row_for("claimed-by-a-surrogate")
    write_state(store, "claims", [row])
    forge.queue_rows(store, [row])
    now = NOW.timestamp()
    store.put(claim_key(row.job_id, 1), json.dumps({
        "schema": SCHEMA, "holder": "k" * 16, "token": "t" * 32, "acquired_at": now - 60, "renewed_at": now - 60,
        "expires_at": now + 600, "generation": 1, "released": False, "meta": {"worker": "w\ud800"}}).encode())
    world.publish(config_for(tmp_path, authorized=forge.Keys().trusted()))
    check_clean(world)
    assert world.site is not None
    queue = json.loads((world.site.root / "api/v1/queue.json").read_text())["jobs"]
    assert [j["running"]["worker_name"] for j in queue if j.get("running")] == ["k" * 16]


# --- a key that is not UTF-8 ----------------------------------------------------------------------------------------

def test_every_json_file_is_strict_json_when_a_local_store_holds_a_key_that_is_not_utf8(tmp_path: Path):
    """A local store lists a file name that is not UTF-8 (a worker sharing the directory wrote
    `results/\\xff.json`) as a key with a lone surrogate ("\\udcff"). Publish lists it as a rejected
    result; the rejected feed then held a lone surrogate escape, which the JSON standard leaves
    undefined and orjson (rebuildctl's parser), serde_json and others refuse: the whole feed was
    unreadable. It is shown as U+FFFD, as the page shows it."""
    import logging
    import os

    import orjson

    from tests.hostile import forge, worlds
    from tests.hostile.test_corpus import check_clean
    from tests.publish.test_verify import config_for

    store = worlds._store(tmp_path / "store")
    world = worlds.World(store, tmp_path / "store", set())
    row = forge.row_for("not-utf8")
    write_state(store, "results", [row])
    forge.queue_rows(store, [row])
    (tmp_path / "store" / "results").mkdir()
    with open(os.fsencode(tmp_path / "store" / "results") + b"/\xff.json", "wb") as f:
        f.write(b"{}")
    # publish logs the rejected key: a lone surrogate no pytest-xdist report can carry back
    logging.disable(logging.CRITICAL)
    try:
        world.publish(config_for(tmp_path, authorized=forge.Keys().trusted()))
    finally:
        logging.disable(logging.NOTSET)
    check_clean(world)
    assert world.site is not None
    for path in world.site.root.rglob("*"):
        if path.is_file() and (path.suffix == ".json" or path.parent.name == "v0"):
            orjson.loads(path.read_bytes())  # strict: no lone surrogate escape
    rejected = orjson.loads((world.site.root / "api/v1/rejected.json").read_bytes())["rejected"]
    assert [r["key"] for r in rejected] == ["results/\ufffd.json"]
