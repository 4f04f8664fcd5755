"""The accessibility check itself: axe-core in Chromium finds what it must (so a clean page means something)."""

from __future__ import annotations

import pytest

from tests.httpd import serve
from tests.publish import axe
from tests.publish.test_end_to_end import _chromium

BAD = ('<!doctype html><html><head><title>t</title></head><body><main><img src="data:,">'
       '<button></button><a href="#"></a></main></body></html>')
GOOD = ('<!doctype html><html lang="en"><head><title>t</title></head><body><main><h1>Fine</h1>'
        '<img src="data:," alt="nothing"><button>Go</button><a href="#x">a link</a></main></body></html>')


@pytest.mark.full("headless Chromium")
def test_axe_reports_serious_violations_and_passes_a_clean_page(tmp_path):
    (tmp_path / "bad.html").write_text(BAD)
    (tmp_path / "good.html").write_text(GOOD)
    browser = _chromium()
    try:
        with serve(tmp_path) as base:
            browser.get(f"{base}/bad.html")
            found = " ".join(axe.serious(browser))
            for rule in ("image-alt", "button-name", "link-name", "html-has-lang"):
                assert rule in found, found
            browser.get(f"{base}/good.html")
            assert axe.serious(browser) == []
    finally:
        browser.quit()
