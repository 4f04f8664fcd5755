"""A hostile published site for rebuildctl: a real HTTP server on loopback whose answers a test programs.

Each path maps to an `Answer`: a status, headers and a body given as bytes or as chunks
written with a pause between them (a server trickling one byte every few seconds). Also
the big bodies of the benchmark and the RSS tests: a 500 MB JSON stream generated while it
is sent (never held), a gzip bomb, a redirect to another origin.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

MB = 1 << 20


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | Callable[[], Iterable[bytes]] = b""
    pause: float = 0.0  # seconds between chunks


class _Handler(http.server.BaseHTTPRequestHandler):
    answers: dict[str, Answer] = {}
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        answer = self.answers.get(self.path.split("?")[0])
        if answer is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(answer.status)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        chunks = [answer.body] if isinstance(answer.body, bytes) else answer.body()
        if isinstance(answer.body, bytes):
            self.send_header("Content-Length", str(len(answer.body)))
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        try:
            for chunk in chunks:
                self.wfile.write(chunk)
                self.wfile.flush()
                if answer.pause:
                    time.sleep(answer.pause)
        except (BrokenPipeError, ConnectionResetError):
            pass


@contextmanager
def hostile_site(answers: dict[str, Answer]) -> Iterator[str]:
    """Serve `answers` (path → Answer) on a loopback port while in the block; yields the base URL."""
    handler = type("Handler", (_Handler,), {"answers": answers})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# --- bodies ----------------------------------------------------------------------------------

def json_stream(total: int) -> Callable[[], Iterator[bytes]]:
    """A valid JSON workers feed of about `total` bytes, made while it is sent."""
    def chunks() -> Iterator[bytes]:
        yield b'{"kind": "workers", "generated_at": "2026-01-01T00:00:00Z", "workers": ['
        row = json.dumps({"key_id": "k" * 64, "name": "w", "trust": "enrolled"}).encode() + b","
        block = row * (MB // len(row))
        for _ in range(total // len(block)):
            yield block
        yield json.dumps({"key_id": "k", "name": "w", "trust": "enrolled"}).encode() + b"]}"
    return chunks


def gzip_bomb(decoded: int) -> bytes:
    """gzip of `decoded` bytes of JSON-ish spaces, made in pieces (the decoded bytes are never held)."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b" " * MB
    out = [comp.compress(b'{"kind": "workers", "workers": [')]
    out += [comp.compress(block) for _ in range(decoded // MB)]
    return b"".join(out) + comp.compress(b"]}") + comp.flush()


def trickle(byte_every: float, total: int = 1000) -> Answer:
    """A feed sent one byte at a time, `byte_every` seconds apart."""
    return Answer(body=lambda: (b" " for _ in range(total)), pause=byte_every)


WORKERS = "/api/v1/workers.json"
INDEX = "/api/v1/index.json"


def workers_feed(*workers: dict) -> bytes:
    return json.dumps({"schema": 1, "kind": "workers", "generated_at": "2026-01-01T00:00:00Z",
                       "count": len(workers), "workers": list(workers)}).encode()
