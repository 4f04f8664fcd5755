"""Socket reads of an HTTP response bounded by a read timeout and the total deadline.

A per-read timeout never trips on a server that sends one byte every few seconds, in the status
line and headers as well as in the body. `DeadlineSocket` is what an `http.client.HTTPResponse`
is given instead of its socket: every read goes through `DeadlineReader`, which sets the
socket's timeout to the smaller of the read timeout and what is left of the deadline
(`jobs.core.bounded.Deadline`); past the deadline a read raises `DeadlineExceeded`. Used by the
requests sessions of `jobs.core.bounded_http` and by rebuildctl's own client
(`jobs.ctl.transport`). Standard library only.
"""

from __future__ import annotations

import io
import socket
from typing import Any


class DeadlineReader(io.RawIOBase):
    """A socket's reads, each within `timeout` (None: none) and what is left of `deadline` (None: none).

    Reads go through the socket's own raw file (`makefile`), which keeps the descriptor open
    while the response is read even after the connection closed its socket (`Connection: close`).
    """

    def __init__(self, sock: socket.socket, timeout: float | None, deadline: Any | None) -> None:
        super().__init__()
        self._raw = sock.makefile("rb", buffering=0)
        self._sock, self._timeout, self._deadline = sock, timeout, deadline

    def readable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._raw.fileno()

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()

    def readinto(self, buffer: Any) -> int:
        left = self._timeout
        if self._deadline is not None:
            spare = self._deadline.left()  # DeadlineExceeded once spent
            left = spare if left is None else min(left, spare)
        self._sock.settimeout(None if left is None else max(left, 0.001))
        try:
            return self._raw.readinto(buffer)
        except (TimeoutError, socket.timeout):
            if self._deadline is not None and self._deadline.spent():  # the timeout that fired was the deadline's
                raise self._deadline.exceeded() from None
            raise


class DeadlineSocket:
    """What http.client's response sees of the socket: only `makefile`, through `DeadlineReader`."""

    def __init__(self, sock: socket.socket, timeout: float | None, deadline: Any | None) -> None:
        self._sock, self._timeout, self._deadline = sock, timeout, deadline

    def makefile(self, mode: str = "rb", *args: Any, **kwargs: Any) -> io.BufferedReader:
        return io.BufferedReader(DeadlineReader(self._sock, self._timeout, self._deadline))
