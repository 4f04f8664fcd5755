"""A store wrapper that fails, or "kills the process", before or after a chosen operation.

The cheapest way to prove "killed at any instant, nothing lost": run a job through a
`FaultyStore` that raises `Killed` at the N-th write, then rerun it on the plain store and
check that it converges to the state a run without faults reaches.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

WRITES = ("put", "put_if_absent", "put_if_match", "delete")


class Killed(BaseException):
    """Stands for SIGKILL: a BaseException, so no `except Exception` in the job can catch it."""


@dataclass
class FaultyStore:
    """Wraps a store; `kill_at=N` kills at the N-th write, `after=True` once it has landed."""

    store: object
    kill_at: int | None = None
    after: bool = False
    ops: Counter = field(default_factory=Counter)
    writes: int = 0
    log: list[tuple[str, str]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.store.url

    def __getattr__(self, name: str):
        target = getattr(self.store, name)
        if not callable(target):
            return target

        def call(*args, **kwargs):
            self.ops[name] += 1
            if name not in WRITES:
                return target(*args, **kwargs)
            self.writes += 1
            self.log.append((name, args[0] if args else ""))
            if self.kill_at is not None and self.writes == self.kill_at and not self.after:
                raise Killed(f"killed before {name} {args[0] if args else ''}")
            if self.kill_at is not None and self.writes == self.kill_at and self.after:
                try:
                    target(*args, **kwargs)
                finally:  # whether the write landed or was refused, the process dies now
                    raise Killed(f"killed after {name} {args[0] if args else ''}")  # noqa: B012
            return target(*args, **kwargs)

        return call
