"""Start N copies of tests.core.race_child at the same instant and collect their reports."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def race(mode: str, url: str, arg: str, n: int, env: dict[str, str], timeout: float = 240) -> list[dict]:
    """Run `n` processes of `mode` against the store at `url`; return their JSON reports."""
    start_at = time.time() + 3.0 + 0.4 * n  # every child has imported boto3 by then
    procs = [subprocess.Popen([sys.executable, "-m", "tests.core.race_child", mode, url, f"p{i}", arg,
                               str(start_at)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) for i in range(n)]
    reports = []
    for p in procs:
        out, err = p.communicate(timeout=timeout)
        assert p.returncode == 0, err.decode()
        reports.append(json.loads(out))
    return reports
