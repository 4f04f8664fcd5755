"""The README's first command: `infra/demo.sh` → `rebuilder demo`, end to end in a temp dir."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures_arch import require_makepkg_host

pytestmark = pytest.mark.full("real makepkg builds and rebuilds")
BIN = Path(sys.executable).parent


def test_demo_builds_syncs_rebuilds_publishes_and_reports(tmp_path):
    require_makepkg_host()
    res = subprocess.run([str(BIN / "rebuilder"), "demo", str(tmp_path / "demo"), "--no-serve"],
                         capture_output=True, text=True, timeout=600, cwd=tmp_path,
                         env={"PATH": f"{BIN}:/usr/bin:/bin:/usr/sbin:/sbin", "HOME": str(tmp_path)})
    assert res.returncode == 0, res.stderr[-3000:]
    # The fixture build (the longest silent step before) says what it does and where its logs go.
    assert res.stderr.startswith("archlinux demo: building the fixture packages with makepkg (logs: "
                                 f"{tmp_path / 'demo' / 'repo' / 'logs'})\n"), res.stderr[:500]
    out = res.stdout
    assert "sync demo: updated, 6 packages in 5 build inputs" in out
    assert "publish: 5 results accepted, 0 rejected" in out
    # The output of the real `rebuildctl status`: GOOD, BAD and FAIL all present (4 good, 1 bad, 1 fail).
    status = out[out.index("rebuildctl -H"):]
    assert "status" in status.splitlines()[0]
    row = next(line for line in status.splitlines() if line.startswith("archlinux"))
    assert row.split()[4:8] == ["4", "1", "1", "0"], row
    site = tmp_path / "demo" / "store" / "site"
    assert (site / "index.html").read_text().count("JSON") >= 1
    index = json.loads((site / "api/v1/index.json").read_text())
    (suite,) = index["suites"]
    assert suite["counts"] == {"good": 4, "bad": 1, "fail": 1, "unknown": 0}  # GOOD, BAD and FAIL all present
    # The configs it wrote are real rebuilderd-style files an operator can start from.
    for name in ("rebuilderd.conf", "rebuilderd-sync.conf", "rebuilderd-worker.conf"):
        assert (tmp_path / "demo" / name).exists()


def test_readme_duckdb_recipes_run_on_a_published_store(tmp_path):
    """The three DuckDB recipes of docs/operating.md, run as written against the demo's store."""
    import re

    import duckdb

    require_makepkg_host()
    from jobs.demo.run import run_demo
    store = run_demo(tmp_path / "demo").directory / "store"
    readme = (Path(__file__).resolve().parents[2] / "docs" / "operating.md").read_text()
    section = readme.split("<!-- duckdb-recipes:start -->")[1].split("<!-- duckdb-recipes:end -->")[0]
    recipes = re.findall(r"```sql\n(.*?)```", section, re.S)
    assert len(recipes) == 3
    results = []
    for recipe in recipes:
        con = duckdb.connect()
        statements = [s for s in recipe.replace("$STORE", str(store)).split(";") if s.strip()]
        for statement in statements[:-1]:
            con.execute(statement)
        results.append(con.execute(statements[-1]).fetchall())
    assert results[0] == [("BAD", 1), ("FAIL", 1), ("GOOD", 3)]
    assert [r[3] for r in results[1]] == ["ftbfs", "hello-c", "hello-script", "split-a", "split-b", "unrepro"]
    assert sorted(r[0] for r in results[2]) == ["ftbfs", "unrepro"]


def test_ctrl_c_during_the_builds_stops_them_publishes_and_a_rerun_finishes(tmp_path):
    """Ctrl-C while the workers build: the builds stop, their claims are released, what was done
    is published and the demo exits 130 (before, the worker threads went on building the whole
    queue silently and nothing was published). Run again, it builds the rest at once."""
    import signal
    import time

    require_makepkg_host()
    argv = [str(BIN / "rebuilder"), "demo", str(tmp_path / "demo"), "--no-serve"]
    env = {"PATH": f"{BIN}:/usr/bin:/bin:/usr/sbin:/sbin", "HOME": str(tmp_path)}
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=env)
    try:
        seen = []
        for line in proc.stderr:
            seen.append(line)
            if ": claimed " in line:
                break
        assert any(": claimed " in line for line in seen), "".join(seen)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = "".join(seen) + err
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err and "demo: stopping:" in err, err[-3000:]
    assert "claim released" in err, err[-3000:]
    assert "publish: " in out and "run: " in out, out  # what was done is published
    assert "site (Ctrl-C stops)" not in out
    # A rerun does not wait for the stopped claims' leases: it builds what is left and serves it all.
    res = subprocess.run(argv, capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    index = json.loads((tmp_path / "demo" / "store" / "site" / "api/v1/index.json").read_text())
    (suite,) = index["suites"]
    assert suite["counts"] == {"good": 4, "bad": 1, "fail": 1, "unknown": 0}, res.stdout + res.stderr[-3000:]
