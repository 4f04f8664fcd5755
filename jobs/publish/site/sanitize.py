"""The diffoscope HTML report a worker stored, made safe to serve from the site's origin.

The report is untrusted: anyone with a worker credential can write `builds/`, and the
file is not covered by the result's signature. Copied as it is, a `<script>` in it would
run on the site's origin, and its CSS could fetch outside URLs or paint anything over the
report (a fixed "Reproducible: GOOD" banner over a BAD report). It is cleaned with nh3 (the
Rust `ammonia` sanitizer): the tags and attributes diffoscope's report uses are kept
(tables, `class`, `id`, `colspan`); scripts, `<style>` elements and their content, `style=`
attributes, event handlers, images, `javascript:` URLs and everything else are dropped.
The report is wrapped in `<div class="diffoscope">` (diffoscope puts that class on
`<body>`, which is dropped) and links the site's own stylesheet `static/diffoscope.css`,
diffoscope's look scoped to `.diffoscope`.

It is decompressed while streaming with an output cap (`report_decoded` in
`jobs.core.bounded.LIMITS`): a 3 MB gzip bomb is refused after 12 MiB, never expanded; and
a report with more than `report_tags` tags is refused before it is parsed (the sanitizer's
memory grows with the elements: 12 MiB of `<i>` would take a gigabyte).
"""

from __future__ import annotations

from html import escape

import nh3

from jobs.core.bounded import OverLimit, cap, decoded

# No images: an outside image is a tracking pixel, and diffoscope's own are data: URLs.
# No style: CSS can load outside URLs and draw over the report.
TAGS = (frozenset(nh3.ALLOWED_TAGS) - {"img", "map", "area", "style"}) | {
    "title", "col", "colgroup", "thead", "tbody", "tfoot", "tr", "td", "th", "table", "div", "span", "pre",
    "code", "details", "summary"}
ATTRIBUTES = {"*": {"class", "id", "title", "colspan", "rowspan", "align", "valign"},
              "a": {"href", "name"}}
STYLESHEET = "static/diffoscope.css"


def clean_report(data: bytes, encoding: str | None = None, *, key: str = "", limit: int | None = None) -> bytes:
    """The report (gzip-encoded or not) as sanitized UTF-8 HTML, to be published at site key `key`.

    OverLimit if it decompresses to more than `limit` (default: the `report_decoded` limit),
    CorruptData if it is truncated or corrupt gzip.
    """
    limit = cap("report_decoded") if limit is None else limit
    raw = decoded(data, limit, key or "diffoscope report", encoding)
    if raw.count(b"<") > cap("report_tags"):
        raise OverLimit(f"{key or 'diffoscope report'} (tags)", cap("report_tags"), "tags", problem="more than")
    text = raw.decode("utf-8", "replace")
    body = nh3.clean(text, tags=set(TAGS), clean_content_tags={"script", "style"}, attributes=ATTRIBUTES,
                     url_schemes={"http", "https"}, strip_comments=True, link_rel="noopener noreferrer nofollow")
    sheet = "../" * key.count("/") + STYLESHEET
    # A page of its own: language, title, viewport and no favicon request (a 404 in every console).
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            "<title>diffoscope report</title>\n<link rel=\"icon\" href=\"data:,\">\n"
            f"<link rel=\"stylesheet\" href=\"{escape(sheet)}\">\n"
            f"<div class=\"diffoscope\">\n{body}\n</div>\n").encode("utf-8")
