"""Fixture repository → sync → worker (real rebuilds) → publish → feeds and site over loopback HTTP.

The v0 feed is read by a small client written the way arch-repro-status reads it, and the
site is loaded in a real headless Chromium (Debian's chromium + chromedriver via selenium).
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import urllib.request
from pathlib import Path

import pytest

from jobs.core.config import parse_rebuilder_config, parse_worker_config
from jobs.core.signing import ensure_key, load_public_keys_feed, verify_link
from jobs.core.store import open_store
from jobs.publish.run import publish
from jobs.sync.run import sync_profile
from jobs.work.backends import shipped_backend
from jobs.work.identity import load_identity
from jobs.work.run import Worker
from tests.httpd import serve
from tests.publish import axe
from tests.sync.test_sync_job import profile_for
from tests.tools import missing

EXPECTED = {"hello-script": "GOOD", "hello-c": "GOOD", "split-a": "GOOD", "split-b": "GOOD", "unrepro": "BAD",
            "ftbfs": "BAD"}  # v0 has no FAIL: rebuilderd's v0 maps it to BAD


def run_everything(url: str, fixture_repo, tmp_path: Path):
    store = open_store(url)
    ensure_key(tmp_path / "rebuilder.sign.key")  # a configured key must exist
    config = parse_rebuilder_config({"worker": {"signup_secret": "Fk3q9ZmT7vXc2LpW8nRb4HsY6dJg5QeA"},
                                     "publish": {"signing_key": str(tmp_path / "rebuilder.sign.key")}})
    profile = profile_for(fixture_repo.source_url(fixture_repo.root.as_uri()), fixture_repo.repo, fixture_repo.arch)
    sync_profile(store, config, profile)
    wconf = parse_worker_config({
        "signup_secret": "Fk3q9ZmT7vXc2LpW8nRb4HsY6dJg5QeA", "backend": {"archlinux": {"path": str(shipped_backend("archlinux-local"))}},
        "supported_architectures": [fixture_repo.arch], "work_dir": str(tmp_path / "worker"),
        "build": {"timeout": 300, "silent": True}, "diffoscope": {"enabled": True, "timeout": 120}})
    worker = Worker(store=store, config=config, worker_config=wconf, identity=load_identity(wconf, "w1"),
                    backends={"archlinux": shipped_backend("archlinux-local")},
                    env={"REBUILDER_ARCHIVE": str(fixture_repo.archive_dir),
                         "REBUILDER_PKGBUILDS": str(fixture_repo.pkgbuild_dir)})
    assert len(worker.run(until_idle=True).built) == 5
    summary = publish(store, config)
    assert len(summary.state.accepted) == 5 and not summary.state.rejected, summary.line()
    return store, config, summary


def arch_repro_status(base: str) -> dict[str, str]:
    """name → status, the way arch-repro-status reads the v0 list (first record per name)."""
    with urllib.request.urlopen(f"{base}/api/v0/pkgs/list?distro=archlinux") as resp:
        records = json.load(resp)
    out: dict[str, str] = {}
    for r in records:
        assert isinstance(r["build_id"], int | None) and (r["built_at"] is None or not r["built_at"].endswith("Z"))
        out.setdefault(r["name"], r["status"])
    return out


def test_fixture_repo_to_published_feeds(store_factory, fixture_repo, tmp_path):
    store, config, summary = run_everything(store_factory.url(), fixture_repo, tmp_path)
    site = tmp_path / "www"
    for info in store.list("site/"):  # what a static host would serve (works for S3 too)
        path = site / info.key.removeprefix("site/")
        path.parent.mkdir(parents=True, exist_ok=True)
        blob = store.get(info.key)
        path.write_bytes(gzip.decompress(blob.data) if blob.info.content_encoding == "gzip" else blob.data)
    with serve(site) as base:
        assert arch_repro_status(base) == EXPECTED
        records = json.load(urllib.request.urlopen(f"{base}/api/v0/pkgs/list"))
        unrepro = next(r for r in records if r["name"] == "unrepro")
        assert unrepro["has_diffoscope"] and b"unrepro" in urllib.request.urlopen(
            f"{base}/api/v0/builds/{unrepro['build_id']}/diffoscope").read()
        good = next(r for r in records if r["name"] == "hello-script")
        link = json.load(urllib.request.urlopen(f"{base}/api/v0/builds/{good['build_id']}/attestation"))
        keys = load_public_keys_feed(json.load(urllib.request.urlopen(f"{base}/api/v0/public-keys")))
        assert verify_link(link, keys)  # countersigned by the rebuilder's published key
        assert len(link["signatures"]) == 2
    # Nothing new: a second publish writes only what says when it ran (status, index feed, dashboard).
    again = publish(store, config)
    assert again.state.history_rows_added == 0 and again.site.written <= 3


def _chromium(*, javascript: bool = True):
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing("selenium", "pip install selenium")
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver:
        missing("chromium and chromedriver", "apt-get install chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1280,1000"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    if not javascript:  # a visitor without JavaScript
        options.add_experimental_option("prefs", {"profile.managed_default_content_settings.javascript": 2})
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


def artifacts_dir() -> Path:
    """Where the browser test leaves its screenshots: $REBUILDER_TEST_ARTIFACTS, else test-artifacts/ (git-ignored)."""
    root = os.environ.get("REBUILDER_TEST_ARTIFACTS") or str(Path(__file__).resolve().parents[2] / "test-artifacts")
    path = Path(root) / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


def screenshots(browser, name: str, out: Path) -> None:
    """The page at 1280 px and at 390 px wide (a phone), whole height; no horizontal scroll at 390 px."""
    for width in (1280, 390):
        browser.set_window_size(width, 1000)
        height = browser.execute_script("return document.documentElement.scrollHeight")
        browser.set_window_size(width, min(max(height, 600), 6000))
        target = out / f"{name}-{width}.png"
        browser.save_screenshot(str(target))
        assert target.stat().st_size > 1000, target
    browser.set_window_size(1280, 1000)


def banner(browser) -> str:
    """The "last published" line once status.js has filled it in."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    WebDriverWait(browser, 10).until(
        lambda b: b.find_element(By.ID, "published").text.startswith("Last published"))
    return browser.find_element(By.ID, "published").get_attribute("data-published-at")


@pytest.mark.full("headless Chromium")
def test_site_in_a_real_browser(fixture_repo, tmp_path):
    store, config, _ = run_everything((tmp_path / "store").as_uri(), fixture_repo, tmp_path)
    browser = _chromium()
    out = artifacts_dir()
    problems: dict[str, list[str]] = {}

    def look(name: str) -> None:  # screenshots at 1280 and 390 px, and axe-core's serious findings
        screenshots(browser, name, out)
        found = axe.serious(browser)
        if found:
            problems[name] = found

    try:
        from selenium.webdriver.common.by import By
        with serve(tmp_path / "store" / "site") as base:
            pages = {"dashboard": f"{base}/index.html"}
            browser.get(pages["dashboard"])
            assert "unrepro" in browser.page_source or "%" in browser.page_source
            # Rendered by publish, no JavaScript needed: the time and the charts' axes and legend.
            assert browser.find_element(By.ID, "published").text.startswith("Last published")
            chart = browser.find_element(By.CSS_SELECTOR, "figure.chart svg")
            assert chart.get_attribute("role") == "img" and chart.find_elements(By.CSS_SELECTOR, "line.axis")
            assert "GOOD" in " ".join(t.text for t in chart.find_elements(By.CSS_SELECTOR, "text.legend"))
            look("dashboard")
            suite_links = [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "a[href*='suites/']")]
            assert suite_links, "the dashboard links its suites"
            browser.get(suite_links[0])
            assert " of 6 packages" in browser.find_element(By.CSS_SELECTOR, "p.headline").text
            crumbs = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "nav.crumbs a")]
            assert "archlinux" in crumbs
            look("suite")
            # A page per status lists only that status (a shell static/list.js fills from its feed).
            bad_links = [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "a[href$='BAD.html']")]
            assert bad_links
            browser.get(bad_links[0])
            from selenium.webdriver.support.ui import WebDriverWait
            WebDriverWait(browser, 10).until(
                lambda b: b.find_element(By.CSS_SELECTOR, "table[data-list]").get_attribute("data-loaded"))
            text = browser.find_element(By.TAG_NAME, "body").text
            assert "unrepro" in text and "hello-script" not in text
            look("list")
            pkg_links = [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "a[href*='packages/']")]
            browser.get(pkg_links[0])
            assert browser.find_elements(By.CSS_SELECTOR, "link[rel='alternate'][type='application/json']")
            build = browser.find_element(By.CSS_SELECTOR, "table.builds code")
            assert build.text.startswith("#") and len(build.get_attribute("title")) > 20  # short id, full on hover
            assert browser.find_elements(By.CSS_SELECTOR, "figure.chart svg rect.mark")
            first = banner(browser)  # filled by status.js from api/v1/status.json
            look("package")
            package_url = browser.current_url
            # The maintainer (the fixture's %PACKAGER%) has a page listing this package.
            browser.find_element(By.CSS_SELECTOR, "a[href*='maintainers/']").click()
            WebDriverWait(browser, 10).until(
                lambda b: b.find_element(By.CSS_SELECTOR, "table[data-list]").get_attribute("data-loaded"))
            assert "packages" in browser.find_element(By.CSS_SELECTOR, "p.headline").text
            assert browser.find_elements(By.CSS_SELECTOR, "table.packages a[href*='packages/']")
            look("maintainer")
            browser.get(f"{base}/maintainers/index.html")
            look("maintainers")
            browser.get(f"{base}/feeds.html")
            assert "api/v1/status.json" in browser.page_source and browser.find_elements(By.CSS_SELECTOR, "pre.example")
            look("feeds")
            # Search from any page's header box: the published index, fetched by static/search.js.
            browser.get(pages["dashboard"])
            box = browser.find_element(By.CSS_SELECTOR, "form.site-search input[name='q']")
            box.send_keys("hello")
            box.submit()
            WebDriverWait(browser, 10).until(
                lambda b: b.find_element(By.ID, "search-results").get_attribute("data-query") == "hello")
            found = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "#search-results a")]
            assert set(found) == {"hello-script", "hello-c"}, found
            look("search-site")
            browser.find_element(By.CSS_SELECTOR, "#search-results a").click()
            assert browser.find_element(By.TAG_NAME, "h1").text.split()[0] in found
            # A package page of each verdict, and the BAD one's diffoscope report as published.
            for name, verdict in (("hello-script", "GOOD"), ("unrepro", "BAD"), ("ftbfs", "FAIL")):
                browser.get(f"{base}/packages/archlinux/{name}.html")
                assert browser.find_element(By.CSS_SELECTOR, "table.packages span.status").text == verdict
                assert browser.find_element(By.CSS_SELECTOR, "p.pkgdesc").text  # %DESC% from the index
                look(f"package-{verdict.lower()}")
                if verdict == "BAD":
                    report = browser.find_element(By.CSS_SELECTOR, "a[href$='diffoscope.html']").get_attribute("href")
            browser.get(report)
            assert "unrepro" in browser.page_source
            look("diffoscope")
            # Another publish with nothing new: the package page is not rewritten, its banner moves.
            again = publish(store, config)
            assert again.state.history_rows_added == 0 and again.site.written <= 3
            browser.get(package_url)
            assert banner(browser) > first
            errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
            assert errors == [], errors
        assert problems == {}, problems  # no serious or critical accessibility violation on any page
    finally:
        browser.quit()


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
        monkeypatch.delenv(var, raising=False)
