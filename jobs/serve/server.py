"""`rebuilder serve`: a small server for a store's published site.

Static mode (`api=None`) serves the files as any static host (an S3 website, nginx) would:
straight from the store, with the Content-Type and Content-Encoding publish stored, so
gzip-encoded logs reach browsers and `curl --compressed` as they would from S3; GET/HEAD only.
API mode (an `jobs.serve.api.Api`) answers rebuilderd's v0 API in front of the same files
(filtered lists, queue/list, workers, admin POSTs) and decompresses a gzip-encoded file for a
client whose `Accept-Encoding` does not take gzip (upstream rebuildctl sends none).
"""

from __future__ import annotations

import errno
import posixpath
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

from jobs.core.bounded import cap
from jobs.core.errors import ConfigError, TerminalError
from jobs.core.layout import SITE
from jobs.core.store import InvalidKey, NotFound, Store
from jobs.serve.api import Api, Response, accepts_gzip, inflate

CHUNK = 1 << 20


def _chunks(stream):
    with stream:
        while chunk := stream.read(CHUNK):
            yield chunk


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


def make_server(store: Store, bind: str, *, prefix: str = SITE, fallback: int = 0,
                what: str = "--bind", api: Api | None = None) -> ThreadingHTTPServer:
    """An HTTP server for the site under `prefix` of `store`, bound to `host:port`.

    With `fallback` > 0, a port already in use is skipped for the next one, up to `fallback`
    ports further (the caller compares `server_address` with what it asked for and says so).
    Any address that cannot be listened on is a one-line BindError.
    """
    host, port = parse_bind(bind, what=what)

    class Handler(BaseHTTPRequestHandler):
        server_version = "rebuilder-serve"
        # A client that connects and then sends (or reads) nothing would hold its thread for
        # ever; socketserver applies this timeout to every read and write of the connection.
        timeout = cap("serve_idle")

        def do_HEAD(self) -> None:  # noqa: N802 (http.server's naming)
            self._serve(body=False)

        def do_GET(self) -> None:  # noqa: N802
            self._serve(body=True)

        def do_POST(self) -> None:  # noqa: N802
            if api is None:
                self.send_error(405, "a static site takes no POST")
                return
            self._serve(body=True)

        def _api(self, *, body: bool) -> bool:
            """Answer through the API if it has an answer; False to serve the file."""
            assert api is not None
            parts = urlsplit(self.path)
            try:
                answer = api.handle(self.command, unquote(parts.path), parts.query, self.headers,
                                    self.rfile.read)
            except Exception:  # one request's failure is its 500, never the server's end
                answer = Response(500, b'{"error": "internal error"}')
            if answer is None:
                return False
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("X-Content-Type-Options", "nosniff")
            if isinstance(answer.body, bytes):
                self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            if body and answer.status != 304:
                for chunk in [answer.body] if isinstance(answer.body, bytes) else answer.body:
                    self.wfile.write(chunk)
            return True

        def _serve(self, *, body: bool) -> None:
            if api is not None and self._api(body=body):
                return
            key = _key(prefix, self.path)
            try:
                if key is None:
                    raise NotFound("outside the site", op="get", key=self.path)
                info = store.head(key)
                stream = store.open(key) if body else None
            except (NotFound, InvalidKey):
                if api is not None and urlsplit(self.path).path.startswith("/api/"):
                    self._api_404()
                else:
                    self.send_error(404, "not published")
                return
            inflating = (api is not None and info.content_encoding == "gzip"
                         and not accepts_gzip(self.headers.get("Accept-Encoding")))
            self.send_response(200)
            self.send_header("Content-Type", info.content_type or "application/octet-stream")
            if info.content_encoding and not inflating:
                self.send_header("Content-Encoding", info.content_encoding)
            if not inflating:  # decompressed, the length is unknown: the connection's end marks it
                self.send_header("Content-Length", str(info.size))
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            if stream is not None:
                try:
                    for chunk in inflate(stream) if inflating else _chunks(stream):
                        self.wfile.write(chunk)
                except zlib.error:  # a corrupt file (publish wrote it whole): the client gets a short body
                    self.close_connection = True

        def _api_404(self) -> None:
            data = b"Not found"  # upstream's answer for a build file it does not have
            self.send_response(404)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

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
