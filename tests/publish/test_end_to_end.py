"""Fixture repository → sync → worker (real rebuilds) → publish → feeds and site over loopback HTTP.

The v0 feed is read by a small client written the way arch-repro-status reads it, and the
site is loaded in a real headless Chromium (Debian's chromium + chromedriver via selenium).
"""

from __future__ import annotations

import gzip
import json
import shutil
import urllib.request
from pathlib import Path

import pytest

from jobs.core.config import parse_rebuilder_config, parse_worker_config
from jobs.core.signing import ensure_key, load_public_keys_feed, verify_link
from jobs.core.store import open_store
from jobs.publish.run import publish
from jobs.sync.job import sync_profile
from jobs.work.backends import shipped_backend
from jobs.work.identity import load_identity
from jobs.work.loop import Worker
from tests.httpd import serve
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
    # Nothing new: a second publish writes nothing but perhaps the dashboard's clock.
    again = publish(store, config)
    assert again.state.history_rows_added == 0 and again.site.written <= 2


def _chromium():
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
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


@pytest.mark.full("headless Chromium")
def test_site_in_a_real_browser(fixture_repo, tmp_path):
    store, _, _ = run_everything((tmp_path / "store").as_uri(), fixture_repo, tmp_path)
    browser = _chromium()
    try:
        from selenium.webdriver.common.by import By
        with serve(tmp_path / "store" / "site") as base:
            pages = {"dashboard": f"{base}/index.html"}
            browser.get(pages["dashboard"])
            assert "unrepro" in browser.page_source or "%" in browser.page_source
            suite_links = [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "a[href*='suites/']")]
            assert suite_links, "the dashboard links its suites"
            browser.get(suite_links[0])
            # The no-JS filter: a page per status lists only that status.
            bad_links = [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "a[href$='BAD.html']")]
            assert bad_links
            browser.get(bad_links[0])
            text = browser.find_element(By.TAG_NAME, "body").text
            assert "unrepro" in text and "hello-script" not in text
            pkg_links = [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "a[href*='packages/']")]
            browser.get(pkg_links[0])
            assert browser.find_elements(By.CSS_SELECTOR, "link[rel='alternate'][type='application/json']")
            browser.save_screenshot(str(tmp_path / "package.png"))
            errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
            assert errors == [], errors
        assert (tmp_path / "package.png").stat().st_size > 1000
    finally:
        browser.quit()


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
        monkeypatch.delenv(var, raising=False)
