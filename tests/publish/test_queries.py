"""DuckDB queries over a real synced snapshot and a history written in the compaction layout."""

from __future__ import annotations

from datetime import timedelta

import pytest

from jobs.core.lease import Leases
from jobs.core.model import Status
from jobs.publish.site.classify import FailureClass
from jobs.publish.site.inputs import load_inputs
from jobs.publish.site.plan import query_site
from tests.publish.sitefix import DAY, NOW, WORKER_KEY, arch_world, claim, state_row, sync_arch, write_state
from tests.sync import alpm_builders as alpm


def site_data(store, now=NOW, **kw):
    return query_site(load_inputs(store, now=now), now=now, **kw)


@pytest.fixture
def world(tmp_path):
    return arch_world(tmp_path)


def by_name(data):
    return {r.name: r for r in data.packages}


def test_statuses_come_from_the_latest_build_of_each_job(world):
    rows = by_name(site_data(world.store))
    assert {n: r.status for n, r in rows.items()} == {
        "foo": Status.GOOD, "bar": Status.BAD, "baz": Status.FAIL, "qux": Status.UNKWN,
        "split-a": Status.GOOD, "split-b": Status.BAD, "regress": Status.BAD}
    # split-a: its own artifact status in a BAD build; reason and class only where it is not GOOD
    assert rows["split-a"].reason is None and rows["split-a"].failure_class is None
    assert rows["split-b"].failure_class is FailureClass.NOT_REPRODUCIBLE
    assert rows["baz"].failure_class is FailureClass.FTBFS  # from the log: the reason says nothing
    assert rows["qux"].build_id is None and rows["qux"].links.v0_id is None and rows["qux"].built_at is None
    assert rows["regress"].build_id.endswith("-2") and rows["regress"].built_at == NOW - DAY / 2
    assert rows["bar"].links.has_diffoscope and rows["bar"].links.has_diffoscope_html
    assert rows["foo"].links.has_attestation and not rows["bar"].links.has_attestation
    assert rows["split-a"].source_name == "splitbase" and rows["split-a"].suite.component == "core"


def test_v0_ids_are_positions_in_the_history_and_never_change(world):
    first = site_data(world.store)
    ids = {f.build_id: f.v0_id for f in first.build_files}
    assert sorted(ids.values()) == [1, 2, 3, 4, 5, 6]
    assert [f.v0_id for f in first.build_files] == [1, 2, 3, 4, 5, 6]
    assert by_name(first)["regress"].links.v0_id == 6  # the second part comes after the first
    world.results.add(world.rows["qux"], 1, Status.GOOD, built_at=NOW)
    world.results.compact()
    second = site_data(world.store)
    assert {f.build_id: f.v0_id for f in second.build_files if f.build_id in ids} == ids
    assert by_name(second)["qux"].links.v0_id == 7


def test_a_duplicated_history_row_keeps_its_first_position(world):
    repeated = world.results.add(world.rows["foo"], 1, Status.GOOD, built_at=NOW - 2 * DAY)
    world.results.compact()
    data = site_data(world.store)
    assert [f.v0_id for f in data.build_files if f.build_id == repeated.build_id] == [2]
    assert len(data.build_files) == 6


def test_suite_summary(world):
    (summary,) = site_data(world.store).suites
    assert (summary.suite.distro, summary.suite.release, summary.suite.component, summary.suite.architecture) == \
        ("archlinux", None, "core", "x86_64")
    assert (summary.good, summary.bad, summary.fail, summary.unknown, summary.total) == (2, 3, 1, 1, 7)
    assert summary.percent == 28.6
    assert summary.queued == 6  # jobs: one per pkgbase, all queued by the sync
    assert dict(summary.classes) == {FailureClass.NOT_REPRODUCIBLE: 3, FailureClass.FTBFS: 1}


def test_active_builds_are_live_claims_on_queued_attempts(world):
    data = site_data(world.store)
    (active,) = data.active
    assert (active.source_name, active.worker, active.worker_id, active.age_seconds) == ("qux", "builder-1", 1, 300)
    assert active.component == "core" and active.artifacts[0][0] == "qux"
    # expired, released and finished-attempt claims are not running
    later = site_data(world.store, now=NOW + timedelta(hours=2))
    assert later.active == []
    foo = world.rows["foo"].job_id
    leases = Leases(world.store, ttl=3600, clock=lambda: NOW.timestamp())
    lease = leases.acquire(f"claims/{foo}/1.json", WORKER_KEY, meta={"worker": "w2"})
    leases.release(lease, {"done": True})
    world.store.put(f"claims/{world.rows['bar'].job_id}/7.json", b"{}")  # not the queued attempt
    assert [a.source_name for a in site_data(world.store).active] == ["qux"]


def test_daily_counts_follow_status_changes(world):
    days = {d.day: d for d in site_data(world.store).daily}
    assert min(days) == (NOW - 3 * DAY).date() and max(days) == NOW.date()
    first, last = days[(NOW - 3 * DAY).date()], days[NOW.date()]
    assert (first.good, first.bad, first.fail, first.unknown) == (1, 0, 0, 6)
    day2 = days[(NOW - 2 * DAY).date()]
    assert (day2.good, day2.bad, day2.fail, day2.unknown) == (2, 1, 0, 4)
    assert (last.good, last.bad, last.fail, last.unknown) == (2, 3, 1, 1)  # as the lists say now


def test_regressions(world):
    found = {(r.source_name, r.previous, r.status) for r in site_data(world.store).regressions}
    assert found == {("regress", Status.GOOD, Status.BAD), ("bar", None, Status.BAD),
                     ("splitbase", None, Status.BAD)}  # a first FAIL is not a regression
    latest = site_data(world.store).regressions[0]
    assert latest.source_name == "regress" and latest.page_url == "packages/archlinux/regress.html"


def test_package_pages_cover_source_and_binary_names(world):
    pages = {p.name: p for p in site_data(world.store).pages}
    assert set(pages) == {"foo", "bar", "baz", "qux", "split-a", "split-b", "splitbase", "regress"}
    assert [b.attempt for b in pages["regress"].builds] == [2, 1]  # newest first
    assert {r.name for r in pages["splitbase"].packages} == {"split-a", "split-b"}
    assert [b.source_name for b in pages["split-b"].builds] == ["splitbase"]
    assert pages["split-b"].builds[0].artifacts == (("split-a", Status.GOOD), ("split-b", Status.BAD))
    assert pages["qux"].builds == ()


def test_only_current_packages_are_listed(world, tmp_path):
    sync_arch(world.store, tmp_path / "mirror", [alpm.package("foo", "1.0-1"), alpm.package("bar", "2.0-2")])
    data = site_data(world.store)
    assert {n: r.status for n, r in by_name(data).items()} == {"foo": Status.GOOD, "bar": Status.UNKWN}
    assert {p.name for p in data.pages} == {"foo", "bar"}
    assert len(data.build_files) == 6  # the history is kept: old builds' logs stay published
    assert [b.source_version for b in {p.name: p for p in data.pages}["bar"].builds] == ["2.0-1"]


def test_several_profiles_and_releases(world):
    write_state(world.store, "debian", [state_row("acl", "2.3-1", distro="debian", component="main",
                                                  arch="amd64", release="trixie"),
                                        state_row("acl", "2.3-1", distro="debian", component="main",
                                                  arch="amd64", release="sid")])
    data = site_data(world.store)
    labels = [s.suite.label for s in data.suites]
    assert labels == ["archlinux / core / x86_64", "debian / sid / main / amd64", "debian / trixie / main / amd64"]
    assert [p.name for p in data.pages if p.distro == "debian"] == ["acl"]


def test_file_keys_outside_the_builds_own_prefix_are_not_published(world):
    row = world.results.add(world.rows["qux"], 1, Status.FAIL, built_at=NOW, reason="x")
    world.results.rows[-1] = type(row)(**{**{f: getattr(row, f) for f in row.__slots__},
                                          "log_key": "state/fixture/HEAD.json"})
    world.results.compact()
    data = site_data(world.store)
    assert by_name(data)["qux"].links.log_url is None
    assert all(f.log_key is None or f.log_key.startswith(f"builds/{f.build_id}/") for f in data.build_files)


def test_countersigned_attestations_count(world):
    bar = by_name(site_data(world.store))["bar"]
    assert not bar.links.has_attestation
    assert by_name(site_data(world.store, countersigned={bar.build_id}))["bar"].links.has_attestation


def test_an_empty_store(tmp_path):
    from jobs.core.store import open_store
    data = site_data(open_store(tmp_path.as_uri()))
    assert data.packages == [] and data.suites == [] and data.daily == [] and data.queue_length == 0


def test_claim_helper_needs_a_queued_job(world):
    with pytest.raises(KeyError):
        claim(world.store, "0" * 32)


def test_queue_entries_are_in_claim_order_with_their_live_claim(world):
    data = site_data(world.store)
    assert len(data.queue) == data.queue_length == 6
    assert [(e.priority, e.queued_at) for e in data.queue] == sorted((e.priority, e.queued_at) for e in data.queue)
    running = [e for e in data.queue if e.running is not None]
    assert [(e.source_name, e.running.worker_name, e.running.worker_key_id) for e in running] == \
        [("qux", "builder-1", WORKER_KEY)]
    assert running[0].running.expires_at > NOW > running[0].running.started_at


def test_workers_are_every_key_seen_with_their_trust(world):
    world.store.put("claims/" + "f" * 32 + "/1.json", b"not a lease")  # ignored, not a worker
    untrusted = site_data(world.store)
    (only,) = untrusted.worker_rows
    assert (only.key_id, only.name, only.worker_id, only.trust) == (WORKER_KEY, "builder-1", 1, "untrusted")
    assert only.builds == 6 and only.last_seen == NOW - timedelta(minutes=5)  # its live claim, newer than builds
    (trusted,) = site_data(world.store, trust={WORKER_KEY: "enrolled"}).worker_rows
    assert trusted.trust == "enrolled"


def test_the_v0_list_query_gives_the_records_feeds_makes_from_rows(world):
    """`pkgs_list_v0` (records straight from DuckDB) == `feeds.pkgs_list` over the package rows."""
    from jobs.publish.site import feeds, queries
    # The same binary in two releases (one v0 record), and a build time with microseconds.
    write_state(world.store, "twice", [state_row("dup", release=r, distro="debian", component="main", arch="amd64")
                                       for r in ("bookworm", "trixie")])
    results = world.results
    results.add(world.rows["qux"], 1, Status.GOOD, built_at=NOW.replace(microsecond=123456))
    results.compact()
    con = queries.connect(load_inputs(world.store, now=NOW), set())
    try:
        records = queries.pkgs_list_v0(con)
        expected = feeds.pkgs_list(queries.packages(con), queries.group_architectures(con))
    finally:
        con.close()
    assert records == expected
    assert [r["name"] for r in records].count("dup") == 1
    assert {r["built_at"] for r in records if r["name"] == "qux"} == {NOW.replace(tzinfo=None, microsecond=123456)
                                                                     .isoformat(timespec="microseconds")}
    assert any(r["built_at"] is None for r in records)  # never built


def test_daily_counts_per_suite_sum_to_the_distro(world, tmp_path):
    from jobs.publish.site import queries
    from jobs.publish.site.inputs import load_inputs
    from jobs.publish.site.rows import SuiteKey
    # A second suite (another repo) of the same distro, never built: its own series, all UNKWN.
    write_state(world.store, "other", [state_row("zed", component="extra")])
    con = queries.connect(load_inputs(world.store, now=NOW), set())
    try:
        per_suite = queries.suite_daily_counts(con, NOW)
        per_distro = queries.daily_counts(con, NOW)
    finally:
        con.close()
    core = SuiteKey("archlinux", None, "core", "x86_64")
    assert core in per_suite and per_suite[core][-1].day == NOW.date()
    last = per_suite[core][-1]
    assert (last.good, last.bad, last.fail, last.unknown) == (2, 3, 1, 1)  # NULL release kept apart, not lost
    assert SuiteKey("archlinux", None, "extra", "x86_64") not in per_suite  # no build: no history to draw
    today = [d for d in per_distro if d.day == NOW.date()]
    assert [(d.good, d.bad, d.fail, d.unknown) for d in today] == [(2, 3, 1, 1)]


@pytest.mark.parametrize("batch", [1, 3, 1024])
def test_streamed_pages_are_the_pages_of_the_queries(world, batch):
    """`plan.stream_pages` (one query, Arrow batches) makes exactly the pages the oracle makes (a dict per row)."""
    from jobs.publish.site import plan, queries
    from tests.publish import page_oracle
    inputs = load_inputs(world.store, now=NOW)
    con = queries.connect(inputs, set())
    try:
        plan.setup(con)
        expected = page_oracle.package_pages(con, queries.packages(con))
        wanted = sorted((p.distro, p.name) for p in expected)
        assert len(wanted) >= 8
        assert list(plan.stream_pages(con, wanted, batch)) == expected
        assert list(plan.stream_pages(con, wanted[::-1], batch, chunk=batch + 1)) == expected  # several queries
        some = wanted[1::3]
        assert list(plan.stream_pages(con, some, batch)) == [p for p in expected if (p.distro, p.name) in some]
        assert page_oracle.pages_for(con, some) == [p for p in expected if (p.distro, p.name) in some]
        assert list(plan.stream_pages(con, [], batch)) == []
    finally:
        con.close()
    assert site_data(world.store).pages == expected  # query_site makes them the same way


def test_package_rows_from_arrow_are_the_rows_of_the_dict_path(world):
    """`plan.package_rows` (columns from Arrow, as list parts and maintainer feeds read them) makes exactly
    the rows `queries.packages` makes a dict per row, with the extra columns beside them; none for no row."""
    from jobs.publish.site import plan, queries
    from jobs.publish.site.queries import _PACKAGE_COLUMNS, _PACKAGES
    con = queries.connect(load_inputs(world.store, now=NOW), set())
    try:
        plan.setup(con)
        expected = queries.packages(con)
        assert len(expected) >= 5 and any(r.built_at is not None for r in expected)
        assert any(r.failure_class is not None for r in expected) and any(r.built_at is None for r in expected)
        (), rows = plan.package_rows(con, _PACKAGES)
        assert rows == expected
        (tags, names), rows = plan.package_rows(
            con, f"SELECT 'x' || name AS _tag, name AS _name, {_PACKAGE_COLUMNS} FROM pkgs ORDER BY "
                 "distro, release NULLS FIRST, component NULLS FIRST, architecture, name, version, "
                 "artifact_architecture, artifact_url", ("_tag", "_name"))
        assert rows == expected and names == [r.name for r in expected] and tags == [f"x{r.name}" for r in expected]
        assert plan.package_rows(con, f"{_PACKAGES.split(' ORDER BY')[0]} WHERE false", ("name",)) == ([[]], [])
    finally:
        con.close()
