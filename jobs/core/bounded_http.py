"""The total deadline of `jobs.core.bounded`, enforced on every socket read of a requests session.

A per-read timeout never trips on a server that sends one byte every few seconds, in the
status line and headers as well as in the body. Sessions built with `deadline_adapter` check
the deadline active on the calling thread (`Deadline.applied()`) before every connect and
every read of the socket, shrinking the socket's timeout to what is left of it; past it, the
read raises `DeadlineExceeded`, which neither urllib3's retries nor requests catch, so it
reaches the caller as itself. Retry waits (backoff, a server's `Retry-After`) are cut to the
deadline too (`DeadlineRetry`). Without an active deadline the session behaves as requests'
own.

Used by sync's mirror fetches, a worker's downloads and rebuildctl (all through
`bounded.get_capped`, or `Deadline.applied()` around a streaming download). Imported only where
HTTP is spoken, so a file:// site never imports requests.
"""

from __future__ import annotations

import http.client
import time
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.util.retry import Retry

from jobs.core.bounded import active_deadline
from jobs.core.deadline_io import DeadlineSocket


class _DeadlineResponse(http.client.HTTPResponse):
    def __init__(self, sock: Any, *args: Any, **kwargs: Any) -> None:
        deadline = active_deadline()
        # The read timeout is the one urllib3 set on the socket before the response is read.
        super().__init__(sock if deadline is None else DeadlineSocket(sock, sock.gettimeout(), deadline),
                         *args, **kwargs)


class _Connection(HTTPConnection):
    response_class = _DeadlineResponse

    def connect(self) -> None:
        _shrink(self)
        super().connect()


class _TLSConnection(HTTPSConnection):
    response_class = _DeadlineResponse

    def connect(self) -> None:
        _shrink(self)
        super().connect()


def _shrink(conn: Any) -> None:
    """A new connection (a retry's, a redirect's) gets at most what is left of the deadline to connect."""
    deadline = active_deadline()
    if deadline is not None:
        left = deadline.left()
        conn.timeout = left if not isinstance(conn.timeout, (int, float)) else min(conn.timeout, left)


class _Pool(HTTPConnectionPool):
    ConnectionCls = _Connection


class _TLSPool(HTTPSConnectionPool):
    ConnectionCls = _TLSConnection


class DeadlineAdapter(HTTPAdapter):
    """requests' HTTPAdapter whose connections keep the active deadline on every read."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _Pool, "https": _TLSPool}


class DeadlineRetry(Retry):
    """urllib3's Retry whose waits (backoff, `Retry-After`) end with the active deadline."""

    def sleep(self, response: Any = None) -> None:
        deadline = active_deadline()
        if deadline is None:
            super().sleep(response)
            return
        wait = self.get_retry_after(response) if response is not None and self.respect_retry_after_header else None
        wait = self.get_backoff_time() if wait is None else wait
        time.sleep(max(0.0, min(wait, deadline.end - time.monotonic())))
        deadline.left()  # DeadlineExceeded if the wait used it up


def deadline_adapter(**kwargs: Any) -> DeadlineAdapter:
    """A `DeadlineAdapter` to mount on a session for http:// and https:// (HTTPAdapter's arguments)."""
    return DeadlineAdapter(**kwargs)
