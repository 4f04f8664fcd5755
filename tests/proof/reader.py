"""A reader that polls a store while jobs write to it and records every incomplete object it sees.

What a reader may rely on (docs/design.md#invariants, invariant 1): a pointer always parses and names a
target that parses (or that a newer pointer has replaced); results, claims and enrolments
are whole signed JSON; logs are whole gzip streams; the published JSON feeds parse.
Listing an object that is gone when read is fine (deleted meanwhile); a store that does not
answer (a server restarting) is skipped and polled again.
"""

from __future__ import annotations

import gzip
import io
import json
import threading
import time
from collections import Counter

import pyarrow.parquet as pq

from jobs.core.lease import LeaseState
from jobs.core.model import read_table
from jobs.core.pointer import Pointer
from jobs.core.signing import public_key_from_b64, verify_document
from jobs.core.store import NotFound, Store, StoreUnavailable

POINTERS = ("queue", "history", "state/fixture")


class Reader(threading.Thread):
    """Polls `store` until stopped; `problems` lists every incomplete object it saw."""

    def __init__(self, store: Store) -> None:
        super().__init__(daemon=True, name="proof-reader")
        self.store = store
        self.problems: list[str] = []
        self.seen: Counter = Counter()  # kind -> objects checked whole
        self.unavailable = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                self.poll()
            except StoreUnavailable:
                self.unavailable += 1
                time.sleep(0.05)
            except Exception as exc:  # noqa: BLE001 - e.g. a pointer that does not parse
                self.problems.append(f"poll failed: {type(exc).__name__}: {exc}")

    def stop(self) -> Reader:
        """Stop after one last complete poll."""
        self._halt.set()
        self.join(timeout=120)
        self.poll()
        return self

    def poll(self) -> None:
        """Check every pointer and every object a reader can reach, once."""
        for prefix in POINTERS:
            self._pointer(prefix)
        for info in list(self.store.list("")):
            kind = info.key.split("/", 1)[0]
            if kind == "claims" and ".done/" in info.key:
                kind = "results"  # a worker's result, stored as its done receipt
            try:
                data = self.store.get(info.key)
            except NotFound:
                continue
            try:
                self._object(kind, info.key, data.data, data.info.content_encoding)
            except StoreUnavailable:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure to parse is what this records
                self.problems.append(f"{info.key}: {type(exc).__name__}: {exc}")

    def _pointer(self, prefix: str) -> None:
        pointer = Pointer(self.store, prefix)
        for _ in range(5):
            value, etag = pointer.read()  # PointerCorrupt would fail the poll: a torn pointer
            if value is None:
                return
            try:
                target = self.store.get(value.target).data
            except NotFound:
                if pointer.read()[1] != etag:
                    continue  # moved on and collected meanwhile: follow the newer one
                self.problems.append(f"{pointer.key} names {value.target}, which does not exist")
                return
            try:
                if prefix == "history":
                    for part in json.loads(target)["parts"]:
                        read_table(self.store.get(part).data)
                else:
                    read_table(target)
            except StoreUnavailable:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure to parse is what this records
                self.problems.append(f"{value.target} (named by {pointer.key}): {type(exc).__name__}: {exc}")
            self.seen["pointer"] += 1
            return

    def _object(self, kind: str, key: str, data: bytes, encoding: str | None) -> None:
        if kind == "results":
            doc = json.loads(data)
            signer = doc["signed"]["result"]["worker_key_id"]
            enrolment = json.loads(self.store.get(f"workers/{signer}.json").data)
            verify_document(doc, {signer: public_key_from_b64(enrolment["signed"]["public_key"])})
        elif kind == "claims" and ".start/" in key:
            json.loads(data)["signed"]["job_id"]  # a worker's signed start marker
        elif kind == "claims" and ".lost/" in key:
            json.loads(data)["signed"]["token"]  # a worker's signed claim notice
        elif kind in ("claims", "locks"):
            if LeaseState.from_bytes(data) is None:
                raise ValueError("not a lease")
        elif kind == "workers":
            json.loads(data)["signed"]["public_key"]
        elif kind == "builds" and key.endswith("/log"):
            gzip.decompress(data)
        elif key.endswith(".parquet"):
            pq.read_table(io.BytesIO(data))  # a torn file has no footer
        elif kind == "site" and key.endswith(".html"):
            if b"</html>" not in (gzip.decompress(data) if encoding == "gzip" else data):
                raise ValueError("HTML page without its end")
        elif key.endswith(".json") or (kind == "site" and "/api/" in key and not key.endswith(("/log", "/diffoscope"))):
            json.loads(gzip.decompress(data) if encoding == "gzip" else data)
        else:
            return
        self.seen[kind] += 1

