"""Jinja2 rendering of the site's pages from the rows of `jobs.publish.site.rows`.

Autoescape is on for every template (HTML and the Atom feed): every name, version, reason
and worker name comes from an index or a worker and is escaped where it is written. Links
are built only by `url(key)`: the site key relative to the current page, URL-quoted.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jinja2
import markupsafe

from jobs.core import urls
from jobs.core.model import Status, format_timestamp
from jobs.core.resources import site_templates
from jobs.publish.site import package_html
from jobs.publish.site.rows import DailyCount
from jobs.publish.site.text import printable

# Characters XML 1.0 forbids even escaped; an index or a log could still contain them.
# Not allowed in XML, or (C1 controls, bidi marks, overrides and isolates, line separators)
# able to reorder or hide what a page shows: every printed string has them as U+FFFD.

CHART_WIDTH, CHART_HEIGHT = 720, 180
# Stacked from the bottom: what is reproducible first, what is not known last.
CHART_LAYERS = (Status.GOOD, Status.BAD, Status.FAIL, Status.UNKWN)


def _load(name: str) -> str:
    node = site_templates()
    for part in name.split("/"):
        if part in ("", ".", ".."):
            raise jinja2.TemplateNotFound(name)
        node = node / part
    try:
        return node.read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise jinja2.TemplateNotFound(name) from None


@functools.lru_cache(maxsize=1 << 16)
def _relative(key: str, directory: str) -> str:
    return urls.relative(key, directory + "_")  # only the page's directory matters


@jinja2.pass_context
def _url(context: Any, key: str | None) -> str:
    if key is None:
        raise ValueError("url() of a missing link")
    # The same links (stylesheet, feeds, suites) from every page of a directory: computed once.
    page = context["page_key"]
    return _relative(key, page[:page.rfind("/") + 1])


@jinja2.pass_context
def _package_rows(context: Any, rows: Sequence[Any]) -> markupsafe.Markup:
    return package_html.package_rows(rows, package_html.relative_from(context["page_key"]))


@jinja2.pass_context
def _build_rows(context: Any, builds: Sequence[Any]) -> markupsafe.Markup:
    return package_html.build_rows(builds, package_html.relative_from(context["page_key"]))


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else "never"


def _age(seconds: int) -> str:
    minutes = max(0, int(seconds)) // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours < 48 else f"{hours // 24} d {hours % 24} h"


def _xml(value: object) -> str:
    return printable(str(value))


def _finalize(value: object) -> object:
    # Control characters from an index or a reason are no danger once escaped, but they make
    # HTML and XML invalid, and bidi controls reorder what follows: every printed string loses
    # them (Markup is our own, left alone).
    if isinstance(value, str) and not isinstance(value, markupsafe.Markup):
        return printable(value)
    return value


def environment() -> jinja2.Environment:
    """The site's Jinja2 environment: packaged templates, autoescape everywhere, strict undefined."""
    env = jinja2.Environment(loader=jinja2.FunctionLoader(_load), autoescape=True, undefined=jinja2.StrictUndefined,
                             finalize=_finalize, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.globals.update(url=_url, urls=urls, statuses=CHART_LAYERS, package_rows=_package_rows, build_rows=_build_rows)
    env.filters.update(when=_when, age=_age, rfc3339=format_timestamp, xml=_xml)
    return env


@dataclass(frozen=True)
class ChartLayer:
    status: Status
    points: str  # SVG polygon points


@dataclass(frozen=True)
class Chart:
    """A stacked area chart of one distro's statuses per day, drawn at publish time (no JavaScript)."""

    distro: str
    width: int
    height: int
    first_day: str
    last_day: str
    total: int
    layers: tuple[ChartLayer, ...]
    latest: DailyCount


def chart(distro: str, days: Sequence[DailyCount]) -> Chart | None:
    """The chart of a distro's daily counts; None if there is no history yet."""
    if not days:
        return None
    series = list(days) if len(days) > 1 else [days[0], days[0]]
    total = max(max(d.good + d.bad + d.fail + d.unknown for d in series), 1)
    step = CHART_WIDTH / (len(series) - 1)
    below = [0] * len(series)
    layers = []
    for status in CHART_LAYERS:
        values = [getattr(d, status.dashboard_key) for d in series]
        above = [b + max(v, 0) for b, v in zip(below, values)]

        def y(v: int) -> str:
            return f"{CHART_HEIGHT - CHART_HEIGHT * v / total:.1f}"

        top = [f"{i * step:.1f},{y(v)}" for i, v in enumerate(above)]
        bottom = [f"{i * step:.1f},{y(v)}" for i, v in reversed(list(enumerate(below)))]
        layers.append(ChartLayer(status, " ".join(top + bottom)))
        below = above
    return Chart(distro, CHART_WIDTH, CHART_HEIGHT, days[0].day.isoformat(), days[-1].day.isoformat(), total,
                 tuple(layers), days[-1])


def _sources(node: Any = None, path: str = "") -> tuple[tuple[str, str], ...]:
    node = site_templates() if node is None else node
    out: list[tuple[str, str]] = []
    for child in sorted(node.iterdir(), key=lambda c: c.name):
        if child.is_dir():
            out += _sources(child, f"{path}{child.name}/")
        elif not child.name.endswith(".pyc"):
            out.append((path + child.name, child.read_text(encoding="utf-8")))
    return tuple(out)


_compiled: dict[tuple[tuple[str, str], ...], jinja2.Environment] = {}


def compiled_environment() -> jinja2.Environment:
    """`environment()` with its templates compiled once per process, while their text stays the same."""
    sources = _sources()
    env = _compiled.get(sources)
    if env is None:
        env = environment()
        env.auto_reload = False  # the key above is the check
        _compiled.clear()
        _compiled[sources] = env
    return env


class Renderer:
    """Renders pages for one rebuilder; every page knows its own key, so its links are relative."""

    def __init__(self, rebuilder: str) -> None:
        self.env = compiled_environment()
        self.rebuilder = rebuilder

    def render(self, template: str, key: str, **context: Any) -> bytes:
        """The page at site key `key` as UTF-8 bytes."""
        text = self.env.get_template(template).render(page_key=key, rebuilder=self.rebuilder, **context)
        return text.encode("utf-8", "replace")  # a lone surrogate from a bad index becomes "?"
