"""`plan._pylist`, the cheap conversion of the package pages' costly columns (timestamps, a build's
artifacts), gives what Arrow's own `to_pylist` (and the tuples made from it) gave, nulls, slices and
times far from the epoch included."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest

from jobs.core.model import Status
from jobs.publish.site import plan
from jobs.publish.site.rows import BuildLinks, BuildRow, PackageRow
from tests.publish.test_package_html import _rows

TIMES = [datetime(2026, 12, 6, 12, 4, 5, 123456, tzinfo=UTC), None, datetime(1, 1, 1, tzinfo=UTC),
         datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
         datetime(1970, 1, 1, tzinfo=UTC), datetime(2024, 2, 29, 0, 0, 0, 1, tzinfo=UTC)]


@pytest.mark.parametrize("tz", ["UTC", "+00:00", "Etc/UTC", "Europe/Paris", None])
@pytest.mark.parametrize("start, stop", [(0, len(TIMES)), (2, 5), (1, 2)])
def test_timestamps_are_arrows(tz: str | None, start: int, stop: int) -> None:
    # (Arrow's own conversion cannot show years 1 and 9999 in a zone ahead of UTC: not a case to compare)
    times = TIMES if tz != "Europe/Paris" else [t for t in TIMES if t is None or 1 < t.year < 9999]
    values = [t if t is None or tz is not None else t.replace(tzinfo=None) for t in times]
    column = pa.array(values, pa.timestamp("us", tz=tz)).slice(start, stop - start)
    mine, arrows = plan._pylist(column), column.to_pylist()
    assert mine == arrows
    for a, b in zip(mine, arrows):
        assert (a is None) == (b is None)
        if a is not None:
            assert a.utcoffset() == b.utcoffset() and a.isoformat() == b.isoformat()
            assert a.strftime("%Y-%m-%d %H:%M:%S.%f %z") == b.strftime("%Y-%m-%d %H:%M:%S.%f %z")


def test_other_zones_keep_arrows_conversion() -> None:
    column = pa.array([datetime(2026, 7, 1, 12, tzinfo=ZoneInfo("Europe/Paris"))], pa.timestamp("us", tz="Europe/Paris"))
    assert plan._pylist(column)[0].isoformat() == column.to_pylist()[0].isoformat() == "2026-07-01T12:00:00+02:00"


ARTIFACT = pa.list_(pa.struct([("name", pa.string()), ("status", pa.string())]))
ROWS = [[{"name": "a", "status": "GOOD"}], [], [{"name": "<b>&\u202e", "status": "BAD"}, {"name": "", "status": "UNKWN"}],
        [{"name": "ünï ☃", "status": "GOOD"}] * 3, []]


@pytest.mark.parametrize("start, stop", [(0, len(ROWS)), (1, 4), (2, 3), (4, 5)])
def test_artifacts_are_the_tuples_of_arrows_dicts(start: int, stop: int) -> None:
    column = pa.array(ROWS, ARTIFACT).slice(start, stop - start)
    expected = [tuple((a["name"], Status(a["status"])) for a in row) for row in column.to_pylist()]
    assert [plan._artifacts(v) for v in plan._pylist(column)] == expected
    with_null = pa.array([*ROWS[:2], None], ARTIFACT)  # not converted: the rows as Arrow gives them
    assert plan._pylist(with_null) == with_null.to_pylist()


def test_columns_of_a_sliced_list_of_structs() -> None:
    builds = pa.array([[{"at": TIMES[0], "artifacts": ROWS[0]}], None,
                       [{"at": t, "artifacts": ROWS[i % len(ROWS)]} for i, t in enumerate(TIMES)]],
                      pa.list_(pa.struct([("at", pa.timestamp("us", tz="UTC")), ("artifacts", ARTIFACT)])))
    for start in range(3):
        lists = builds.slice(start)
        ranges, rows = plan._columns(lists, ["at", "artifacts"])
        expected = lists.to_pylist()
        assert [[(at, plan._artifacts(arts)) for at, arts in rows[a:b]] for a, b in ranges] == [
            [(d["at"], tuple((x["name"], Status(x["status"])) for x in d["artifacts"])) for d in row or []]
            for row in expected]
        assert timedelta(0) == rows[0][0].utcoffset()


@pytest.mark.parametrize("cls", [BuildRow, BuildLinks, PackageRow])
def test_rows_made_without_init_are_the_classes_own(cls: type) -> None:
    packages, builds = _rows()
    for row in {BuildRow: builds, PackageRow: packages, BuildLinks: [b.links for b in builds]}[cls]:
        values = [getattr(row, f.name) for f in dataclasses.fields(cls)]
        made = plan._maker(cls)(*values)
        assert type(made) is cls and made == row == cls(*values) and hash(made) == hash(row)
        assert repr(made) == repr(row)
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(made, dataclasses.fields(cls)[0].name, None)  # still frozen
