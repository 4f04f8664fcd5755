"""What "nothing unescaped on the site" means, checked on the files publish wrote to a local store.

The checks do not depend on the page layout (other people change the templates): every page
is parsed with `html.parser`, and what an injected payload would have produced is looked for:
an element that the templates never write and a payload would (`<img>`, `<iframe>`, `<b>`,
inline `<script>`...), an event-handler attribute, a `javascript:` or `data:` link (but the
empty favicon `data:,`), a raw control character; and a payload planted with `<` or `&` must never appear verbatim in a page's source
(escaping turns those characters into entities). "A page" is every file served as text/html,
build reports copied from workers included. Every JSON file must parse; every file must lie
under the site directory.
"""

from __future__ import annotations

import gzip
import json
import os
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

from jobs.core.store import LocalStore

# Elements a payload of the corpus would create and that no template writes.
FORBIDDEN_TAGS = frozenset({"img", "iframe", "frame", "frameset", "object", "embed", "applet", "base", "b", "i",
                            "marquee", "style", "form", "input", "textarea", "button", "video", "audio", "math"})
URL_ATTRIBUTES = frozenset({"href", "src", "action", "formaction", "xlink:href", "data", "poster", "background"})
# The one form the templates write: the search box (header and search page), pointing at the
# site's own search page, holding one search field and one submit button. Any other form,
# field or button is a payload's.
SEARCH_FORM_CLASSES = frozenset({"site-search", "search-page"})
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_ATTRIBUTE_NAME = re.compile(r"[a-z][a-z0-9:-]*\Z")


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self.text: list[str] = []
        self._in_script = False
        self._in_search_form = False

    def _searching(self, tag: str, values: dict[str, str | None]) -> bool:
        """Whether `tag` is part of the templates' search form."""
        if tag == "form":
            ours = values.get("class") in SEARCH_FORM_CLASSES and (values.get("action") or "").endswith(
                "search.html") and values.get("method") == "get" and not self._in_search_form
            self._in_search_form = self._in_search_form or ours
            return ours
        if tag == "input":
            return self._in_search_form and values.get("type") == "search" and values.get("name") == "q"
        return tag == "button" and self._in_search_form and values.get("type") == "submit"

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag in FORBIDDEN_TAGS and not self._searching(tag, values):
            self.problems.append(f"injected <{tag}>")
        if tag == "script":
            src = values.get("src") or ""
            if not src or urlsplit(src).scheme or not src.endswith(".js") or "static/" not in src:
                self.problems.append(f"<script> that is not one of the site's static scripts: {src!r}")
            self._in_script = True
        for name, value in attrs:
            if name.startswith("on") or not _ATTRIBUTE_NAME.match(name):
                self.problems.append(f"injected attribute {name!r} on <{tag}>")
            if name in URL_ATTRIBUTES and value is not None:
                scheme = urlsplit(re.sub(r"[\x00-\x20]", "", value)).scheme.lower()
                if scheme in ("javascript", "vbscript") or scheme == "data" and (tag, value) != ("link", "data:,"):
                    self.problems.append(f"{scheme}: URL in {name} of <{tag}>")
            if value is not None:
                self.text.append(value)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False
        if tag == "form":
            self._in_search_form = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.problems.append(f"inline script: {data[:60]!r}")
        self.text.append(data)


@dataclass
class PublishedSite:
    """The files under `<store>/site/`, read back: pages, feeds and the problems found in them."""

    root: Path
    html: dict[str, str] = field(default_factory=dict)  # key -> source
    text: dict[str, str] = field(default_factory=dict)  # key -> the text and attribute values a reader sees
    json: dict[str, object] = field(default_factory=dict)
    raw: dict[str, bytes] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @classmethod
    def read(cls, store: LocalStore) -> PublishedSite:
        """Every file publish wrote under `site/`, parsed; the problems of each are collected, not raised."""
        root = store.root / "site"
        site = cls(root)
        for directory, _, names in os.walk(root):
            for name in names:
                path = Path(directory) / name
                key = path.relative_to(root).as_posix()
                if not path.resolve().is_relative_to(root.resolve()):
                    site.problems.append(f"{key}: resolves outside the site directory")
                info = store.head(f"site/{key}")
                data = path.read_bytes()
                if info.content_encoding == "gzip":  # served with Content-Encoding: what a browser sees is inside
                    data = gzip.decompress(data)
                site.raw[key] = data
                site._parse(key, data, info.content_type or "")
        return site

    def _parse(self, key: str, data: bytes, content_type: str) -> None:
        if content_type.startswith("text/html"):  # pages, and whatever else is served as HTML
            source = data.decode("utf-8", "replace")
            page = _Page()
            page.feed(source)
            page.close()
            self.html[key] = source
            self.text[key] = "\n".join(page.text)
            self.problems += [f"{key}: {p}" for p in page.problems]
            control = _CONTROL.search(source)
            if control:
                self.problems.append(f"{key}: raw control character {control.group()!r}")
        elif content_type.startswith("application/json"):
            try:
                self.json[key] = json.loads(data)
            except ValueError as exc:
                self.problems.append(f"{key}: not JSON ({exc})")

    def verbatim(self, payload: str) -> list[str]:
        """The pages whose source holds `payload` unescaped (only meaningful if it has `<` or `&`)."""
        return [key for key, source in self.html.items() if payload in source]

    def shown(self, value: str) -> list[str]:
        """The pages that show `value` to a reader (as text or in an attribute), after unescaping."""
        return [key for key, text in self.text.items() if value in text]

    def feed_names(self) -> list[tuple[str, str]]:
        """(name, version) of every record of the v0 package list, as JSON gives them back."""
        records = self.json.get("api/v0/pkgs/list", [])
        assert isinstance(records, list)
        return [(r["name"], r["version"]) for r in records]

    def in_any_file(self, value: str) -> list[str]:
        """Every published file whose bytes hold `value` (UTF-8, or as JSON escapes it)."""
        needles = {value.encode("utf-8", "surrogatepass"), json.dumps(value)[1:-1].encode()}
        return [key for key, data in self.raw.items() if any(n in data for n in needles)]
