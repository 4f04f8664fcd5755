"""A real loopback HTTP server that answers slowly on purpose: a slow-loris mirror or site.

Each connection's request is read, then the answer is sent as the mode says:

- `headers`: the status line and headers one byte every `every` seconds (a per-read timeout
  never fires: a byte always arrives in time);
- `body`: headers at once (Content-Length `size`), then the body one byte every `every` seconds;
- `retry-after`: `503` with `Retry-After: 3600` at once (a mirror asking us to wait an hour).

`connections` counts what it accepted. Raw sockets, not http.server: the status line itself
has to trickle.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class Slow:
    mode: str
    every: float = 0.3
    size: int = 1000
    connections: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def answer(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                request += chunk
            head = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n" \
                   b"Content-Length: %d\r\n\r\n" % self.size
            try:
                if self.mode == "retry-after":
                    conn.sendall(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 3600\r\n"
                                 b"Content-Length: 0\r\n\r\n")
                    return
                if self.mode == "headers":
                    self._trickle(conn, head + b"x" * self.size)
                else:
                    conn.sendall(head)
                    self._trickle(conn, b"x" * self.size)
            except OSError:
                return  # the client gave up: what the test wants

    def _trickle(self, conn: socket.socket, data: bytes) -> None:
        for i in range(len(data)):
            if self.stop.wait(self.every):
                return
            conn.sendall(data[i:i + 1])


@contextmanager
def slow_server(mode: str, *, every: float = 0.3, size: int = 1000) -> Iterator[tuple[str, Slow]]:
    """Serve `mode` on a loopback port while in the block; yields (base URL, the Slow with its counters)."""
    slow = Slow(mode, every, size)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    threads: list[threading.Thread] = []

    def accept() -> None:
        while not slow.stop.is_set():
            try:
                conn, _ = listener.accept()
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            slow.connections += 1
            thread = threading.Thread(target=slow.answer, args=(conn,), daemon=True)
            thread.start()
            threads.append(thread)

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", slow
    finally:
        slow.stop.set()
        acceptor.join(5)
        listener.close()
        for thread in threads:
            thread.join(5)
