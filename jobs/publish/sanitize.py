"""The diffoscope HTML report a worker stored, made safe to serve from the site's origin.

The report is untrusted: anyone with a worker credential can write `builds/`, and the
file is not covered by the result's signature. Copied as it is, a `<script>` in it would
run on the site's origin. It is cleaned with nh3 (the Rust `ammonia` sanitizer): the
tags and attributes diffoscope's report uses are kept (tables, its `<style>` block,
classes and inline styles), scripts and their content, event handlers, `javascript:`
URLs and everything else are dropped.
"""

from __future__ import annotations

import gzip

import nh3

# No images: an outside image is a tracking pixel, and diffoscope's own are data: URLs.
TAGS = (frozenset(nh3.ALLOWED_TAGS) - {"img", "map", "area"}) | {"style", "title", "col", "colgroup", "thead", "tbody", "tfoot", "tr", "td",
                                                               "th", "table", "div", "span", "pre", "code",
                                                               "details", "summary"}
ATTRIBUTES = {"*": {"class", "id", "style", "title", "colspan", "rowspan", "align", "valign"},
              "a": {"href", "name"}}
_GZIP = b"\x1f\x8b"


def clean_report(data: bytes, encoding: str | None = None) -> bytes:
    """The report (gzip-encoded or not) as sanitized UTF-8 HTML."""
    if encoding == "gzip" or data[:2] == _GZIP:
        data = gzip.decompress(data)
    text = data.decode("utf-8", "replace")
    body = nh3.clean(text, tags=set(TAGS), clean_content_tags={"script"}, attributes=ATTRIBUTES,
                     url_schemes={"http", "https"}, strip_comments=True)
    return ("<!DOCTYPE html>\n<meta charset=\"utf-8\">\n" + body).encode("utf-8")
