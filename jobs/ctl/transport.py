"""rebuildctl's HTTP/1.1 client, on `socket` (and `ssl` for https): keep-alive, a total deadline on every read, caps, retries.

requests and urllib3 took a third of a `rebuildctl pkgs ls` to import, and `http.client`
(the `email` package parses its headers; `ssl` and `calendar` come with it) still took a
quarter of a `pkgs ls --name N`; a command asks a few files of one host, so this module
speaks the little of HTTP/1.1 it needs itself (`_Connection`): a request line and headers,
a status line (1xx answers skipped), headers (at most `_MAX_HEADERS` lines of at most
`_MAX_LINE` bytes, folded lines joined), and a body by `Content-Length`, chunked
`Transfer-Encoding` (chunk sizes and trailers bounded alike) or up to the close of the
connection. A broken answer is `TransportError("ConnectionError", <what>)`, with the names
http.client gave the same faults (`BadStatusLine`, `LineTooLong`, `IncompleteRead`,
`RemoteDisconnected`). `Transport` keeps up to `connections` idle connections per host (the
fetchers of `jobs.ctl.feeds.Site.json_each` share it) and does what rebuildctl's requests
session did:

- a total deadline (`jobs.core.bounded.Deadline`) over the whole exchange, redirects and
  retries included, checked on every connect and every read of the socket (a server sending
  its status line, headers or body one byte at a time is cut off at it), each read also within
  the read timeout (`jobs.core.deadline_io`);
- the body at most `limit` bytes before and after `Content-Encoding: gzip` decoding (a
  `Content-Length` or a chunk above it refused before reading), other encodings refused (`CorruptData`);
- redirects followed only within the first URL's origin, at most `cap("redirects")`
  (`RedirectRefused`), or not at all (`redirects=0`: the 3xx is the answer);
- a kept-alive connection is reused only if nothing is waiting on it (the server did not close it);
- retries as urllib3's `Retry(total=3, backoff_factor=0.5)` did: a connection that fails is
  retried for any method before anything was sent and for GET after; a GET answered 429 or 5xx
  (500, 502, 503, 504) is asked again, after its `Retry-After` (429, 503) or the backoff (none,
  then 1 s, 2 s), never past the deadline; the last answer is returned as it is. A GET on a
  kept-alive connection the server closed just then is sent again on a new one without counting;
- proxies from the environment (`http_proxy`, `https_proxy`, `all_proxy`, `no_proxy`, read once;
  https through an http proxy with CONNECT) and for https the CA bundle requests used
  (`$REQUESTS_CA_BUNDLE`, `$CURL_CA_BUNDLE`, else certifi's, else the system's). `ssl` is
  imported for an https URL only.

Failures to talk to the server are `TransportError` (its `kind` says which: the words requests used).
"""

from __future__ import annotations

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

USER_AGENT = "rebuildctl (rebuilder)"
RETRIES = 3
BACKOFF = 0.5  # seconds: no wait before the first retry, then 1 s, 2 s (urllib3's backoff_factor)
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
RETRY_AFTER_STATUSES = frozenset({413, 429, 503})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_READ = 256 * 1024  # one read of a body whose end is the connection's
_MAX_LINE = 65536  # bytes of a status, header, chunk-size or trailer line (http.client's _MAXLINE)
_MAX_HEADERS = 100  # header lines of one answer (http.client's _MAXHEADERS)
_NO_BODY = frozenset({204, 304})
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})  # sent with a Content-Length, 0 without a body


class TransportError(Exception):
    """The server could not be reached or broke the exchange; `kind` as requests named it."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(kind if not detail else f"{kind} ({detail})")
        self.kind = kind


class _Sent(Exception):
    """A failure after the request was (possibly) sent: only a GET may be asked again."""

    def __init__(self, error: TransportError) -> None:
        super().__init__(str(error))
        self.error = error


# What can be wrong with an answer (the names http.client gives the same faults).
class BadStatusLine(ValueError):
    """The first line of an answer is not `HTTP/x.y NNN reason`."""


class LineTooLong(ValueError):
    """A status, header, chunk-size or trailer line longer than `_MAX_LINE`, or more than `_MAX_HEADERS` headers."""


class IncompleteRead(ValueError):
    """The connection ended (or a chunk was malformed) before the body did."""


class RemoteDisconnected(ConnectionResetError):
    """The server closed the connection without answering (a kept-alive connection it had just closed)."""


class Headers(dict):  # type: ignore[type-arg]
    """An answer's headers: lowercased name → value (the first of a repeated header, as http.client's `get`)."""

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        return dict.get(self, name.lower(), default)


class Response:
    """The final answer of a request: its status, headers and whole body (decoded from gzip)."""

    __slots__ = ("body", "headers", "status_code", "url")

    def __init__(self, status_code: int, headers: Headers, body: bytes, url: str) -> None:
        self.status_code, self.headers, self.body, self.url = status_code, headers, body, url

    def __repr__(self) -> str:
        return f"Response({self.status_code}, {len(self.body)} bytes, {self.url!r})"


# --- one connection ------------------------------------------------------------------------------

class _Connection:
    """One HTTP/1.1 connection to `host:port`, made by `connect`: plain, TLS (`tls`: an SSLContext, with
    `server_name`), or a tunnel to `tunnel` (host, port) through an http proxy with TLS to it."""

    def __init__(self, host: str, port: int, *, tls: Any = None, tunnel: tuple[str, int] | None = None) -> None:
        self.host, self.port, self.tls, self.tunnel = host, port, tls, tunnel
        self.sock: Any = None
        self.timeout = 10.0  # connect
        self.read_timeout = 60.0

    def connect(self) -> None:
        host = self.host.encode("ascii") if self.host.isascii() else self.host  # no idna codec for a plain name
        sock = socket.create_connection((host, self.port), self.timeout)  # type: ignore[arg-type]
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            server_name = self.host
            if self.tunnel is not None:
                self.sock = sock
                self._open_tunnel()
                server_name = self.tunnel[0]
            if self.tls is not None:
                sock = self.tls.wrap_socket(sock, server_hostname=server_name)
        except BaseException:
            sock.close()
            self.sock = None
            raise
        self.sock = sock

    def _open_tunnel(self) -> None:
        host, port = self.tunnel  # type: ignore[misc]
        target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.sock.sendall(f"CONNECT {target} HTTP/1.0\r\nHost: {target}\r\n\r\n".encode("ascii"))
        fp = self._reader()
        try:
            _, status, reason = _status_line(fp)
            _headers(fp)
        finally:
            fp.close()
        if status != 200:
            raise OSError(f"Tunnel connection failed: {status} {reason.strip()}")

    def _reader(self) -> Any:
        return DeadlineSocket(self.sock, self.read_timeout, active_deadline()).makefile("rb")

    def close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            sock.close()

    def exchange(self, method: str, target: str, host: str, headers: dict[str, str], body: bytes | None,
                 limit: int, url: str) -> tuple[int, Headers, bytes, bool]:
        """Send one request, read its answer whole: (status, headers, body as sent, whether to close after)."""
        self.sock.sendall(_request(method, target, host, headers, body))
        fp = self._reader()  # made inside the request, under its deadline (`Transport.request`)
        try:
            while True:
                version, status, _ = _status_line(fp)
                answer = _headers(fp)
                if not 100 <= status < 200:
                    break
            close = _closes(version, answer)
            if method == "HEAD" or status in _NO_BODY:
                return status, answer, b"", close
            if "chunked" in answer.get("transfer-encoding", "").lower():
                return status, answer, _chunked(fp, limit, url), close
            length = _length(answer.get("content-length"))
            if length is None:
                return status, answer, _to_close(fp, limit, url), True
            if length > limit:
                raise OverLimit(url, limit)
            data = fp.read(length) if length else b""
            if len(data) < length:
                raise IncompleteRead(f"{len(data)} bytes read, {length} more expected")
            return status, answer, data, close
        finally:
            fp.close()


def _request(method: str, target: str, host: str, headers: dict[str, str], body: bytes | None) -> bytes:
    """The request's bytes: its line, Host, the headers (Accept-Encoding: identity unless given), a Content-Length."""
    if not target or any(c <= " " or c == "\x7f" for c in target):
        raise ValueError(f"URL can't contain control characters: {target[:200]!r}")
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    if not any(k.lower() == "accept-encoding" for k in headers):
        lines.append("Accept-Encoding: identity")
    for name, value in headers.items():
        if any(c in name for c in ":\r\n ") or "\r" in value or "\n" in value:
            raise ValueError(f"invalid header {name[:40]!r}")
        lines.append(f"{name}: {value}")
    if body is not None or method in _BODY_METHODS:
        lines.append(f"Content-Length: {len(body or b'')}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + body if body else head


def _line(fp: Any) -> bytes:
    line = fp.readline(_MAX_LINE + 1)
    if len(line) > _MAX_LINE:
        raise LineTooLong(f"a line longer than {_MAX_LINE} bytes")
    return line


def _status_line(fp: Any) -> tuple[str, int, str]:
    """(version, status, reason) of the answer's first line."""
    line = _line(fp)
    if not line:
        raise RemoteDisconnected("Remote end closed connection without response")
    parts = line.decode("iso-8859-1").split(None, 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or len(parts[1]) != 3 or not parts[1].isdigit():
        raise BadStatusLine(repr(line[:80]))
    status = int(parts[1])
    if status < 100:
        raise BadStatusLine(repr(line[:80]))
    return parts[0], status, parts[2] if len(parts) > 2 else ""


def _headers(fp: Any) -> Headers:
    """The header lines up to the empty one; a folded line continues the one before."""
    found = Headers()
    name = None
    for _ in range(_MAX_HEADERS + 1):
        line = _line(fp)
        if line in (b"\r\n", b"\n", b""):
            return found
        text = line.decode("iso-8859-1")
        if text[0] in " \t":  # obsolete folding
            if name is not None:
                found[name] = f"{found[name]} {text.strip()}".strip()
            continue
        key, colon, value = text.partition(":")
        if not colon:
            continue  # not a header (http.client's parser passes over it too)
        name = key.strip().lower()
        if name in found:
            name = None  # the first of a repeated header is the one read
            continue
        found[name] = value.strip()
    raise LineTooLong(f"more than {_MAX_HEADERS} headers")


def _closes(version: str, headers: Headers) -> bool:
    """Whether the server closes the connection after this answer (http.client's rule)."""
    connection = headers.get("connection", "").lower()
    if version != "HTTP/1.0":
        return "close" in connection
    return "keep-alive" not in connection and "keep-alive" not in headers.get("proxy-connection", "").lower()


def _length(value: str | None) -> int | None:
    """A Content-Length's bytes; None when missing or unusable (the body then ends with the connection)."""
    if value is None:
        return None
    try:
        length = int(value)
    except ValueError:
        return None
    return length if length >= 0 else None


def _chunked(fp: Any, limit: int, url: str) -> bytes:
    """A chunked body, whole: each chunk's size checked against what is left of `limit` before it is read."""
    out = bytearray()
    while True:
        line = _line(fp)
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise IncompleteRead(f"bad chunk size line {line[:40]!r}") from None
        if size < 0:
            raise IncompleteRead(f"bad chunk size line {line[:40]!r}")
        if size == 0:
            break
        if len(out) + size > limit:
            raise OverLimit(url, limit)
        data = fp.read(size)
        if len(data) < size:
            raise IncompleteRead(f"{len(out) + len(data)} bytes read, {size - len(data)} more expected")
        out += data
        _line(fp)  # the chunk's CRLF
    while _line(fp) not in (b"\r\n", b"\n", b""):  # trailers, each line bounded; the deadline ends a stream of them
        pass
    return bytes(out)


def _to_close(fp: Any, limit: int, url: str) -> bytes:
    """A body without a length: everything up to the end of the connection, at most `limit` bytes."""
    out = bytearray()
    while chunk := fp.read(_READ):
        out += chunk
        if len(out) > limit:
            raise OverLimit(url, limit)
    return bytes(out)


# --- the transport ------------------------------------------------------------------------------

class Transport:
    """Keep-alive connections (at most `connections` idle per host), shared by threads."""

    def __init__(self, connections: int = 4, *, connect_timeout: float = 10.0, read_timeout: float = 60.0,
                 env: dict[str, str] | os._Environ[str] | None = None) -> None:
        self.connections, self.connect_timeout, self.read_timeout = connections, connect_timeout, read_timeout
        self._env = os.environ if env is None else env
        self._idle: dict[tuple[str, str, int, str | None], list[_Connection]] = {}
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
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        if port != (443 if parts.scheme == "https" else 80):
            host = f"{host}:{port}"
        for reused in (True, False):
            conn = self._take(key) if reused else None
            if reused and conn is None:
                continue
            if conn is None:
                conn = self._connect(parts.scheme, parts.hostname, port, proxy)
            try:
                return self._once(conn, key, method, target, host, headers, body, limit, url)
            except _Sent as exc:
                conn.close()
                if reused and method == "GET" and isinstance(exc.__cause__, ConnectionError):
                    continue  # the server closed the idle connection as it was reused: a fresh one
                raise
            except BaseException:
                conn.close()
                raise
        raise AssertionError("unreachable")

    def _once(self, conn: _Connection, key: Any, method: str, target: str, host: str, headers: dict[str, str],
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
            except (OSError, ValueError) as exc:
                raise TransportError("ConnectionError", type(exc).__name__) from None
        try:
            status, answer, data, close = conn.exchange(method, target, host, headers, body, limit, url)
        except (TimeoutError, socket.timeout) as exc:
            if deadline is not None and deadline.spent():
                raise deadline.exceeded() from None
            raise _Sent(TransportError("ReadTimeout")) from exc
        except (OSError, ValueError) as exc:
            raise _Sent(TransportError("ConnectionError", type(exc).__name__)) from exc
        if close:
            conn.close()
        else:
            self._give(key, conn)
        coding = answer.get("content-encoding", "").strip().lower()
        if coding in ("gzip", "x-gzip"):
            data = decompress_capped(data, "gz", limit, url)
        elif coding not in ("", "identity"):
            raise CorruptData(f"{url}: unsupported Content-Encoding {coding[:40]!r}")
        return Response(status, answer, data, url)

    # --- connections ---

    def _take(self, key: Any) -> _Connection | None:
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

    def _give(self, key: Any, conn: _Connection) -> None:
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) < self.connections:
                idle.append(conn)
                return
        conn.close()

    def _connect(self, scheme: str, host: str, port: int, proxy: str | None) -> _Connection:
        conn: _Connection
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
                conn = _Connection(p.hostname, pport, tls=self._context(), tunnel=(host, port))
            else:
                conn = _Connection(p.hostname, pport, tls=self._context() if proxy_tls else None)
        else:
            conn = _Connection(host, port, tls=self._context() if scheme == "https" else None)
        conn.read_timeout = self.read_timeout
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
            if bundle and os.path.isdir(bundle):
                self._tls = ssl.create_default_context(capath=bundle)
            else:
                self._tls = ssl.create_default_context(cafile=bundle or None)
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
    if value.isdigit():
        return float(value)
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time())


__all__ = ["Response", "Transport", "TransportError", "USER_AGENT"]
