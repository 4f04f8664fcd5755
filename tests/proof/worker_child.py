"""One scenario worker in a process of its own (for limits that only a process can have, e.g. RLIMIT_FSIZE).

`python -m tests.proof.worker_child TMP STORE_URL NAME` builds at most one job of the
scenario under TMP and prints one JSON line: what it built, lost and cancelled.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from tests.proof.scenario import Scenario
from tests.proof.stores import open_fast


def main() -> None:
    tmp, url, name = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    worker = Scenario(tmp).worker(open_fast(url), name, env={k: v for k, v in os.environ.items()
                                                             if k.startswith("PROOF_")})
    stats = worker.run(once=True)
    print(json.dumps({"built": stats.built, "lost": stats.lost, "cancelled": stats.cancelled}))


if __name__ == "__main__":
    from jobs.core.shutdown import exit_process

    main()
    exit_process(0)  # as the console scripts end: pyarrow's pool threads cannot abort the exit
