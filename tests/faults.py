"""A store wrapper that fails, delays, loses answers or "kills the process" around chosen operations.

The cheapest way to prove "killed at any instant, nothing lost": run a job through a
`FaultyStore` that raises `Killed` at the N-th write, then rerun it on the plain store and
check that it converges to the state a run without faults reaches.

A fault is a `Fault` rule: an action (`kill`, `fail`, `delay`, `lost_answer`, `call`), when
(`before` or `after` the operation reaches the store) and which operations it matches (by
name, by key pattern, and the n-th match onwards for `times` matches). `FaultyStore(store,
kill_at=N, after=...)` is the short form of one kill at the N-th write.

Once a `kill` fires the wrapper is dead: every later call, from any thread, raises `Killed`
too, as nothing runs in a process after SIGKILL (a lease keeper thread cannot renew for it).

A fault that never fired means the test proved nothing about it: tests/conftest.py fails every
test in whose run a `Fault` of a `FaultyStore` never acted (`unfired()`), unless the rule says
`may_not_fire=True` (a fault that only fires on some runs, e.g. a race the test tolerates).
"""

from __future__ import annotations

import fnmatch
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from jobs.core.store import StoreUnavailable

WRITES = ("put", "put_if_absent", "put_if_match", "delete")
READS = ("get", "open", "head", "list")
ACTIONS = ("kill", "fail", "delay", "lost_answer", "call")


class Killed(BaseException):
    """Stands for SIGKILL: a BaseException, so no `except Exception` in the job can catch it."""


@dataclass
class Fault:
    """One rule: do `action` `when` the `nth` (and the next `times - 1`) matching operations run.

    - `kill`: raise `Killed` (before: nothing landed; after: the operation landed);
    - `fail`: raise `StoreUnavailable`, what a store raises once its own retries are spent
      (before: nothing landed; after: it landed but the answer never came back);
    - `delay`: sleep `seconds`, then go on;
    - `lost_answer`: the operation lands, its answer is lost and the client sends it again
      (botocore's retry of a request whose response timed out); the caller sees the second
      answer, e.g. a 412 for a create-only write that did land;
    - `call`: run `callback(op, key)` (e.g. restart the S3 server at that instant), then go on.

    `op` is one name or several (default: every write); `key` an fnmatch pattern on the key
    (or listing prefix); `times=0` means every match from the `nth` on.
    """

    action: str
    when: str = "before"
    op: str | Collection[str] = WRITES
    key: str | None = None
    nth: int = 1
    times: int = 1
    seconds: float = 0.0
    callback: Callable[[str, str], object] | None = None
    may_not_fire: bool = False  # exempt from the "every fault fired" check (tests/conftest.py)
    seen: int = 0  # matching operations so far
    fired: int = 0  # how often the action ran (a fault after an operation that raised does not)

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"unknown fault action {self.action!r}")
        if self.when not in ("before", "after"):
            raise ValueError(f"when must be 'before' or 'after', not {self.when!r}")
        if self.action == "lost_answer" and self.when != "after":
            raise ValueError("a lost answer is always after the operation landed")

    def matches(self, op: str, key: str) -> bool:
        """Count this operation if it matches; True if the action fires for it."""
        names = (self.op,) if isinstance(self.op, str) else tuple(self.op)
        if op not in names or (self.key is not None and not fnmatch.fnmatchcase(key, self.key)):
            return False
        self.seen += 1
        return self.seen >= self.nth and (self.times == 0 or self.seen < self.nth + self.times)


@dataclass
class FaultyStore:
    """Wraps a store; `faults` are applied in order. `kill_at=N` kills at the N-th write (`after`: once landed)."""

    store: object
    kill_at: int | None = None
    after: bool = False
    faults: list[Fault] = field(default_factory=list)
    ops: Counter = field(default_factory=Counter)
    writes: int = 0
    log: list[tuple[str, str]] = field(default_factory=list)  # every write: (op, key)
    landed: list[tuple[str, str]] = field(default_factory=list)  # every write the store accepted
    dead: bool = False
    killed_at: tuple[str, str, str] | None = None  # (when, op, key) of the kill

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        if self.kill_at is not None:
            self.faults.insert(0, Fault("kill", "after" if self.after else "before", nth=self.kill_at))
        if self.faults:
            CREATED.append(self)

    @property
    def url(self) -> str:
        return self.store.url

    def __getattr__(self, name: str):
        target = getattr(self.store, name)
        if not callable(target):
            return target

        def call(*args, **kwargs):
            key = str(args[0]) if args else str(kwargs.get("key", kwargs.get("prefix", "")))
            with self._lock:
                if self.dead:
                    raise Killed(f"already dead: {name} {key}")
                self.ops[name] += 1
                if name in WRITES:
                    self.writes += 1
                    self.log.append((name, key))
                firing = [f for f in self.faults if f.matches(name, key)]
            return self._apply(firing, name, key, target, args, kwargs)

        return call

    def _apply(self, firing: list[Fault], name: str, key: str, target, args, kwargs):
        for f in firing:
            if f.when == "before":
                self._act(f, "before", name, key)
        # botocore rewinds a seekable body before it sends a request again: so does the resend below.
        body = args[1] if len(args) > 1 else kwargs.get("body")
        start = body.tell() if hasattr(body, "seek") and hasattr(body, "tell") else None
        try:
            result = target(*args, **kwargs)
        except Exception:
            # A refused or failed operation: a kill after it still kills; other faults after it are moot.
            for f in firing:
                if f.action == "kill" and f.when == "after":
                    self._act(f, "after", name, key)
            raise
        if name in WRITES:
            with self._lock:
                self.landed.append((name, key))
        for f in firing:
            if f.when == "after":
                if f.action == "lost_answer":
                    if start is not None:
                        body.seek(start)
                    with self._lock:
                        f.fired += 1
                    result = target(*args, **kwargs)
                else:
                    self._act(f, "after", name, key)
        return result

    def _act(self, f: Fault, when: str, name: str, key: str) -> None:
        with self._lock:
            f.fired += 1
        if f.action == "kill":
            self._die(when, name, key)
        elif f.action == "fail":
            raise StoreUnavailable(f"injected failure {when} {name}", op=name, key=key, store=self.url)
        elif f.action == "delay":
            time.sleep(f.seconds)
        elif f.action == "call" and f.callback is not None:
            f.callback(name, key)

    def _die(self, when: str, name: str, key: str) -> None:
        with self._lock:
            self.dead = True
            self.killed_at = (when, name, key)
        raise Killed(f"killed {when} {name} {key}")


# Every FaultyStore with faults made in this process since tests/conftest.py last cleared it.
CREATED: list[FaultyStore] = []


def unfired() -> list[str]:
    """The faults of the FaultyStores in CREATED that never acted (and may not skip that)."""
    return [f"{f.action} {f.when} {f.op!r} key={f.key!r} nth={f.nth} (matched {f.seen} operations)"
            for faulty in CREATED for f in faulty.faults if not f.fired and not f.may_not_fire]
