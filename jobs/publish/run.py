"""`rebuilder publish`: the state step, the countersigned attestations, then the site.

1. `publish_state` (under the publish lease): verify new results, compact them into the
   history, update the queue, apply admin requests;
2. countersign every GOOD build whose attestation has no countersignature yet and keep it
   at `history/attestations/<build-id>.json` (publish-owned, immutable), so a run killed
   between the two steps is completed by the next one;
3. under a second lease (`locks/publish-site.json`), render the site from the store and
   write what changed (leaves first, the dashboard last, the manifest at the very end).
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.compute as pc

from jobs.core.config import RebuilderConfig
from jobs.core.history import read_history
from jobs.core.lease import LeaseHeld, Leases
from jobs.core.model import HistoryRow, from_table
from jobs.core.signing import load_or_create_key
from jobs.core.store import Store
from jobs.publish.job import PublishState, countersign, publish_state
from jobs.publish.site import build_site
from jobs.publish.sitewriter import WriteStats, write_site
from jobs.publish.verify import trusted_workers

SITE_LOCK = "locks/publish-site.json"
ATTESTATIONS = "history/attestations/"


@dataclass
class PublishSummary:
    """What one publish run did."""

    state: PublishState
    site: WriteStats | None = None
    site_detail: str = ""

    def line(self) -> str:
        """One summary line."""
        line = self.state.line()
        if self.site is not None:
            line += f"; site: {self.site.written} written, {self.site.deleted} deleted, {self.site.unchanged} unchanged"
        elif self.site_detail:
            line += f"; site: {self.site_detail}"
        return line


def countersigned_attestations(store: Store, config: RebuilderConfig, state: PublishState) -> dict[str, str]:
    """Build id → key of its countersigned attestation, creating the missing ones."""
    stored = {info.key[len(ATTESTATIONS):].removesuffix(".json"): info.key for info in store.list(ATTESTATIONS)}
    if not config.http.transparently_sign_attestations:
        return stored
    fresh = dict(state.countersigned)
    history = read_history(store)
    # Select in Arrow first: turning every history row (one per build ever) into a record
    # took ~30 µs a row, on every publish, to find the few attestations not kept yet.
    done = pa.array(list(stored.keys() | fresh.keys()), pa.string())
    history = history.filter(pc.and_(pc.is_valid(history.column("attestation_key")),
                                     pc.invert(pc.is_in(history.column("build_id"), value_set=done))))
    missing = [row for row in from_table(history, HistoryRow)
               if row.attestation_key and row.build_id not in stored and row.build_id not in fresh]
    if missing:
        key = load_or_create_key(config.publish.signing_key)
        more, _problems = countersign(store, key, missing, trusted_workers(store, config).keys)
        fresh.update(more)
    for build_id, link in fresh.items():
        target = f"{ATTESTATIONS}{build_id}.json"
        store.put(target, json.dumps(link, sort_keys=True).encode(), content_type="application/json")
        stored[build_id] = target
    return stored


def publish(store: Store, config: RebuilderConfig, *, site_store: Store | None = None, site_prefix: str = "site/",
            now: datetime | None = None, rebuilder_name: str = "rebuilder") -> PublishSummary:
    """One publish run (see the module docstring)."""
    now = now or datetime.now(timezone.utc)
    state = publish_state(store, config, now=now)
    summary = PublishSummary(state)
    if state.busy:
        return summary
    attestations = countersigned_attestations(store, config, state)
    leases = Leases(store, ttl=config.lease.ttl, clock_skew=config.lease.clock_skew)
    try:
        lease = leases.acquire(SITE_LOCK, f"publish@{socket.gethostname()}:{os.getpid()}")
    except LeaseHeld as exc:
        summary.site_detail = f"skipped, another publish ({exc.holder}) is writing it"
        return summary
    try:
        trust = {k: "authorized" if source == "authorized_workers" else "enrolled"
                 for k, source in trusted_workers(store, config).sources.items()}
        site = build_site(store, now=now, countersigned_keys=attestations, public_keys=state.public_keys,
                          rebuilder_name=rebuilder_name, worker_trust=trust)
        summary.site = write_site(site_store or store, site, prefix=site_prefix)
    finally:
        leases.release(lease)
    return summary
