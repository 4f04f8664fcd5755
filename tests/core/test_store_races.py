"""Races between real processes, on the local store and on SeaweedFS."""

from __future__ import annotations

from collections import Counter

import pytest

from jobs.core.store import open_store
from tests.core.racing import race

PROCS, KEYS, INCREMENTS = 8, 25, 25


@pytest.mark.full("eight processes race for 25 keys")
def test_create_only_race_has_exactly_one_winner_per_key(store_factory):
    url = store_factory.url()
    reports = race("create", url, str(KEYS), PROCS, store_factory.env())
    wins = Counter(i for r in reports for i in r["won"])
    assert sorted(wins) == list(range(KEYS))
    assert set(wins.values()) == {1}, wins
    store = open_store(url)
    for r in reports:
        for i in r["won"]:
            assert store.get(f"race/{i:03d}").data == r["me"].encode()


@pytest.mark.full("eight processes race 625 compare-and-swap increments")
def test_cas_counter_loses_no_update(store_factory):
    url = store_factory.url()
    open_store(url).put("counter", b"0")
    reports = race("cas", url, str(INCREMENTS), PROCS, store_factory.env())
    written = sorted(v for r in reports for v in r["wrote"])
    # Every value 1..200 was written by exactly one process: no update was lost or doubled.
    assert written == list(range(1, PROCS * INCREMENTS + 1))
    assert open_store(url).get("counter").data == str(PROCS * INCREMENTS).encode()
