"""A worker whose disk is full, whose work dir is unusable, or whose store fails while it reports.

A worker's own trouble must end the attempt cleanly (rebuilderd reports FAIL for any error of
the worker's): a result saying what went wrong, and its done receipt, so the job is retried on
the usual schedule instead of being built again or crashing the worker.
When not even the result can be written, the claim is released so another worker starts at once.
"""

from __future__ import annotations

import gzip
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from jobs.core.layout import CLAIM_KEY, claim_notice_key
from jobs.core.lease import Leases
from jobs.core.store import StoreUnavailable
from tests.faults import Fault, FaultyStore
from tests.proof.scenario import Scenario, assert_nothing_lost_or_duplicated, time_passes
from tests.proof.stores import fresh_store, open_fast

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 256 * 1024  # RLIMIT_FSIZE of the worker process: its build log cannot grow past this


def only_result(store) -> dict:
    """The one stored result's signed document (stored as its worker's done receipt)."""
    (info,) = [i for i in store.list("claims/") if ".done/" in i.key]
    assert list(store.list("results/")) == []
    return json.loads(store.get(info.key).data)


def assert_failed_and_reported(store, scenario: Scenario, *, says: str) -> dict:
    doc = only_result(store)
    result = doc["signed"]["result"]
    assert result["status"] == "FAIL" and says in result["reason"], result["reason"]
    state, _ = Leases(store).read(f"claims/{result['job_id']}/1.json")
    assert state.token == doc["signed"]["claim"]["token"]  # left to expire: the receipt says it is done
    assert store.head(claim_notice_key(result["job_id"], 1, "done", result["worker_key_id"]))
    time_passes(store, scenario.config)  # even once the claim expired, nobody builds the attempt again
    assert scenario.worker(store, "w2").run(until_idle=True).built == []
    summary = scenario.publish(store)
    assert len(summary.state.accepted) == 1 and summary.state.rejected == []
    assert summary.state.queue_changes.retried == [result["build_id"]]  # retried on the usual schedule
    assert_nothing_lost_or_duplicated(store, [result["build_id"]])
    return result


def test_an_unusable_work_dir_fails_the_attempt_with_the_reason(store_factory, tmp_path):
    """The worker's build directory cannot be created (a file stands where it should be; running as
    root, permissions would not stop us): the attempt is reported FAIL naming the directory and the
    error, its done receipt is stored, and publish accepts the result and schedules a retry."""
    scenario = Scenario(tmp_path, packages=("good",))
    store = fresh_store(store_factory)
    scenario.sync(store)
    worker = scenario.worker(store, "w1")
    (worker.identity.directory / "builds").write_text("not a directory")
    stats = worker.run(once=True)
    assert len(stats.built) == 1 and stats.built[0].endswith(" FAIL") and not stats.lost
    result = assert_failed_and_reported(store, scenario, says="work dir unusable: [Errno 20] Not a directory")
    assert str(worker.identity.directory / "builds") in result["reason"]


def test_a_full_disk_while_the_build_log_is_written_fails_the_attempt(store_factory,
                                                                                           tmp_path):
    """A worker process that may write no file larger than 256 KiB (RLIMIT_FSIZE, the unprivileged
    stand-in for a full disk) runs a backend printing 1 MiB: writing the log fails, the backend is
    stopped, and the attempt is reported FAIL with the error ("File too large"; ENOSPC reads "No
    space left on device"), its log as far as it got, and its done receipt."""
    scenario = Scenario(tmp_path, packages=("good",))
    url = store_factory.url()
    store = open_fast(url)
    scenario.sync(store)

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, LIMIT))

    env = dict(store_factory.env(), PROOF_NOISE_BYTES=str(4 * LIMIT))
    child = subprocess.run([sys.executable, "-m", "tests.proof.worker_child", str(tmp_path), url, "w1"], cwd=ROOT,
                           env=env, preexec_fn=limit, capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr[-3000:]
    stats = json.loads(child.stdout.strip().splitlines()[-1])
    assert len(stats["built"]) == 1 and stats["built"][0].endswith(" FAIL"), stats
    result = assert_failed_and_reported(store, scenario, says="File too large")
    log = store.get(result["log_key"])
    assert LIMIT // 2 < len(gzip.decompress(log.data)) <= LIMIT  # the log as far as the disk allowed


def test_a_store_failing_while_the_worker_reports_releases_the_claim_at_once(store_factory, tmp_path):
    """The store refuses the result (unavailable after its retries): the worker stops with that
    transient error but first releases its claim, so another worker builds the job at once instead
    of after the lease expires; that worker's result is the one published."""
    scenario = Scenario(tmp_path, packages=("good",))
    store = fresh_store(store_factory)
    scenario.sync(store)
    failing = FaultyStore(store, faults=[Fault("fail", op="put_if_absent", key="claims/*.done/*")])
    with pytest.raises(StoreUnavailable):
        scenario.worker(failing, "w1").run(once=True)
    (claim,) = [i for i in store.list("claims/") if CLAIM_KEY.fullmatch(i.key)]  # beside it, the start marker
    state, _ = Leases(store).read(claim.key)
    assert state.released and not state.meta.get("done")
    assert [b.split()[1] for b in scenario.worker(store, "w2").run(once=True).built] == ["GOOD"]
    summary = scenario.publish(store)
    assert [a.row.worker_name for a in summary.state.accepted] == ["w2"] and summary.state.rejected == []
    assert_nothing_lost_or_duplicated(store)


@pytest.fixture
def small_disk(tmp_path):
    """A 512 KiB file system of its own (tmpfs): a real ENOSPC, without filling the machine's disk."""
    mount = tmp_path / "disk"
    mount.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k,nr_inodes=4096", "tmpfs", str(mount)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        from tests.tools import missing
        missing("a tmpfs mount (needs root)", res.stderr.strip() or "mount failed")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_leaves_no_temporary_files_in_the_local_store_and_no_wrong_etag(small_disk):
    """Writes into a local store on a full file system fail with a one-line error naming the key;
    whatever failed (the data, a streamed body, only the sidecar), no temporary file is left and
    every object still readable has the ETag of its bytes."""
    import hashlib
    import io

    from jobs.core.store import LocalStore, StoreError

    store = LocalStore(small_disk / "store", fsync=False)

    def free_pages() -> int:
        return os.statvfs(small_disk).f_bavail

    def put(key: str, data: bytes) -> StoreError | None:
        try:
            store.put(key, data, content_type="text/plain")
        except StoreError as exc:
            assert exc.key == key and "No space left on device" in str(exc), exc
            assert os.listdir(small_disk / "store" / ".rebuilder-tmp") == [], "a temporary file was left"
            return exc
        return None

    # The data itself no longer fits.
    i = 0
    while put(f"obj/{i:03d}", bytes([i % 256]) * 16 * 1024) is None:
        i += 1
    # A streamed body that stops fitting half way.
    with pytest.raises(StoreError, match="No space left"):
        store.put("obj/streamed", io.BufferedReader(io.BytesIO(b"s" * (1 << 20))))
    assert os.listdir(small_disk / "store" / ".rebuilder-tmp") == []
    # The data fits but its sidecar does not: one page left (1-byte objects take a page of data
    # and a page of sidecar; an empty one only the sidecar's).
    while free_pages() > 1:
        assert put(f"obj/{i:03d}", b"x" if free_pages() > 2 else b"") is None
        i += 1
    assert free_pages() == 1
    exc = put("obj/last", b"y")
    assert exc is not None and "metadata" in str(exc)
    for info in store.list("obj/"):
        blob = store.get(info.key)
        assert blob.etag == '"' + hashlib.md5(blob.data).hexdigest() + '"' == store.head(info.key).etag
    assert store.get("obj/last").data == b"y"  # landed, its ETag computed from the bytes
