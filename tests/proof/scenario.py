"""The small world the fault proofs run: a three-package Arch mirror, a trivial backend, two workers.

`good` rebuilds bit for bit (GOOD), `bad` rebuilds different bytes (BAD), `fail`'s build
exits non-zero (FAIL). One `cycle` is what an operator schedules: sync the profile, let
the two workers take turns until nothing is claimable, publish. Everything is real (the
sync parser, the worker with its leases and signatures, publish with its site); only
the backend is a shell one-liner, so a build takes milliseconds.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import random
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from jobs.core.config import parse_rebuilder_config, parse_worker_config
from jobs.core.errors import RebuilderError
from jobs.core.history import read_history
from jobs.core.layout import CLAIM_NOTICE_KEY, RESULT_KEY
from jobs.core.lease import Leases, LeaseState
from jobs.core.queue import read_queue
from jobs.core.signing import ensure_key
from jobs.core.store import NotFound, PreconditionFailed, Store
from jobs.publish.run import publish
from jobs.sync.run import sync_profile
from jobs.work.identity import load_identity
from jobs.work.run import Worker
from tests.faults import FaultyStore
from tests.sync import alpm_builders as alpm
from tests.sync.test_sync_job import profile_for

PACKAGES = ("good", "bad", "fail")
SECRET = "Fk3q9ZmT7vXc2LpW8nRb4HsY6dJg5QeA"
BACKEND = """#!/bin/sh
set -e
# Optional knobs of the tests: a ledger of every build started, and a build that takes a while.
[ -z "$PROOF_LEDGER" ] || echo "$(basename "$1")" >> "$PROOF_LEDGER"
sleep "${PROOF_BUILD_SECONDS:-0}"
[ -z "$PROOF_NOISE_BYTES" ] || head -c "$PROOF_NOISE_BYTES" /dev/zero | tr '\\0' x
case "$(basename "$1")" in
  bad-*) printf 'different' > "$REBUILDERD_OUTDIR/$(basename "$1")" ;;
  fail-*) echo "boom: cannot build" >&2; exit 3 ;;
  *) cp "$1" "$REBUILDERD_OUTDIR/" ;;
esac
"""


def make_mirror(root: Path, packages: tuple[str, ...] = PACKAGES) -> Path:
    """An Arch repository `core` for x86_64 under `root`: its database and its package files."""
    if (root / "core.db").exists():
        return root  # made by the parent process already
    root.mkdir(parents=True, exist_ok=True)
    members = []
    for name in packages:
        filename = f"{name}-1.0-1-x86_64.pkg.tar.zst"
        data = hashlib.sha512(name.encode()).digest() * 4
        (root / filename).write_bytes(data)
        members += alpm.package(name, "1.0-1", filename=filename, sha256=hashlib.sha256(data).hexdigest())
    (root / "core.db").write_bytes(alpm.db(members))
    return root


@dataclass(frozen=True)
class Published:
    """What a run leaves behind that matters: the v0 feed, the history and the queue.

    (Result objects are not part of it: publish deletes them once compacted, a run later.)
    """

    v0: dict[str, str]  # name -> status in api/v0/pkgs/list
    history: Counter  # (job_id, attempt, status) -> rows
    queue: dict[str, tuple[int, int, int]]  # job_id -> (attempt, retries, priority)


class Scenario:
    """One mirror, one profile, one config; cycles run against any store (plain or faulty)."""

    def __init__(self, tmp: Path, *, packages: tuple[str, ...] = PACKAGES, ttl: int = 600,
                 clock_skew: int = 30) -> None:
        self.tmp = tmp
        self.mirror = make_mirror(tmp / "mirror", packages)
        self.backend = tmp / "backend.sh"
        self.backend.write_text(BACKEND)
        self.backend.chmod(0o755)
        self.profile = profile_for(self.mirror.as_uri(), "core", "x86_64")
        ensure_key(tmp / "rebuilder.sign.key")  # a configured key must exist
        self.config = parse_rebuilder_config({
            "worker": {"signup_secret": SECRET}, "publish": {"signing_key": str(tmp / "rebuilder.sign.key")},
            "lease": {"ttl": ttl, "clock_skew": clock_skew}})

    def worker_config(self, work_dir: Path | None = None):
        return parse_worker_config({
            "signup_secret": SECRET, "backend": {"archlinux": {"path": str(self.backend)}},
            "supported_architectures": ["x86_64"], "work_dir": str(work_dir or self.tmp / "workers"),
            "idle_delay": 1, "build": {"timeout": 60, "silent": True}, "diffoscope": {"enabled": False}})

    def worker(self, store: Store, name: str, *, seed: int = 0, work_dir: Path | None = None,
               env: dict[str, str] | None = None) -> Worker:
        """A real worker named `name` (its key persists across cycles, as on a real machine)."""
        wconf = self.worker_config(work_dir)
        return Worker(store=store, config=self.config, worker_config=wconf, identity=load_identity(wconf, name),
                      backends={"archlinux": self.backend}, rng=random.Random(seed), env=env or {})

    def sync(self, store: Store):
        return sync_profile(store, self.config, self.profile)

    def work(self, store: Store, names: tuple[str, ...] = ("w1", "w2")) -> list[str]:
        """The workers take turns, one job each, until none finds anything to claim."""
        workers = [self.worker(store, name, seed=i) for i, name in enumerate(names)]
        built: list[str] = []
        while True:
            turn = [b for w in workers for b in w.run(once=True).built]
            if not turn:
                return built
            built += turn

    def publish(self, store: Store, *, settled: bool = False):
        """One publish; `settled`: run as if the settling time had passed since the last results
        landed (a result of a takeover waits that long for the old holder's word, docs/trust.md)."""
        later = self.config.lease.settle_seconds + 1 if settled else 0
        return publish(store, self.config, clock=lambda: time.time() + later)

    def cycle(self, store: Store) -> None:
        """Sync, work, publish: what one scheduled run does."""
        self.sync(store)
        self.work(store)
        self.publish(store)

    def cycle_until_it_stops(self, store: Store) -> str:
        """A cycle in which a failing job ends the run (the scheduler runs it again later)."""
        try:
            self.cycle(store)
        except RebuilderError as exc:
            return f"{type(exc).__name__}: {exc}"
        return "done"


def time_passes(store: Store, config) -> list[str]:
    """Expire every unreleased lease, as time does for the processes of an earlier run that died.

    Equivalent to waiting `ttl + clock_skew`: a contender then takes the lease over by CAS,
    keeping its history (generation, holder, token) as a real expiry would.
    """
    leases = Leases(store, ttl=config.lease.ttl, clock_skew=config.lease.clock_skew)
    expired = []
    for info in list(store.list("locks/")) + list(store.list("claims/")):
        current = leases.read(info.key)
        if current is None or current[0] is None or current[0].released:
            continue
        state, etag = current
        try:
            store.put_if_match(info.key, replace(state, expires_at=time.time() - 10 * config.lease.ttl).to_bytes(),
                               etag, content_type="application/json")
        except PreconditionFailed:
            continue
        expired.append(info.key)
    return expired


def v0_list(store: Store) -> list[dict]:
    """The published api/v0/pkgs/list records."""
    blob = store.get("site/api/v0/pkgs/list")
    data = gzip.decompress(blob.data) if blob.info.content_encoding == "gzip" else blob.data
    return json.loads(data)


def published(store: Store) -> Published:
    """The state a run converged to (see `Published`)."""
    try:
        v0 = {r["name"]: r["status"] for r in v0_list(store)}
    except NotFound:
        v0 = {}
    table = read_history(store)
    history = Counter(zip(table.column("job_id").to_pylist(), table.column("attempt").to_pylist(),
                          table.column("status").to_pylist()))
    queue = {j.job_id: (j.attempt, j.retries, int(j.priority)) for j in read_queue(store).jobs.values()}
    return Published(v0, history, queue)


def _build_id(key: str) -> str:
    """The build id of a result's key: `results/<job>/<attempt>.json` or its worker's done receipt's."""
    match = RESULT_KEY.fullmatch(key) or CLAIM_NOTICE_KEY.fullmatch(key)
    return f"{match.group(1)}-{match.group(2)}"


def is_result(key: str) -> bool:
    """Whether `key` is where a worker stores a result (its done receipt; results/ by earlier workers)."""
    notice = CLAIM_NOTICE_KEY.fullmatch(key)
    return RESULT_KEY.fullmatch(key) is not None or (notice is not None and notice.group(3) == "done")


def assert_one_cycle_published(state: Published) -> None:
    """`state` is what one undisturbed cycle of the three-package scenario publishes."""
    assert state.v0 == {"good": "GOOD", "bad": "BAD", "fail": "BAD"}  # v0 has no FAIL: it maps to BAD
    by_status = {status: jid for (jid, attempt, status), n in state.history.items() if attempt == 1 and n == 1}
    assert sorted(by_status) == ["BAD", "FAIL", "GOOD"] and sum(state.history.values()) == 3, state.history
    # GOOD leaves the queue; BAD and FAIL wait for their second attempt (priority retry).
    assert state.queue == {by_status["BAD"]: (2, 1, 2), by_status["FAIL"]: (2, 1, 2)}, state.queue


def results_written(*stores: FaultyStore) -> set[str]:
    """Build ids of every result the stores accepted (logged by the fault wrapper)."""
    return {_build_id(key) for f in stores for op, key in f.landed if is_result(key) and op != "delete"}


def assert_nothing_lost_or_duplicated(store: Store, written: Iterable[str] = ()) -> None:
    """Exactly one history row per attempt; every result ever `written` and every result object
    still stored is in the history; every such attempt's claim, while it exists, released as done
    or still the claim the result was reported with (its signer, its token: the worker leaves it
    to expire, and nobody takes over the claim of an attempt that has a result)."""
    table = read_history(store)
    build_ids = Counter(table.column("build_id").to_pylist())
    assert all(n == 1 for n in build_ids.values()), f"an attempt is in the history twice: {build_ids}"
    stored = {_build_id(info.key) for info in [*store.list("results/"), *store.list("claims/")]
              if is_result(info.key)}
    lost = (set(written) | stored) - set(build_ids)
    assert not lost, f"results missing from the history: {sorted(lost)}"
    leases = Leases(store)
    rows = {r["build_id"]: r for r in table.select(["build_id", "worker_key_id", "log_key"]).to_pylist()}
    for bid in build_ids:
        jid, attempt = bid.rsplit("-", 1)
        claim = leases.read(f"claims/{jid}/{attempt}.json")
        if claim is not None:
            state, row = claim[0], rows[bid]
            reported = state is not None and state.holder == row["worker_key_id"] and \
                f"/{state.token[:16]}/" in (row["log_key"] or "")
            assert state is not None and (reported or (state.released and state.meta.get("done"))), \
                f"the claim of {bid} is neither released as done nor the one its result was reported with"


__all__ = ["LeaseState", "PACKAGES", "Published", "Scenario", "assert_nothing_lost_or_duplicated",
           "assert_one_cycle_published", "published", "results_written", "time_passes", "v0_list"]
