"""The package feeds' records written out in `feeds` (package_json, build_json, links_json, _ts) are
what the records and functions they replace made: `PackageRecord.json()`, `urls.href` of each link,
`format_timestamp`, hostile values included."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from jobs.core import urls
from jobs.core.feeds import PackageRecord
from jobs.core.model import format_timestamp
from jobs.publish.site import feeds
from jobs.publish.site.rows import BuildLinks, BuildRow, PackagePage, PackageRow
from jobs.publish.site.sitewriter import json_bytes
from tests.publish.test_package_html import _rows


def _href(key: str | None) -> str | None:
    return urls.href(key) if key is not None else None


def _old_links(links: BuildLinks) -> dict[str, Any]:
    return {"log": _href(links.log_url), "diffoscope": _href(links.diffoscope_url),
            "diffoscope_html": _href(links.diffoscope_html_url), "attestation": _href(links.attestation_url)}


def _old_package(row: PackageRow) -> dict[str, Any]:
    suite = row.suite
    return PackageRecord(suite.distro, suite.release, suite.component, suite.architecture, row.name, row.version,
                         row.artifact_architecture, row.artifact_url, row.artifact_sha256, row.source_name,
                         row.source_version, row.status.value, row.build_id, row.links.v0_id, row.built_at,
                         row.links.has_diffoscope, row.links.has_attestation, row.reason,
                         row.failure_class.value if row.failure_class else None, row.worker_name,
                         tuple(row.maintainers), row.description, _href(row.page_url), _old_links(row.links)).json()


def _old_ts(value: datetime | None) -> str | None:
    return format_timestamp(value) if value is not None else None


def _old_build(build: BuildRow) -> dict[str, Any]:
    return {"build_id": build.build_id, "v0_build_id": build.links.v0_id, "job_id": build.job_id,
            "attempt": build.attempt, "distro": build.distro, "architecture": build.architecture,
            "source_name": build.source_name, "source_version": build.source_version, "status": build.status.value,
            "reason": build.reason, "failure_class": build.failure_class.value if build.failure_class else None,
            "artifacts": [{"name": n, "status": s.value} for n, s in build.artifacts],
            "worker_name": build.worker_name, "worker_key_id": build.worker_key_id,
            "started_at": _old_ts(build.started_at), "built_at": _old_ts(build.built_at),
            "files": _old_links(build.links)}


TIMES = [datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC), datetime(2026, 1, 2, 3, 4, tzinfo=ZoneInfo("UTC")),
         datetime(1, 1, 1, tzinfo=UTC), datetime(999, 12, 31, 23, 59, tzinfo=ZoneInfo("UTC")),
         datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
         datetime(2026, 6, 1, 1, 30, tzinfo=timezone(timedelta(hours=2))),
         datetime(2026, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
         datetime(2026, 1, 15, 12, tzinfo=ZoneInfo("Europe/London")),  # +00:00 in winter, not UTC by name
         datetime(2026, 7, 15, 12, tzinfo=ZoneInfo("Europe/London"))]


@pytest.mark.parametrize("value", TIMES)
def test_ts_is_format_timestamp(value: datetime) -> None:
    assert feeds._ts(value) == format_timestamp(value)


def _variants() -> tuple[list[PackageRow], list[BuildRow]]:
    packages, builds = _rows()
    more_p = [dataclasses.replace(p, built_at=TIMES[i % len(TIMES)] if p.built_at else None,
                                  maintainers=("m <a@b>", "\u202e", "") if i % 2 else (),
                                  artifact_sha256="ab" * 32 if i % 3 else None, description=p.name if i % 4 else None,
                                  worker_name=p.version if i % 5 else None,
                                  links=BuildLinks(-3 if i % 11 == 0 else p.links.v0_id, *(not f for f in (
                                      p.links.has_log, p.links.has_diffoscope, p.links.has_diffoscope_html,
                                      p.links.has_attestation))))
              for i, p in enumerate(packages)]
    more_b = [dataclasses.replace(b, started_at=TIMES[i % len(TIMES)], built_at=TIMES[(i + 3) % len(TIMES)])
              for i, b in enumerate(builds)]
    return packages + more_p, builds + more_b


def test_package_and_build_records_are_the_old_ones() -> None:
    packages, builds = _variants()
    for row in packages:
        assert feeds.package_json(row) == _old_package(row)
        assert list(feeds.package_json(row)) == list(_old_package(row))  # key order: the feed's bytes
    for build in builds:
        assert feeds.build_json(build) == _old_build(build)
        assert list(feeds.build_json(build)) == list(_old_build(build))
        assert feeds.links_json(build.links) == _old_links(build.links)


def test_package_feed_bytes_are_the_old_ones() -> None:
    packages, builds = _variants()
    page = PackagePage("d\u202e<x>", "n&\"m", tuple(packages), tuple(builds))
    at = datetime(2026, 2, 3, tzinfo=UTC)
    old = feeds.envelope("package", at, distro=page.distro, name=page.name,
                         packages=[_old_package(r) for r in page.packages], builds=[_old_build(b) for b in page.builds])
    assert json_bytes(feeds.package_feed(page, at)) == json_bytes(old)
