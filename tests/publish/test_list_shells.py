"""Suite lists as static shells: publish rewrites a list's JSON part, not its page, when a row
changes, and static/list.js shows the rows in a real browser as text, never as markup."""

from __future__ import annotations

import json

import pytest

from jobs.core import urls
from jobs.core.model import Status
from jobs.publish.site.build import build_site
from jobs.publish.site.sitewriter import read_manifest, write_site
from tests.httpd import serve
from tests.publish import axe
from tests.publish.sitefix import NOW, arch_world
from tests.publish.test_end_to_end import _chromium, artifacts_dir, screenshots
from tests.publish.test_pages import HOSTILE, hostile_world, render
from tests.publish.test_sitewriter import FEEDS, SUITE

pytestmark = pytest.mark.usefixtures("_no_proxy")


@pytest.fixture
def _no_proxy(monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def world(tmp_path):
    return arch_world(tmp_path)


def test_a_status_change_rewrites_the_lists_feeds_not_their_pages(world):
    write_site(world.store, render(world))
    world.results.add(world.rows["qux"], 1, Status.GOOD, built_at=NOW)
    world.results.compact()
    again = render(world, previous=read_manifest(world.store))
    pages = {k for k in again.files if k.startswith(SUITE + "/") and k != f"{SUITE}/index.html"}
    assert pages == set(), pages  # UNKWN, GOOD and names changed: their shells are kept
    assert {f"{FEEDS}/UNKWN.json", f"{FEEDS}/GOOD.json", f"{FEEDS}/names.json"} <= set(again.files)
    good = json.loads(again.files[f"{FEEDS}/GOOD.json"].data)
    assert "qux" in [p["name"] for p in good["packages"]]


@pytest.mark.full("headless Chromium")
def test_list_pages_render_hostile_rows_as_text_in_a_browser(tmp_path):
    store = hostile_world(tmp_path)
    write_site(store, build_site(store, now=NOW, public_keys={"current": []}, rebuilder_name="r"))
    suite = "suites/archlinux/-/core/x86_64"
    browser = _chromium()
    try:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait
        with serve(tmp_path / "store" / "site") as base:
            for page in ("names.html", "BAD.html", "FAIL.html"):
                browser.get(f"{base}/{suite}/{page}")
                WebDriverWait(browser, 10).until(
                    lambda b: b.find_element(By.CSS_SELECTOR, "table[data-list]").get_attribute("data-loaded"))
                table = browser.find_element(By.CSS_SELECTOR, "table.packages")
                names = [a.text for a in table.find_elements(By.CSS_SELECTOR, "tbody tr td:first-child a")]
                assert names, page
                if page == "names.html":
                    shown = set(names)
                    assert {"<script>alert(1)</script>", "javascript:alert(1)", "ünï cödé & <b>"} <= shown
                    assert len(names) == len(HOSTILE) + 1
                    count = browser.find_element(By.CSS_SELECTOR, "[data-count]").text
                    assert count == str(len(names))
                # Nothing a name or reason carried became markup: no injected element, no script ran.
                assert not table.find_elements(By.CSS_SELECTOR, "img, b, i, script, iframe")
                assert browser.execute_script("return typeof window.alert_called") == "undefined"
                for a in table.find_elements(By.CSS_SELECTOR, "a"):
                    href = a.get_attribute("href")
                    assert href.startswith(base + "/"), href  # never javascript: or off-site
                if page == "BAD.html":  # the links to a build's files, the failure class and the filter
                    assert table.find_elements(By.CSS_SELECTOR, "a[type='text/plain']")
                    box = browser.find_element(By.CSS_SELECTOR, "input.filter")
                    box.send_keys("passwd")
                    visible = [r for r in table.find_elements(By.CSS_SELECTOR, "tbody tr") if r.is_displayed()]
                    assert len(visible) == 1 and "passwd" in visible[0].text
                screenshots(browser, f"list-{page.removesuffix('.html').lower()}", artifacts_dir())
                assert axe.serious(browser) == []
            # A maintainer's page: a shell too, its headline and rows from the maintainer's feed.
            evil = "<script>alert(1)</script>"
            browser.get(f"{base}/{urls.href(urls.maintainer_page(evil))}")
            WebDriverWait(browser, 10).until(
                lambda b: b.find_element(By.CSS_SELECTOR, "table[data-list]").get_attribute("data-loaded"))
            assert browser.find_element(By.TAG_NAME, "h1").text == evil
            headline = browser.find_element(By.CSS_SELECTOR, "p.headline").text
            assert headline.startswith("0.0% reproducible: 0 GOOD, 1 BAD, 0 FAIL, 0 UNKWN of 1 packages."), headline
            cells = [c.text for c in browser.find_elements(By.CSS_SELECTOR, "table.packages tbody td")]
            assert cells[0] == evil and cells[2] == "archlinux / core / x86_64" and cells[3] == "BAD", cells
            assert not browser.find_elements(By.CSS_SELECTOR, "table.packages img, table.packages b")
            errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
            assert errors == [], errors
    finally:
        browser.quit()
