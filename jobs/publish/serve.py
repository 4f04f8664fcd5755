"""`rebuilder serve`: a small static server for a store's published site (previews, the demo).

Production uses any static host (an S3 website, nginx); this one reads the site straight
from the store, with the Content-Type and Content-Encoding publish stored, so gzip-encoded
logs reach browsers and `curl --compressed` as they would from S3. Read-only, GET/HEAD only.
"""

from __future__ import annotations

import errno
import posixpath
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

from jobs.core.errors import ConfigError, TerminalError
from jobs.core.store import InvalidKey, NotFound, Store

CHUNK = 1 << 20


def _key(prefix: str, path: str) -> str | None:
    """The store key for a request path, or None if it would leave the site."""
    clean = posixpath.normpath("/" + unquote(urlsplit(path).path))
    if clean.endswith("/") or clean == "/":
        clean = clean.rstrip("/") + "/index.html"
    key = (prefix + clean.lstrip("/")) if clean.lstrip("/") else prefix + "index.html"
    return None if ".." in key.split("/") else key


class BindError(TerminalError):
    """The address to serve on cannot be listened on (in use, not local, not allowed)."""


def parse_bind(bind: str, *, what: str = "--bind") -> tuple[str, int]:
    """`host:port` (host may be empty for 127.0.0.1) as a pair, or a one-line ConfigError."""
    host, sep, port = bind.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{bind!r} is not HOST:PORT", key=what, expected="e.g. 127.0.0.1:8484")
    return host or "127.0.0.1", int(port)


def make_server(store: Store, bind: str, *, prefix: str = "site/", fallback: int = 0,
                what: str = "--bind") -> ThreadingHTTPServer:
    """An HTTP server for the site under `prefix` of `store`, bound to `host:port`.

    With `fallback` > 0, a port already in use is skipped for the next one, up to `fallback`
    ports further (the caller compares `server_address` with what it asked for and says so).
    Any address that cannot be listened on is a one-line BindError.
    """
    host, port = parse_bind(bind, what=what)

    class Handler(BaseHTTPRequestHandler):
        server_version = "rebuilder-serve"

        def do_HEAD(self) -> None:  # noqa: N802 (http.server's naming)
            self._serve(body=False)

        def do_GET(self) -> None:  # noqa: N802
            self._serve(body=True)

        def _serve(self, *, body: bool) -> None:
            key = _key(prefix, self.path)
            try:
                if key is None:
                    raise NotFound("outside the site", op="get", key=self.path)
                info = store.head(key)
                stream = store.open(key) if body else None
            except (NotFound, InvalidKey):
                self.send_error(404, "not published")
                return
            self.send_response(200)
            self.send_header("Content-Type", info.content_type or "application/octet-stream")
            if info.content_encoding:
                self.send_header("Content-Encoding", info.content_encoding)
            self.send_header("Content-Length", str(info.size))
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            if stream is not None:
                with stream:
                    while chunk := stream.read(CHUNK):
                        self.wfile.write(chunk)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass  # quiet: the demo prints its own URL

    last = min(port + fallback, 65535) if port else port
    candidate = port
    while True:
        try:
            return ThreadingHTTPServer((host, candidate), Handler)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE and candidate < last:
                candidate += 1
                continue
            reason = (exc.strerror or str(exc)).lower()
            if exc.errno == errno.EADDRINUSE and fallback:
                reason += f" (and the {last - port} ports after it)"
            raise BindError(f"cannot serve on {host}:{port}: {reason}; pass another {what}") from None
