"""The server-rendered SVG charts: ticks adapted to the span, axes, legends, escaping."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta

from jobs.core.model import Status
from jobs.publish.site import svg

NS = "{http://www.w3.org/2000/svg}"


def texts(markup: str) -> list[str]:
    root = ET.fromstring(str(markup))  # well-formed XML, or this raises
    return [t.text or "" for t in root.iter(f"{NS}text")]


def test_ticks_for_one_day_are_hours():
    start = datetime(2026, 12, 6, tzinfo=UTC)
    ticks = svg.time_ticks(start, start + timedelta(days=1))
    assert 2 <= len(ticks) <= svg.MAX_TICKS
    assert [label for _, label in ticks] == ["Dec 06", "06:00", "12:00", "18:00", "Dec 07"]
    assert all(start <= t <= start + timedelta(days=1) for t, _ in ticks)


def test_ticks_for_three_years_are_months_and_years():
    start = datetime(2023, 12, 6, tzinfo=UTC)
    ticks = svg.time_ticks(start, start + timedelta(days=3 * 365))
    labels = [label for _, label in ticks]
    assert 2 <= len(ticks) <= svg.MAX_TICKS
    assert {"2024", "2025", "2026"} <= set(labels)
    assert all(t.day == 1 and t.hour == 0 for t, _ in ticks)


def test_ticks_for_weeks_and_a_zero_span():
    start = datetime(2026, 11, 1, tzinfo=UTC)
    ticks = svg.time_ticks(start, start + timedelta(days=30))
    assert 2 <= len(ticks) <= svg.MAX_TICKS and all(t.hour == 0 for t, _ in ticks)
    assert svg.time_ticks(start, start)  # a single instant still gets an axis


def days(n: int, end: date) -> list[svg.Day]:
    return [svg.Day(end - timedelta(days=n - 1 - i), good=i, bad=n - i, fail=1, unknown=2) for i in range(n)]


def test_share_chart_of_one_day():
    chart = svg.share_chart("archlinux / core / x86_64", days(1, date(2026, 12, 6)))
    labels = texts(chart)
    assert {"0%", "25%", "50%", "75%", "100%"} <= set(labels)  # y axis
    assert "06:00" in labels and "12:00" in labels  # x axis in hours
    assert ["GOOD 0", "BAD 1", "FAIL 1", "UNKWN 2"] == [t for t in labels if t.split(" ")[0] in
                                                          ("GOOD", "BAD", "FAIL", "UNKWN")]  # the legend
    assert 'role="img"' in chart and "aria-label=" in chart and chart.count("<polygon") == 4


def test_share_chart_of_three_years():
    chart = svg.share_chart("debian", days(3 * 365, date(2026, 12, 6)))
    labels = texts(chart)
    assert {"2025", "2026"} <= set(labels) and "06:00" not in labels
    root = ET.fromstring(str(chart))
    assert root.find(f"{NS}title").text.startswith("debian: share of packages by status per day, 2023-12-08")
    assert len(str(chart)) < 400_000  # four step polygons of a thousand days each


def test_share_chart_without_data_says_so():
    assert texts(svg.share_chart("x", [])) == ["x: no builds yet"]


def test_the_last_tick_label_stays_inside():
    chart = svg.share_chart("x", days(1, date(2026, 12, 6)))
    root = ET.fromstring(str(chart))
    last = [t for t in root.iter(f"{NS}text") if t.text == "Dec 07"][0]
    assert last.get("text-anchor") == "end" and float(last.get("x")) <= svg.WIDTH


def test_everything_drawn_is_escaped():
    evil = "<script>alert(1)</script>&\"'"
    chart = svg.share_chart(evil, days(3, date(2026, 12, 6)))
    strip = svg.history_strip(evil, [svg.Mark(datetime(2026, 12, 6, 12, tzinfo=UTC), Status.BAD, evil)])
    for markup in (chart, strip):
        assert "<script>" not in markup
        root = ET.fromstring(str(markup))
        assert root.find(f"{NS}title").text.startswith(evil)
    assert [t.text for t in ET.fromstring(str(strip)).iter(f"{NS}title")][1] == evil
    assert evil + ": verdict" in texts(strip)[0]


def test_history_strip_marks_each_build_in_its_verdict_lane():
    at = datetime(2026, 12, 6, 9, tzinfo=UTC)
    marks = [svg.Mark(at, Status.BAD, "#1"), svg.Mark(at + timedelta(hours=3), Status.GOOD, "#2"),
             svg.Mark(at + timedelta(days=400), Status.FAIL, "#3")]
    strip = svg.history_strip("hello", marks)
    root = ET.fromstring(str(strip))
    rects = [r for r in root.iter(f"{NS}rect") if "mark" in r.get("class", "")]
    assert [r.get("class") for r in rects] == ["mark status-bad", "mark status-good", "mark status-fail"]
    xs = [float(r.get("x")) for r in rects]
    assert xs == sorted(xs) and xs[2] - xs[0] > 400  # spread over the time axis
    labels = texts(strip)
    assert {"GOOD 1", "BAD 1", "FAIL 1", "UNKWN 0"} <= set(labels) and "2027" in labels
    assert texts(svg.history_strip("x", [])) == ["x: never built"]


def test_a_step_with_too_many_ticks_is_given_up_early():
    """The finest steps are tried first: over years of history, an hourly step must stop at the
    bound rather than list every hour (it was half of a full publish's time)."""
    from jobs.publish.site.svg import _ticks_of

    start = datetime(2020, 1, 1, tzinfo=UTC)
    end = start + timedelta(days=3 * 365)
    assert len(_ticks_of(start, end, "hour", 1, 8)) == 9
    assert len(_ticks_of(start, end, "month", 12, 8)) == 3  # 2020, 2021, 2022 under the bound: all of them
