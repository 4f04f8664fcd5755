"""rebuildctl's HTTP client on `http.client`: keep-alive, a total deadline on every socket read, caps, retries.

requests and urllib3 took a third of a `rebuildctl pkgs ls` to import; a command asks a few
files of one host. `Transport` keeps up to `connections` idle connections per host (the
fetchers of `jobs.ctl.feeds.Site.json_each` share it) and does what rebuildctl's requests
session did:

- a total deadline (`jobs.core.bounded.Deadline`) over the whole exchange, redirects and
  retries included, checked on every connect and every read of the socket (a server sending
  its status line, headers or body one byte at a time is cut off at it), each read also within
  the read timeout;
- the body at most `limit` bytes before and after `Content-Encoding: gzip` decoding (a
  `Content-Length` above it refused before reading), other encodings refused (`CorruptData`);
- redirects followed only within the first URL's origin, at most `cap("redirects")`
  (`RedirectRefused`), or not at all (`redirects=0`: the 3xx is the answer);
- a kept-alive connection is reused only if nothing is waiting on it (the server did not close it);
- retries as urllib3's `Retry(total=3, backoff_factor=0.5)` did: a connection that fails is
  retried for any method before anything was sent and for GET after; a GET answered 429 or 5xx
  (500, 502, 503, 504) is asked again, after its `Retry-After` (429, 503) or the backoff (none,
  then 1 s, 2 s), never past the deadline; the last answer is returned as it is. A GET on a
  kept-alive connection the server closed just then is sent again on a new one without counting;
- proxies from the environment (`http_proxy`, `https_proxy`, `all_proxy`, `no_proxy`, read once)
  and for https the CA bundle requests used (`$REQUESTS_CA_BUNDLE`, `$CURL_CA_BUNDLE`, else
  certifi's, else the system's).

Failures to talk to the server are `TransportError` (its `kind` says which: the words requests used).
"""

from __future__ import annotations

import http.client
import os
import select
import socket
import threading
import time
from typing import Any
from urllib.parse import urljoin, urlsplit

from jobs.core.bounded import (
    CorruptData,
    Deadline,
    OverLimit,
    RedirectRefused,
    active_deadline,
    cap,
    decompress_capped,
    same_origin,
)
from jobs.core.deadline_io import DeadlineSocket
from jobs.core.record import record

USER_AGENT = "rebuildctl (rebuilder)"
RETRIES = 3
BACKOFF = 0.5  # seconds: no wait before the first retry, then 1 s, 2 s (urllib3's backoff_factor)
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
RETRY_AFTER_STATUSES = frozenset({413, 429, 503})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_READ = 256 * 1024  # one read of a body


class TransportError(Exception):
    """The server could not be reached or broke the exchange; `kind` as requests named it."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(kind if not detail else f"{kind} ({detail})")
        self.kind, self.detail = kind, detail

    @property
    def reason(self) -> str:
        """What a user reads: the kind, with what the system said where it names the cause plainly."""
        said = _PLAIN.get(self.detail)
        return f"{self.kind} ({said})" if said else self.kind


# The errors of a connection (their class names, from the socket layer) that name their cause to a user.
_PLAIN = {
    "ConnectionRefusedError": "connection refused: nothing listens there",
    "gaierror": "the host name does not resolve",
    "ConnectionResetError": "the server reset the connection",
    "ConnectionAbortedError": "the connection was aborted",
    "RemoteDisconnected": "the server closed the connection without answering",
    "SSLCertVerificationError": "the server's TLS certificate does not verify",
    "SSLError": "the TLS handshake failed",
}


class _Sent(Exception):
    """A failure after the request was (possibly) sent: only a GET may be asked again."""

    def __init__(self, error: TransportError) -> None:
        super().__init__(str(error))
        self.error = error


@record
class Response:
    """The final answer of a request: its status, headers and whole body (decoded from gzip)."""

    status_code: int
    headers: http.client.HTTPMessage
    body: bytes
    url: str


# --- the deadline on every read ---------------------------------------------------------------

class _Connection(http.client.HTTPConnection):
    read_timeout = 60.0

    def response_class(self, sock: Any, *args: Any, **kwargs: Any) -> http.client.HTTPResponse:  # type: ignore[override]
        # Made inside the request, under its deadline (`Transport.request`'s `deadline.applied()`).
        return http.client.HTTPResponse(DeadlineSocket(sock, self.read_timeout, active_deadline()),  # type: ignore[arg-type]
                                        *args, **kwargs)


class _TLSConnection(http.client.HTTPSConnection):
    read_timeout = 60.0
    response_class = _Connection.response_class  # type: ignore[assignment]


# --- the transport ------------------------------------------------------------------------------

class Transport:
    """Keep-alive connections (at most `connections` idle per host), shared by threads."""

    def __init__(self, connections: int = 4, *, connect_timeout: float = 10.0, read_timeout: float = 60.0,
                 env: dict[str, str] | os._Environ[str] | None = None) -> None:
        self.connections, self.connect_timeout, self.read_timeout = connections, connect_timeout, read_timeout
        self._env = os.environ if env is None else env
        self._idle: dict[tuple[str, str, int, str | None], list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()
        self._proxies: dict[str, str] | None = None
        self._tls: Any = None

    # --- one request, with its redirects and retries ---

    def request(self, method: str, url: str, *, limit: int, deadline: Deadline, headers: dict[str, str] | None = None,
                body: bytes | None = None, redirects: int | None = None) -> Response:
        """`method url` within `deadline`: the final answer, its body read whole (at most `limit` bytes,
        gzip-decoded). Raises TransportError, DeadlineExceeded, OverLimit, CorruptData or RedirectRefused."""
        most = cap("redirects") if redirects is None else redirects
        headers = {"User-Agent": USER_AGENT, **(headers or {})}
        current = url
        with deadline.applied():
            for _ in range(most + 1):
                resp = self._retried(method, current, headers, body, limit, deadline)
                location = resp.headers.get("Location")
                if most == 0 or resp.status_code not in REDIRECT_STATUSES or location is None:
                    return resp
                target = urljoin(current, location)
                if not same_origin(url, target):
                    raise RedirectRefused("redirect to another origin refused", url=current, location=target[:200])
                current = target
                if resp.status_code == 303 or (resp.status_code in (301, 302) and method == "POST"):
                    method, body = "GET", None  # as requests: the redirected request is a GET
        raise RedirectRefused(f"more than {most} redirects", url=url)

    def _retried(self, method: str, url: str, headers: dict[str, str], body: bytes | None, limit: int,
                 deadline: Deadline) -> Response:
        failures = 0
        while True:
            try:
                resp = self._exchange(method, url, headers, body, limit)
            except _Sent as exc:
                if method != "GET" or failures >= RETRIES:
                    raise exc.error from None
                failures += 1
                self._wait(self._backoff(failures), deadline)
                continue
            except TransportError:  # nothing was sent
                if failures >= RETRIES:
                    raise
                failures += 1
                self._wait(self._backoff(failures), deadline)
                continue
            if method != "GET" or resp.status_code not in RETRY_STATUSES or failures >= RETRIES:
                return resp
            failures += 1
            after = _retry_after(resp) if resp.status_code in RETRY_AFTER_STATUSES else None
            self._wait(self._backoff(failures) if after is None else after, deadline)

    @staticmethod
    def _backoff(failures: int) -> float:
        return 0.0 if failures <= 1 else min(120.0, BACKOFF * 2 ** (failures - 1))

    @staticmethod
    def _wait(seconds: float, deadline: Deadline) -> None:
        time.sleep(max(0.0, min(seconds, deadline.end - time.monotonic())))
        deadline.left()  # DeadlineExceeded if the wait used it up

    def _exchange(self, method: str, url: str, headers: dict[str, str], body: bytes | None,
                  limit: int) -> Response:
        """One request and its answer on a kept-alive connection (a stale one is replaced once, for free)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise TransportError("InvalidURL", url[:200])
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise TransportError("InvalidURL", url[:200]) from None
        proxy = self._proxy(parts.scheme, parts.hostname)
        key = (parts.scheme, parts.hostname, port, proxy)
        target = url if proxy and parts.scheme == "http" else (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        for reused in (True, False):
            conn = self._take(key) if reused else None
            if reused and conn is None:
                continue
            if conn is None:
                conn = self._connect(parts.scheme, parts.hostname, port, proxy)
            try:
                return self._once(conn, key, method, target, headers, body, limit, url)
            except _Sent as exc:
                conn.close()
                if reused and method == "GET" and isinstance(exc.__cause__, ConnectionError):
                    continue  # the server closed the idle connection as it was reused: a fresh one
                raise
            except BaseException:
                conn.close()
                raise
        raise AssertionError("unreachable")

    def _once(self, conn: http.client.HTTPConnection, key: Any, method: str, target: str, headers: dict[str, str],
              body: bytes | None, limit: int, url: str) -> Response:
        deadline = active_deadline()
        if conn.sock is None:
            conn.timeout = self.connect_timeout if deadline is None else min(self.connect_timeout, deadline.left())
            try:
                conn.connect()
            except (TimeoutError, socket.timeout):
                if deadline is not None and deadline.spent():
                    raise deadline.exceeded() from None
                raise TransportError("ConnectTimeout") from None
            except (OSError, http.client.HTTPException) as exc:
                raise TransportError("ConnectionError", type(exc).__name__) from None
        try:
            conn.request(method, target, body=body, headers=headers)
            resp = conn.getresponse()
            return self._answer(conn, key, resp, limit, url)
        except (TimeoutError, socket.timeout) as exc:
            if deadline is not None and deadline.spent():
                raise deadline.exceeded() from None
            raise _Sent(TransportError("ReadTimeout")) from exc
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise _Sent(TransportError("ConnectionError", type(exc).__name__)) from exc

    def _answer(self, conn: http.client.HTTPConnection, key: Any, resp: http.client.HTTPResponse, limit: int,
                url: str) -> Response:
        status = resp.status
        length = resp.headers.get("Content-Length", "")
        if length.isascii() and length.isdigit() and int(length) > limit and status == 200:
            raise OverLimit(url, limit)
        out = bytearray()
        deadline = active_deadline()
        while chunk := resp.read(_READ):  # read(), not read1(): it marks the response done at its length
            out += chunk
            if len(out) > limit:
                raise OverLimit(url, limit)
            if deadline is not None:
                deadline.left()
        if resp.will_close or not resp.isclosed():
            conn.close()
        else:
            self._give(key, conn)
        body = bytes(out)
        coding = resp.headers.get("Content-Encoding", "").strip().lower()
        if coding in ("gzip", "x-gzip"):
            body = decompress_capped(body, "gz", limit, url)
        elif coding not in ("", "identity"):
            raise CorruptData(f"{url}: unsupported Content-Encoding {coding[:40]!r}")
        return Response(status, resp.headers, body, url)

    # --- connections ---

    def _take(self, key: Any) -> http.client.HTTPConnection | None:
        """An idle connection to `key`, None if there is none; one the server closed is dropped."""
        while True:
            with self._lock:
                idle = self._idle.get(key)
                conn = idle.pop() if idle else None
            if conn is None or conn.sock is None:
                return None
            try:
                readable = select.select([conn.sock], [], [], 0)[0]
            except (OSError, ValueError):
                readable = [conn.sock]
            if not readable:
                return conn
            conn.close()  # an idle connection has nothing to read but its end (or junk): not reused

    def _give(self, key: Any, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) < self.connections:
                idle.append(conn)
                return
        conn.close()

    def _connect(self, scheme: str, host: str, port: int, proxy: str | None) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection
        if proxy is not None:
            p = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
            if not p.hostname:
                raise TransportError("ProxyError", "no host in the proxy URL")
            proxy_tls = p.scheme == "https"
            try:
                pport = p.port or (443 if proxy_tls else 80)
            except ValueError:
                raise TransportError("ProxyError", "bad port in the proxy URL") from None
            if scheme == "https":  # CONNECT through the proxy, then TLS with the host
                if proxy_tls:
                    raise TransportError("ProxyError", "an https:// proxy for an https:// site is not supported")
                conn = _TLSConnection(p.hostname, pport, context=self._context())
                conn.set_tunnel(host, port)
            else:
                conn = (_TLSConnection(p.hostname, pport, context=self._context()) if proxy_tls
                        else _Connection(p.hostname, pport))
        else:
            conn = (_TLSConnection(host, port, context=self._context()) if scheme == "https"
                    else _Connection(host, port))
        conn.read_timeout = self.read_timeout  # type: ignore[attr-defined]
        return conn

    def _context(self) -> Any:
        if self._tls is None:
            import ssl

            bundle = self._env.get("REQUESTS_CA_BUNDLE") or self._env.get("CURL_CA_BUNDLE")
            if not bundle:
                try:
                    import certifi

                    bundle = certifi.where()
                except ImportError:
                    bundle = None
            try:
                if bundle and os.path.isdir(bundle):
                    self._tls = ssl.create_default_context(capath=bundle)
                else:
                    self._tls = ssl.create_default_context(cafile=bundle or None)
            except (OSError, ssl.SSLError) as exc:  # a missing file, or one with no certificate in it
                raise TransportError("CABundleError", f"{bundle or 'the default CA bundle'} is unusable: {exc}") from None
        return self._tls

    def _proxy(self, scheme: str, host: str) -> str | None:
        """The proxy for `scheme://host` from the environment (read once), None for a direct connection."""
        if self._proxies is None:
            if any(k.lower().endswith("_proxy") and v for k, v in self._env.items()):
                from urllib.request import getproxies_environment

                self._proxies = getproxies_environment() if self._env is os.environ else _env_proxies(self._env)
            else:
                self._proxies = {}
        if not self._proxies:
            return None
        proxy = self._proxies.get(scheme) or self._proxies.get("all")
        if not proxy:
            return None
        from urllib.request import proxy_bypass_environment

        return None if proxy_bypass_environment(host, self._proxies) else proxy

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()


def _env_proxies(env: Any) -> dict[str, str]:
    """`getproxies_environment` of another mapping than os.environ (lowercase names win, as there)."""
    found: dict[str, str] = {}
    for name, value in env.items():
        if value and name[-6:].lower() == "_proxy":
            found.setdefault(name[:-6].lower(), value)
    for name, value in env.items():
        if value and name[-6:] == "_proxy":
            found[name[:-6]] = value
    return found


def _retry_after(resp: Response) -> float | None:
    """The seconds of a `Retry-After` header (a number or an HTTP date), None without a usable one."""
    value = (resp.headers.get("Retry-After") or "").strip()
    if not value:
        return None
    if value.isascii() and value.isdigit():  # not "²", which isdigit() takes and float() refuses
        return float(value)
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):  # OverflowError: a year past a C int
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time())


__all__ = ["Response", "Transport", "TransportError", "USER_AGENT"]
