"""The trust model's attacks (issue #14, docs/trust.md): each tried the way an attacker would.

The attacker holds one trusted worker key (or only write access to the worker prefixes)
and writes whatever it likes under `claims/`, `results/` and `builds/`. Each test builds
the honest state with a real worker, plants the attack, runs the real publish and checks
that the result is refused with its reason, listed for operators, and changes no verdict,
no feed and no page. Runs against the local store and a real SeaweedFS.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from jobs.core.layout import build_prefix, claim_key, claim_notice_key, result_key
from jobs.core.lease import Leases, LeaseState
from jobs.core.model import ArtifactResult, JobRow, PackageStateRow, ResultRow, Status, build_id, job_id
from jobs.core.queue import read_queue
from jobs.core.signing import make_link, rebuild_link_name, sign_document, sign_link
from jobs.core.store import NotFound, open_store
from jobs.publish.run import publish
from jobs.publish.state.update import publish_state
from jobs.publish.state.verify import PREVIOUS_RESULT_SCHEMA, Reason, collect
from jobs.work.claim import announce_start
from jobs.work.identity import WorkerIdentity
from jobs.work.report import digest_of
from jobs.work.run import Worker
from tests.publish.previous_format import to_previous_format
from tests.publish.sitefix import write_state
from tests.publish.test_verify import NOW, built, claim, config_for, put_json, signed_result, worker_for
from tests.work.test_worker import script, synthetic_jobs
from tests.work.worker_child import make_worker


def site_json(store, key: str):
    return json.loads(store.get(f"site/{key}").data)


def package_status(store, name: str) -> str | None:
    """The verdict the published v0 list gives a package (what rebuilderd's consumers read)."""
    found = [r["status"] for r in site_json(store, "api/v0/pkgs/list") if r["name"] == name]
    return found[0] if found else None


def forged(store, attacker: WorkerIdentity, job: JobRow, *, attempt: int | None = None, status=Status.BAD,
           artifacts: tuple[ArtifactResult, ...] | None = None, files: dict[str, bytes] | None = None,
           take_claim: bool = True, attestation: dict | None = None, **fields) -> str:
    """A result signed by `attacker` (a trusted key) for `job`, consistent with the claim object as it stands.

    `take_claim`: take the claim as the attacker first (create, or take over a released one).
    `attestation`: carried inside the result (`rebuilder.result/3`); an `attestation.json` in
    `files` makes it a result of the previous format, which names that file instead.
    """
    attempt = attempt if attempt is not None else job.attempt
    if take_claim:
        claim(store, job.job_id, attacker.key_id, attempt)
    state, _ = Leases(store).read(claim_key(job.job_id, attempt))
    prefix = build_prefix(job.job_id, attempt, state.token)
    blobs = {"log": b"a log\n", **(files or {})}
    for name, data in blobs.items():
        store.put(f"{prefix}/{name}", data)
    if artifacts is None:
        artifacts = tuple(ArtifactResult(a.name, Status.BAD, "1" * 64) for a in job.artifacts)
    row = ResultRow(build_id=build_id(job.job_id, attempt), job_id=job.job_id, attempt=attempt, distro=job.distro,
                    architecture=job.architecture, source_name=job.source_name, source_version=job.source_version,
                    status=status, reason="forged", artifacts=artifacts, worker_key_id=attacker.key_id,
                    worker_name="mallory", started_at=NOW, built_at=NOW, log_key=f"{prefix}/log",
                    diffoscope_key=None,
                    attestation_key=f"{prefix}/attestation.json" if "attestation.json" in blobs else None,
                    files=tuple(digest_of(f"{prefix}/{n}", d) for n, d in blobs.items()))
    row = ResultRow(**{**{f: getattr(row, f) for f in ResultRow.__slots__}, **fields})
    signed = {"token": state.token, "generation": state.generation, "queue": state.meta.get("queue")}
    previous = {"schema": PREVIOUS_RESULT_SCHEMA} if "attestation.json" in blobs else {"attestation": attestation}
    return put_json(store, result_key(job.job_id, attempt), signed_result(attacker.key, row, state.token,
                                                                          claim=signed, **previous))


def jobs_with_state(store, tmp_path: Path, n: int) -> list[JobRow]:
    """`n` queued synthetic jobs and the package state a sync would have written for them."""
    rows = synthetic_jobs(store, tmp_path, n)
    add_state(store, rows)
    return rows


def add_state(store, rows: list[JobRow]) -> None:
    write_state(store, "synthetic", [
        PackageStateRow.for_artifact(a, distro=r.distro, release=None, architecture=r.architecture,
                                     source_name=r.source_name, source_version=r.source_version, backend=r.backend,
                                     input_url=r.input_url, sync_id="s", seen_at=NOW)
        for r in rows for a in r.artifacts])


def trusted(tmp_path: Path, *workers: Worker | WorkerIdentity):
    return config_for(tmp_path, authorized=[getattr(w, "identity", w).public_key for w in workers])


def check_refused(store, summary, key: str, reason: Reason) -> None:
    """Refused with `reason`, listed for operators, in neither the history nor the queue's changes."""
    rejected = {r.key: r for r in summary.state.rejected}
    assert key in rejected and rejected[key].reason == reason, rejected.get(key)
    assert key not in {a.key for a in summary.state.accepted}
    feed = site_json(store, "api/v1/rejected.json")
    listed = {r["key"]: r for r in feed["rejected"]}
    assert listed[key]["reason"] == reason.value and listed[key]["detail"]
    page = store.get("site/rejected.html").data.decode()
    assert reason.value in page
    assert b"rejected.html" in store.get("site/index.html").data


def test_a_good_for_a_repacked_artifact_is_refused(store, tmp_path):
    """A trusted worker reports GOOD with the sha256 of a file with an extra /usr/bin/backdoor."""
    (job,), honest = built(store, tmp_path, 1)
    add_state(store, [job])
    store.delete(claim_notice_key(job.job_id, 1, "done", honest.identity.key_id))  # as if the honest one never reported
    state, etag = Leases(store).read(claim_key(job.job_id, 1))  # the honest claim, left to expire: it has
    store.put_if_match(claim_key(job.job_id, 1), replace(state, expires_at=0.0).to_bytes(), etag)  # expired
    mallory = worker_for(store, tmp_path, "mallory").identity
    original = Path(job.artifacts[0].url.removeprefix("file://")).read_bytes()
    repacked = tmp_path / job.artifacts[0].filename
    repacked.parent.mkdir(exist_ok=True)
    repacked.write_bytes(original + b"/usr/bin/backdoor")
    digest = hashlib.sha256(repacked.read_bytes()).hexdigest()
    link = sign_link(make_link(rebuild_link_name(repacked.name), materials={}, products={repacked.name: repacked}),
                     mallory.key)
    key = forged(store, mallory, job, status=Status.GOOD,
                 artifacts=(ArtifactResult(job.artifacts[0].name, Status.GOOD, digest),),
                 files={"attestation.json": json.dumps(link).encode()})
    summary = publish(store, trusted(tmp_path, honest, mallory), now=NOW)
    check_refused(store, summary, key, Reason.DIGEST_MISMATCH)
    assert summary.state.countersigned == {}  # never countersigned
    assert package_status(store, job.source_name) != "GOOD"
    assert read_queue(store).jobs[job.job_id].attempt == 1  # the job still waits for an honest build


def test_a_good_whose_attestation_names_another_digest_is_refused(store, tmp_path):
    """The result row says the index's sha256, the attestation (what consumers verify) another."""
    (job,) = jobs_with_state(store, tmp_path, 1)
    mallory = worker_for(store, tmp_path, "mallory")
    other = tmp_path / "other"
    other.write_bytes(b"backdoored")
    link = sign_link(make_link(rebuild_link_name(job.artifacts[0].filename), materials={},
                               products={job.artifacts[0].filename: other}), mallory.identity.key)
    key = forged(store, mallory.identity, job, status=Status.GOOD,
                 artifacts=(ArtifactResult(job.artifacts[0].name, Status.GOOD, job.artifacts[0].sha256),),
                 files={"attestation.json": json.dumps(link).encode()})
    summary = publish(store, trusted(tmp_path, mallory), now=NOW)
    check_refused(store, summary, key, Reason.ATTESTATION_MISMATCH)
    assert package_status(store, job.source_name) != "GOOD"


def test_a_bad_for_a_good_package_that_is_not_queued_is_refused(store, tmp_path):
    """A trusted worker claims attempt 2 of a GOOD, finished package and reports BAD."""
    (job,), honest = built(store, tmp_path, 1)
    add_state(store, [job])
    config = trusted(tmp_path, honest)
    publish(store, config, now=NOW)
    assert package_status(store, job.source_name) == "GOOD" and job.job_id not in read_queue(store).jobs
    mallory = worker_for(store, tmp_path, "mallory")
    key = forged(store, mallory.identity, job, attempt=2)
    summary = publish(store, trusted(tmp_path, honest, mallory), now=NOW)
    check_refused(store, summary, key, Reason.NOT_QUEUED)
    assert package_status(store, job.source_name) == "GOOD"  # the feed did not flip
    assert json.loads(store.get("site/api/v0/dashboard").data)  # and the site was written


def test_made_up_attempts_and_jobs_are_refused(store, tmp_path):
    (queued,) = jobs_with_state(store, tmp_path, 1)
    mallory = worker_for(store, tmp_path, "mallory")
    never = JobRow(**{**{f: getattr(queued, f) for f in JobRow.__slots__},
                      "input_url": "file:///never/queued.pkg.tar.zst",
                      "job_id": job_id("test", "x86_64", "file:///never/queued.pkg.tar.zst")})
    far = forged(store, mallory.identity, never, attempt=999999999)
    ahead = forged(store, mallory.identity, queued, attempt=7)
    summary = publish(store, trusted(tmp_path, mallory), now=NOW)
    check_refused(store, summary, far, Reason.NOT_QUEUED)
    check_refused(store, summary, ahead, Reason.WRONG_ATTEMPT)
    assert read_queue(store).jobs[queued.job_id].attempt == 1


def test_a_result_naming_another_package_is_refused(store, tmp_path):
    """A result for one job that names another package's source name and another distro."""
    one, two = jobs_with_state(store, tmp_path, 2)
    mallory = worker_for(store, tmp_path, "mallory")
    renamed = forged(store, mallory.identity, one, source_name=two.source_name, distro="debian")
    wrong_artifacts = forged(store, mallory.identity, two,
                             artifacts=(ArtifactResult(one.artifacts[0].name, Status.BAD, "1" * 64),))
    summary = publish(store, trusted(tmp_path, mallory), now=NOW)
    check_refused(store, summary, renamed, Reason.JOB_MISMATCH)
    check_refused(store, summary, wrong_artifacts, Reason.JOB_MISMATCH)
    assert {r["distro"] for r in site_json(store, "api/v0/pkgs/list")} <= {"testdistro"}


def test_a_log_swapped_before_publish_is_refused_and_after_publish_is_not_published(store, tmp_path):
    (good, fail, bad), honest = built(store, tmp_path, 3)
    add_state(store, [good, fail, bad])
    config = trusted(tmp_path, honest)
    stored = {r.job_id: claim_notice_key(r.job_id, 1, "done", honest.identity.key_id) for r in (good, fail, bad)}
    row_of = {r.job_id: json.loads(store.get(stored[r.job_id]).data)["signed"]["result"] for r in (good, fail, bad)}
    store.put(row_of[bad.job_id]["log_key"], b"a log rewritten by whoever can write builds/")
    summary = publish_state(store, config, now=NOW)
    rejected = {r.key: r.reason for r in summary.rejected}
    assert rejected == {stored[bad.job_id]: Reason.FILE_MISMATCH}
    # Accepted, then swapped before the site copies it: the swapped bytes are not published.
    store.put(row_of[fail.job_id]["log_key"], b"swapped after the fact")
    publish(store, config, now=NOW)
    logs = {}
    for record in site_json(store, "api/v0/pkgs/list"):
        try:
            logs[record["name"]] = store.get(f"site/api/v0/builds/{record['build_id']}/log").data
        except (NotFound, TypeError):
            logs[record["name"]] = None
    assert logs[fail.source_name] is None and logs[good.source_name] is not None
    assert b"swapped" not in b"".join(v for v in logs.values() if v)


def test_an_unbound_old_format_result_is_refused_with_a_clear_reason(store, tmp_path):
    (job,) = synthetic_jobs(store, tmp_path, 1)
    mallory = worker_for(store, tmp_path, "mallory")
    key = forged(store, mallory.identity, job)
    doc = json.loads(store.get(key).data)
    payload = dict(doc["signed"], schema="rebuilder.result/1")
    put_json(store, key, sign_document(payload, mallory.identity.key))
    found = collect(store, trusted(tmp_path, mallory), already=set())
    assert [(r.reason, "does not bind its uploaded files" in r.detail) for r in found.rejected] == [
        (Reason.SCHEMA, True)]


def test_a_claim_overwritten_while_live_does_not_get_its_writer_published(store_factory, tmp_path):
    """Racing with a hostile writer: a plain PUT over a live claim, then the intruder's own signed result.

    The victim's next renewal is refused while its lease is live: it stops, reports nothing
    and signs a notice; publish then refuses the intruder's result (`claim-taken-over`).
    """
    url = store_factory.url()
    store = open_store(url)
    (job,) = jobs_with_state(store, tmp_path, 1)
    pidfile = tmp_path / "backend.pid"
    slow = script(tmp_path / "slow.sh", f'echo $$ > {pidfile}\nsleep 60\ncp "$1" "$REBUILDERD_OUTDIR/"')
    victim = make_worker(url, tmp_path / "victim", "victim", str(slow), 4)
    mallory = make_worker(url, tmp_path / "mallory", "mallory", str(slow), 4)
    landed: list[str] = []
    config = trusted(tmp_path, victim, mallory)
    early: list = []

    def intrude():
        _wait_for(pidfile.exists)
        key = claim_key(job.job_id, 1)
        held, _ = Leases(store).read(key)
        assert held.holder == victim.identity.key_id and time.time() < held.expires_at  # live
        # No condition at all: what any worker credential can do (docs/trust.md).
        store.put(key, LeaseState(mallory.identity.key_id, "b" * 32, time.time(), time.time(),
                                  time.time() + 600, meta={"queue": held.meta.get("queue")}).to_bytes())
        landed.append(forged(store, mallory.identity, job, take_claim=False, reason="intruder"))
        assert Leases(store).read(key)[0].holder == mallory.identity.key_id  # the victim has not noticed yet
        # A publish now, before the victim's next renewal: only the victim's start marker
        # stands against the intruder, and it holds the result back until it has settled.
        early.append(collect(store, config, already=set()))

    thread = threading.Thread(target=intrude)
    thread.start()
    stats = victim.run(once=True)
    thread.join()
    assert stats.lost == [f"{job.job_id}-1"] and stats.built == []
    notice = claim_notice_key(job.job_id, 1, "lost", victim.identity.key_id)
    assert json.loads(store.get(notice).data)["signed"]["found"]["holder"] == mallory.identity.key_id
    assert early[0].settling == landed and early[0].accepted == [] and early[0].rejected == []
    # The intruder's result is consistent with the claim it wrote: only the victim's notice exposes it.
    evidence = store.get(notice).data
    store.delete(notice)  # what a worker credential could do, were DeleteObject not denied (docs/trust.md)
    assert collect(store, config, already=set()).settling == landed
    settled = time.time() + config.lease.settle_seconds + 1
    assert [a.key for a in collect(store, config, already=set(), clock=lambda: settled).accepted] == landed
    store.put(notice, b"{}")  # overwritten instead: fails closed
    assert [r.reason for r in collect(store, config, already=set()).rejected] == [Reason.CLAIM_TAKEN_OVER]
    store.put(notice, evidence)
    summary = publish(store, config, now=NOW)
    check_refused(store, summary, landed[0], Reason.CLAIM_TAKEN_OVER)
    assert package_status(store, job.source_name) == "UNKWN"


def test_a_claim_cannot_be_taken_by_racing_workers_while_live(store):
    """Polite contenders (create-only, then CAS on the ETag read) never take a live claim, however many."""
    key = claim_key("0" * 32, 1)
    holder = Leases(store, ttl=600, clock_skew=30).acquire(key, "holder")
    won: list[str] = []

    def contend(i: int) -> None:
        try:
            Leases(store, ttl=600, clock_skew=30).acquire(key, f"c{i}")
            won.append(f"c{i}")
        except Exception:  # noqa: BLE001 - LeaseHeld is the expected answer
            pass

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert won == [] and Leases(store).read(key)[0] == holder.state


def _wait_for(check, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_the_rejected_list_is_bounded_and_escaped(tmp_path):
    from datetime import timedelta

    from jobs.core.store.local import LocalStore
    from jobs.publish.site.build import MAX_REJECTED, build_site
    from jobs.publish.state.verify import RejectedResult

    store = LocalStore(tmp_path / "store", fsync=False)
    rejected = [RejectedResult(key=f"results/{i:032x}/1.json", job_id=f"{i:032x}", attempt=1, worker_key_id="ab" * 32,
                               reason="job-mismatch", detail=f"source_name '<script>alert({i})</script>'",
                               at=NOW + timedelta(seconds=i)) for i in range(MAX_REJECTED + 50)]
    site = build_site(store, now=NOW, public_keys={"current": []}, rebuilder_name="t", rejected=rejected)
    feed = json.loads(site.files["api/v1/rejected.json"].data)
    assert feed["count"] == MAX_REJECTED + 50 and feed["shown"] == len(feed["rejected"]) == MAX_REJECTED
    assert feed["rejected"][0]["job_id"] == f"{MAX_REJECTED + 49:032x}"  # the most recent first
    page = site.files["rejected.html"].data.decode()
    assert "<script>" not in page and "&lt;script&gt;alert(249)" in page
    assert f"the {MAX_REJECTED} most recent shown" in page


@pytest.mark.parametrize("stored_as", ["receipt", "previous"])
def test_a_finished_attempt_overwritten_before_publish_is_refused(store, tmp_path, stored_as):
    """After the honest worker reported and released, a plain PUT replaces its claim and its result.

    The honest worker no longer renews, so only its signed done receipt exposes the swap: the
    result itself (`receipt`), or the receipt beside a result in `results/` (`previous`
    workers), which the swapped result replaces.
    """
    (job,), honest = built(store, tmp_path, 1)
    add_state(store, [job])
    receipt = claim_notice_key(job.job_id, 1, "done", honest.identity.key_id)
    assert json.loads(store.get(receipt).data)["signed"]["result"]["job_id"] == job.job_id
    if stored_as == "previous":
        store.delete(to_previous_format(store, honest.identity, job.job_id))  # overwritten below
        assert json.loads(store.get(receipt).data)["signed"]["job_id"] == job.job_id
    mallory = worker_for(store, tmp_path, "mallory")
    key = claim_key(job.job_id, 1)
    held, _ = Leases(store).read(key)
    store.put(key, LeaseState(mallory.identity.key_id, "c" * 32, time.time(), time.time(), time.time() + 600,
                              meta={"queue": held.meta.get("queue")}).to_bytes())
    swapped = forged(store, mallory.identity, job, take_claim=False, reason="swapped")
    summary = publish(store, trusted(tmp_path, honest, mallory), now=NOW)
    check_refused(store, summary, swapped, Reason.CLAIM_TAKEN_OVER)
    assert package_status(store, job.source_name) == "UNKWN"


def _dead_claim(store, holder: WorkerIdentity, job: JobRow) -> None:
    """`holder` announced and claimed attempt 1, then died: its lease ran out long ago."""
    announce_start(store, holder, job.job_id, 1)
    long_ago = time.time() - 3600
    store.put(claim_key(job.job_id, 1), LeaseState(holder.key_id, "d" * 32, long_ago, long_ago, long_ago + 30,
                                                   meta={"job_id": job.job_id, "attempt": 1}).to_bytes())


def test_a_takeover_of_a_dead_workers_claim_is_accepted_once_settled(store, tmp_path):
    """A legitimate takeover looks like a hijack until the old holder had time to object.

    The first publish holds the new holder's result back (no verdict, no queue change); once
    it is older than a renewal interval plus the skew allowance it is accepted.
    """
    (job,) = jobs_with_state(store, tmp_path, 1)
    gone = worker_for(store, tmp_path, "gone")
    _dead_claim(store, gone.identity, job)
    heir = worker_for(store, tmp_path, "heir")
    assert len(heir.run(until_idle=True).built) == 1
    config = trusted(tmp_path, gone, heir)
    summary = publish(store, config, now=NOW)
    key = claim_notice_key(job.job_id, 1, "done", heir.identity.key_id)
    assert summary.state.settling == [key] and summary.state.accepted == [] and summary.state.rejected == []
    assert "1 results settling" in summary.state.line()
    assert package_status(store, job.source_name) == "UNKWN" and job.job_id in read_queue(store).jobs
    assert store.get(claim_notice_key(job.job_id, 1, "start", gone.identity.key_id))  # not pruned meanwhile
    later = time.time() + config.lease.settle_seconds + 1
    collected = collect(store, config, already=set(), clock=lambda: later)
    assert [a.key for a in collected.accepted] == [key] and collected.settling == []


def test_only_a_standing_start_marker_of_a_trusted_worker_holds_a_result_back(store, tmp_path):
    (job,) = jobs_with_state(store, tmp_path, 1)
    loser, stranger = worker_for(store, tmp_path, "loser"), worker_for(store, tmp_path, "stranger")
    announce_start(store, loser.identity, job.job_id, 1, withdrawn=True)  # lost the race, said so
    announce_start(store, stranger.identity, job.job_id, 1)  # not a trusted key: noise
    honest = worker_for(store, tmp_path, "honest")
    assert len(honest.run(until_idle=True).built) == 1
    config = trusted(tmp_path, honest, loser)
    assert [a.key for a in collect(store, config, already=set()).accepted] == [
        claim_notice_key(job.job_id, 1, "done", honest.identity.key_id)]
    # A trusted worker's marker overwritten by another writer fails closed, like its notices.
    store.put(claim_notice_key(job.job_id, 1, "start", loser.identity.key_id), b'{"signed": {}}')
    rejected = collect(store, config, already=set()).rejected
    assert [r.reason for r in rejected] == [Reason.CLAIM_TAKEN_OVER] and "overwritten" in rejected[0].detail


def test_a_worker_announces_before_it_claims_and_withdraws_after_a_lost_race(store, tmp_path):
    """The marker exists before the claim (so before anybody could replace it); a loser withdraws."""
    from jobs.work.claim import _acquire, claim_next

    (job,) = jobs_with_state(store, tmp_path, 1)
    first, second = worker_for(store, tmp_path, "first"), worker_for(store, tmp_path, "second")
    writes: list[str] = []
    real_put_if_absent = store.put_if_absent

    def spy(key, *args, **kwargs):
        writes.append(key)
        return real_put_if_absent(key, *args, **kwargs)

    store.put_if_absent = spy
    marker = claim_notice_key(job.job_id, 1, "start", first.identity.key_id)
    got = claim_next(store, first.leases, first.identity.key_id, [job], identity=first.identity)
    assert got is not None and writes == [claim_key(job.job_id, 1)]
    signed = json.loads(store.get(marker).data)["signed"]
    assert signed["withdrawn"] is False and signed["schema"] == "rebuilder.claim-start/1"
    assert store.head(marker).last_modified <= store.head(claim_key(job.job_id, 1)).last_modified
    # Seen held in the listing: left alone, nothing written.
    second_marker = claim_notice_key(job.job_id, 1, "start", second.identity.key_id)
    assert claim_next(store, second.leases, second.identity.key_id, [job], identity=second.identity) is None
    assert not any(i.key == second_marker for i in store.list("claims/"))
    # Listed free, claimed by the first meanwhile: the create-only write loses, the marker is withdrawn.
    assert _acquire(store, second.leases, second.identity.key_id, job, claim_key(job.job_id, 1), None,
                    second.identity) is None
    lost = json.loads(store.get(second_marker).data)["signed"]
    assert lost["withdrawn"] is True
