"""Which results publish trusts: real results of real workers, and forgeries of every kind.

Runs against the local store and a real SeaweedFS. The helpers here are shared by the other
publish tests.
"""

from __future__ import annotations

import json
from dataclasses import fields, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from jobs.core.config import parse_rebuilder_config, parse_worker_config
from jobs.core.errors import ConfigError
from jobs.core.layout import build_prefix, claim_key, claim_notice_key, result_key, worker_key
from jobs.core.lease import Leases
from jobs.core.model import Artifact, ArtifactResult, JobRow, ResultRow, Status, build_id, job_id, record_to_json
from jobs.core.queue import update_queue
from jobs.core.signing import ensure_key, generate_key, key_id, public_key_b64, sign_document
from jobs.publish.site.inputs import read_workers
from jobs.publish.state.enrolment import ENROLLED
from jobs.publish.state.update import verify_results
from jobs.publish.state.verify import PREVIOUS_RESULT_SCHEMA, RESULT_SCHEMA, WORKER_SCHEMA, Reason, collect
from jobs.work import identity as worker_identity
from jobs.work import report as worker_report
from jobs.work.identity import load_identity
from jobs.work.report import digest_of
from jobs.work.run import Worker
from tests.publish.previous_format import to_previous_format
from tests.work.test_worker import script, synthetic_jobs

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
# pkg000 reproduces, pkg001's build fails (FAIL), pkg002 builds different bytes (BAD).
BACKEND = """case "$(basename "$1")" in
  pkg001*) echo "boom" >&2; exit 3 ;;
  pkg002*) printf 'different' > "$REBUILDERD_OUTDIR/$(basename "$1")" ;;
  *) cp "$1" "$REBUILDERD_OUTDIR/" ;;
esac"""


def config_for(tmp_path: Path, *, authorized=(), signup_secret=None, cookie=None, max_retries=None,
               sign=True, signing_key: Path | None = None, **extra):
    """A rebuilder config for the tests (the rebuilder key lives in tmp_path, made here if missing)."""
    if signing_key is None:
        signing_key = tmp_path / "rebuilder.sign.key"
        ensure_key(signing_key)
    raw: dict = {"worker": {"authorized_workers": list(authorized)},
                 "publish": {"signing_key": str(signing_key)},
                 "http": {"transparently_sign_attestations": sign}, "lease": {"ttl": 30, "clock_skew": 5}}
    if signup_secret:
        raw["worker"]["signup_secret"] = signup_secret
    if cookie:
        raw["auth"] = {"cookie": cookie}
    if max_retries is not None:
        raw["schedule"] = {"max_retries": max_retries}
    for table, values in extra.items():  # e.g. auth={"request_max_age": 60}
        raw.setdefault(table, {}).update(values)
    return parse_rebuilder_config(raw)


def worker_for(store, tmp_path: Path, name: str = "w1", *, signup_secret=None) -> Worker:
    """A real worker with the test backend above."""
    backend = tmp_path / "backend.sh"
    if not backend.exists():
        script(backend, BACKEND)
    raw = {"backend": {"test": {"path": str(backend)}}, "supported_architectures": ["x86_64"], "idle_delay": 1,
           "work_dir": str(tmp_path / "workers"), "build": {"timeout": 60, "silent": True},
           "diffoscope": {"enabled": False}}
    if signup_secret:
        raw["signup_secret"] = signup_secret
    wconf = parse_worker_config(raw)
    return Worker(store=store, config=parse_rebuilder_config({"lease": {"ttl": 30, "clock_skew": 5}}),
                  worker_config=wconf, identity=load_identity(wconf, name), backends={"test": backend})


def built(store, tmp_path: Path, n: int = 3, *, signup_secret=None):
    """`n` synthetic jobs, built once by a real worker: (job rows, worker)."""
    rows = synthetic_jobs(store, tmp_path, n)
    worker = worker_for(store, tmp_path, signup_secret=signup_secret)
    stats = worker.run(until_idle=True)
    assert len(stats.built) == n, stats
    return rows, worker


def put_json(store, key: str, doc) -> str:
    store.put(key, json.dumps(doc).encode(), content_type="application/json")
    return key


def forged_url(n: int) -> str:
    return f"file:///forged/{n}.pkg.tar.zst"


def forged_job(n: int) -> str:
    return job_id("test", "x86_64", forged_url(n))


def queue_job(store, url: str, *, attempt: int = 1, distro: str = "testdistro", source_name: str = "forged",
              source_version: str = "1", artifacts: tuple = ()) -> JobRow:
    """Queue the "test" job of `url` (artifact "forged" with index sha256 INDEX_SHA unless given)."""
    job = JobRow(job_id=job_id("test", "x86_64", url), backend="test", architecture="x86_64", input_url=url,
                 distro=distro, releases=(None,), source_name=source_name, source_version=source_version,
                 artifacts=artifacts or (Artifact("forged", "1", "x86_64", url, INDEX_SHA),), priority=1,
                 queued_at=NOW, not_before=None, attempt=attempt, retries=0)
    update_queue(store, lambda jobs: {**jobs, job.job_id: job})
    return job


def claim(store, jid: str, holder: str, attempt: int = 1) -> str:
    """Take the claim of one attempt as `holder`; returns its token."""
    return Leases(store, ttl=30, clock_skew=5).acquire(claim_key(jid, attempt), holder).state.token


INDEX_SHA = "0" * 64  # what the forged jobs' index records
OTHER_SHA = "1" * 64  # what a rebuild that differs produced


def result_row(jid: str, signer: str, token: str, *, attempt: int = 1, status=Status.BAD, **changes) -> ResultRow:
    """A BAD (by default) result of the forged job `jid` as a worker would sign it, its log signed as b"log"."""
    prefix = build_prefix(jid, attempt, token)
    arts = {Status.GOOD: (ArtifactResult("forged", Status.GOOD, INDEX_SHA),),
            Status.BAD: (ArtifactResult("forged", Status.BAD, OTHER_SHA),)}.get(status, ())
    row = ResultRow(build_id=build_id(jid, attempt), job_id=jid, attempt=attempt, distro="testdistro",
                    architecture="x86_64", source_name="forged", source_version="1", status=status, reason=None,
                    artifacts=arts, worker_key_id=signer, worker_name="mallory", started_at=NOW,
                    built_at=NOW + timedelta(minutes=1), log_key=f"{prefix}/log", diffoscope_key=None,
                    attestation_key=None, files=(digest_of(f"{prefix}/log", b"log"),))
    return replace(row, **changes)


def signed_result(key, row: ResultRow, token: str, **payload_changes) -> dict:
    payload = {"schema": RESULT_SCHEMA, "result": record_to_json(row),
               "claim": {"token": token, "generation": 1, "queue": None}, "attestation": None, **payload_changes}
    if payload["schema"] == PREVIOUS_RESULT_SCHEMA:  # workers before results carried their attestation
        del payload["attestation"]
    return sign_document(payload, key)


def forge(store, key, jid: str, *, holder: str | None = None, log: bool = True, token: str | None = None,
          at: str | None = None, queue: bool = True, **changes) -> str:
    """A result for a queued job signed by `key`, with a claim held by `holder` (None: no claim)."""
    signer = key_id(key.public_key())
    if queue:
        n = next(i for i in range(1000) if forged_job(i) == jid)
        queue_job(store, forged_url(n), attempt=changes.get("attempt", 1))
    claim_token = claim(store, jid, holder, changes.get("attempt", 1)) if holder else "0" * 32
    token = token or claim_token
    row = result_row(jid, signer, token, **changes)
    if log and row.log_key:
        store.put(row.log_key, b"log")
    return put_json(store, at or result_key(jid, row.attempt), signed_result(key, row, token))


def test_the_payload_schemas_are_the_workers():
    assert RESULT_SCHEMA == worker_report.SCHEMA and WORKER_SCHEMA == worker_identity.SCHEMA


def test_results_of_an_authorized_worker_are_accepted(store, tmp_path):
    rows, worker = built(store, tmp_path)
    config = config_for(tmp_path, authorized=[worker.identity.public_key])
    found = collect(store, config, already=set())
    assert found.rejected == [] and found.trust.note is None
    assert found.trust.sources == {worker.identity.key_id: "authorized_workers"}
    status = {a.row.job_id: a.row.status for a in found.accepted}
    assert status == {rows[0].job_id: Status.GOOD, rows[1].job_id: Status.FAIL, rows[2].job_id: Status.BAD}
    fail = next(a for a in found.accepted if a.row.status is Status.FAIL)
    assert fail.row.artifacts == () and fail.row.reason
    for a in found.accepted:
        state, _ = Leases(store).read(claim_key(a.row.job_id, 1))
        assert a.claim_token == state.token and a.key == claim_notice_key(a.row.job_id, 1, "done", worker.identity.key_id)
    assert found.latest_attempts == {r.job_id: 1 for r in rows}
    # Build ids already compacted are skipped without being read.
    again = collect(store, config, already={f"{rows[0].job_id}-1"})
    assert sorted(a.row.job_id for a in again.accepted) == sorted(r.job_id for r in rows[1:])


def test_results_stored_by_earlier_workers_are_accepted_beside_receipts(store, tmp_path):
    """Workers before results were done receipts stored them in results/ with a separate receipt."""
    rows, worker = built(store, tmp_path)
    kid = worker.identity.key_id
    done = [claim_notice_key(r.job_id, 1, "done", kid) for r in rows]
    previous = to_previous_format(store, worker.identity, rows[1].job_id)
    config = config_for(tmp_path, authorized=[worker.identity.public_key])
    found = collect(store, config, already=set())
    assert found.rejected == [] and sorted(a.key for a in found.accepted) == sorted([done[0], previous, done[2]])
    assert found.latest_attempts == {r.job_id: 1 for r in rows}
    # The receipt beside it is its evidence: overwritten, the attempt fails closed (and the
    # junk, which does not say it is a receipt, is judged and listed as a result).
    receipt = store.get(done[1]).data
    store.put(done[1], b'{"signed": {}}')
    assert sorted((r.key, r.reason) for r in collect(store, config, already=set()).rejected) == sorted([
        (previous, Reason.CLAIM_TAKEN_OVER), (done[1], Reason.MALFORMED)])
    store.put(done[1], receipt)
    # The same signed result at both keys is one report; two different ones are neither.
    put_json(store, result_key(rows[0].job_id, 1), json.loads(store.get(done[0]).data))
    found = collect(store, config, already=set())
    assert found.rejected == [] and sorted(a.row.job_id for a in found.accepted) == sorted(r.job_id for r in rows)
    payload = json.loads(store.get(done[2]).data)["signed"]
    payload["result"]["reason"] = "said twice"
    other = put_json(store, result_key(rows[2].job_id, 1), sign_document(payload, worker.identity.key))
    found = collect(store, config, already=set())
    assert sorted((r.key, r.reason) for r in found.rejected) == sorted(
        [(done[2], Reason.REPLAYED), (other, Reason.REPLAYED)])
    assert {a.row.job_id for a in found.accepted} == {rows[0].job_id, rows[1].job_id}


def test_nothing_is_trusted_without_authorized_workers_or_signup_secret(store, tmp_path):
    rows, _ = built(store, tmp_path, 1)
    found = collect(store, config_for(tmp_path), already=set())
    assert found.accepted == []
    assert [r.reason for r in found.rejected] == [Reason.NO_TRUSTED_KEYS]
    assert "authorized_workers" in found.trust.note and "signup_secret" in found.trust.note


def test_enrolment_is_trusted_only_with_the_right_signup_secret(store, tmp_path):
    rows, worker = built(store, tmp_path, 1, signup_secret="Fk3q9ZmT7vXc2LpW8nRb4HsY6dJg5QeA")
    good = collect(store, config_for(tmp_path, signup_secret="Fk3q9ZmT7vXc2LpW8nRb4HsY6dJg5QeA"), already=set())
    assert [a.row.job_id for a in good.accepted] == [rows[0].job_id] and good.rejected == []
    assert good.trust.sources == {worker.identity.key_id: "enrolled as w1"}

    wrong = collect(store, config_for(tmp_path, signup_secret="Wq7Lm2Xv9Rt4Kc8Pz3Nd6Hb5Jf1Gs0Ya"), already=set())
    assert wrong.accepted == [] and [r.reason for r in wrong.rejected] == [Reason.UNKNOWN_KEY]
    assert [(r.key, r.reason) for r in wrong.trust.refused] == [(f"workers/{worker.identity.key_id}.json",
                                                                  Reason.SIGNUP)]


def test_enrolment_records_that_do_not_prove_their_key_are_refused(store, tmp_path):
    secret = "Fk3q9ZmT7vXc2LpW8nRb4HsY6dJg5QeA"
    mallory, victim = generate_key(), generate_key()
    tag = worker_identity.hmac_tag
    # Signed by mallory, but names the victim's key.
    claim_of = {"name": "victim", "public_key": public_key_b64(victim.public_key())}
    body = {"schema": WORKER_SCHEMA, **claim_of, "key_id": key_id(victim.public_key()), "enrolled_at": "x",
            "signup": tag(secret, claim_of)}
    put_json(store, f"workers/{key_id(victim.public_key())}.json", sign_document(body, mallory))
    # A valid record stored under another key id.
    own = {"name": "m", "public_key": public_key_b64(mallory.public_key())}
    body = {"schema": WORKER_SCHEMA, **own, "key_id": key_id(mallory.public_key()), "enrolled_at": "x",
            "signup": tag(secret, own)}
    put_json(store, f"workers/{'ab' * 32}.json", sign_document(body, mallory))
    put_json(store, f"workers/{'cd' * 32}.json", {"signed": "nonsense"})
    store.put(f"workers/{'ef' * 32}.json", b"\xff not json")
    found = collect(store, config_for(tmp_path, signup_secret=secret), already=set())
    assert found.trust.keys == {}
    assert sorted(r.reason for r in found.trust.refused) == sorted(
        [Reason.UNKNOWN_KEY, Reason.SCHEMA, Reason.SCHEMA, Reason.NOT_JSON])


def test_an_authorized_key_needs_no_enrolment(store, tmp_path):
    rows, worker = built(store, tmp_path, 1)
    store.delete(f"workers/{worker.identity.key_id}.json")
    found = collect(store, config_for(tmp_path, authorized=[worker.identity.public_key]), already=set())
    assert [a.row.job_id for a in found.accepted] == [rows[0].job_id]


def test_an_unreadable_authorized_key_is_a_config_error(store, tmp_path):
    with pytest.raises(ConfigError, match="authorized_workers"):
        collect(store, config_for(tmp_path, authorized=["not base64!"]), already=set())


def test_forged_tampered_and_replayed_results_are_rejected_with_reasons(store, tmp_path):
    rows, worker = built(store, tmp_path)
    a_key, a_id = worker.identity.key, worker.identity.key_id
    b_key, stranger = generate_key(), generate_key()
    b_id = key_id(b_key.public_key())
    config = config_for(tmp_path, authorized=[worker.identity.public_key, public_key_b64(b_key.public_key())])
    good, fail, bad = (claim_notice_key(r.job_id, 1, "done", a_id) for r in rows)  # stored as done receipts
    real = json.loads(store.get(good).data)
    expected = {}

    expected[forge(store, a_key, forged_job(0), holder=a_id)] = None  # a correct one: the helper works
    expected[forge(store, stranger, forged_job(1), holder=key_id(stranger.public_key()))] = Reason.UNKNOWN_KEY
    unsigned = dict(signed_result(a_key, result_row(forged_job(2), a_id, "1" * 32), "1" * 32), signatures=[])
    expected[put_json(store, result_key(forged_job(2), 1), unsigned)] = Reason.UNSIGNED
    expected[forge(store, a_key, forged_job(3), holder=a_id, worker_key_id=b_id)] = Reason.WRONG_SIGNER
    expected[put_json(store, result_key(rows[0].job_id, 2), real)] = Reason.REPLAYED  # another attempt
    expected[put_json(store, result_key(forged_job(4), 1), real)] = Reason.REPLAYED  # another job
    # ... and as done receipts: another attempt's, another job's; and at another trusted worker's
    # receipt key of the same attempt, which also fails that attempt closed (its evidence overwritten)
    expected[put_json(store, claim_notice_key(rows[0].job_id, 2, "done", a_id), real)] = Reason.REPLAYED
    expected[put_json(store, claim_notice_key(forged_job(15), 1, "done", a_id), real)] = Reason.REPLAYED
    expected[put_json(store, claim_notice_key(rows[1].job_id, 1, "done", b_id),
                      json.loads(store.get(fail).data))] = Reason.REPLAYED
    tampered = json.loads(store.get(bad).data)
    tampered["signed"]["result"]["status"] = "GOOD"
    expected[put_json(store, bad, tampered)] = Reason.BAD_SIGNATURE
    store.put(result_key(forged_job(5), 1), b"{" + b" " * (1 << 20) + b"}")
    expected[result_key(forged_job(5), 1)] = Reason.OVERSIZED
    store.put(result_key(forged_job(6), 1), b"not json")
    expected[result_key(forged_job(6), 1)] = Reason.NOT_JSON
    expected[put_json(store, result_key(forged_job(7), 1), {"signed": real["signed"]})] = Reason.MALFORMED
    doc = signed_result(a_key, result_row(forged_job(8), a_id, "2" * 32), "2" * 32, schema="rebuilder.result/9")
    expected[put_json(store, result_key(forged_job(8), 1), doc)] = Reason.SCHEMA
    # B is trusted, but the claim is A's: B did not build this attempt.
    a_token = claim(store, forged_job(9), a_id)
    expected[forge(store, b_key, forged_job(9), token=a_token)] = Reason.NOT_CLAIM_HOLDER
    expected[forge(store, a_key, forged_job(10), holder=a_id, token="3" * 32)] = Reason.NOT_CLAIM_HOLDER
    expected[forge(store, a_key, forged_job(11))] = Reason.NO_CLAIM
    expected[forge(store, a_key, forged_job(12), holder=a_id, log_key="builds/elsewhere/log")] = \
        Reason.FILES_OUTSIDE_CLAIM
    expected[forge(store, a_key, forged_job(13), holder=a_id, log=False)] = Reason.MISSING_LOG
    expected[forge(store, a_key, forged_job(14), holder=a_id, status=Status.FAIL,
                   artifacts=(ArtifactResult("x", Status.BAD, None),))] = Reason.FAIL_WITH_ARTIFACTS
    expected[put_json(store, "results/not-a-job.json", real)] = Reason.BAD_KEY
    expected[good] = None
    expected[fail] = Reason.CLAIM_TAKEN_OVER

    found = collect(store, config, already=set())
    reasons = {r.key: r.reason for r in found.rejected}
    assert reasons == {k: v for k, v in expected.items() if v is not None}
    assert sorted(a.key for a in found.accepted) == sorted(k for k, v in expected.items() if v is None)
    assert all(r.detail for r in found.rejected)


def test_a_result_whose_claim_expired_is_still_accepted(store, tmp_path):
    # A worker leaves the claim of an attempt it reported to expire. Another worker finds the
    # result before it would take the expired claim over, and leaves it: publish ties the
    # result to the claim as its holder left it.
    from jobs.core.lease import LeaseState
    from jobs.work.claim import _acquire, claim_next

    rows, worker = built(store, tmp_path, 1)
    key = claim_key(rows[0].job_id, 1)
    leases = Leases(store, ttl=30, clock_skew=5)
    state, etag = leases.read(key)
    dead = LeaseState(state.holder, state.token, state.acquired_at, state.renewed_at, 0.0, state.generation,
                      meta=state.meta)
    store.put_if_match(key, dead.to_bytes(), etag)
    assert claim_next(store, leases, "another-worker", rows) is None  # not rebuilt
    assert leases.read(key)[0] == dead  # not even taken over
    config = config_for(tmp_path, authorized=[worker.identity.public_key])
    collected = collect(store, config, already=set())
    assert [a.row.job_id for a in collected.accepted] == [rows[0].job_id] and not collected.rejected
    # A worker that took the expired claim over just before the result landed finds it then,
    # and releases the claim as done with the finished claim's token and holder: still accepted.
    assert _acquire(store, leases, "late-worker", rows[0], key, None) is None
    after, _ = leases.read(key)
    assert after.meta["done"] and after.meta["result_token"] == state.token and after.holder == "late-worker"
    collected = collect(store, config, already=set())
    assert [a.row.job_id for a in collected.accepted] == [rows[0].job_id] and not collected.rejected


SECRET = "Fk3q9ZmT7vXc2LpW8nRb4HsY6dJg5QeA"


def test_overwriting_a_worker_record_does_not_de_trust_the_worker(store, tmp_path):
    """Issue #14 item 6: junk written over another worker's `workers/<id>.json` made its pending
    result fail as unknown-key. Publish judges enrolment from its own copy of the records it
    accepted, so the result is still accepted; the junk is listed for operators."""
    rows, worker = built(store, tmp_path, 2, signup_secret=SECRET)
    config = config_for(tmp_path, signup_secret=SECRET)
    judged = collect(store, config, already={f"{rows[1].job_id}-1"})  # judging alone writes nothing
    assert judged.trust.enrolled.changed and list(store.list(ENROLLED)) == []
    first = verify_results(store, config, already={f"{rows[1].job_id}-1"})  # one result pending after this run
    assert [a.row.job_id for a in first.accepted] == [rows[0].job_id]
    assert json.loads(store.get(ENROLLED).data)["records"].keys() == {worker.identity.key_id}
    record = f"workers/{worker.identity.key_id}.json"
    for junk in (b"\xff junk", json.dumps({"signed": {"name": "evil"}, "signatures": []}).encode()):
        store.put(record, junk)
        found = verify_results(store, config, already={f"{rows[0].job_id}-1"})
        assert [a.row.job_id for a in found.accepted] == [rows[1].job_id] and found.rejected == []
        assert found.trust.sources == {worker.identity.key_id: "enrolled as w1"}
        (refused,) = found.trust.refused
        assert refused.key == record and "keeps trusting the record it accepted" in refused.detail
    store.delete(record)
    assert [a.row.job_id for a in verify_results(store, config, already={f"{rows[0].job_id}-1"}).accepted] == [rows[1].job_id]
    # The site's worker list keeps its name and number too.
    store.put(record, json.dumps({"signed": {"name": "evil"}}).encode())
    assert read_workers(store).to_pylist() == [{"key_id": worker.identity.key_id, "name": "w1", "worker_id": 1}]


def test_a_valid_record_of_another_key_cannot_replace_the_copy(store, tmp_path):
    """A record signed by another key, or a second record of the key, changes nothing publish accepted."""
    rows, worker = built(store, tmp_path, 1, signup_secret=SECRET)
    config = config_for(tmp_path, signup_secret=SECRET)
    verify_results(store, config, already=set())
    before = store.get(ENROLLED).data
    renamed = replace(worker.identity, name="renamed")
    store.put(f"workers/{worker.identity.key_id}.json",
              json.dumps(sign_document(worker_identity.enrolment_payload(renamed, SECRET), worker.identity.key)).encode())
    found = verify_results(store, config, already=set())
    assert found.trust.sources == {worker.identity.key_id: "enrolled as w1"} and store.get(ENROLLED).data == before


def test_rotating_the_signup_secret_revokes_enrolments_until_the_worker_enrols_again(store, tmp_path):
    rows, worker = built(store, tmp_path, 1, signup_secret=SECRET)
    assert verify_results(store, config_for(tmp_path, signup_secret=SECRET), already=set()).accepted
    rotated = "Wq7Lm2Xv9Rt4Kc8Pz3Nd6Hb5Jf1Gs0Ya"
    gone = verify_results(store, config_for(tmp_path, signup_secret=rotated), already=set())
    assert gone.accepted == [] and gone.trust.keys == {}
    # The worker restarts with the new secret: its old record no longer proves anything, it replaces it.
    worker_identity.enrol(store, worker.identity, rotated)
    back = verify_results(store, config_for(tmp_path, signup_secret=rotated), already=set())
    assert [a.row.job_id for a in back.accepted] == [rows[0].job_id]


def test_a_worker_writes_its_record_once_and_repairs_one_that_proves_nothing(store, tmp_path, capsys):
    identity = load_identity(parse_worker_config({"work_dir": str(tmp_path / "w")}), "w9")
    key = worker_identity.enrol(store, identity, SECRET)
    original = store.get(key)
    assert worker_identity.enrol(store, identity, SECRET) == key
    assert store.get(key).etag == original.etag  # kept: create-only, never rewritten
    store.put(key, b"junk")
    worker_identity.enrol(store, identity, SECRET)
    assert "held something that is not JSON; replaced it" in capsys.readouterr().err
    assert worker_identity.record_problem(store.get(key).data, identity, SECRET) is None


def test_a_record_overwritten_before_publish_saw_it_is_repaired_after_the_next_build(store, tmp_path, capsys):
    """The window the copy cannot cover: junk written over a record publish has not seen yet.
    The worker checks its record after every build and rewrites one that proves nothing, so
    its results are accepted by the next publish instead of waiting for a restart."""
    synthetic_jobs(store, tmp_path, 2)
    honest = worker_for(store, tmp_path, signup_secret=SECRET)

    class Overwritten(Worker):
        def build_one(self, claim, stats):
            super().build_one(claim, stats)
            self.store.put(worker_key(self.identity.key_id), b"junk from another worker credential")

    worker = Overwritten(**{f.name: getattr(honest, f.name) for f in fields(Worker)})
    assert len(worker.run(until_idle=True).built) == 2
    assert capsys.readouterr().err.count("held something that is not JSON; replaced it") == 2
    found = verify_results(store, config_for(tmp_path, signup_secret=SECRET), already=set())
    assert len(found.accepted) == 2 and found.rejected == [] and found.trust.refused == []


@pytest.mark.parametrize("stamp", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
def test_a_time_past_the_calendar_in_utc_is_a_schema_rejection(store, tmp_path, stamp):
    # A signed result whose built_at is a real date that UTC puts outside years 1-9999: astimezone raised
    # OverflowError (not a ValueError), out of record_from_json and the whole publish.
    key = generate_key()
    signer = key_id(key.public_key())
    config = config_for(tmp_path, authorized=[public_key_b64(key.public_key())])
    jid = forged_job(0)
    queue_job(store, forged_url(0))
    token = claim(store, jid, signer)
    row = result_row(jid, signer, token)
    store.put(row.log_key, b"log")
    payload = {"schema": RESULT_SCHEMA, "result": {**record_to_json(row), "built_at": stamp},
               "claim": {"token": token, "generation": 1, "queue": None}, "attestation": None}
    put_json(store, result_key(jid, 1), sign_document(payload, key))
    found = collect(store, config, already=set())
    assert not found.accepted and [(r.key, r.reason) for r in found.rejected] == [(result_key(jid, 1), Reason.SCHEMA)]
    assert f"timestamp out of range in UTC: '{stamp}'" in found.rejected[0].detail
