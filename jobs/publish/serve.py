"""`rebuilder serve`: a small static server for a store's published site (previews, the demo).

Production uses any static host (an S3 website, nginx); this one reads the site straight
from the store, with the Content-Type and Content-Encoding publish stored, so gzip-encoded
logs reach browsers and `curl --compressed` as they would from S3. Read-only, GET/HEAD only.
"""

from __future__ import annotations

import posixpath
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

from jobs.core.store import InvalidKey, NotFound, Store

CHUNK = 1 << 20


def _key(prefix: str, path: str) -> str | None:
    """The store key for a request path, or None if it would leave the site."""
    clean = posixpath.normpath("/" + unquote(urlsplit(path).path))
    if clean.endswith("/") or clean == "/":
        clean = clean.rstrip("/") + "/index.html"
    key = (prefix + clean.lstrip("/")) if clean.lstrip("/") else prefix + "index.html"
    return None if ".." in key.split("/") else key


def make_server(store: Store, bind: str, *, prefix: str = "site/") -> ThreadingHTTPServer:
    """An HTTP server for the site under `prefix` of `store`, bound to `host:port`."""
    host, _, port = bind.rpartition(":")

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

    return ThreadingHTTPServer((host or "127.0.0.1", int(port)), Handler)
