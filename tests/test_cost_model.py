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


def _world(packages: int, own: dict[str, float], run: dict[str, int], other_put: int = 7, get=(3.0, 4.0)) -> dict:
    """A store's figures: each result's own writes by kind (`own`, unshared), a 30-result run's writes by
    kind (per-result kinds shared a little: 0.9 of 30 times their own) and `other_put` non-site writes."""
    noop_kinds = {"dashboard, top feeds, keys, manifest": 3}
    batch = ({kind: round(0.9 * 30 * n) for kind, n in own.items()}
             | {k: v + noop_kinds.get(k, 0) for k, v in run.items()})
    put = 24 + sum(batch.values()) - 3 + other_put
    return {"size": {"packages": packages},
            "nothing_new": {"new_results": 0, "by_class": {"put": 24, "get": 42}, "site_writes_by_kind": noop_kinds},
            "results_30": {"new_results": 30, "by_class": {"put": put, "get": 42 + get[1] + 30 * get[0]},
                           "site_writes_by_kind": batch},
            "unshared": {"runs": 5, "by_class": {"put": sum(own.values()) + 9, "get": 3.5},
                         "site_writes_by_kind": own | {"dashboard, top feeds, keys, manifest": 2}},
            "marginal_per_result": {"put": 12.0, "get": 3.4},
            "batch_fit": {"put": {"shared": 20.0, "per_result": 9.0}, "get": {"shared": get[1], "per_result": get[0]}}}


OWN = {"build files": 1.8, "package pages": 1.3, "package feeds": 1.3, "names list parts": 0.9,
       "status and class list parts": 1.5, "maintainer feeds": 1.0, "maintainer Atom feeds": 1.0}
RUN = {"whole-list feeds": 6, "list feeds (unsplit) and list indexes": 5, "suite feeds and pages, list pages": 4,
       "dashboard, top feeds, keys, manifest": 5}


def test_each_deployment_is_priced_at_its_own_results_per_run():
    publish = {"fit": cost_model.fit_publish([_world(1000, OWN, RUN), _world(4000, OWN, RUN)])}
    scale = publish["fit"]["scale"]
    assert scale["put_per_result_by_kind"] == OWN
    assert scale["put_per_run"] == pytest.approx(sum(RUN.values()) + 7)  # the run's other writes, once
    assert scale["put_per_run_by_kind"] == RUN
    hourly = cost_model.Deployment("x", builds=20_160, syncs=0, sync_kind="debian", packages=65_000)  # 28 a run
    busier = cost_model.Deployment("y", builds=60_480, syncs=0, sync_kind="debian", packages=65_000)  # 84 a run
    own = sum(OWN.values())
    assert cost_model.per_result(publish, hourly) == pytest.approx({"put": own + 27 / 28, "get": 3.0 + 4 / 28})
    assert cost_model.per_result(publish, busier) == pytest.approx({"put": own + 27 / 84, "get": 3.0 + 4 / 84})


def test_floors_fall_as_publish_writes_less():
    publish = {"fit": cost_model.fit_publish([_world(1000, OWN, RUN)])}
    d = cost_model.Deployment("d", builds=20_160, syncs=0, sync_kind="debian", packages=1000, target_usd=1.0)
    lines = [{"what": "others", "usd": 0.80}, {"what": cost_model.PUBLISH_NEW, "usd": 1.0}]
    floors = cost_model.floor_scenarios(d, lines, publish)
    puts = [f["put_per_result"] for f in floors]
    own = sum(OWN.values())
    assert puts[0] == pytest.approx(own + 27 / 28, abs=0.01)
    assert puts[1] == pytest.approx(puts[0] - 1.8, abs=0.01)  # no build files copied
    # lists, whole lists, list indexes and maintainer feeds gone, one delta object a run instead
    assert puts[2] == pytest.approx(1.3 + 1.3 + (27 - 6 - 5 + 1) / 28, abs=0.01)
    assert puts[3] == pytest.approx(1.3 + (27 - 6 - 5 + 1) / 28, abs=0.01)  # the package page of each name
    assert [f["month_usd"] for f in floors] == sorted((f["month_usd"] for f in floors), reverse=True)
    assert floors[-1]["month_usd"] == pytest.approx(
        0.80 + 20_160 * (puts[3] * 0.005 + (3.0 + 4 / 28) * 0.0004) / 1000, abs=0.01)


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
