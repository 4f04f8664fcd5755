"""Attacks on the attestation a GOOD result carries (`rebuilder.result/3`, docs/trust.md), by a trusted worker.

Each is a real publish on the test stores of a result signed by a trusted key ("mallory")
that passes every other check: what publish countersigns and the site serves as this
build's attestation must be a link of the result's own worker and one publish can keep.
"""

from __future__ import annotations

import hashlib
import json
import sys

import pytest

from jobs.core.layout import ATTESTATIONS
from jobs.core.signing import link_key_id, sign_document, sign_link
from jobs.core.signing.canonical import canonical_bytes
from jobs.core.signing.intoto import _signature
from jobs.core.signing.keys import key_id
from jobs.publish.run import publish
from jobs.publish.state.verify import Reason
from tests.publish.test_carried_attestation import _carried_link, _good, _published
from tests.publish.test_trust import check_refused, forged, jobs_with_state, package_status, trusted
from tests.publish.test_verify import NOW, config_for, worker_for

pytestmark = pytest.mark.full("real publishes of forged results on both stores")


def _refused_and_nothing_kept(store, summary, key) -> None:
    check_refused(store, summary, key, Reason.ATTESTATION_MISMATCH)
    assert summary.state.countersigned == {} and summary.state.attestation_batch is None
    assert list(store.list(ATTESTATIONS)) == [] and _published(store) == {}


@pytest.mark.parametrize("carried", [True, False], ids=["carried", "as-a-file"])
def test_another_workers_link_with_the_signers_signature_added_is_refused(store, tmp_path, carried):
    """Mallory takes alice's link for the same artifact (published with alice's build), adds its own
    signature and carries it: publish would countersign and serve, as mallory's build, a link that
    names alice as a signer of a build alice never made."""
    (job,) = jobs_with_state(store, tmp_path, 1)
    alice = worker_for(store, tmp_path, "alice").identity
    mallory = worker_for(store, tmp_path, "mallory").identity
    link = _carried_link(tmp_path, job, alice.key)
    link["signatures"].append(_signature(link["signed"], mallory.key))
    if carried:
        key = forged(store, mallory, job, status="GOOD", artifacts=_good(job), attestation=link)
    else:  # a worker of the previous format: the same link as its uploaded file
        key = forged(store, mallory, job, status="GOOD", artifacts=_good(job),
                     files={"attestation.json": json.dumps(link).encode()})
    summary = publish(store, trusted(tmp_path, mallory, alice), now=NOW)
    _refused_and_nothing_kept(store, summary, key)
    assert package_status(store, job.source_name) != "GOOD"


def test_a_link_signed_twice_by_its_own_worker_is_refused(store, tmp_path):
    """Exactly one signature, the worker's: a second entry (here under its other key id) is not the link a worker makes."""
    (job,) = jobs_with_state(store, tmp_path, 1)
    mallory = worker_for(store, tmp_path, "mallory").identity
    link = _carried_link(tmp_path, job, mallory.key)
    extra = _signature(link["signed"], mallory.key)
    extra["keyid"] = key_id(mallory.key.public_key())
    assert extra["keyid"] != link_key_id(mallory.key.public_key())
    link["signatures"].append(extra)
    key = forged(store, mallory, job, status="GOOD", artifacts=_good(job), attestation=link)
    summary = publish(store, trusted(tmp_path, mallory), now=NOW)
    _refused_and_nothing_kept(store, summary, key)


def _deep(n: int) -> dict:
    value: dict = {}
    for _ in range(n):
        value = {"a": value}
    return value


def _resigned_with_deep_environment(store, key: str, ident, depth: int) -> None:
    """The stored result again, its link's environment nested `depth` deep, both re-signed (the
    attacker's own code: not the worker's, whose deep copies would not get that far)."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(20000)
    try:
        doc = json.loads(store.get(key).data)
        payload = doc["signed"]
        link = payload["attestation"]["signed"]
        link["environment"] = {"x": _deep(depth)}
        payload["attestation"]["signatures"] = [{"keyid": link_key_id(ident.key.public_key()),
                                                 "sig": ident.key.sign(canonical_bytes(link)).hex()}]
        doc["signatures"] = [{"keyid": key_id(ident.key.public_key()),
                              "sig": ident.key.sign(canonical_bytes(payload)).hex()}]
        store.put(key, json.dumps(doc).encode())
    finally:
        sys.setrecursionlimit(limit)


@pytest.mark.parametrize("sign", [True, False], ids=["countersigned", "as-the-worker-signed-it"])
def test_a_link_nested_too_deeply_to_countersign_is_refused(store, tmp_path, sign):
    """A link nested ~600 deep passed verification, then failed countersigning (a deep copy's
    recursion): the build was published GOOD with no attestation, and the carried link, never
    kept, could not be countersigned by any later run. Refused when verified instead."""
    (job,) = jobs_with_state(store, tmp_path, 1)
    mallory = worker_for(store, tmp_path, "mallory").identity
    key = forged(store, mallory, job, status="GOOD", artifacts=_good(job),
                 attestation=_carried_link(tmp_path, job, mallory.key))
    _resigned_with_deep_environment(store, key, mallory, 600)
    summary = publish(store, config_for(tmp_path, authorized=[mallory.public_key], sign=sign), now=NOW)
    _refused_and_nothing_kept(store, summary, key)
    assert "nests more than 32 levels" in {r.key: r.detail for r in summary.state.rejected}[key]
    assert summary.state.attestation_problems == {}
    assert package_status(store, job.source_name) != "GOOD"


def test_a_link_with_a_nested_environment_of_ordinary_depth_is_accepted(store, tmp_path):
    """The bound is far above any real link's nesting (in-toto's Python tooling nests environment objects)."""
    (job,) = jobs_with_state(store, tmp_path, 1)
    mallory = worker_for(store, tmp_path, "mallory").identity
    link = _carried_link(tmp_path, job, mallory.key)
    signed = dict(link["signed"], environment={"workdir": {"a": {"b": {"c": "d"}}}},
                  byproducts={"stdout": "", "stderr": "", "return-value": 0})
    key = forged(store, mallory, job, status="GOOD", artifacts=_good(job), attestation=sign_link(signed, mallory.key))
    summary = publish(store, trusted(tmp_path, mallory), now=NOW)
    assert [a.key for a in summary.state.accepted] == [key] and len(_published(store)) == 1
    assert package_status(store, job.source_name) == "GOOD"


def test_a_stray_attestation_file_beside_a_carried_link_is_never_served(store, tmp_path):
    """A `/3` result may list an `attestation.json` under its prefix among its signed files (a name a
    build uploads); only the carried link is countersigned and served, never that file."""
    (job,) = jobs_with_state(store, tmp_path, 1)
    mallory = worker_for(store, tmp_path, "mallory").identity
    stray = _carried_link(tmp_path, job, mallory.key, data=b"backdoored")  # names another digest
    carried = _carried_link(tmp_path, job, mallory.key)
    key = forged(store, mallory, job, status="GOOD", artifacts=_good(job), attestation=carried)
    doc = json.loads(store.get(key).data)
    payload = doc["signed"]
    (log,) = payload["result"]["files"]
    body = json.dumps(stray).encode()
    named = log["key"].removesuffix("/log") + "/attestation.json"
    store.put(named, body)
    payload["result"]["files"].append(dict(log, key=named, sha256=hashlib.sha256(body).hexdigest(), size=len(body)))
    store.put(key, json.dumps(sign_document(payload, mallory.key)).encode())
    summary = publish(store, trusted(tmp_path, mallory), now=NOW)
    assert [a.key for a in summary.state.accepted] == [key]
    assert named in {f.key for f in summary.state.accepted[0].row.files}  # signed, checked, accepted
    (served,) = _published(store).values()
    assert served["signed"] == carried["signed"] != stray["signed"]
