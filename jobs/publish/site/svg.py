"""Server-rendered SVG charts: axes, dates, gridlines and a legend, no JavaScript.

Two charts, both drawn at publish time from rows the site already has:

- `share_chart`: a suite's (or a distro's) packages by status per day, stacked as a share of
  all packages (y axis 0–100 %), each day a step from its midnight to the next (UTC);
- `history_strip`: a package's builds over time, one mark per build coloured by its verdict.

The x axis adapts its ticks to the span (`time_ticks`): hours for a day, days for weeks,
months for a year, years for several. Every text drawn (names, labels, tooltips) is
XML-escaped here; the result is `markupsafe.Markup` for the templates.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import NamedTuple

import markupsafe

from jobs.core.model import Status
from jobs.publish.site.text import NOT_XML, printable

WIDTH, HEIGHT = 720, 240
STRIP_HEIGHT = 170
LEFT, RIGHT, TOP, BOTTOM = 48, 14, 28, 58  # plot margins: heading above, y labels left, x labels and legend below
LAYERS = (Status.GOOD, Status.BAD, Status.FAIL, Status.UNKWN)  # stacked from the bottom
COLOURS = {Status.GOOD: "#2da44e", Status.BAD: "#cf222e", Status.FAIL: "#bf8700", Status.UNKWN: "#afb8c1"}
MAX_TICKS = 8

_H, _D = timedelta(hours=1), timedelta(days=1)
_LONGEST = {"hour": _H, "day": _D, "month": 31 * _D}  # the longest a step of 1 can be
# (step, kind) from finest to coarsest; "month"/"year" steps are calendar steps of n months.
_STEPS: tuple[tuple[str, int], ...] = (
    ("hour", 1), ("hour", 2), ("hour", 3), ("hour", 6), ("hour", 12),
    ("day", 1), ("day", 2), ("day", 7), ("day", 14),
    ("month", 1), ("month", 2), ("month", 3), ("month", 6), ("month", 12), ("month", 24), ("month", 60))


# What printing or escaping would change: most text has none of it and is drawn as it is.
_SPECIAL = re.compile("[&<>\"'" + NOT_XML.pattern[1:])


def _esc(value: object) -> str:
    text = str(value)
    if _SPECIAL.search(text) is None:
        return text
    return str(markupsafe.escape(printable(text)))


def _add_months(d: datetime, n: int) -> datetime:
    m = d.month - 1 + n
    return d.replace(year=d.year + m // 12, month=m % 12 + 1, day=1)


def _ticks_of(start: datetime, end: datetime, kind: str, n: int, limit: int) -> list[datetime]:
    """The ticks of one calendar step between `start` and `end`; stops past `limit` of them.

    Stopping matters: `time_ticks` tries the finest steps first, and an hourly step over a
    two-year history would otherwise make 17,000 ticks only to reject them, for every chart
    (half of a full publish's time went here).
    """
    if kind == "hour":
        t = start.replace(minute=0, second=0, microsecond=0)
        t += timedelta(hours=(-t.hour) % n)
        step = timedelta(hours=n)
    elif kind == "day":
        t = datetime.combine(start.date(), time(), start.tzinfo)
        if n == 7 or n == 14:  # weeks start on Mondays
            t -= timedelta(days=t.weekday())
        step = timedelta(days=n)
    else:
        t = start.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        t = _add_months(t, (-(t.year * 12 + t.month - 1)) % n)
        step = None
    out: list[datetime] = []
    while t <= end and len(out) <= limit:
        if t >= start:
            out.append(t)
        t = t + step if step is not None else _add_months(t, n)
    return out


def _label(t: datetime, kind: str, n: int) -> str:
    if kind == "hour":
        return t.strftime("%H:%M") if t.hour else t.strftime("%b %d")
    if kind == "day":
        return t.strftime("%b %d") if t.month != 1 or t.day > 7 else t.strftime("%Y-%m-%d")
    if n % 12 == 0 or t.month == 1:
        return t.strftime("%Y")
    return t.strftime("%b %Y") if n >= 3 else t.strftime("%b")


def time_ticks(start: datetime, end: datetime, max_ticks: int = MAX_TICKS) -> list[tuple[datetime, str]]:
    """Ticks for an x axis from `start` to `end`: the finest calendar step giving 2..max_ticks of them."""
    if end <= start:
        end = start + _H
    span = end - start
    for kind, n in _STEPS:
        # At least span // longest step - 1 ticks: a step that must give more than the axis takes
        # is skipped without making them (the same answer, a tenth of the time).
        if span // _LONGEST[kind] // n - 1 > max_ticks:
            continue
        ticks = _ticks_of(start, end, kind, n, max_ticks)
        if len(ticks) <= max_ticks:
            return [(t, _label(t, kind, n)) for t in ticks]
    years = max(1, (end.year - start.year) // max_ticks + 1)
    ticks = [datetime(y, 1, 1, tzinfo=start.tzinfo) for y in range(start.year, end.year + 1, years)]
    return [(t, t.strftime("%Y")) for t in ticks if start <= t <= end]


@dataclass(frozen=True)
class Day:
    """One day's counts of a chart (a `rows.DailyCount` or a sum of them)."""

    day: date
    good: int
    bad: int
    fail: int
    unknown: int

    def count(self, status: Status) -> int:
        return {Status.GOOD: self.good, Status.BAD: self.bad, Status.FAIL: self.fail,
                Status.UNKWN: self.unknown}[status]

    @property
    def total(self) -> int:
        return self.good + self.bad + self.fail + self.unknown


def _midnight(d: date) -> datetime:
    return datetime.combine(d, time(), UTC)


class _Frame:
    """The plot area of a chart and its x scale."""

    def __init__(self, start: datetime, end: datetime, width: int, height: int) -> None:
        self.start, self.end, self.width, self.height = start, end, width, height
        self.x0, self.x1, self.y0, self.y1 = LEFT, width - RIGHT, TOP, height - BOTTOM
        self.span = max((end - start).total_seconds(), 1.0)

    def x(self, t: datetime) -> float:
        return self.x0 + (self.x1 - self.x0) * (t - self.start).total_seconds() / self.span

    def x_axis(self) -> list[str]:
        out = [f'<line class="axis" x1="{self.x0}" y1="{self.y1}" x2="{self.x1}" y2="{self.y1}" stroke="#57606a"/>']
        for t, label in time_ticks(self.start, self.end):
            x = self.x(t)
            out.append(f'<line class="grid" x1="{x:.1f}" y1="{self.y0}" x2="{x:.1f}" y2="{self.y1}" '
                       f'stroke="#eaeef2"/>')
            out.append(f'<line class="tick" x1="{x:.1f}" y1="{self.y1}" x2="{x:.1f}" y2="{self.y1 + 4}" '
                       f'stroke="#57606a"/>')
            anchor = "end" if x > self.x1 - 24 else "middle"  # the last label stays inside the picture
            out.append(f'<text class="tick-label" x="{x:.1f}" y="{self.y1 + 16}" text-anchor="{anchor}" '
                       f'font-size="11" fill="#24292f">{_esc(label)}</text>')
        return out

    def heading(self, text: str) -> str:
        return (f'<text class="heading" x="{self.x0}" y="{self.y0 - 10}" font-size="13" font-weight="bold" '
                f'fill="#24292f">{_esc(text)}</text>')

    def legend(self, items: Sequence[tuple[Status, str]]) -> list[str]:
        out, x, y = [], self.x0, self.height - 14
        for status, text in items:
            out.append(f'<rect class="legend-key" x="{x}" y="{y - 9}" width="10" height="10" '
                       f'fill="{COLOURS[status]}"/>')
            out.append(f'<text class="legend" x="{x + 14}" y="{y}" font-size="11" fill="#24292f">{_esc(text)}</text>')
            x += 14 + 7 * len(text) + 18
        return out


def _svg(width: int, height: int, title: str, body: list[str]) -> markupsafe.Markup:
    t = _esc(title)
    return markupsafe.Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="{t}" font-family="system-ui, sans-serif">'
        f"<title>{t}</title>" + "".join(body) + "</svg>")


def share_chart(label: str, days: Sequence[Day], *, width: int = WIDTH, height: int = HEIGHT) -> markupsafe.Markup:
    """Packages of `label` by status per day (UTC), stacked as shares of all; empty `days`: a note."""
    days = sorted(days, key=lambda d: d.day)
    if not days:
        return _svg(width, 40, f"{label}: no builds yet", [
            f'<text x="8" y="24" font-size="12" fill="#57606a">{_esc(label)}: no builds yet</text>'])
    start, end = _midnight(days[0].day), _midnight(days[-1].day) + _D
    f = _Frame(start, end, width, height)
    body: list[str] = [f.heading(f"{label}: share of packages by status, per day (UTC)")]
    for pct in (0, 25, 50, 75, 100):
        y = f.y1 - (f.y1 - f.y0) * pct / 100
        body.append(f'<line class="grid" x1="{f.x0}" y1="{y:.1f}" x2="{f.x1}" y2="{y:.1f}" stroke="#eaeef2"/>')
        body.append(f'<text class="tick-label" x="{f.x0 - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" '
                    f'fill="#24292f">{pct}%</text>')
    body += f.x_axis()
    below = [0.0] * len(days)
    # Each day's step from its midnight to the next, as drawn: the same for every layer.
    xs = [(f"{f.x(_midnight(d.day)):.1f}", f"{f.x(_midnight(d.day) + _D):.1f}") for d in days]
    for status in LAYERS:
        top, bottom = [], []
        above = []
        for i, d in enumerate(days):
            share = d.count(status) / d.total if d.total else 0.0
            above.append(below[i] + share)
        for i in range(len(days)):
            xa, xb = xs[i]
            ya = f"{f.y1 - (f.y1 - f.y0) * above[i]:.1f}"
            top += [f"{xa},{ya}", f"{xb},{ya}"]
        for i in reversed(range(len(days))):
            xa, xb = xs[i]
            yb = f"{f.y1 - (f.y1 - f.y0) * below[i]:.1f}"
            bottom += [f"{xb},{yb}", f"{xa},{yb}"]
        last = days[-1]
        body.append(f'<polygon class="area status-{status.value.lower()}" fill="{COLOURS[status]}" '
                    f'points="{" ".join(top + bottom)}"><title>{status.value}: {last.count(status)} of {last.total} '
                    f'on {last.day.isoformat()}</title></polygon>')
        below = above
    body.append(f'<line class="axis" x1="{f.x0}" y1="{f.y0}" x2="{f.x0}" y2="{f.y1}" stroke="#57606a"/>')
    last = days[-1]
    body += f.legend([(s, f"{s.value} {last.count(s)}") for s in LAYERS])
    title = (f"{label}: share of packages by status per day, {days[0].day.isoformat()} to {last.day.isoformat()} "
             f"(UTC); on {last.day.isoformat()}: " + ", ".join(f"{last.count(s)} {s.value}" for s in LAYERS)
             + f" of {last.total}")
    return _svg(width, height, title, body)


class Mark(NamedTuple):
    """One build on a package's strip (a tuple: one per build of every package page)."""

    at: datetime
    status: Status
    label: str  # its tooltip, e.g. "#2 GOOD 1.0-1 2026-12-06 12:04 UTC"


def _at(mark: Mark) -> datetime:
    return mark[0]


def history_strip(label: str, marks: Sequence[Mark], *, width: int = WIDTH, height: int = STRIP_HEIGHT
                  ) -> markupsafe.Markup:
    """A package's builds over time: one mark per build, coloured by verdict; empty `marks`: a note."""
    marks = sorted(marks, key=_at)
    if not marks:
        return _svg(width, 40, f"{label}: never built", [
            f'<text x="8" y="24" font-size="12" fill="#57606a">{_esc(label)}: never built</text>'])
    first, last = marks[0].at, marks[-1].at
    pad = max((last - first) / 20, timedelta(minutes=30))
    f = _Frame(first - pad, last + pad, width, height)
    body = [f.heading(f"{label}: verdict of each build over time (UTC)"), *f.x_axis()]
    lane_h = (f.y1 - f.y0) / len(LAYERS)
    # Each lane's mark but its x and tooltip, written once (a mark per build of the page).
    around: dict[Status, tuple[str, str]] = {}
    for i, s in enumerate(LAYERS):
        y = f.y0 + lane_h * (i + 0.5)
        body.append(f'<text class="tick-label" x="{f.x0 - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="10" '
                    f'fill="#24292f">{s.value}</text>')
        around[s] = (f'<rect class="mark status-{s.value.lower()}" x="',
                     f'" y="{y - 8:.1f}" width="6" height="16" fill="{COLOURS[s]}"><title>')
    counts = dict.fromkeys(LAYERS, 0)
    x0, scale, start, span = f.x0, f.x1 - f.x0, f.start, f.span
    for at, status, text in marks:
        x = x0 + scale * (at - start).total_seconds() / span  # _Frame.x, inlined
        before, after = around[status]
        body.append(f"{before}{x - 3:.1f}{after}{_esc(text)}</title></rect>")
        counts[status] += 1
    body.append(f'<line class="axis" x1="{f.x0}" y1="{f.y0}" x2="{f.x0}" y2="{f.y1}" stroke="#57606a"/>')
    body += f.legend([(s, f"{s.value} {counts[s]}") for s in LAYERS])
    title = (f"{label}: {len(marks)} builds from {first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} UTC, "
             + ", ".join(f"{counts[s]} {s.value}" for s in LAYERS))
    return _svg(width, height, title, body)
