"""Admin requests (requeue, queue push, queue drop): written by rebuildctl, applied by publish.

The format is `jobs.core.requests`.

Semantics (docs/design.md#manual-requeue): `requeue` (re)queues every job of the current package-state
snapshots that matches every given filter, due now, at `priority`, past `max_retries`,
keeping its history; `push` does the same for one named package's latest version (or
`version`); `drop` removes matching jobs from the queue. A requeued job gets an attempt
after any attempt that already has a result, so no claim is ever reused.

Publish applies requests in name order inside its queue update and deletes them only after
that update landed, so a kill in between applies them again, which changes nothing. Requests
that do not verify (no cookie configured, bad HMAC, malformed) are left in place and listed
with a reason every run, for the operator to delete.

A request acts once. Publish refuses one whose `created_at` is more than `[auth]
request_max_age` (+ `[lease] clock_skew`) in the past or more than `clock_skew` in the
future (`stale`, `future`), and one whose nonce it applied before (`replayed`, under any
object name): after the queue update landed and before deleting the requests it records
their nonces in `history/applied-requests.json` (only publish writes `history/`), keeping
each as long as the window would accept its request. A request found again under the very
name its nonce was recorded with is the leftover of a publish killed before its delete
(`already-applied`); publish deletes it. Refused requests change nothing and are listed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from fnmatch import fnmatchcase
from functools import cmp_to_key

from jobs.core.bounded import OverLimit, read_object
from jobs.core.config import RebuilderConfig
from jobs.core.errors import TerminalError
from jobs.core.history import BuildSummary
from jobs.core.layout import APPLIED_REQUESTS, REQUEST_KEY, REQUESTS, STATE, state_head_profile, state_prefix
from jobs.core.model import JobRow, PackageStateRow, Status, format_timestamp, parse_timestamp, read_parquet
from jobs.core.pointer import Pointer
from jobs.core.requests import (
    MAX_REQUEST_BYTES,
    Request,
    parse_payload,
)
from jobs.core.signing import hmac_verify
from jobs.core.store import NotFound, Reads
from jobs.core.vercmp import VERSION_ORDER, vercmp
from jobs.publish.state.verify import Rejected


class Refusal(StrEnum):
    """Why a request was not applied (the `reason` of its `Rejected`)."""

    NO_COOKIE = "no-cookie"
    BAD_KEY = "bad-key"
    OVERSIZED = "oversized"
    NOT_JSON = "not-json"
    BAD_HMAC = "bad-hmac"
    SCHEMA = "schema"
    STALE = "stale"  # created longer ago than [auth] request_max_age (+ clock_skew)
    FUTURE = "future"  # created further than clock_skew in the future
    REPLAYED = "replayed"  # its nonce was applied before (or is another pending request's)
    ALREADY_APPLIED = "already-applied"  # left behind by a publish killed before its delete: deleted


@dataclass
class AppliedNonces:
    """Nonces of applied requests (`APPLIED`): nonce -> (request key, created_at, applied_at)."""

    entries: dict[str, tuple[str, datetime, datetime]] = field(default_factory=dict)


APPLIED = APPLIED_REQUESTS
APPLIED_SCHEMA = "rebuilder.applied-requests/1"


@dataclass
class RequestChanges:
    """What requests did: job ids queued or re-prioritised, and dropped, per request key."""

    queued: dict[str, list[str]] = field(default_factory=dict)
    dropped: dict[str, list[str]] = field(default_factory=dict)


class _Refusal(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def read_applied(store: Reads) -> AppliedNonces:
    """The nonces publish recorded as applied (none before the first request)."""
    try:
        doc = json.loads(store.get(APPLIED).data)
        if not isinstance(doc, dict) or doc.get("schema") != APPLIED_SCHEMA or not isinstance(doc.get("nonces"), dict):
            raise ValueError(f"not a {APPLIED_SCHEMA} document")
        return AppliedNonces({n: (e["key"], parse_timestamp(e["created_at"]), parse_timestamp(e["applied_at"]))
                              for n, e in doc["nonces"].items()})
    except NotFound:
        return AppliedNonces()
    except (ValueError, UnicodeDecodeError, RecursionError, KeyError, TypeError) as exc:
        # Forgetting them would let every request of the window act again: stop instead.
        raise TerminalError(f"{APPLIED} is unreadable ({str(exc)[:200]}); fix it, or delete it and "
                            f"every request of the last [auth] request_max_age") from None


def applied_after(config: RebuilderConfig, requests: Sequence[Request], *, now: datetime,
                  applied: AppliedNonces) -> tuple[AppliedNonces, bytes | None]:
    """`applied` with the nonces of `requests` added, forgetting those the window refuses anyway,
    and the `APPLIED` document to save (None: nothing changed).

    `jobs.publish.state.update.record_applied` saves it."""
    oldest = now - _window(config)
    kept = {n: e for n, e in applied.entries.items() if e[1] >= oldest}
    for req in requests:
        kept.setdefault(req.nonce, (req.key, req.created_at, now))
    if kept == applied.entries and not requests:
        return applied, None
    body = {"schema": APPLIED_SCHEMA, "nonces": {
        n: {"key": k, "created_at": format_timestamp(c), "applied_at": format_timestamp(a)}
        for n, (k, c, a) in sorted(kept.items())}}
    return AppliedNonces(kept), json.dumps(body, indent=1, sort_keys=True).encode()


def _window(config: RebuilderConfig) -> timedelta:
    return timedelta(seconds=config.auth.request_max_age + config.lease.clock_skew)


def load_requests(store: Reads, config: RebuilderConfig, *, now: datetime | None = None,
                  applied: AppliedNonces | None = None) -> tuple[list[Request], list[Rejected]]:
    """Every pending request that verifies with `[auth] cookie`, is fresh and was never applied, in
    name order, and those that are not (see the module docstring)."""
    cookie = config.auth.cookie
    now = now or datetime.now(timezone.utc)
    applied = read_applied(store) if applied is None else applied
    skew = timedelta(seconds=config.lease.clock_skew)
    accepted: list[Request] = []
    rejected: list[Rejected] = []
    for info in store.list(REQUESTS):
        try:
            if not cookie:
                raise _Refusal(Refusal.NO_COOKIE, "no [auth] cookie is configured: no request can be verified")
            if not REQUEST_KEY.fullmatch(info.key):
                raise _Refusal(Refusal.BAD_KEY, "not requests/<name>.json")
            if info.size > MAX_REQUEST_BYTES:
                raise _Refusal(Refusal.OVERSIZED, f"{info.size} bytes")
            try:
                doc = json.loads(read_object(store, info.key, MAX_REQUEST_BYTES)[0])  # it may have grown since
            except OverLimit:
                raise _Refusal(Refusal.OVERSIZED, f"more than {MAX_REQUEST_BYTES} bytes") from None
            except (ValueError, UnicodeDecodeError):
                raise _Refusal(Refusal.NOT_JSON, "not JSON") from None
            if not isinstance(doc, dict) or set(doc) != {"payload", "hmac"}:
                raise _Refusal(Refusal.SCHEMA, "must have exactly 'payload' and 'hmac'")
            if not hmac_verify(cookie, doc["payload"], doc["hmac"]):
                raise _Refusal(Refusal.BAD_HMAC, "HMAC does not verify with this rebuilder's [auth] cookie")
            try:
                req = parse_payload(doc["payload"], info.key)
            except ValueError as exc:
                raise _Refusal(Refusal.SCHEMA, str(exc)) from None
            if req.created_at < now - _window(config):
                raise _Refusal(Refusal.STALE, f"created {format_timestamp(req.created_at)}, more than "
                               f"{config.auth.request_max_age} s ([auth] request_max_age) + {skew.seconds} s ago")
            if req.created_at > now + skew:
                raise _Refusal(Refusal.FUTURE, f"created {format_timestamp(req.created_at)}, in the future")
            if req.nonce in applied.entries:
                key, _, when = applied.entries[req.nonce]
                if key == info.key:
                    raise _Refusal(Refusal.ALREADY_APPLIED, f"applied {format_timestamp(when)} by a publish "
                                   "killed before deleting it")
                raise _Refusal(Refusal.REPLAYED, f"its nonce was applied {format_timestamp(when)} as {key}")
            accepted.append(req)
        except _Refusal as exc:
            rejected.append(Rejected(info.key, exc.reason, exc.detail))
        except NotFound:
            continue
    # Two pending requests with one nonce: a copy. The first by name acts, the others are refused.
    seen: dict[str, str] = {}
    unique: list[Request] = []
    for req in sorted(accepted, key=lambda r: r.key):
        if req.nonce in seen:
            rejected.append(Rejected(req.key, Refusal.REPLAYED, f"its nonce is also {seen[req.nonce]}'s"))
        else:
            seen[req.nonce] = req.key
            unique.append(req)
    return unique, rejected


def current_state_rows(store: Reads) -> list[PackageStateRow]:
    """The rows of every profile's current package-state snapshot (`state/<profile>/HEAD.json`)."""
    rows: list[PackageStateRow] = []
    for info in store.list(STATE):
        profile = state_head_profile(info.key)
        if profile is not None:
            value, _ = Pointer(store, state_prefix(profile)).read()
            if value is not None:
                rows.extend(r for r in read_parquet(store.get(value.target).data) if isinstance(r, PackageStateRow))
    return rows


def _matches(req: Request, distro: str, releases: Iterable[str | None], components: Iterable[str | None],
             architectures: Iterable[str], names: Iterable[str], versions: Iterable[str], status: Status) -> bool:
    return ((req.distro is None or req.distro == distro)
            and (req.release is None or req.release in set(releases))
            and (req.component is None or req.component in set(components))
            and (req.architecture is None or req.architecture in set(architectures))
            and (req.name is None or any(fnmatchcase(n, req.name) for n in names))
            and (req.version is None or req.version in set(versions))
            and (req.status is None or req.status is status))


def _row_matches(req: Request, r: PackageStateRow, status: Status) -> bool:
    return _matches(req, r.distro, (r.release,), (r.component,), (r.architecture, r.artifact_architecture),
                    (r.artifact_name, r.source_name), (r.artifact_version, r.source_version), status)


def _job_matches(req: Request, j: JobRow, status: Status) -> bool:
    a = j.artifacts
    return _matches(req, j.distro, j.releases, [x.component for x in a], [j.architecture, *(x.architecture for x in a)],
                    [j.source_name, *(x.name for x in a)], [j.source_version, *(x.version for x in a)], status)


def _latest(rows: list[PackageStateRow]) -> list[PackageStateRow]:
    """Per (distro, source), only the rows of its newest source version."""
    groups: dict[tuple[str, str], list[PackageStateRow]] = {}
    for r in rows:
        groups.setdefault((r.distro, r.source_name), []).append(r)
    out = []
    for (distro, _), group in groups.items():
        order = cmp_to_key(VERSION_ORDER.get(distro, vercmp))
        newest = max((r.source_version for r in group), key=order)
        out.extend(r for r in group if r.source_version == newest)
    return out


def apply_loaded(jobs: Mapping[str, JobRow], requests: Sequence[Request], *, state_rows: Sequence[PackageStateRow],
                 history: Mapping[str, BuildSummary], latest_attempts: Mapping[str, int],
                 now: datetime) -> tuple[dict[str, JobRow], RequestChanges]:
    """The queue after these requests (pure; applying them twice equals applying them once)."""
    out = dict(jobs)
    changes = RequestChanges()
    by_job: dict[str, list[PackageStateRow]] = {}
    for r in state_rows:
        by_job.setdefault(r.job_id, []).append(r)

    def status(jid: str) -> Status:
        return history[jid].status if jid in history else Status.UNKWN

    for req in requests:
        if req.verb == "drop":
            gone = sorted(j for j, row in out.items() if _job_matches(req, row, status(j)))
            for jid in gone:
                del out[jid]
            changes.dropped[req.key] = gone
            continue
        matched = [r for r in state_rows if _row_matches(req, r, status(r.job_id))]
        if req.verb == "push" and req.version is None:
            matched = _latest(matched)
        queued = sorted({r.job_id for r in matched})
        for jid in queued:
            out[jid] = _requeued(out.get(jid), by_job[jid], req, history.get(jid), latest_attempts.get(jid, 0), now)
        changes.queued[req.key] = queued
    return out, changes


def _requeued(job: JobRow | None, rows: list[PackageStateRow], req: Request, summary: BuildSummary | None,
              latest_attempt: int, now: datetime) -> JobRow:
    done = max(summary.attempt if summary else 0, latest_attempt)
    if job is not None:
        return replace(job, priority=req.priority, not_before=None, attempt=max(job.attempt, done + 1),
                       retries=0 if req.reset else job.retries)
    first = rows[0]
    return JobRow(job_id=first.job_id, backend=first.backend, architecture=first.architecture,
                  input_url=first.input_url, distro=first.distro,
                  releases=tuple(dict.fromkeys(r.release for r in rows)), source_name=first.source_name,
                  source_version=first.source_version, artifacts=tuple(dict.fromkeys(r.artifact for r in rows)),
                  priority=req.priority, queued_at=now, not_before=None, attempt=done + 1,
                  retries=0 if req.reset or summary is None else summary.retries)


def apply_requests(store: Reads, config: RebuilderConfig, jobs: Mapping[str, JobRow], *,
                   state_rows_loader: Callable[[], Sequence[PackageStateRow]],
                   history: Mapping[str, BuildSummary], latest_attempts: Mapping[str, int] | None = None,
                   now: datetime | None = None) -> tuple[dict[str, JobRow], list[str], list[Rejected]]:
    """Load and apply every verified request to `jobs`: (new jobs, applied request keys, rejected).

    Nothing is recorded nor deleted: `jobs.publish.state.update` does that once the queue update landed.
    """
    requests, rejected = load_requests(store, config, now=now)
    rows = state_rows_loader() if any(r.verb != "drop" for r in requests) else ()
    new, _ = apply_loaded(jobs, requests, state_rows=rows, history=history, latest_attempts=latest_attempts or {},
                          now=now or datetime.now(timezone.utc))
    return new, [r.key for r in requests], rejected
