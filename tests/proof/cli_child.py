"""The real `rebuilder` command in a process of its own, racing a twin for the same lock.

`python -m tests.proof.cli_child READY PEER GO -- <rebuilder arguments>`: writes READY, waits
until GO exists, then runs `jobs.cli.main` with its store wrapped so that (a) before every
create-only write under `locks/` it leaves a mark `READY.tried`, and (b) once it has won its
first lock it holds it until the twin's mark `PEER.tried` exists (and a moment more for the
twin's request to come back). So the two truly race for the lock, and the loser surely meets
the winner at work, however the machine schedules them.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

# The commands import jobs.core.config, jobs.publish.run and jobs.sync.* when they run; they are
# imported here, so that both children reach their lock within milliseconds of GO however long
# imports take on a busy machine.
import jobs.core.config  # noqa: F401
import jobs.core.store
import jobs.publish.run  # noqa: F401
import jobs.sync.fetch  # noqa: F401
import jobs.sync.run  # noqa: F401
from jobs import cli
from tests.faults import Fault, FaultyStore

SETTLE = 0.5  # seconds for the twin's create to come back refused and its read to see the lease


def main() -> None:
    ready, peer, go = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    args = sys.argv[sys.argv.index("--") + 1:]
    plain = jobs.core.store.open_store

    def mark(op: str, key: str) -> None:
        Path(f"{ready}.tried").touch()

    def hold(op: str, key: str) -> None:
        Path(f"{ready}.held").touch()  # the parent checks that the race it set up happened
        deadline = time.monotonic() + 60
        while not Path(f"{peer}.tried").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(SETTLE)

    def racing(url: str):
        return FaultyStore(plain(url), faults=[
            Fault("call", "before", op="put_if_absent", key="locks/*", times=0, callback=mark),
            Fault("call", "after", op="put_if_absent", key="locks/*", callback=hold)])

    jobs.core.store.open_store = racing  # the CLI imports it when it opens the store
    ready.touch()
    deadline = time.monotonic() + 60
    while not go.exists():
        if time.monotonic() > deadline:
            sys.exit("never told to go")
        time.sleep(0.01)
    sys.argv = ["rebuilder", *args]
    cli.main()


if __name__ == "__main__":
    main()
