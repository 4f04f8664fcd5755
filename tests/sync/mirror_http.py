"""A loopback HTTP mirror that answers conditional GETs the way real servers do, and counts what it sent.

`mode` picks the server's behaviour:

- `etag`: a strong ETag (a digest of the bytes) and `If-None-Match` (S3, many CDNs);
- `last-modified`: `Last-Modified` from the file's mtime and `If-Modified-Since` (http.server's own rule);
- `both`: both validators, `If-None-Match` winning when sent (nginx, Apache; RFC 9110 §13.2.2);
- `ignore`: sends both validators but never answers 304 (a mirror or proxy that ignores them);
- `none`: sends no validator at all.
"""

from __future__ import annotations

import hashlib
import http.server
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path

from tests.httpd import serve

MODES = ("etag", "last-modified", "both", "ignore", "none")


@dataclass
class Tally:
    """What the mirror was asked and what it sent."""

    requests: int = 0
    conditional: int = 0  # requests that carried If-None-Match or If-Modified-Since
    not_modified: int = 0  # 304 answers
    bytes: int = 0  # body bytes sent
    paths: list[str] = field(default_factory=list)

    def snapshot(self) -> dict[str, int]:
        """The counters (without the paths)."""
        return {"requests": self.requests, "conditional": self.conditional, "not_modified": self.not_modified,
                "bytes": self.bytes}


class ValidatingHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files with the validators `mode` says (see the module docstring)."""

    mode = "both"
    tally: Tally

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base class's name)
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        tally = self.tally
        tally.requests += 1
        tally.paths.append(self.path)
        inm, ims = self.headers.get("If-None-Match"), self.headers.get("If-Modified-Since")
        tally.conditional += bool(inm or ims)
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        mtime = int(path.stat().st_mtime)
        etag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
        headers = {}
        if self.mode in ("etag", "both", "ignore"):
            headers["ETag"] = etag
        if self.mode in ("last-modified", "both", "ignore"):
            headers["Last-Modified"] = formatdate(mtime, usegmt=True)
        if self._not_modified(inm, ims, etag, mtime):
            tally.not_modified += 1
            self.send_response(304)
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
        tally.bytes += len(data)

    def _not_modified(self, inm: str | None, ims: str | None, etag: str, mtime: int) -> bool:
        if self.mode in ("etag", "both") and inm is not None:
            return etag in [t.strip() for t in inm.split(",")]
        if self.mode in ("last-modified", "both") and ims is not None:
            try:
                return mtime <= parsedate_to_datetime(ims).timestamp()
            except (TypeError, ValueError):
                return False
        return False


@contextmanager
def mirror(root: Path, mode: str = "both") -> Iterator[tuple[str, Tally]]:
    """Serve `root` with the validator behaviour `mode`; yields (base URL, tally)."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}")
    tally = Tally()
    handler = type("Handler", (ValidatingHandler,), {"mode": mode, "tally": tally})
    with serve(root, handler) as base:
        yield base, tally


def write(path: Path, data: bytes, *, age: float = 60.0) -> None:
    """Write a mirror file as a mirror sync would, `age` seconds in the past (mtimes tick in whole seconds)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    when = time.time() - age
    os.utime(path, (when, when))
