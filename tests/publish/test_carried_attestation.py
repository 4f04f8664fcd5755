"""A GOOD build's attestation carried inside its signed result (`rebuilder.result/3`, docs/trust.md).

Publish keeps it itself, in the run's `history/attestations/run-<name>.json`, before the
result is compacted (and so before it can be pruned), and the history row names that object.
Checked here with real workers' results: both formats in one publish (a fleet mid-upgrade),
a publish killed after compacting whose result is then pruned, one killed between keeping
and compacting, and each way a carried attestation can lie.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from jobs.core.history import read_history
from jobs.core.layout import ATTESTATION_BATCH_KEY, ATTESTATIONS, claim_notice_key
from jobs.core.model import ArtifactResult, Status
from jobs.core.signing import (
    generate_key,
    load_public_keys_feed,
    make_link,
    public_key_from_b64,
    rebuild_link_name,
    sign_link,
    verify_link,
)
from jobs.core.store import NotFound, open_store
from jobs.publish.run import publish
from jobs.publish.site.inputs import read_facts
from jobs.publish.site.sitewriter import BATCH_SCHEMA
from jobs.publish.state import update
from jobs.publish.state.update import ATTESTATION_BATCH_SCHEMA, publish_state
from jobs.publish.state.verify import Reason
from jobs.publish.state.workerobjects import Reject, parse_result
from tests.publish.previous_format import to_previous_format, to_separate_attestation
from tests.publish.test_trust import add_state, check_refused, forged, jobs_with_state, package_status, trusted
from tests.publish.test_verify import NOW, built, config_for, worker_for

pytestmark = pytest.mark.full("real worker builds, then publishes")


def _published(store, prefix="site/") -> dict[str, dict]:
    return {i.key: json.loads(store.get(i.key).data) for i in store.list(prefix + "api/v0/builds/")
            if i.key.endswith("/attestation")}


def _history_keys(store) -> dict[str, str | None]:
    table = read_history(store)
    return dict(zip(table.column("build_id").to_pylist(), table.column("attestation_key").to_pylist()))


def _keys(worker, summary) -> dict:
    return {"worker": public_key_from_b64(worker.identity.public_key),
            "rebuilder": load_public_keys_feed(summary.state.public_keys)[0]}


def test_the_kept_object_is_in_the_form_the_site_reads():
    assert ATTESTATION_BATCH_SCHEMA == BATCH_SCHEMA


def test_a_mixed_fleet_publishes_both_formats_in_one_object(store, tmp_path):
    """One result carries its attestation, one of an earlier worker names its file: both countersigned."""
    rows, worker = built(store, tmp_path, 4)  # pkg000 and pkg003 reproduce
    add_state(store, rows)
    carried, separate = f"{rows[0].job_id}-1", f"{rows[3].job_id}-1"
    doc = json.loads(store.get(claim_notice_key(rows[0].job_id, 1, "done", worker.identity.key_id)).data)
    assert doc["signed"]["schema"] == "rebuilder.result/3" and doc["signed"]["attestation"] is not None
    assert not [i.key for i in store.list("builds/") if i.key.endswith("attestation.json")]  # no PUT of its own
    file_key = to_separate_attestation(store, worker.identity, rows[3].job_id)
    to_previous_format(store, worker.identity, rows[3].job_id)  # and in results/, as such workers stored it
    config = config_for(tmp_path, authorized=[worker.identity.public_key])
    summary = publish(store, config, now=NOW)
    assert summary.state.rejected == [] and len(summary.state.accepted) == 4
    assert set(summary.state.countersigned) == {carried, separate}
    (kept,) = [i.key for i in store.list(ATTESTATIONS)]  # one object for the run, kept by the state step
    assert kept == summary.state.attestation_batch and ATTESTATION_BATCH_KEY.fullmatch(kept)
    assert json.loads(store.get(kept).data)["links"] == summary.state.countersigned
    history = _history_keys(store)
    assert history[carried] == kept and history[separate] == file_key  # where each is
    published = _published(store)
    assert len(published) == 2
    for link in published.values():
        assert verify_link(link, _keys(worker, summary), threshold=2) == {"worker", "rebuilder"}
    assert package_status(store, rows[0].source_name) == "GOOD" == package_status(store, rows[3].source_name)


@pytest.mark.parametrize("sign", [True, False], ids=["countersigned", "as-the-worker-signed-it"])
def test_a_publish_killed_after_compacting_loses_nothing_when_the_result_is_pruned(store, tmp_path, sign):
    """The state step compacted the result; the run died before the site step. The next run
    prunes the result (a lease TTL later) and still publishes its attestation, from the kept object."""
    (good, _, _), worker = built(store, tmp_path)
    config = config_for(tmp_path, authorized=[worker.identity.public_key], sign=sign)
    now = datetime.now(timezone.utc)
    state = publish_state(store, config, now=now)  # killed here: no site, no site facts
    bid = f"{good.job_id}-1"
    assert state.attestation_batch is not None and list(state.countersigned) == [bid]
    assert _history_keys(store)[bid] == state.attestation_batch
    receipt = claim_notice_key(good.job_id, 1, "done", worker.identity.key_id)
    summary = publish(store, config, now=now + timedelta(hours=1))
    with pytest.raises(NotFound):
        store.head(receipt)  # pruned with its claims by this run's state step, before its site step
    assert summary.state.pruned > 0 and summary.state.countersigned == {}
    (link,) = _published(store).values()
    keys = _keys(worker, summary)
    if sign:
        assert verify_link(link, keys, threshold=2) == {"worker", "rebuilder"}
    else:
        assert verify_link(link, keys) == {"worker"} and len(link["signatures"]) == 1
    assert json.loads(store.get(state.attestation_batch).data)["links"][bid] == link  # what was kept, exactly
    facts = {f["build_id"]: f for f in read_facts(store).to_pylist()}
    assert facts[bid]["countersigned"] and facts[bid]["attestation_problem"] is None
    # And a site written again from nothing finds it too, with the result long gone.
    other = open_store((tmp_path / "other-site").as_uri())
    publish(store, config, site_store=other, now=now + timedelta(hours=2))
    assert list(_published(other).values()) == [link]


def test_a_publish_killed_between_keeping_and_compacting_converges(store, tmp_path, monkeypatch):
    (good, _, _), worker = built(store, tmp_path)
    config = config_for(tmp_path, authorized=[worker.identity.public_key])

    def killed(*args, **kwargs):
        raise SystemExit("killed")

    monkeypatch.setattr(update, "compact", killed)
    with pytest.raises(SystemExit):
        publish(store, config, now=NOW)
    (orphan,) = [i.key for i in store.list(ATTESTATIONS)]  # kept, never named by the history
    monkeypatch.undo()
    summary = publish(store, config, now=NOW)
    bid = f"{good.job_id}-1"
    assert [a.row.build_id for a in summary.state.accepted if a.carried and a.attestation is not None] == [bid]
    assert _history_keys(store)[bid] == summary.state.attestation_batch != orphan
    (link,) = _published(store).values()
    assert verify_link(link, _keys(worker, summary), threshold=2) == {"worker", "rebuilder"}


def _good(job) -> tuple[ArtifactResult, ...]:
    return (ArtifactResult(job.artifacts[0].name, Status.GOOD, job.artifacts[0].sha256),)


def _carried_link(tmp_path, job, key, *, data: bytes | None = None) -> dict:
    """A link whose one product is the job's artifact (its real bytes) or `data`, signed by `key`."""
    artifact = job.artifacts[0]
    path = tmp_path / "products" / artifact.filename
    path.parent.mkdir(exist_ok=True)
    if data is None:
        path.write_bytes(Path(artifact.url.removeprefix("file://")).read_bytes())
    else:
        path.write_bytes(data)
    return sign_link(make_link(rebuild_link_name(artifact.filename), materials={}, products={artifact.filename: path}),
                     key)


def test_an_honest_carried_attestation_from_a_forger_helper_is_accepted(store, tmp_path):
    """The helper below makes results publish accepts; each lie is then one change to it."""
    (job,) = jobs_with_state(store, tmp_path, 1)
    mallory = worker_for(store, tmp_path, "mallory").identity
    key = forged(store, mallory, job, status=Status.GOOD, artifacts=_good(job),
                 attestation=_carried_link(tmp_path, job, mallory.key))
    summary = publish(store, trusted(tmp_path, mallory), now=NOW)
    assert [a.key for a in summary.state.accepted] == [key] and summary.state.rejected == []
    assert package_status(store, job.source_name) == "GOOD"


@pytest.mark.parametrize("lie", ["other-digest", "other-signer", "none", "bad-carries-one", "not-an-object",
                                 "names-a-file-too"])
def test_a_carried_attestation_that_lies_is_refused(store, tmp_path, lie):
    (job,) = jobs_with_state(store, tmp_path, 1)
    mallory = worker_for(store, tmp_path, "mallory").identity
    link = _carried_link(tmp_path, job, mallory.key)
    status, artifacts, fields, reason = Status.GOOD, _good(job), {}, Reason.ATTESTATION_MISMATCH
    if lie == "other-digest":  # the row says the index's digest, the link (what consumers check) another
        link = _carried_link(tmp_path, job, mallory.key, data=b"backdoored")
    elif lie == "other-signer":
        link = _carried_link(tmp_path, job, generate_key())
    elif lie == "none":
        link = None
    elif lie == "bad-carries-one":
        status, artifacts = Status.BAD, (ArtifactResult(job.artifacts[0].name, Status.BAD, "1" * 64),)
    elif lie == "not-an-object":
        link, reason = json.dumps(link), Reason.SCHEMA
    else:  # a result/3 that also names a file (the two formats mixed)
        fields, reason = {"attestation_key": "builds/x/attestation.json"}, Reason.SCHEMA
    key = forged(store, mallory, job, status=status, artifacts=artifacts, attestation=link, **fields)
    summary = publish(store, trusted(tmp_path, mallory), now=NOW)
    check_refused(store, summary, key, reason)
    assert summary.state.countersigned == {} and summary.state.attestation_batch is None
    assert list(store.list(ATTESTATIONS)) == []  # nothing kept of a refused result
    assert package_status(store, job.source_name) != "GOOD"


@pytest.mark.parametrize("schema", [[], {"a": 1}, None, 3, "rebuilder.result/4"])
def test_a_payload_whose_schema_is_not_a_known_name_is_a_schema_error(schema):
    payload = {"schema": schema, "result": {}, "claim": {}, "attestation": None}
    with pytest.raises(Reject) as exc:
        parse_result(payload)
    assert exc.value.reason is Reason.SCHEMA and "payload is not rebuilder.result/3" in exc.value.detail


def test_a_run_keeps_attestations_up_to_its_cap_and_leaves_the_rest_for_the_next(store, tmp_path, monkeypatch):
    """One run's kept object must stay readable (it is read back capped): the GOOD results past
    `run_attestations` wait, unjudged and unchanged, for the next publish, which accepts them."""
    from jobs.core.bounded import cap
    from jobs.publish.state import verify

    assert verify.MAX_RUN_ATTESTATION_BYTES == cap("run_attestations") >= 200 * cap("attestation")
    rows, worker = built(store, tmp_path, 4)  # pkg000 and pkg003 reproduce
    add_state(store, rows)
    config = config_for(tmp_path, authorized=[worker.identity.public_key])
    found = [a for a in verify.collect(store, config, already=set()).accepted if a.attestation is not None]
    assert len(found) == 2
    monkeypatch.setattr(verify, "MAX_RUN_ATTESTATION_BYTES", len(found[0].attestation) + len(found[1].attestation) - 1)
    summary = publish(store, config, now=NOW)
    first, second = found[0].row.build_id, found[1].row.build_id
    assert summary.state.deferred == [found[1].key] and summary.state.rejected == []
    assert list(summary.state.countersigned) == [first] and len(summary.state.accepted) == 3
    assert "1 results left for the next publish" in summary.state.line()
    assert second not in _history_keys(store)
    store.head(found[1].key)  # still there, as the worker stored it
    statuses = {package_status(store, r.source_name) for r in rows if f"{r.job_id}-1" == second}
    assert statuses != {"GOOD"}
    again = publish(store, config, now=NOW + timedelta(minutes=5))
    assert again.state.deferred == [] and list(again.state.countersigned) == [second]
    assert len(_published(store)) == 2
    assert {package_status(store, r.source_name) for r in rows if f"{r.job_id}-1" in (first, second)} == {"GOOD"}
