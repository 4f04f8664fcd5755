"""The package page's table rows written in Python (`package_html`) are byte for byte what the
Jinja2 loops and macros of the template wrote, hostile strings included."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import UTC, datetime

import pytest

from jobs.core.model import Status
from jobs.publish.site import package_html, svg
from jobs.publish.site.classify import FailureClass
from jobs.publish.site.pages import environment
from jobs.publish.site.rows import BuildLinks, BuildRow, PackagePage, PackageRow, SuiteKey

# The loops as package.html had them, over the macros of partials/macros.html.
_OLD = """{% from "partials/macros.html" import status, failure, files with context %}
{% for row in packages %}
<tr class="{{ row.status.css_class }}">
<td>{{ row.name }}{% if row.source_name != row.name %} <small>(source {{ row.source_name }} {{ row.source_version }})</small>{% endif %}</td>
<td>{{ row.version }}</td>
<td>{{ row.suite.label }}</td>
<td>{{ status(row.status) }}</td>
<td>{{ failure(row.failure_class) }}</td>
<td>{{ row.reason or "" }}</td>
<td>{{ row.built_at | when }}</td>
<td>{{ files(row.links) }}</td>
</tr>
{% endfor %}
|
{% for b in builds %}
<tr class="{{ b.status.css_class }}" id="build-{{ b.build_id }}">
<td><code title="{{ b.build_id }}">{% if b.links.v0_id is not none %}#{{ b.links.v0_id }}{% else %}{{ b.build_id[:8] }}{% endif %}</code></td>
<td>{{ b.source_name }} {{ b.source_version }}</td>
<td>{{ b.architecture }}</td>
<td>{{ b.attempt }}</td>
<td>{{ status(b.status) }}</td>
<td>{{ failure(b.failure_class) }}</td>
<td>{{ b.reason or "" }}</td>
<td>{% for name, value in b.artifacts %}{{ name }} {{ status(value) }}{% if not loop.last %}, {% endif %}{% endfor %}</td>
<td>{{ b.worker_name or b.worker_key_id }}</td>
<td>{{ b.started_at | when }}</td>
<td>{{ b.built_at | when }}</td>
<td>{{ files(b.links) }}</td>
</tr>
{% endfor %}
"""

_NEW = "{{ package_rows(packages) }}|\n{{ build_rows(builds) }}"

HOSTILE = ["plain", "<script>alert(1)</script>", "a&b \"q\" 'r'", "bidi\u202eevil\u2066", "ctl\x00\x1b\x7f\x85",
           "", "lone \ud800 surrogate", "ünïcödé ☃"]
AT = datetime(2026, 1, 2, 3, 4, tzinfo=UTC)


def _links(i: int) -> BuildLinks:
    bits = [bool(i >> k & 1) for k in range(4)]
    return BuildLinks(None if i % 7 == 6 else i + 1, *bits)


def _rows() -> tuple[list[PackageRow], list[BuildRow]]:
    packages, builds = [], []
    classes = [None, *FailureClass]
    for i, (text, status) in enumerate(itertools.product(HOSTILE, Status)):
        fc = classes[i % len(classes)]
        packages.append(PackageRow(
            SuiteKey("arch" + text, None if i % 2 else "rel", text or None, "x86_64"), name=text or "n",
            version=text + "1.0", artifact_architecture="any", artifact_url="https://x/" + text,
            source_name=text if i % 3 else "src", source_version="2" + text, job_id="j", status=status,
            build_id=None, built_at=None if i % 4 == 0 else AT, reason=None if i % 5 == 0 else text,
            failure_class=fc, worker_name=None, links=_links(i)))
        builds.append(BuildRow(
            build_id=f"{i:08x}{text}", job_id="j", attempt=i, distro="d", architecture=text, source_name=text,
            source_version=text, status=status, reason=None if i % 5 == 0 else text, failure_class=fc,
            artifacts=tuple((f"{text}{k}", s) for k, s in zip(range(i % 3), Status)),
            worker_name=None if i % 2 else text, worker_key_id="key" + text, started_at=AT, built_at=AT,
            links=_links(i + 3)))
    return packages, builds


@pytest.mark.parametrize("page_key", ["packages/archlinux/foo.html", "packages/a%2Fb/x.html", "packages/foo.html"])
def test_rows_match_the_template_loops(page_key: str) -> None:
    env = environment()
    packages, builds = _rows()
    old = env.from_string(_OLD).render(page_key=page_key, packages=packages, builds=builds)
    new = env.from_string(_NEW).render(page_key=page_key, packages=packages, builds=builds)
    assert new == old
    assert "<script>" not in new and "\u202e" not in new and "\x00" not in new


def test_links_are_relative_to_the_page() -> None:
    rows = package_html.build_rows(_rows()[1][:4], package_html.relative_from("packages/d/n.html"))
    assert 'href="../../api/v0/builds/' in rows


@pytest.mark.parametrize("page_key", ["packages/archlinux/foo.html", "index.html", "api/v0/builds/3/x.html",
                                      "a/b/c/d.html"])
def test_build_file_links_match_urls_relative(page_key: str) -> None:
    from jobs.core import urls
    links = package_html.relative_from(page_key)
    for v0, what in ((1, "log"), (3, "attestation"), (123456, "diffoscope.html")):
        assert links.build_file(v0, what) == urls.relative(urls.build_file(v0, what), page_key)


@pytest.mark.parametrize("value", [AT, datetime(1, 1, 1, tzinfo=UTC), datetime(999, 12, 31, 23, 59, tzinfo=UTC),
                                   datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), datetime(2026, 5, 6, 7, 8)])
def test_minute_is_strftimes_text(value: datetime) -> None:
    assert package_html.minute(value) == value.strftime("%Y-%m-%d %H:%M")


def _page(distro: str, name: str, n_packages: int, n_builds: int, text: str) -> PackagePage:
    packages, builds = _rows()
    chosen = []
    for i, p in enumerate(packages[:n_packages]):
        # descriptions and maintainers that differ in case only, repeat, are empty or hostile
        description = [None, "", text, text.upper(), "Same", "same", f"d{i % 4}"][i % 7]
        maintainers = tuple([text, text.upper(), "Zed <z@x>", "alice <a@x>", "Alice <a@x>", ""][i % 6:i % 6 + 2])
        chosen.append(dataclasses.replace(p, name=name if i % 3 == 0 else p.name, description=description,
                                          maintainers=maintainers))
    return PackagePage(distro, name, tuple(chosen), tuple(builds[:n_builds]))


_PAGES = [(distro, name, n_packages, n_builds, text)
          for (distro, name, text), (n_packages, n_builds) in itertools.product(
              [("archlinux", "foo", "plain"), ("debian", "<b>&x", "a&b \"q\" 'r'"), ("de/bi an", "bidi\u202eevil",
                                                                                      "ctl\x00\x1b\x7f\x85"),
               ("d%2F", "lone \ud800 surrogate", "lone \ud800"), ("ünï", "☃", "ünïcödé ☃")],
              [(0, 0), (1, 0), (0, 3), (7, 9), (len(HOSTILE) * 4, 40)])]


@pytest.mark.parametrize("distro, name, n_packages, n_builds, text", _PAGES)
@pytest.mark.parametrize("rebuilder", ["rebuilder", "r&<b> \u202e"])
def test_page_matches_the_template(distro: str, name: str, n_packages: int, n_builds: int, text: str,
                                   rebuilder: str) -> None:
    """The whole page written in Python is byte for byte the template's (site/templates/package.html)."""
    from jobs.core import urls
    from jobs.publish.site.pages import Renderer

    page = _page(distro, name, n_packages, n_builds, text)
    strip = svg.history_strip(f"{page.name} ({page.distro})", [svg.Mark(b.built_at, b.status, b.build_id)
                                                                  for b in page.builds])
    old = Renderer(rebuilder).render("package.html", page.page_url, page=page, strip=strip, json_url=page.feed_url)
    new = package_html.page(page, page.page_url, page.feed_url, strip, rebuilder)
    assert new == old
    if name == "foo":  # and from a page key of another depth than a package's
        key = "a/b/c/foo.html"
        assert package_html.page(page, key, urls.package_feed("x", "y"), strip, rebuilder) == Renderer(
            rebuilder).render("package.html", key, page=page, strip=strip, json_url=urls.package_feed("x", "y"))
