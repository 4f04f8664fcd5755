"""The request cost model's arithmetic: the batch fit, each deployment's price per result, the floors.

The figures themselves come from `python -m bench --only requests` (real SeaweedFS); these
tests check what the model does with them, on made-up counts whose answer is known.
"""

from __future__ import annotations

import pytest

from bench import cost_model
from bench.bench_requests import fit_batches
from bench.counting import site_kind
from jobs.core import urls
from jobs.core.model import Status


def _run(k: int, put: int, get: int, kinds: dict[str, int]) -> dict:
    return {"new_results": k, "by_class": {"put": put, "get": get, "delete": 0}, "site_writes_by_kind": kinds}


def test_batch_fit_splits_a_run_into_shared_and_per_result():
    # 20 requests shared by a run's results, 7 PUT and 3 GET per result, on top of 24/42 with nothing new
    noop = _run(0, 24, 42, {"dashboard, top feeds, keys, manifest": 3})
    runs = [_run(k, 24 + 20 + 7 * k, 42 + 3 * k, {"dashboard, top feeds, keys, manifest": 3 + 5,
                                                   "package pages": 2 * k}) for k in (10, 30)]
    fit = fit_batches(noop, runs)
    assert fit["put"]["shared"] == pytest.approx(20) and fit["put"]["per_result"] == pytest.approx(7)
    assert fit["get"]["shared"] == pytest.approx(0) and fit["get"]["per_result"] == pytest.approx(3)
    kinds = fit["site_writes_by_kind"]
    assert kinds["dashboard, top feeds, keys, manifest"] == {"shared": 5, "per_result": 0}
    assert kinds["package pages"] == {"shared": 0, "per_result": 2}


def _world(packages: int, shared: float, each: float, kinds: dict[str, tuple[float, float]]) -> dict:
    return {"size": {"packages": packages}, "nothing_new": {"by_class": {"put": 24, "get": 42}},
            "marginal_per_result": {"put": each + shared / 10, "get": 3.0},
            "batch_fit": {"put": {"shared": shared, "per_result": each}, "get": {"shared": 0.0, "per_result": 3.0},
                          "site_writes_by_kind": {k: {"shared": s, "per_result": e} for k, (s, e) in kinds.items()}}}


def test_each_deployment_is_priced_at_its_own_results_per_run():
    worlds = [_world(1000, 28.0, 8.0, {"build files": (0, 2.0)}), _world(4000, 28.0, 9.0, {"build files": (0, 2.0)})]
    publish = {"fit": cost_model.fit_publish(worlds)}
    hourly = cost_model.Deployment("x", builds=20_160, syncs=0, sync_kind="debian", packages=4000)  # 28 a run
    busier = cost_model.Deployment("y", builds=60_480, syncs=0, sync_kind="debian", packages=4000)  # 84 a run
    assert cost_model.per_result(publish, hourly)["put"] == pytest.approx(9.0 + 28 / 28, abs=1e-3)
    assert cost_model.per_result(publish, busier)["put"] == pytest.approx(9.0 + 28 / 84, abs=1e-3)
    # extrapolated linearly in packages from the two stores, never below the smaller one's figure
    big = cost_model.Deployment("z", builds=20_160, syncs=0, sync_kind="debian", packages=7000)
    assert cost_model.per_result(publish, big)["put"] == pytest.approx(10.0 + 1, abs=1e-3)


def test_floors_fall_as_publish_writes_less():
    kinds = {"build files": (0, 2.0), "names list parts": (0, 1.0), "status and class list parts": (0, 1.0),
             "whole-list feeds": (6, 0), "maintainer feeds": (0, 1),
             "maintainer Atom feeds": (0, 1), "package feeds": (0, 1.3), "package pages": (0, 1.3)}
    worlds = [_world(1000, 6.0, 8.6, kinds)]
    publish = {"fit": cost_model.fit_publish(worlds)}
    d = cost_model.Deployment("d", builds=20_160, syncs=0, sync_kind="debian", packages=1000, target_usd=1.0)
    lines = [{"what": "others", "usd": 0.80}, {"what": cost_model.PUBLISH_NEW, "usd": 1.0}]
    floors = cost_model.floor_scenarios(d, lines, publish)
    puts = [f["put_per_result"] for f in floors]
    assert puts[0] == pytest.approx(8.6 + 6 / 28, abs=0.01)
    assert puts[1] == pytest.approx(puts[0] - 2.0, abs=0.01)  # no build files copied
    # lists, whole lists and maintainer feeds gone, one delta object a run instead
    assert puts[2] == pytest.approx(puts[1] - 4.0 - 6 / 28 + 1 / 28, abs=0.01)
    assert puts[3] == pytest.approx(1.3 + 1 / 28, abs=0.01)  # the package page of each name, nothing else
    assert [f["month_usd"] for f in floors] == sorted((f["month_usd"] for f in floors), reverse=True)
    assert floors[-1]["month_usd"] == pytest.approx(0.80 + 20_160 * ((1.3 + 1 / 28) * 0.005 + 3.0 * 0.0004) / 1000,
                                                    abs=0.01)


@pytest.mark.parametrize(("key", "kind"), [
    (urls.build_file(12, "log"), "build files"),
    (urls.build_file(12, "attestation"), "build files"),
    (urls.package_page("debian", "libc6"), "package pages"),
    (urls.package_feed("debian", "libc6"), "package feeds"),
    (urls.maintainer_feed("Jane Doe <jane@example.org>"), "maintainer feeds"),
    (urls.maintainer_atom("Jane Doe <jane@example.org>"), "maintainer Atom feeds"),
    (urls.maintainer_page("Jane Doe <jane@example.org>"), "maintainer pages and index"),
    (urls.MAINTAINERS_FEED, "maintainer pages and index"),
    (urls.status_all_feed("debian/trixie/main/amd64", Status.GOOD), "whole-list feeds"),
    (urls.suite_feed("debian/trixie/main/amd64", "GOOD/py"), "status and class list parts"),
    (urls.suite_feed("debian/trixie/main/amd64", "names/li-2"), "names list parts"),
    (urls.suite_feed("debian/trixie/main/amd64", "class/download-failed/p"), "status and class list parts"),
    (urls.suite_feed("debian/trixie/main/amd64", "BAD"), "list feeds (unsplit) and list indexes"),
    (urls.suite_feed("debian/trixie/main/amd64", "class/download-failed"), "list feeds (unsplit) and list indexes"),
    (urls.suite_feed("debian/trixie/main/amd64", "index"), "suite feeds and pages, list pages"),
    (urls.suite_page("debian/trixie/main/amd64"), "suite feeds and pages, list pages"),
    (urls.INDEX_PAGE, "dashboard, top feeds, keys, manifest"),
])
def test_site_writes_are_told_apart_by_kind(key, kind):
    assert site_kind(f"site/{key}") == kind


def test_keys_outside_the_site_have_no_kind():
    assert site_kind("history/HEAD.json") is None and site_kind("claims/x/1.json") is None
