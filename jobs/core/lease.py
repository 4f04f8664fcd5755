"""Leases on top of conditional writes: claims, the publish lock and the sync locks.

A lease is one small JSON object (docs/design.md#invariants, invariant 3; docs/storage.md#leases):

- acquire: `put_if_absent`; if the object exists and its lease has expired (or was
  released, or is unreadable), take it over with `put_if_match` on the ETag just read,
  so of several contenders exactly one wins;
- renew: `put_if_match` on the holder's last ETag; a 412 means somebody took over and
  the holder has lost (`LeaseLost`): it must stop and report nothing;
- check: a GET, which finds a takeover as a refused renewal would, for a tenth of the
  price of a write (S3 bills GETs at 1/12.5 of PUTs): `LeaseKeeper` checks every third of
  the TTL and writes a renewal only every other time, when the lease runs low;
- release: `put_if_match` writing a released state, so the next holder need not wait.

Clocks: a contender treats a lease as expired only `clock_skew` seconds after its
`expires_at`, and the holder treats it as unsafe `clock_skew` seconds before, so two
machines whose clocks differ by less than the allowance never both believe they hold it.
A write whose response was lost is recognised by the unique token in the body.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from jobs.core.errors import TerminalError, TransientError
from jobs.core.store import NotFound, PreconditionFailed, Store, StoreUnavailable

SCHEMA = "rebuilder.lease/1"
_YEAR_10000 = 253402300800.0  # seconds since 1970 at 10000-01-01: every lease time is before it
log = logging.getLogger(__name__)


class LeaseHeld(TransientError):
    """Somebody else holds an unexpired lease on this key."""

    def __init__(self, key: str, holder: str, expires_at: float) -> None:
        super().__init__("lease is held", key=key, holder=holder, expires_at=round(expires_at, 3))
        self.key, self.holder, self.expires_at = key, holder, expires_at


class LeaseLost(TerminalError):
    """The holder's lease was taken over (or vanished): stop, and report nothing."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"lease lost: {reason}", key=key)
        self.key, self.reason = key, reason


@dataclass(frozen=True)
class LeaseState:
    """What the lease object stores."""

    holder: str
    token: str
    acquired_at: float
    renewed_at: float
    expires_at: float
    generation: int = 1
    released: bool = False
    meta: Mapping[str, Any] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        """Serialise with the schema tag (the object is untrusted input for readers)."""
        return json.dumps({"schema": SCHEMA, **asdict(self), "meta": dict(self.meta)},
                          sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> LeaseState | None:
        """Parse a lease object; None if it is not a valid lease (it then counts as expired)."""
        try:
            raw = json.loads(data)
            if raw.get("schema") != SCHEMA:
                return None
            times = [float(raw[name]) for name in ("acquired_at", "renewed_at", "expires_at")]
            if not all(0.0 <= t < _YEAR_10000 for t in times):  # NaN, Infinity, 1e20: no clock's time
                return None
            holder, token = str(raw["holder"]), str(raw["token"])
            holder.encode(), token.encode()  # UnicodeEncodeError (a ValueError): a lone surrogate is no text
            return cls(holder=holder, token=token,
                       acquired_at=times[0], renewed_at=times[1], expires_at=times[2],
                       generation=int(raw["generation"]), released=bool(raw["released"]),
                       meta=dict(raw.get("meta") or {}))
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
            return None  # RecursionError: JSON nested past the parser's limit (tests/hostile)


@dataclass(frozen=True)
class Lease:
    """A lease this process holds: the stored state and the ETag to renew against."""

    key: str
    state: LeaseState
    etag: str


class Leases:
    """Acquire, renew and release leases in one store with one TTL and skew allowance."""

    def __init__(self, store: Store, *, ttl: float = 600.0, clock_skew: float = 30.0,
                 clock: Callable[[], float] = time.time) -> None:
        if ttl <= 2 * clock_skew:
            raise ValueError(f"lease ttl ({ttl}s) must exceed twice the clock skew allowance ({clock_skew}s)")
        self.store, self.ttl, self.clock_skew, self.clock = store, ttl, clock_skew, clock

    def read(self, key: str) -> tuple[LeaseState | None, str] | None:
        """The current lease state and ETag, None if there is no object (state None if unreadable)."""
        try:
            blob = self.store.get(key)
        except NotFound:
            return None
        return LeaseState.from_bytes(blob.data), blob.etag

    def is_expired(self, state: LeaseState | None, now: float | None = None) -> bool:
        """Whether a contender may take this lease over now (by its own clock)."""
        now = self.clock() if now is None else now
        return state is None or state.released or now > state.expires_at + self.clock_skew

    def is_safe(self, lease: Lease, now: float | None = None) -> bool:
        """Whether the holder may still act on its lease (by its own clock)."""
        now = self.clock() if now is None else now
        return now < lease.state.expires_at - self.clock_skew

    def acquire(self, key: str, holder: str, meta: Mapping[str, Any] | None = None, *,
                keep: Callable[[LeaseState], bool] | None = None) -> Lease:
        """Take the lease, or raise LeaseHeld naming the current holder.

        `keep(state)` true means an expired or released lease must not be taken over either
        (e.g. a claim released with `done` in its metadata).
        """
        now = self.clock()
        state = LeaseState(holder=holder, token=secrets.token_hex(16), acquired_at=now, renewed_at=now,
                           expires_at=now + self.ttl, meta=dict(meta or {}))
        for _ in range(3):
            try:
                return Lease(key, state, self.store.put_if_absent(key, state.to_bytes(),
                                                                  content_type="application/json"))
            except PreconditionFailed:
                pass
            current = self.read(key)
            if current is None:
                continue  # deleted meanwhile: try to create it again
            cur_state, etag = current
            if cur_state is not None and cur_state.token == state.token:
                return Lease(key, state, etag)  # our create landed; only its answer was lost
            if cur_state is not None and keep is not None and keep(cur_state):
                raise LeaseHeld(key, cur_state.holder, cur_state.expires_at)
            if not self.is_expired(cur_state):
                assert cur_state is not None
                raise LeaseHeld(key, cur_state.holder, cur_state.expires_at)
            state = replace(state, generation=(cur_state.generation + 1) if cur_state else 1)
            try:
                return Lease(key, state, self.store.put_if_match(key, state.to_bytes(), etag,
                                                                 content_type="application/json"))
            except PreconditionFailed:
                won = self._landed(key, state)
                if won:
                    return won
                current = self.read(key)
                if current and current[0] and not self.is_expired(current[0]):
                    raise LeaseHeld(key, current[0].holder, current[0].expires_at) from None
        raise LeaseHeld(key, "?", now)

    def renew(self, lease: Lease) -> Lease:
        """Extend the lease by the TTL; LeaseLost if somebody took it over."""
        now = self.clock()
        state = replace(lease.state, renewed_at=now, expires_at=now + self.ttl)
        return self._swap(lease, state, "renew")

    def check(self, lease: Lease) -> Lease:
        """Read the lease back (one GET); LeaseLost if somebody took it over or it is gone.

        The same evidence a refused renewal gives, without a write. An object rewritten with
        the very same state (an ETag the store changed) is still ours: its new ETag is kept.
        """
        current = self.read(lease.key)
        if current is None:
            raise LeaseLost(lease.key, "check found no lease object: it was removed")
        state, etag = current
        if state != lease.state:
            raise LeaseLost(lease.key, "check found the lease object changed")
        return lease if etag == lease.etag else Lease(lease.key, lease.state, etag)

    def keep(self, lease: Lease, *, renew_below: float) -> Lease:
        """Renew the lease if less than `renew_below` seconds of it are left, else only check it."""
        if lease.state.expires_at - self.clock() < renew_below:
            return self.renew(lease)
        return self.check(lease)

    def release(self, lease: Lease, meta: Mapping[str, Any] | None = None) -> None:
        """Give the lease up so others need not wait for it to expire (`meta` is merged in)."""
        now = self.clock()
        state = replace(lease.state, renewed_at=now, expires_at=now, released=True,
                        meta={**lease.state.meta, **(meta or {})})
        self._swap(lease, state, "release")

    def _swap(self, lease: Lease, state: LeaseState, what: str) -> Lease:
        try:
            etag = self.store.put_if_match(lease.key, state.to_bytes(), lease.etag,
                                           content_type="application/json")
        except PreconditionFailed:
            won = self._landed(lease.key, state)
            if won:
                return won
            raise LeaseLost(lease.key, f"{what} refused: the lease object changed") from None
        return Lease(lease.key, state, etag)

    def _landed(self, key: str, state: LeaseState) -> Lease | None:
        """After a 412: did our own write land (a retried request whose first answer was lost)?"""
        current = self.read(key)
        if current and current[0] == state:
            return Lease(key, state, current[1])
        return None


class LeaseKeeper:
    """Keeps a lease in a background thread: looks at it every third of the TTL.

    Each look is a check (a GET) unless the lease would run low before the next one (less
    than an interval plus a quarter of the TTL, at least twice the skew allowance, left):
    then it is a renewal (a write). With the default interval that is every other look, so
    a takeover is still noticed within a third of the TTL (publish's settling time rests on
    it, docs/trust.md) while a 600 s lease costs one write per 400 s instead of per 200 s.
    After a transient error it tries again sooner (every `retry` seconds).

    `lost` is set when a check finds the lease changed or a renewal is refused, or when
    transient errors kept it from renewing until the lease became unsafe; the holder must
    then stop its work.
    """

    def __init__(self, leases: Leases, lease: Lease, *, interval: float | None = None,
                 retry: float = 15.0) -> None:
        self.leases, self.lease = leases, lease
        self.interval = interval if interval is not None else leases.ttl / 3
        self.renew_below = self.interval + max(leases.ttl / 4, 2 * leases.clock_skew)
        self.retry = min(retry, self.interval)
        self.lost = threading.Event()
        self.reason: str | None = None
        self.taken_while_live = False  # a renewal was refused while the lease was still safe: a takeover
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-keeper {lease.key}", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop renewing (the lease itself is kept; release it separately)."""
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join()

    def check(self) -> None:
        """LeaseLost if the lease was lost: call it before each step others would see."""
        if self.lost.is_set():
            raise LeaseLost(self.lease.key, self.reason or "lost")

    def _run(self) -> None:
        wait = self.interval
        while not self._stop.wait(wait):
            wait = self.interval
            try:
                self.lease = self.leases.keep(self.lease, renew_below=self.renew_below)
            except LeaseLost as exc:
                self.taken_while_live = self.leases.is_safe(self.lease)
                self._lose(exc.reason)
                return
            except StoreUnavailable as exc:
                if not self.leases.is_safe(self.lease):
                    self._lose(f"could not renew before expiry: {exc}")
                    return
                wait = self.retry

    def _lose(self, reason: str) -> None:
        self.reason = reason
        self.lost.set()


class Held:
    """A lease taken now (LeaseHeld if somebody else holds it) and kept renewed while in a `with` block.

    The block gets the LeaseKeeper: call its `check()` before each step others would see.
    Leaving the block releases the lease unless it was lost, however the block ends: its
    holders (publish, import-rebuilderd) make every step visible by one conditional write, so
    nothing half-done is left and the next run may start at once. When an error is already on
    its way out, a failing release only warns (the original error matters more). A process
    killed outright releases nothing: its lease simply expires.
    """

    def __init__(self, leases: Leases, key: str, holder: str, meta: Mapping[str, Any] | None = None) -> None:
        self.leases = leases
        self.keeper = LeaseKeeper(leases, leases.acquire(key, holder, meta))

    def __enter__(self) -> LeaseKeeper:
        return self.keeper.__enter__()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        self.keeper.stop()
        if self.keeper.lost.is_set():
            return
        if kind is None:
            self.leases.release(self.keeper.lease)
            return
        try:
            self.leases.release(self.keeper.lease)
        except Exception as failed:  # noqa: BLE001 - the original error matters more
            log.warning("could not release %s: %s", self.keeper.lease.key, failed)
