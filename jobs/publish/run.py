"""`rebuilder publish`: the state step, the countersigned attestations, then the site.

1. `publish_state` (under the publish lease): verify new results, compact them into the
   history, update the queue, apply admin requests;
2. under a second lease (`locks/publish-site.json`): name the object step 1 kept the run's
   countersigned attestations in, `history/attestations/run-<name>.json` (publish-owned,
   immutable; the site facts name it per build), after making those a run killed between
   the two steps missed (kept in one more such object); learn the facts of the builds new
   to the site (`jobs.publish.site.facts`);
3. render what changed since the site's manifest and write it (leaves first, the
   dashboard last, the manifest at the very end).

The history is read once, by step 1, and handed on.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pyarrow.compute as pc

from jobs.core import progress
from jobs.core.bounded import configured
from jobs.core.config import RebuilderConfig
from jobs.core.errors import RebuilderError
from jobs.core.gcpause import cyclic_gc_paused
from jobs.core.history import read_history
from jobs.core.layout import ATTESTATION_BATCH_KEY, SITE, SITE_LOCK
from jobs.core.lease import LeaseHeld, Leases
from jobs.core.model import HistoryRow, Status, from_table
from jobs.core.store import Store
from jobs.publish.site.build import build_site
from jobs.publish.site.facts import unlearned
from jobs.publish.site.inputs import confine_build_keys, kept_attestation, learn_facts, load_inputs, read_facts
from jobs.publish.site.sitewriter import WriteStats, keep_attestations, read_manifest, write_facts, write_site
from jobs.publish.site.streaming import SiteStream
from jobs.publish.state.update import PublishState, countersign, publish_state, rebuilder_signing_key
from jobs.publish.state.verify import rejected_row, trusted_workers

# An upload or temporary file this old was left by a killed writer: no write takes a day.
STALE_UPLOAD_AGE = timedelta(hours=24)

log = logging.getLogger(__name__)


@dataclass
class PublishSummary:
    """What one publish run did."""

    state: PublishState
    site: WriteStats | None = None
    site_detail: str = ""
    uploads_aborted: int = 0  # incomplete uploads (temporary files) of killed writers cleaned up

    def line(self) -> str:
        """One summary line."""
        line = self.state.line()
        if self.site is not None:
            line += f"; site: {self.site.written} written, {self.site.deleted} deleted, {self.site.unchanged} unchanged"
        elif self.site_detail:
            line += f"; site: {self.site_detail}"
        if self.uploads_aborted:
            line += f"; {self.uploads_aborted} incomplete upload(s) of killed writers aborted"
        return line


def countersigned_attestations(store: Store, config: RebuilderConfig, state: PublishState, new: pa.Table,
                                unconfined: pa.Table | None = None
                                ) -> tuple[set[str], dict[str, str], dict[str, dict], str | None]:
    """The countersignatures `publish_state` made and kept, and those a killed run missed.

    Only the history rows new to the site's facts (`new`: `facts.unlearned`) are looked
    at: older ones were settled when they were new. `unconfined`: the same rows before
    `confine_build_keys`, which drops an `attestation_key` naming a run's kept attestations
    (publish's own object, where an attestation a result carried is kept). Returns the ids
    of those new builds that have a countersigned attestation under `history/attestations/`,
    why the others were refused, the links of this run (the site publishes those from
    memory) and the key of the one object they are kept in (None: none).
    """
    problems = dict(state.attestation_problems)
    links = dict(state.countersigned)
    signed = set(links)
    if unconfined is not None:
        new = _with_kept_keys(new, unconfined)
    new = new.filter(pc.and_(pc.equal(new.column("status"), Status.GOOD.value),
                             pc.is_valid(new.column("attestation_key"))))
    missing, kept = [], []
    for row in from_table(new, HistoryRow):
        if row.build_id in signed:
            continue
        if ATTESTATION_BATCH_KEY.fullmatch(row.attestation_key or ""):
            kept.append(row)  # the result carried it; kept by the run that compacted it
        elif kept_attestation(store, row.build_id):  # kept in its own object (earlier publishes, the importer)
            signed.add(row.build_id)
        else:  # countersigned again (a run killed before keeping them: the same signature, Ed25519)
            missing.append(row)
    sign = config.http.transparently_sign_attestations
    more: dict[str, dict] = {}
    if kept or (missing and sign):  # a kept link is published whatever the setting, as its run kept it
        more, refused = countersign(store, rebuilder_signing_key(config) if sign else None,
                                    [*kept, *(missing if sign else [])], trusted_workers(store, config).keys)
        problems.update(refused)
        links.update(more)
    # One object for the whole run: the one the state step kept, unless a killed run's links joined them.
    batch = state.attestation_batch if state.attestation_batch and not more else keep_attestations(store, links)
    signed.update(links)
    return signed, problems, links, batch


def _with_kept_keys(new: pa.Table, unconfined: pa.Table) -> pa.Table:
    """`new` with each `attestation_key` naming a run's kept attestations restored from `unconfined` (same rows)."""
    raw = unconfined.column("attestation_key")
    kept = pc.fill_null(pc.match_substring_regex(raw, f"^{ATTESTATION_BATCH_KEY.pattern}$"), False)
    if not pc.any(kept).as_py():
        return new
    index = new.column_names.index("attestation_key")
    return new.set_column(index, new.schema.field(index), pc.if_else(kept, raw, new.column(index)))


def publish(store: Store, config: RebuilderConfig, *, site_store: Store | None = None, site_prefix: str = SITE,
            now: datetime | None = None, rebuilder_name: str = "rebuilder",
            clock: Callable[[], float] = time.time) -> PublishSummary:
    """One publish run (see the module docstring).

    `clock` is wall time, compared with the store's modification times of results to tell
    whether they have settled (docs/trust.md); tests move it on as they move leases on.
    """
    with cyclic_gc_paused(), configured(config.limits()):
        return _publish(store, config, site_store=site_store, site_prefix=site_prefix,
                        now=now or datetime.now(timezone.utc), rebuilder_name=rebuilder_name, clock=clock)


def _publish(store: Store, config: RebuilderConfig, *, site_store: Store | None, site_prefix: str, now: datetime,
             rebuilder_name: str, clock: Callable[[], float]) -> PublishSummary:
    state = publish_state(store, config, now=now, clock=clock)
    summary = PublishSummary(state)
    if state.busy:
        return summary
    leases = Leases(store, ttl=config.lease.ttl, clock_skew=config.lease.clock_skew)
    try:
        lease = leases.acquire(SITE_LOCK, f"publish@{socket.gethostname()}:{os.getpid()}")
    except LeaseHeld as exc:
        summary.site_detail = f"skipped, another publish ({exc.holder}) is writing it"
        return summary
    try:
        unconfined = state.history if state.history is not None else read_history(store)
        history = confine_build_keys(unconfined)
        kept = read_facts(store)
        new = unlearned(history, kept)
        signed, problems, links, batch = countersigned_attestations(store, config, state, new,
                                                                    unlearned(unconfined, kept))
        facts = learn_facts(store, history, countersigned=signed, problems=problems, kept=kept, new=new,
                            batch=None if batch is None else (batch, set(links)))
        write_facts(store, facts)
        trust = {k: "authorized" if source == "authorized_workers" else "enrolled"
                 for k, source in trusted_workers(store, config).sources.items()}
        target = site_store or store
        inputs = load_inputs(store, now=now, history=history, facts=facts.table, queue=state.queue)
        previous = read_manifest(target, site_prefix)
        with SiteStream(target, site_prefix, previous=previous) as stream:  # its writer threads stop at the end
            with progress.step("render", "publish: render", unit="files"):
                site = build_site(store, now=now, countersigned=links, public_keys=state.public_keys,
                                  rebuilder_name=rebuilder_name,
                                  rejected=[rejected_row(r) for r in (*state.rejected, *state.requests_rejected,
                                                                         *state.untrusted_workers)],
                                  worker_trust=trust, previous=previous, inputs=inputs, write_to=stream)
            with progress.step("write", "publish: write", total=0, unit="files"):
                summary.site = write_site(target, site, prefix=site_prefix, previous=previous)
        summary.uploads_aborted = abort_stale_uploads([store] if site_store is None else [store, site_store],
                                                      now - STALE_UPLOAD_AGE)
    finally:
        leases.release(lease)
    return summary


def abort_stale_uploads(stores: list[Store], started_before: datetime) -> int:
    """Abort what killed writers left unfinished in `stores`; a failure here only warns."""
    aborted = 0
    for store in stores:
        # Every store implements it; a wrapper that does not forward it (a benchmark's request
        # counter) simply has nothing cleaned up.
        abort = getattr(store, "abort_incomplete_uploads", None)
        if abort is None:
            continue
        try:
            aborted += abort(started_before)
        except RebuilderError as exc:  # e.g. no s3:ListBucketMultipartUploads permission
            log.warning("publish: could not clean up incomplete uploads in %s: %s", store.url, exc)
    return aborted
