"""Two syncs of one profile, then two publishers, started at the same instant as real processes.

tests/sync/test_sync_job.py::test_two_syncs_of_one_profile_at_once (a lock already held) and
tests/publish/test_publish_job.py::test_two_publishers_at_once_one_runs (two threads of
`publish_state`) cover the logic; this runs the `rebuilder` command itself twice, in two
processes racing for the create-only lock on both stores, and checks the exit codes, the
lines the operator sees and the end state.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from jobs.core.pointer import Pointer
from jobs.core.queue import read_queue
from jobs.core.signing import ensure_key
from tests.faults import FaultyStore
from tests.proof.scenario import (
    Scenario,
    assert_nothing_lost_or_duplicated,
    assert_one_cycle_published,
    published,
    results_written,
)
from tests.proof.stores import open_fast

ROOT = Path(__file__).resolve().parents[2]


def race(store_factory, tmp_path: Path, name: str, args: list[str]) -> list[tuple[int, str, str]]:
    """Run `rebuilder <args>` in two processes released at the same instant; (exit code, stdout, stderr)."""
    go = tmp_path / f"{name}.go"
    ready = [tmp_path / f"{name}.{i}.ready" for i in range(2)]
    procs = [subprocess.Popen([sys.executable, "-m", "tests.proof.cli_child", str(r), str(peer), str(go), "--", *args],
                              cwd=ROOT, env=store_factory.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for r, peer in zip(ready, ready[::-1])]
    deadline = time.monotonic() + 60
    while not all(r.exists() for r in ready):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), "a child did not start"
        time.sleep(0.02)
    go.touch()
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=120)
        out.append((p.returncode, stdout, stderr))
    # The injected faults fired (they run in the children): both tried to take the lock, and
    # the one that got it held it until the other had tried.
    assert all(Path(f"{r}.tried").exists() for r in ready), [o[2][-2000:] for o in out]
    assert [Path(f"{r}.held").exists() for r in ready].count(True) >= 1, [o[2][-2000:] for o in out]
    return out


def one_worked_one_skipped(runs, worked: str, skipped: str) -> None:
    for code, _, stderr in runs:
        assert code == 0 and "Traceback" not in stderr, stderr[-2000:]
    lines = sorted(stdout.strip().splitlines()[-1] for _, stdout, _ in runs)
    assert [line.startswith(worked) for line in lines].count(True) == 1, lines
    assert [line.startswith(skipped) for line in lines].count(True) == 1, lines


def test_two_syncs_then_two_publishers_at_once_one_works_one_says_why(store_factory, tmp_path):
    """Of two `rebuilder sync` of one profile started together exactly one syncs; the other exits 0
    printing which sync holds the lock. Likewise for two `rebuilder publish`. The end state is that
    of one sync and one publish: one snapshot, each result once in the history, the same feed."""
    scenario = Scenario(tmp_path)
    url = store_factory.url()
    store = open_fast(url)
    conf = tmp_path / "rebuilderd.conf"
    ensure_key(tmp_path / "rebuilder.sign.key")  # a configured key must exist
    conf.write_text(f'[worker]\nsignup_secret = "Fk3q9ZmT7vXc2LpW8nRb4HsY6dJg5QeA"\n'
                    f'[publish]\nsigning_key = "{tmp_path / "rebuilder.sign.key"}"\n')
    profiles = tmp_path / "sync.conf"
    profiles.write_text(f'[profile."fixture"]\ndistro = "archlinux"\ncomponents = ["core"]\n'
                        f'architectures = ["x86_64"]\nsource = "{scenario.mirror.as_uri()}"\n')
    common = ["--store", url, "--config", str(conf)]

    syncs = race(store_factory, tmp_path, "sync", [*common, "sync", "--profiles", str(profiles)])
    one_worked_one_skipped(syncs, "sync fixture: updated", "sync fixture: skipped, another sync (sync@")
    assert len([i.key for i in store.list("state/fixture/") if i.key.endswith(".parquet")]) == 1
    assert Pointer(store, "state/fixture").read()[0].generation == 1
    queue = read_queue(store)
    assert len(queue.jobs) == 3 and queue.pointer.generation == 1

    logged = FaultyStore(store)  # no faults: it logs which results landed
    assert len(scenario.work(logged)) == 3
    publishes = race(store_factory, tmp_path, "publish", [*common, "publish"])
    one_worked_one_skipped(publishes, "publish: 3 results accepted", "publish: skipped, another publish (publish@")
    state = published(store)
    assert_one_cycle_published(state)
    assert_nothing_lost_or_duplicated(store, results_written(logged))
    assert Pointer(store, "history").read()[0].generation == 1
