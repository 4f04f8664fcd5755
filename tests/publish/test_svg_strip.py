"""`svg.history_strip` (each lane's mark written once, the x scale inlined) draws what it drew before,
byte for byte: the function as it was is the oracle here."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone

import markupsafe
import pytest

from jobs.core.model import Status
from jobs.publish.site import svg
from jobs.publish.site.svg import COLOURS, LAYERS, STRIP_HEIGHT, WIDTH, _esc, _Frame, _svg


def _old_strip(label: str, marks: Sequence[svg.Mark], *, width: int = WIDTH, height: int = STRIP_HEIGHT
               ) -> markupsafe.Markup:
    marks = sorted(marks, key=lambda m: m.at)
    if not marks:
        return _svg(width, 40, f"{label}: never built", [
            f'<text x="8" y="24" font-size="12" fill="#57606a">{_esc(label)}: never built</text>'])
    first, last = marks[0].at, marks[-1].at
    pad = max((last - first) / 20, timedelta(minutes=30))
    f = _Frame(first - pad, last + pad, width, height)
    body = [f.heading(f"{label}: verdict of each build over time (UTC)"), *f.x_axis()]
    lanes = {s: i for i, s in enumerate(LAYERS)}
    lane_h = (f.y1 - f.y0) / len(LAYERS)
    for s, i in lanes.items():
        y = f.y0 + lane_h * (i + 0.5)
        body.append(f'<text class="tick-label" x="{f.x0 - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="10" '
                    f'fill="#24292f">{s.value}</text>')
    for m in marks:
        x, y = f.x(m.at), f.y0 + lane_h * (lanes[m.status] + 0.5)
        body.append(f'<rect class="mark status-{m.status.value.lower()}" x="{x - 3:.1f}" y="{y - 8:.1f}" width="6" '
                    f'height="16" fill="{COLOURS[m.status]}"><title>{_esc(m.label)}</title></rect>')
    body.append(f'<line class="axis" x1="{f.x0}" y1="{f.y0}" x2="{f.x0}" y2="{f.y1}" stroke="#57606a"/>')
    counts = {s: sum(1 for m in marks if m.status is s) for s in LAYERS}
    body += f.legend([(s, f"{s.value} {counts[s]}") for s in LAYERS])
    title = (f"{label}: {len(marks)} builds from {first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} UTC, "
             + ", ".join(f"{counts[s]} {s.value}" for s in LAYERS))
    return _svg(width, height, title, body)


HOSTILE = ["#1 GOOD", "<script>&\"'", "bidi\u202e\u2066", "ctl\x00\x1b\x85", "", "lone \ud800", "ünï ☃"]


def _marks(seed: int, n: int, spread: timedelta) -> list[svg.Mark]:
    rnd = random.Random(seed)
    at = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)
    zones = [UTC, timezone(timedelta(hours=3)), timezone(timedelta(hours=-9, minutes=-30))]
    return [svg.Mark((at + spread * rnd.random()).astimezone(rnd.choice(zones)), rnd.choice(list(Status)),
                     rnd.choice(HOSTILE) + str(i)) for i in range(n)]


@pytest.mark.parametrize("n, spread", [(0, timedelta(0)), (1, timedelta(0)), (2, timedelta(seconds=1)),
                                       (5, timedelta(hours=5)), (40, timedelta(days=3)), (200, timedelta(days=800)),
                                       (30, timedelta(days=365 * 30))])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_strip_is_the_old_one(n: int, spread: timedelta, seed: int) -> None:
    marks = _marks(seed, n, spread)
    for label in ("pkg (archlinux)", "<b>&\u202e (d)"):
        assert svg.history_strip(label, marks) == _old_strip(label, marks)
        assert svg.history_strip(label, marks, width=300, height=90) == _old_strip(label, marks, width=300, height=90)


def test_same_times_keep_their_order() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    marks = [svg.Mark(at, s, f"#{i}") for i, s in enumerate([Status.BAD, Status.GOOD, Status.FAIL] * 3)]
    assert svg.history_strip("x", marks) == _old_strip("x", marks)
