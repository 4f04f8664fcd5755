"""Workers sharing one store: real rebuilds, many processes, killed workers, lost claims.

Everything runs against the local store and a real SeaweedFS.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest

from jobs.core.config import RebuilderConfig, parse_worker_config
from jobs.core.layout import CLAIM_NOTICE_KEY, RESULT_KEY
from jobs.core.lease import Leases, LeaseState
from jobs.core.model import Artifact, JobRow, Status, job_id
from jobs.core.queue import read_queue, update_queue
from jobs.core.signing import load_public_key_pem, public_key_from_b64, verify_document, verify_link
from jobs.core.store import open_store
from jobs.sync.run import sync_profile
from jobs.work.backends import shipped_backend
from jobs.work.identity import load_identity
from jobs.work.run import Worker
from tests.sync.test_sync_job import profile_for
from tests.work.worker_child import make_worker

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


def results(store) -> dict[tuple[str, int], dict]:
    """Every stored result by (job id, attempt): stored as done receipts, or under results/ (earlier workers)."""
    out = {}
    for info in [*store.list("results/"), *store.list("claims/")]:
        match = RESULT_KEY.fullmatch(info.key) or CLAIM_NOTICE_KEY.fullmatch(info.key)
        doc = json.loads(store.get(info.key).data) if match is not None else None
        if match is not None and (match.re is RESULT_KEY or "result" in doc["signed"]):
            out[(match.group(1), int(match.group(2)))] = doc
    return out


def script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\nset -e\n" + body + "\n")
    path.chmod(0o755)
    return path


def synthetic_jobs(store, tmp_path: Path, n: int) -> list[JobRow]:
    """`n` jobs of the "test" backend, each with one small artifact served from file://."""
    art = tmp_path / "artifacts"
    art.mkdir(exist_ok=True)
    rows = []
    for i in range(n):
        name = f"pkg{i:03d}"
        data = hashlib.sha512(name.encode()).digest() * 8
        path = art / f"{name}-1.0-1-x86_64.pkg.tar.zst"
        path.write_bytes(data)
        url = path.as_uri()
        rows.append(JobRow(job_id=job_id("test", "x86_64", url), backend="test", architecture="x86_64", input_url=url,
                           distro="testdistro", releases=(None,), source_name=name, source_version="1.0-1",
                           artifacts=(Artifact(name, "1.0-1", "x86_64", url, hashlib.sha256(data).hexdigest(),
                                               len(data), path.name),),
                           priority=1, queued_at=NOW, not_before=None, attempt=1, retries=0))
    update_queue(store, lambda jobs: {**jobs, **{r.job_id: r for r in rows}})
    return rows


def test_real_rebuilds_of_the_fixture_repository(store_factory, fixture_repo, tmp_path):
    url = store_factory.url()
    store = open_store(url)
    profile = profile_for(fixture_repo.source_url(fixture_repo.root.as_uri()), fixture_repo.repo, fixture_repo.arch)
    sync_profile(store, RebuilderConfig(), profile)
    wconf = parse_worker_config({
        "backend": {"archlinux": {"path": str(shipped_backend("archlinux-local"))}},
        "supported_architectures": [fixture_repo.arch], "work_dir": str(tmp_path / "worker"),
        "build": {"timeout": 300, "silent": True}, "diffoscope": {"enabled": True, "timeout": 120}})
    identity = load_identity(wconf, "w1")
    worker = Worker(store=store, config=RebuilderConfig(), worker_config=wconf, identity=identity,
                    backends={"archlinux": shipped_backend("archlinux-local")},
                    env={"REBUILDER_ARCHIVE": str(fixture_repo.archive_dir),
                         "REBUILDER_PKGBUILDS": str(fixture_repo.pkgbuild_dir)})
    stats = worker.run(until_idle=True)
    assert len(stats.built) == 5 and not stats.lost

    jobs = {j.job_id: j for j in read_queue(store).jobs.values()}
    trusted = {identity.key_id: public_key_from_b64(identity.public_key)}
    by_source, links = {}, {}
    for (jid, attempt), doc in results(store).items():
        payload, signer = verify_document(doc, trusted)
        assert signer == identity.key_id and attempt == 1
        by_source[jobs[jid].source_name] = payload["result"]
        links[jobs[jid].source_name] = payload["attestation"]  # carried inside the signed result
    status = {name: r["status"] for name, r in by_source.items()}
    assert status == {"hello-script": "GOOD", "hello-c": "GOOD", "splitpkg": "GOOD", "unrepro": "BAD", "ftbfs": "FAIL"}
    assert "ftbfs" in by_source["ftbfs"]["reason"] or by_source["ftbfs"]["reason"]
    assert by_source["unrepro"]["diffoscope_key"]
    report = store.get(by_source["unrepro"]["diffoscope_key"])
    assert report.info.content_encoding == "gzip"
    import gzip
    assert b"unrepro" in gzip.decompress(report.data)
    assert {n for n, link in links.items() if link is not None} == {"hello-script", "hello-c", "splitpkg"}
    assert all(r["attestation_key"] is None for r in by_source.values())  # no file of its own
    assert not [i.key for i in store.list("builds/") if i.key.endswith("attestation.json")]
    link = links["splitpkg"]
    assert verify_link(link, [public_key_from_b64(identity.public_key)])
    products = {d["sha256"] for d in link["signed"]["products"].values()}
    assert products == {p.sha256 for p in fixture_repo.packages if p.pkgbase == "splitpkg"}
    assert all(store.head(r["log_key"]).content_type.startswith("text/plain") for r in by_source.values())
    # Nothing left to do: a second pass builds nothing.
    assert worker.run(until_idle=True).built == []
    assert load_public_key_pem  # (imported for the enrolment check below)
    enrolment = json.loads(store.get(f"workers/{identity.key_id}.json").data)
    assert verify_document(enrolment, trusted)[0]["name"] == "w1"


def test_eight_worker_processes_forty_jobs_one_result_each(store_factory, tmp_path):
    url = store_factory.url()
    store = open_store(url)
    rows = synthetic_jobs(store, tmp_path, 40)
    backend = script(tmp_path / "copy.sh", 'cp "$1" "$REBUILDERD_OUTDIR/"')
    procs = [subprocess.Popen([sys.executable, "-m", "tests.work.worker_child", url, str(tmp_path / "w"), f"w{i}",
                               str(backend), "30", "--until-idle"], cwd=ROOT, env=store_factory.env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in range(8)]
    reports = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()[-2000:]
        reports.append(json.loads(out.decode().strip().splitlines()[-1]))
    built = Counter(b.split()[0] for r in reports for b in r["built"])
    assert sorted(built) == sorted(f"{r.job_id}-1" for r in rows)
    assert set(built.values()) == {1}, "a job was built twice"
    found = results(store)
    assert sorted(found) == sorted((r.job_id, 1) for r in rows)
    assert {doc["signed"]["result"]["status"] for doc in found.values()} == {"GOOD"}
    assert sum(1 for r in reports if r["built"]) >= 2  # the work really was shared


def _wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.mark.full("SIGKILLs a worker process and waits out its lease")
def test_sigkilled_worker_job_is_completed_by_another_once(store_factory, tmp_path):
    url = store_factory.url()
    store = open_store(url)
    (row,) = synthetic_jobs(store, tmp_path, 1)
    slow = script(tmp_path / "slow.sh", 'sleep 2\ncp "$1" "$REBUILDERD_OUTDIR/"')
    victim = subprocess.Popen([sys.executable, "-m", "tests.work.worker_child", url, str(tmp_path / "w"), "victim",
                               str(slow), "4"], cwd=ROOT, env=store_factory.env(), start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    claim = f"claims/{row.job_id}/1.json"
    _wait_for(lambda: any(o.key == claim for o in store.list("claims/")))
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()
    rescuer = make_worker(url, tmp_path / "w", "rescuer", str(slow), 4)
    assert rescuer.run(until_idle=True).built == []  # the dead worker's lease has not expired yet
    time.sleep(4 + 1 + 0.5)  # ttl + skew allowance
    stats = rescuer.run(until_idle=True)
    assert stats.built == [f"{row.job_id}-1 GOOD"]
    found = results(store)
    assert list(found) == [(row.job_id, 1)] and found[(row.job_id, 1)]["signed"]["result"]["worker_name"] == "rescuer"
    assert rescuer.run(until_idle=True).built == []


def test_a_worker_whose_claim_is_taken_over_stops_and_reports_nothing(store_factory, tmp_path):
    url = store_factory.url()
    store = open_store(url)
    (row,) = synthetic_jobs(store, tmp_path, 1)
    pidfile = tmp_path / "backend.pid"
    slow = script(tmp_path / "slow.sh", f'echo $$ > {pidfile}\nsleep 60\ncp "$1" "$REBUILDERD_OUTDIR/"')
    worker = make_worker(url, tmp_path / "w", "loser", str(slow), 4)
    import threading

    def intrude():
        _wait_for(pidfile.exists)
        key = f"claims/{row.job_id}/1.json"
        state, etag = Leases(store).read(key)
        store.put_if_match(key, LeaseState("intruder", "f" * 32, 0, 0, time.time() + 600).to_bytes(), etag)

    t = threading.Thread(target=intrude)
    t.start()
    started = time.monotonic()
    stats = worker.run(once=True)
    t.join()
    assert stats.lost == [f"{row.job_id}-1"] and stats.built == []
    assert time.monotonic() - started < 30  # the 60 s build was killed, not waited for
    assert results(store) == {}
    pid = int(pidfile.read_text())
    _wait_for(lambda: not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2],
              timeout=15)


def test_sigterm_stops_the_build_and_releases_the_claim(tmp_path):
    store = open_store((tmp_path / "store").as_uri())
    (row,) = synthetic_jobs(store, tmp_path, 1)
    pidfile = tmp_path / "backend.pid"
    slow = script(tmp_path / "slow.sh", f'echo $$ > {pidfile}\nsleep 60\ncp "$1" "$REBUILDERD_OUTDIR/"')
    proc = subprocess.Popen([sys.executable, "-m", "tests.work.worker_child", store.url, str(tmp_path / "w"), "w",
                             str(slow), "600"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _wait_for(pidfile.exists)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    assert json.loads(out.decode().splitlines()[-1])["cancelled"] == [f"{row.job_id}-1"]
    state, _ = Leases(store).read(f"claims/{row.job_id}/1.json")
    assert state.released and not state.meta.get("done")
    assert results(store) == {}
    # Another worker starts on it at once, without waiting for the lease to expire.
    fast = script(tmp_path / "fast.sh", 'cp "$1" "$REBUILDERD_OUTDIR/"')
    assert make_worker(store.url, tmp_path / "w", "next", str(fast), 600).run(until_idle=True).built == [
        f"{row.job_id}-1 GOOD"]


@pytest.mark.parametrize("arch,supported,ok", [("x86_64", ["amd64"], True), ("arm64", ["aarch64"], True),
                                                ("all", ["x86_64"], False), ("all", ["any"], True),
                                                ("riscv64", ["*"], True), ("riscv64", ["x86_64"], False)])
def test_architecture_matching(arch, supported, ok):
    from jobs.work.claim import buildable, expand_architectures
    job = JobRow(job_id=job_id("test", arch, "https://x/a"), backend="test", architecture=arch, input_url="https://x/a",
                 distro="d", releases=(None,), source_name="a", source_version="1", artifacts=(), priority=1,
                 queued_at=NOW, not_before=None, attempt=1, retries=0)
    assert buildable(job, ["test"], expand_architectures(supported)) is ok
    assert Status.GOOD  # the enum used in results


def test_a_sigkilled_worker_takes_its_whole_build_with_it(tmp_path):
    """`kill -9` of a worker mid-build: within seconds nothing of its backend is left, not even
    processes that left the build's session (setsid, a double-forked daemon); the next start of a
    worker of that name removes the build directory the dead one could not."""
    from jobs.core.reaper import descendants
    from tests.core.test_proc import TREE, wait_all_dead, wait_for_pids

    store = open_store((tmp_path / "store").as_uri())
    (row,) = synthetic_jobs(store, tmp_path, 1)
    pids = tmp_path / "pids"
    backend = tmp_path / "tree.sh"
    backend.write_text("#!/bin/sh" + TREE.format(py=sys.executable, tail="sleep 300").replace('pids="$1"', f'pids="{pids}"'))
    backend.chmod(0o755)
    victim = subprocess.Popen([sys.executable, "-m", "tests.work.worker_child", store.url, str(tmp_path / "w"),
                               "victim", str(backend), "600"], cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        started = wait_for_pids(pids, 4, timeout=60)
        tree = descendants(victim.pid)
        assert set(started) <= set(tree)
        builds = tmp_path / "w" / "victim" / "builds"
        assert [p.name for p in builds.iterdir()] == [f"{row.job_id}-1"]
        os.kill(victim.pid, signal.SIGKILL)  # the worker alone, as the OOM killer would
        victim.wait()
        assert wait_all_dead(tree, 5) == []
    finally:
        victim.kill()
        victim.wait()
        for pid in read_pids_safely(pids):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert builds.exists() and list(builds.iterdir())  # what SIGKILL leaves
    fast = script(tmp_path / "fast.sh", 'cp "$1" "$REBUILDERD_OUTDIR/"')
    assert make_worker(store.url, tmp_path / "w", "victim", str(fast), 600).run(until_idle=True).built == []
    assert list(builds.iterdir()) == []  # the claim is still the dead worker's; its directory is gone


def read_pids_safely(path: Path) -> list[int]:
    try:
        return [int(p) for p in path.read_text().split()]
    except (OSError, ValueError):
        return []


def test_a_backend_saying_the_host_is_not_set_up_reports_nothing_and_stops_the_worker(tmp_path):
    """Exit status 78 (a backend's SetupError): the package keeps its verdict; the job goes to the next worker."""
    from jobs.core.errors import TerminalError
    from jobs.work.backends import FAIL_PREFIX, SETUP_EXIT

    store = open_store((tmp_path / "store").as_uri())
    (row,) = synthetic_jobs(store, tmp_path, 1)
    broken = script(tmp_path / "broken.sh", f'echo "{FAIL_PREFIX}REBUILDER_PKGBUILDS is not set" >&2\nexit {SETUP_EXIT}')
    worker = make_worker(store.url, tmp_path / "w", "w", str(broken), 600)
    with pytest.raises(TerminalError, match=r"cannot build on this host \(exit status 78\): "
                                             r"REBUILDER_PKGBUILDS is not set"):
        worker.run(until_idle=True)
    assert results(store) == {}  # no FAIL replaces the package's verdict
    state, _ = Leases(store).read(f"claims/{row.job_id}/1.json")
    assert state.released and not state.meta.get("done")
    # A worker that is set up builds it at once, without waiting for the lease to expire.
    fast = script(tmp_path / "fast.sh", 'cp "$1" "$REBUILDERD_OUTDIR/"')
    assert make_worker(store.url, tmp_path / "w", "next", str(fast), 600).run(until_idle=True).built == [
        f"{row.job_id}-1 GOOD"]


def test_any_other_failing_exit_status_is_the_package_s_fail(tmp_path):
    store = open_store((tmp_path / "store").as_uri())
    (row,) = synthetic_jobs(store, tmp_path, 1)
    failing = script(tmp_path / "failing.sh", "exit 2")
    assert make_worker(store.url, tmp_path / "w", "w", str(failing), 600).run(until_idle=True).built == [
        f"{row.job_id}-1 FAIL"]
