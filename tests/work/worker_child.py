"""A worker in its own process, for the multi-worker and kill tests.

`python -m tests.work.worker_child STORE_URL WORKDIR NAME BACKEND_SCRIPT TTL [--until-idle]`
prints one JSON line with what it built when it stops.
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

from jobs.core.config import parse_rebuilder_config, parse_worker_config
from jobs.core.store import open_store
from jobs.work.identity import load_identity
from jobs.work.run import Worker


def make_worker(url: str, workdir: Path, name: str, backend: str, ttl: int, *, silent: bool = True) -> Worker:
    """A worker for the tests' "test" backend, with a short lease."""
    config = parse_rebuilder_config({"lease": {"ttl": ttl, "clock_skew": max(1, ttl // 4)}})
    wconf = parse_worker_config({"backend": {"test": {"path": backend}}, "supported_architectures": ["x86_64"],
                                 "idle_delay": 1, "work_dir": str(workdir),
                                 "build": {"timeout": 120, "silent": silent}, "diffoscope": {"enabled": False}})
    return Worker(store=open_store(url), config=config, worker_config=wconf, identity=load_identity(wconf, name),
                  backends={"test": Path(backend)})


def main() -> None:
    url, workdir, name, backend, ttl = sys.argv[1:6]
    worker = make_worker(url, Path(workdir), name, backend, int(ttl))
    signal.signal(signal.SIGTERM, lambda *_: worker.stop.set())
    stats = worker.run(until_idle="--until-idle" in sys.argv)
    print(json.dumps({"name": name, "built": stats.built, "lost": stats.lost, "cancelled": stats.cancelled}))


if __name__ == "__main__":
    from jobs.core.shutdown import exit_process

    main()
    exit_process(0)  # as the console scripts end: pyarrow's pool threads cannot abort the exit
