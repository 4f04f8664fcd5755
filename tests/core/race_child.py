"""A separate process for the race tests: `python -m tests.core.race_child MODE URL ...`.

Prints one JSON line with what this process observed. Started many times at once by
tests/core/test_store_races.py and test_lease.py.
"""

from __future__ import annotations

import json
import sys
import time

from jobs.core.lease import LeaseHeld, Leases
from jobs.core.store import PreconditionFailed, open_store


def create_race(store, me: str, keys: int) -> dict:
    """Try to create every key; report the ones this process won."""
    won = []
    for i in range(keys):
        try:
            store.put_if_absent(f"race/{i:03d}", me.encode())
            won.append(i)
        except PreconditionFailed:
            pass
    return {"won": won}


def cas_counter(store, me: str, increments: int) -> dict:
    """Increment one counter by compare-and-swap; report the values this process wrote."""
    wrote, conflicts = [], 0
    for _ in range(increments):
        while True:
            blob = store.get("counter")
            value = int(blob.data) + 1
            try:
                store.put_if_match("counter", str(value).encode(), blob.etag)
                wrote.append(value)
                break
            except PreconditionFailed:
                conflicts += 1
    return {"wrote": wrote, "conflicts": conflicts}


def lease_takeover(store, me: str, ttl: float) -> dict:
    """Try once to take the (expired) lease `lock`."""
    leases = Leases(store, ttl=ttl, clock_skew=0.0)
    try:
        lease = leases.acquire("lock", me)
    except LeaseHeld as exc:
        return {"won": False, "holder": exc.holder}
    return {"won": True, "generation": lease.state.generation}


def main() -> None:
    mode, url, me, arg, start_at = sys.argv[1:6]
    store = open_store(url)
    time.sleep(max(0.0, float(start_at) - time.time()))
    fn = {"create": lambda: create_race(store, me, int(arg)),
          "cas": lambda: cas_counter(store, me, int(arg)),
          "lease": lambda: lease_takeover(store, me, float(arg))}[mode]
    print(json.dumps({"me": me, **fn()}))


if __name__ == "__main__":
    from jobs.core.shutdown import exit_process

    main()
    exit_process(0)  # as the console scripts end: pyarrow's pool threads cannot abort the exit
