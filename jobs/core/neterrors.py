"""Network failures in a few words: what went wrong, not the library's exception text.

requests, urllib3 and botocore wrap the operating system's error in two or three layers of
their own (`ConnectionError(MaxRetryError(NewConnectionError(ConnectionRefusedError)))`);
`describe` walks the chain and names the cause an operator can act on.
"""

from __future__ import annotations

import errno
import socket
import ssl

_ERRNO = {
    errno.ECONNREFUSED: "connection refused",
    errno.ECONNRESET: "connection reset",
    errno.ENETUNREACH: "network unreachable",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ETIMEDOUT: "timed out connecting",
    errno.EPIPE: "connection closed while sending",
}


def _classify(exc: BaseException) -> str | None:
    name = type(exc).__name__
    if isinstance(exc, socket.gaierror) or name == "NameResolutionError":
        return "DNS lookup failed"
    if name in ("ConnectTimeoutError", "ConnectTimeout"):
        return "timed out connecting"
    if name in ("ReadTimeoutError", "ReadTimeout"):
        return "timed out waiting for an answer"
    if isinstance(exc, ssl.SSLError) or name in ("SSLError", "SSLCertVerificationError"):
        return "TLS error"
    if isinstance(exc, OSError) and exc.errno in _ERRNO:
        return _ERRNO[exc.errno]
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return "timed out"
    if name in ("RemoteDisconnected", "IncompleteRead", "ConnectionClosedError", "ProtocolError",
                "ResponseStreamingError", "ChunkedEncodingError"):
        inner = _inner(exc)
        found = next((c for c in map(_classify, inner) if c), None)
        return found or "connection closed by the server"
    return None


def _inner(exc: BaseException) -> list[BaseException]:
    out = [exc.__cause__, exc.__context__, getattr(exc, "reason", None), getattr(exc, "error", None),
           getattr(exc, "original_error", None)]
    kwargs = getattr(exc, "kwargs", None)
    if isinstance(kwargs, dict):
        out += list(kwargs.values())
    out += list(getattr(exc, "args", ()))
    return [e for e in out if isinstance(e, BaseException)]


def describe(exc: BaseException) -> str:
    """`connection refused`, `DNS lookup failed`, `timed out waiting for an answer`, ...

    Falls back to the innermost exception's class name for anything else.
    """
    todo, seen = [exc], set()
    last = exc
    while todo:
        e = todo.pop(0)
        if id(e) in seen:
            continue
        seen.add(id(e))
        found = _classify(e)
        if found:
            return found
        last = e
        todo += _inner(e)
    return f"network error ({type(last).__name__})"
