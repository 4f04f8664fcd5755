"""The benchmark runner at tiny sizes: every script still runs and reports every headline figure.

The figures themselves are not checked (a smoke run measures nothing worth comparing);
`python -m bench` at full size is what docs/benchmarks.md's table comes from.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from bench import headlines
from jobs.core import docblocks

ROOT = Path(__file__).resolve().parents[1]
# Headline figures per benchmark.
EXPECTED = {"sync-arch": 6, "sync-debian": 3, "publish": 5, "publish-1m": 5, "ctl": 7, "claims": 6, "requests": 8, "hostile": 9}


@pytest.mark.slow
@pytest.mark.s3
def test_every_benchmark_runs_and_reports_every_figure(seaweed, tmp_path):
    out = tmp_path / "benchmarks.json"
    res = subprocess.run([sys.executable, "-m", "bench", "--smoke", "--json", str(out),
                          "--s3-endpoint", seaweed.endpoint], cwd=ROOT, env=dict(os.environ, **seaweed.env()),
                         capture_output=True, text=True, timeout=280)
    assert res.returncode == 0, res.stderr[-6000:]
    result = json.loads(out.read_text())
    assert result["smoke"] is True
    assert set(result["benchmarks"]) == set(EXPECTED)
    assert not [name for name, b in result["benchmarks"].items() if b["error"]]

    rows = result["headline"]
    counts = Counter(r["benchmark"] for r in rows)
    for name, n in EXPECTED.items():
        assert counts[name] >= n, (name, counts)
    # Only a baseline that cannot run here (upstream's tools need root and the trixie chroot) may lack a value.
    missing = [(r["benchmark"], r["figure"]) for r in rows if not isinstance(r["value"], (int, float))
               and not r["detail"].startswith("unavailable: ")]
    assert not missing, missing
    assert all(r["met"] in (True, False) for r in rows if r["target"] and r["value"] is not None)
    # Every row is printed with its verdict.
    assert sum(line.lstrip().startswith("= ") for line in res.stdout.splitlines()) == len(rows)

    # The docs block renders from the same result, between jobs.core.docblocks' markers.
    start, end = docblocks.markers("benchmarks")
    page = tmp_path / "benchmarks.md"
    page.write_text(f"# x\n{start}\nSTALE-BLOCK\n{end}\nrest\n")
    page.write_text(docblocks.replace_block(page.read_text(), "benchmarks", headlines.markdown(result)))
    block = docblocks.block(page.read_text(), "benchmarks")
    assert "STALE-BLOCK" not in block and block.count("\n| ") >= len(rows) and "Monthly S3 request cost" in block
