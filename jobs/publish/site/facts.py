"""What publish derives once per build and keeps: `history/site-facts.parquet`.

The site shows, for every build, facts that cost a store request to learn: its failure
class (the log tail is read when the reason is vague), whether the worker stored an HTML
diffoscope report beside the text one (listed in the result's signed files), and whether publish keeps a countersigned
attestation for it (in its publish run's `history/attestations/run-<name>.json`, named in
`attestation_object`, or in `history/attestations/<build id>.json`) or refused to countersign the
worker's (unreadable, or its signature does not verify: then it is not published). A build's files and history
row never change, so each fact is learned once, when publish first sees the build, and
kept here: a publish touches the store only for the builds that are new to it.

The object is a cache, not state: rewritten (one plain put, atomic) under the site lock
only when it gained rows, and if it is missing or unreadable every fact is learned again.
This module only computes: `jobs.publish.site.inputs` reads (`read_facts`, `learn_facts`),
`jobs.publish.site.sitewriter.write_facts` writes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from jobs.core.layout import SITE_FACTS, attestation_key
from jobs.core.model import Status
from jobs.publish.site.classify import FailureClass, classify, classify_reason

log = logging.getLogger(__name__)

FACTS_KEY = SITE_FACTS
SCHEMA = pa.schema([("build_id", pa.string()), ("failure_class", pa.string()),
                    ("diffoscope_html_key", pa.string()), ("countersigned", pa.bool_()),
                    ("attestation_problem", pa.string()),
                    # the publish run's object holding its countersigned link (None: its own object)
                    ("attestation_object", pa.string())])


@dataclass(frozen=True)
class Facts:
    """One row per history build, in history order (the table the site queries join)."""

    table: pa.Table  # SCHEMA
    learned: int  # builds whose facts this run learned


def facts_table(data: bytes) -> pa.Table:
    """The kept facts from their stored bytes (empty if unreadable: every build's facts are learned again)."""
    try:
        table = pq.read_table(pa.BufferReader(data))
        if "attestation_object" not in table.column_names:  # kept before runs batched their links
            table = table.append_column("attestation_object", pa.nulls(table.num_rows, pa.string()))
        return table.select(SCHEMA.names).cast(SCHEMA)
    except (pa.ArrowException, KeyError, ValueError) as exc:
        log.warning("unreadable %s (%s): every build's facts are learned again", FACTS_KEY, exc)
        return SCHEMA.empty_table()


def facts_document(facts: Facts) -> bytes:
    """The facts as kept at `FACTS_KEY` (`jobs.publish.site.sitewriter.write_facts`)."""
    sink = pa.BufferOutputStream()
    pq.write_table(facts.table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


def _failure_class(log_tail: Callable[[str], str | None], row: dict, reads: list[int],
                   max_log_reads: int) -> str | None:
    status = Status(row["status"])
    if status not in (Status.BAD, Status.FAIL):
        return None
    found = classify_reason(status, row["reason"])
    if found is None and row["log_key"] and reads[0] < max_log_reads:
        reads[0] += 1
        found = classify(status, row["reason"], log_tail(row["log_key"]))
    return (found or classify(status, row["reason"]) or FailureClass.UNKNOWN).value


def unlearned(history: pa.Table, kept: pa.Table) -> pa.Table:
    """The rows of `history` whose build the facts `kept` do not know yet."""
    ids, known = history.column("build_id"), kept.column("build_id")
    # The facts are learned in history order, so they are usually its first rows exactly:
    # comparing them is cheaper than hashing a million build ids.
    if len(known) <= len(ids) and ids.slice(0, len(known)).equals(known):
        return history.slice(len(known))
    return history.filter(pc.invert(pc.is_in(ids, value_set=known)))


def learn(history: pa.Table, *, kept: pa.Table, log_tail: Callable[[str], str | None],
          exists: Callable[[str], bool], countersigned: set[str] | None = None,
          problems: dict[str, str] | None = None, max_log_reads: int = 2000, new: pa.Table | None = None,
          batch: tuple[str, AbstractSet[str]] | None = None) -> Facts:
    """The facts of every build of `history` (confined keys), learning only the builds not kept yet.

    `kept`: the facts as `inputs.read_facts` returned them; `log_tail(key)` and `exists(key)`
    read the store (`jobs.publish.site.inputs.learn_facts` passes them); `countersigned`: the
    builds new to the facts that have a countersigned attestation (None: ask `exists`);
    `problems`: why a worker's attestation was not countersigned (it is then not published at
    all); `new`: `unlearned(history, kept)`, if the caller has it; `batch`: (the key of this
    run's countersigned attestations, the build ids in it). The history only grows, so
    every kept fact is of one of its builds (a stray one would be harmless: facts are joined to builds).
    """
    problems = problems or {}
    new = unlearned(history, kept) if new is None else new
    # Column by column (a full publish learns every build: no dict per row), and the signed
    # files only of the builds with a diffoscope report.
    ids = new.column("build_id").to_pylist()
    statuses = new.column("status").to_pylist()
    reasons = new.column("reason").to_pylist()
    log_keys = new.column("log_key").to_pylist()
    reports = new.column("diffoscope_key").to_pylist()
    with_report = [i for i, k in enumerate(reports) if k and "/" in k]
    files = dict(zip(with_report, new.column("files").take(pa.array(with_report, pa.int64())).to_pylist()))
    out: dict[str, list] = {name: [] for name in SCHEMA.names}
    reads, seen = [0], set()
    for i, build_id in enumerate(ids):
        if build_id in seen:
            continue
        seen.add(build_id)
        html = None
        if i in files:
            # Only a report the worker signed beside its text report (docs/trust.md).
            html = reports[i].rsplit("/", 1)[0] + "/diffoscope.html"
            html = html if any(f["key"] == html for f in files[i] or ()) else None
        status = statuses[i]
        if countersigned is not None:
            signed = build_id in countersigned
        else:
            signed = status == Status.GOOD.value and exists(attestation_key(build_id))
        failure = None
        if status in (Status.BAD.value, Status.FAIL.value):
            failure = _failure_class(log_tail, {"status": status, "reason": reasons[i], "log_key": log_keys[i]},
                                     reads, max_log_reads)
        out["build_id"].append(build_id)
        out["failure_class"].append(failure)
        out["diffoscope_html_key"].append(html)
        out["countersigned"].append(signed)
        out["attestation_problem"].append(None if signed else problems.get(build_id))
        out["attestation_object"].append(batch[0] if signed and batch and build_id in batch[1] else None)
    rows = len(out["build_id"])
    table = pa.concat_tables([kept, pa.table(out, schema=SCHEMA)]) if rows else kept
    return Facts(table, rows)
