"""A publish run keeps its countersigned attestations in one object (history/attestations/run-*.json),
the site facts name it per build, and a site written again from scratch finds them there."""

from __future__ import annotations

import json

import pytest

from jobs.core.layout import ATTESTATIONS, attestation_key
from jobs.core.signing import load_public_keys_feed, public_key_from_b64, verify_link
from jobs.core.store import open_store
from jobs.publish.run import publish
from jobs.publish.site.inputs import read_facts
from tests.publish.previous_format import to_separate_attestation
from tests.publish.test_verify import NOW, built, config_for

pytestmark = pytest.mark.full("real worker builds, two publishes each")


def _attestations(store, prefix="site/") -> dict[str, bytes]:
    return {i.key: store.get(i.key).data for i in store.list(prefix + "api/v0/builds/")
            if i.key.endswith("/attestation")}


def test_one_object_per_run_and_a_site_rebuilt_from_scratch_finds_the_links(tmp_path):
    store = open_store((tmp_path / "store").as_uri())
    (good, _, _), worker = built(store, tmp_path)
    config = config_for(tmp_path, authorized=[worker.identity.public_key])
    summary = publish(store, config, now=NOW)
    build_id = f"{good.job_id}-1"
    assert list(summary.state.countersigned) == [build_id]
    kept = [i.key for i in store.list(ATTESTATIONS)]
    assert len(kept) == 1 and kept[0].startswith(ATTESTATIONS + "run-"), kept  # not one object per build
    assert json.loads(store.get(kept[0]).data)["links"][build_id] == summary.state.countersigned[build_id]
    facts = read_facts(store).to_pylist()
    assert [(f["build_id"], f["attestation_object"]) for f in facts if f["countersigned"]] == [(build_id, kept[0])]

    (published,) = _attestations(store).values()  # written from memory by the run that countersigned it
    link = json.loads(published)
    keys = {"worker": public_key_from_b64(worker.identity.public_key),
            "rebuilder": load_public_keys_feed(summary.state.public_keys)[0]}
    assert verify_link(link, keys, threshold=2) == {"worker", "rebuilder"}

    # Another site, written from nothing: the attestation comes out of the run's object.
    other = open_store((tmp_path / "other").as_uri())
    again = publish(store, config, site_store=other, now=NOW)
    assert again.site is not None and again.site.written > 0
    (copied,) = _attestations(other).values()
    assert json.loads(copied) == link
    assert [i.key for i in store.list(ATTESTATIONS)] == kept  # nothing countersigned twice


def test_a_link_kept_in_its_own_object_by_an_earlier_version_is_still_published(tmp_path):
    store = open_store((tmp_path / "store").as_uri())
    (good, _, _), worker = built(store, tmp_path)
    to_separate_attestation(store, worker.identity, good.job_id)  # a result as workers of that version stored it
    config = config_for(tmp_path, authorized=[worker.identity.public_key])
    publish(store, config, now=NOW)
    build_id = f"{good.job_id}-1"
    (batch,) = [i.key for i in store.list(ATTESTATIONS)]
    link = json.loads(store.get(batch).data)["links"][build_id]
    # As earlier publishes (and the importer) kept them: one object per build, no batch in the facts.
    store.put(attestation_key(build_id), json.dumps(link, sort_keys=True).encode())
    store.delete(batch)
    store.delete("history/site-facts.parquet")
    other = open_store((tmp_path / "other").as_uri())
    publish(store, config, site_store=other, now=NOW)
    (copied,) = _attestations(other).values()
    assert json.loads(copied) == link
    assert [i.key for i in store.list(ATTESTATIONS)] == [attestation_key(build_id)]
