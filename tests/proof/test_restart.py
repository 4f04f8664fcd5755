"""The S3 server restarted in the middle of a run: the jobs retry and finish; readers never see half an object."""

from __future__ import annotations

import gzip
import threading

import pytest

from jobs.core.pointer import Pointer
from jobs.core.store import open_store
from tests.faults import Fault, FaultyStore
from tests.proof.reader import Reader
from tests.proof.scenario import (
    Scenario,
    assert_nothing_lost_or_duplicated,
    assert_one_cycle_published,
    published,
    results_written,
)
from tests.proof.stores import fresh_store, second_client
from tests.s3server import REGION, SeaweedServer


@pytest.fixture
def restartable(store_factory, tmp_path):
    """For the S3 run, a SeaweedFS of this test's own: if `weed` fails to come back (its master has
    been seen to panic on restart now and then) no other test loses its server. The session server
    (started by `store_factory`) has already put the credentials in the environment."""
    if store_factory.kind != "s3":
        yield None
        return
    server = SeaweedServer(tmp_path / "weed")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_server_restarted_mid_run_jobs_finish_and_no_partial_object_is_visible(store_factory, restartable,
                                                                                 tmp_path):
    """SeaweedFS is stopped just before a worker writes the second of the run's three results and
    comes back a moment later: the worker's request is retried until the server answers, the run
    (that build, the third, publish) finishes with no error and reaches the state an undisturbed run
    publishes, and a reader polling all along only ever sees pointers naming complete snapshots,
    whole signed results, whole logs, parseable feeds and whole pages. On the local store (no
    server) the same reader polls a plain run: rename makes every write atomic there."""
    scenario = Scenario(tmp_path)
    faults, restarts, failed_starts = [], [], []
    if restartable is None:
        store = fresh_store(store_factory)
    else:
        # The retry budget must outlast the outage: `weed mini` is back in ~1 s, now and then in ~20 s.
        store = open_store(f"s3://{restartable.new_bucket()}/run?endpoint_url={restartable.endpoint}"
                           f"&region={REGION}&max_attempts=15")

        def come_back() -> None:
            for _ in range(3):
                try:
                    restartable.start()
                    return
                except RuntimeError as exc:
                    failed_starts.append(str(exc))
                    restartable.stop()

        def restart(op: str, key: str) -> None:
            restartable.stop()
            back = threading.Thread(target=come_back, name="seaweed-restart")
            back.start()  # the job's request now finds no server and retries until it is back
            restarts.append(back)

        faults = [Fault("call", op="put_if_absent", key="claims/*.done/*", nth=2, callback=restart)]
    reader = Reader(second_client(store))
    reader.start()
    try:
        scenario.cycle(faulty := FaultyStore(store, faults=faults))
    finally:
        for back in restarts:
            back.join()
    reader.stop()

    assert reader.problems == []
    assert reader.seen["pointer"] and reader.seen["results"] and reader.seen["site"], reader.seen
    assert len(restarts) == (restartable is not None), failed_starts
    state = published(store)
    assert_one_cycle_published(state)
    assert_nothing_lost_or_duplicated(store, results_written(faulty))


def test_the_reader_notices_torn_objects(store):
    """The reader above is not vacuous: half a log, half a result and a pointer to nothing are reported."""
    store.put("builds/0123456789abcdef0123456789abcdef-1/aaaa/log", gzip.compress(b"x" * 1000)[:20])
    store.put("results/0123456789abcdef0123456789abcdef/1.json", b'{"signed": {"result": {"worker_key_id"')
    Pointer(store, "queue").advance("queue/missing.parquet", {}, None, None)
    reader = Reader(store)
    reader.poll()
    assert len(reader.problems) == 3, reader.problems
