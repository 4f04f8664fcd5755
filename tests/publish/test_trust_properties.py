"""Property: any change to a bound field of a valid signed result is refused, with a reason.

The attacker holds the worker's key, so every mutated result is signed again with it: the
signature alone proves nothing, and the checks against the queued job, the index digests,
the claim and the signed files must catch each change. Fields only the worker can know
(its reason text, its name, its timestamps, the digest of a rebuilt file that differs) are
its word and are not bound (docs/trust.md); they are not mutated here.

Runs against the local store and a real SeaweedFS, with real results of a real worker.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobs.core.layout import claim_notice_key
from jobs.core.signing import generate_key, key_id, public_key_b64, sign_document
from jobs.publish.state.verify import Reason, collect
from tests.publish.test_verify import built, config_for

HEX = "0123456789abcdef"
hexes = st.text(HEX, min_size=64, max_size=64)
names = st.text(min_size=1, max_size=12)
Mutation = Callable[[dict[str, Any], Any], str]  # mutates the signed payload in place; returns what it did


def _differ(draw, strategy, current):
    return draw(strategy.filter(lambda v: v != current))


def _field(name: str, strategy) -> Mutation:
    def mutate(payload, draw):
        payload["result"][name] = _differ(draw, strategy, payload["result"][name])
        return f"result.{name}"
    return mutate


def _status(payload, draw):
    payload["result"]["status"] = _differ(draw, st.sampled_from(["GOOD", "BAD", "FAIL", "UNKWN"]),
                                          payload["result"]["status"])
    return "result.status"


def _artifacts(payload, draw):
    arts = payload["result"]["artifacts"]
    if not arts:
        arts.append({"name": draw(names), "status": "BAD", "sha256": draw(hexes)})
        return "artifacts: one added to a FAIL"
    i = draw(st.integers(0, len(arts) - 1))
    choices = ["name", "status", "drop", "twice"] + (["sha256"] if arts[i]["status"] == "GOOD" else [])
    what = draw(st.sampled_from(choices))
    if what == "name":
        arts[i]["name"] = _differ(draw, names, arts[i]["name"])
    elif what == "status":
        arts[i]["status"] = _differ(draw, st.sampled_from(["GOOD", "BAD", "UNKWN"]), arts[i]["status"])
    elif what == "sha256":
        arts[i]["sha256"] = _differ(draw, hexes, arts[i]["sha256"])
    elif what == "drop":
        del arts[i]
    else:
        arts.append(copy.deepcopy(arts[i]))
    return f"artifacts[{i}].{what}"


def _key(name: str) -> Mutation:
    def mutate(payload, draw):
        current = payload["result"][name]
        prefix = payload["result"]["log_key"].rsplit("/", 1)[0]
        options = st.one_of(st.none(), st.just(f"{prefix}/other"), st.just(f"{prefix}/diffoscope.html"),
                            st.just("builds/elsewhere/log"), st.just(payload["result"]["log_key"]))
        payload["result"][name] = _differ(draw, options, current)
        return f"result.{name}"
    return mutate


def _files(payload, draw):
    files = payload["result"]["files"]
    i = draw(st.integers(0, len(files) - 1))
    what = draw(st.sampled_from(["sha256", "size", "key", "drop", "add"]))
    if what == "sha256":
        files[i]["sha256"] = _differ(draw, hexes, files[i]["sha256"])
    elif what == "size":
        files[i]["size"] = _differ(draw, st.integers(0, 1 << 20), files[i]["size"])
    elif what == "key":
        files[i]["key"] = files[i]["key"].rsplit("/", 1)[0] + "/" + draw(st.sampled_from(["x", "log2", "a.json"]))
    elif what == "drop":
        del files[i]
    else:
        files.append({"key": files[i]["key"].rsplit("/", 1)[0] + "/extra", "sha256": draw(hexes), "size": 1})
    return f"files[{i}].{what}"


def _claim(payload, draw):
    what = draw(st.sampled_from(["token", "generation", "queue"]))
    strategy = {"token": st.text("0123456789abcdefXYZ", min_size=1, max_size=40),
                "generation": st.integers(0, 10), "queue": st.one_of(st.none(), st.just("queue/other.parquet"))}[what]
    payload["claim"][what] = _differ(draw, strategy, payload["claim"][what])
    return f"claim.{what}"


def _schema(payload, draw):
    payload["schema"] = _differ(draw, st.sampled_from(["rebuilder.result/1", "rebuilder.result/2", "rebuilder.result/3", ""]),
                                payload["schema"])
    return "schema"


def _attestation(payload, draw):
    """The attestation the result carries: one added to a BAD or FAIL, dropped from a GOOD, or edited."""
    link = payload["attestation"]
    if link is None:
        payload["attestation"] = draw(st.sampled_from([{}, {"signed": {}, "signatures": []}]))
        return "attestation: one added"
    if draw(st.booleans()):
        payload["attestation"] = None
        return "attestation: dropped"
    product = draw(st.sampled_from(sorted(link["signed"]["products"])))
    link["signed"]["products"][product]["sha256"] = _differ(draw, hexes, link["signed"]["products"][product]["sha256"])
    return f"attestation.products[{product}].sha256"


MUTATIONS: list[Mutation] = [
    _field("build_id", st.text(HEX + "-", min_size=30, max_size=40)),
    _field("job_id", st.text(HEX, min_size=32, max_size=32)),
    _field("attempt", st.integers(2, 999_999_999)),
    _field("distro", names), _field("architecture", names), _field("source_name", names),
    _field("source_version", names), _status, _artifacts, _key("log_key"), _key("diffoscope_key"),
    _key("attestation_key"), _files, _claim, _schema, _attestation,
]


def test_every_mutation_of_a_bound_field_is_refused(store, tmp_path):
    (good, fail, bad), worker = built(store, tmp_path, 3)
    other = generate_key()  # a second trusted worker, for worker_key_id
    config = config_for(tmp_path, authorized=[worker.identity.public_key, public_key_b64(other.public_key())])
    keys = [claim_notice_key(r.job_id, 1, "done", worker.identity.key_id) for r in (good, fail, bad)]
    originals = {k: store.get(k).data for k in keys}
    assert len(collect(store, config, already=set()).accepted) == 3  # the unmutated ones pass
    mutations = [*MUTATIONS, _field("worker_key_id", st.just(key_id(other.public_key())))]

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.sampled_from(keys), st.sampled_from(mutations), st.data())
    def mutated_is_refused(key, mutation, data):
        payload = copy.deepcopy(json.loads(originals[key])["signed"])
        what = mutation(payload, data.draw)
        store.put(key, json.dumps(sign_document(payload, worker.identity.key)).encode())
        try:
            found = collect(store, config, already=set())
        finally:
            store.put(key, originals[key])
        rejected = {r.key: r for r in found.rejected}
        assert key not in {a.key for a in found.accepted}, f"{what} was accepted"
        assert key in rejected and rejected[key].reason in set(Reason) and rejected[key].detail, what

    mutated_is_refused()
