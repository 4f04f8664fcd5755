"""A counting store whose listing of `claims/` is what S3 would answer (bench_claims' simulated workers).

The local-directory store the simulation runs on walks one directory per job ever claimed;
`ListedClaims` keeps the claim keys that exist, in S3's order with their last write time,
and counts a LIST request per 1,000 of them, as S3 bills them. `Uncounted` is the same
objects for the simulated publish, whose requests are not the workers'.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

from bench.counting import LIST_PAGE, CountingStore
from jobs.core.store import ObjectInfo, Store


class ListedClaims(CountingStore):
    """A counting store that answers `list("claims/")` from the claims it holds, as S3 would.

    The local store walks one directory per job ever claimed (deleting a claim leaves its
    directory), so its listing would cost O(jobs ever claimed) here where S3 pages through
    the keys that exist. Keys come in S3's order with the time of their last write; a LIST
    request is counted per 1,000 keys (the first page even when empty), as S3 bills them.
    """

    def __init__(self, inner: Store) -> None:
        super().__init__(inner)
        self._claims: dict[str, ObjectInfo] = {}
        self._order: list[str] = []  # the keys of `_claims`, sorted
        self._claims_lock = threading.Lock()

    def claim_keys(self) -> list[str]:
        """The claim keys that exist now."""
        with self._claims_lock:
            return list(self._order)

    def uncounted(self) -> Uncounted:
        """The same objects, for the simulated publish: its listing and deletes are not counted."""
        return Uncounted(self)

    def _written(self, key: str) -> None:
        if key.startswith("claims/"):
            with self._claims_lock:
                if key not in self._claims:
                    bisect.insort(self._order, key)
                self._claims[key] = ObjectInfo(key=key, size=0, last_modified=datetime.now(timezone.utc))

    def put(self, key: str, body: Any, **kwargs: Any) -> str:
        etag = super().put(key, body, **kwargs)
        self._written(key)
        return etag

    def put_if_absent(self, key: str, body: Any, **kwargs: Any) -> str:
        etag = super().put_if_absent(key, body, **kwargs)
        self._written(key)
        return etag

    def put_if_match(self, key: str, body: Any, etag: str, **kwargs: Any) -> str:
        new = super().put_if_match(key, body, etag, **kwargs)
        self._written(key)
        return new

    def delete(self, key: str) -> None:
        super().delete(key)
        self._forget(key)

    def _forget(self, key: str) -> None:
        with self._claims_lock:
            if self._claims.pop(key, None) is not None:
                del self._order[bisect.bisect_left(self._order, key)]

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        if prefix != "claims/":
            yield from super().list(prefix)
            return
        listed = self.listed_claims()
        self._count("list", prefix, max(1, -(-len(listed) // LIST_PAGE)), group=prefix)
        with self._lock:
            self._counts.list_keys += len(listed)
            self._counts.listed[prefix] += len(listed)
        yield from listed

    def listed_claims(self) -> list[ObjectInfo]:
        """What a listing of `claims/` returns now."""
        with self._claims_lock:
            return [self._claims[key] for key in self._order]

    def forget(self, key: str) -> None:
        """Delete a claim without counting the request."""
        self.inner.delete(key)
        self._forget(key)


class Uncounted:
    """The `list("claims/")` and `delete` that `prune` uses, on a `ListedClaims`, not counted."""

    def __init__(self, store: ListedClaims) -> None:
        self.store = store

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        if prefix != "claims/":
            raise ValueError(f"the simulated publish lists claims/ only, not {prefix!r}")
        yield from self.store.listed_claims()

    def delete(self, key: str) -> None:
        self.store.forget(key)
