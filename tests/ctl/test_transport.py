"""rebuildctl's HTTP client (`jobs.ctl.transport`) against a real HTTP/1.1 server on loopback: keep-alive,
retries, redirects, caps and the deadline."""

from __future__ import annotations

import gzip
import http.server
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from jobs.core.bounded import CorruptData, Deadline, DeadlineExceeded, OverLimit, RedirectRefused
from jobs.ctl.transport import Transport, TransportError

Program = Callable[["_Handler"], None]


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    program: dict[str, Program] = {}
    seen: list[tuple[str, str, int]] = []  # (method, path, client port): which connection asked

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def _answer(self) -> None:
        type(self).seen.append((self.command, self.path, self.client_address[1]))
        length = int(self.headers.get("Content-Length") or 0)
        self.body = self.rfile.read(length) if length else b""
        self.program[self.path](self)

    do_GET = do_POST = _answer  # noqa: N815

    def send(self, status: int, body: bytes = b"", **headers: str) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k.replace("_", "-"), v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextmanager
def server(program: dict[str, Program]) -> Iterator[str]:
    _Handler.program, _Handler.seen = program, []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.handle_error = lambda request, address: None  # a client that went away (the tests make some)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def get(t: Transport, url: str, *, limit: int = 1 << 20, seconds: float = 10.0, **kw):
    return t.request(kw.pop("method", "GET"), url, limit=limit, deadline=Deadline(seconds, url), **kw)


def test_requests_share_one_kept_alive_connection():
    with server({"/a": lambda h: h.send(200, b"A"), "/b": lambda h: h.send(200, b"B")}) as base:
        t = Transport()
        assert [get(t, f"{base}/{p}").body for p in "abab"] == [b"A", b"B", b"A", b"B"]
        assert len({port for _, _, port in _Handler.seen}) == 1


def test_a_connection_the_server_closed_is_not_reused():
    def close(h):
        h.send(200, b"x", Connection="close")
        h.close_connection = True

    with server({"/c": close, "/a": lambda h: h.send(200, b"A")}) as base:
        t = Transport()
        assert get(t, f"{base}/c").body == b"x"
        assert get(t, f"{base}/a").body == b"A"
        assert len({port for _, _, port in _Handler.seen}) == 2


def test_an_idle_connection_closed_by_the_server_is_replaced():
    state = {"n": 0}

    def then_drop(h):
        h.send(200, b"A")
        state["n"] += 1
        if state["n"] == 1:  # after answering, the server drops the kept-alive connection
            h.wfile.flush()
            h.connection.shutdown(socket.SHUT_RDWR)

    with server({"/a": then_drop}) as base:
        t = Transport()
        assert get(t, f"{base}/a").body == b"A"
        time.sleep(0.1)
        assert get(t, f"{base}/a").body == b"A"
        assert len(_Handler.seen) == 2


def test_503_is_retried_after_its_retry_after_and_a_post_is_not():
    answers = iter([503, 503, 200])

    def flaky(h):
        status = next(answers)
        h.send(status, b"ok" if status == 200 else b"busy", Retry_After="0")

    with server({"/f": flaky, "/p": lambda h: h.send(503, b"busy")}) as base:
        t = Transport()
        assert get(t, f"{base}/f").status_code == 200 and len(_Handler.seen) == 3
        assert get(t, f"{base}/p", method="POST", body=b"{}").status_code == 503 and len(_Handler.seen) == 4


@pytest.mark.full("waits 3 s between retries")
def test_a_server_error_is_retried_three_times_then_returned():
    with server({"/e": lambda h: h.send(500, b"no")}) as base:
        started = time.monotonic()
        resp = get(Transport(), f"{base}/e")
        assert resp.status_code == 500 and resp.body == b"no" and len(_Handler.seen) == 4
        assert 2.5 < time.monotonic() - started < 6  # no wait, then 1 s, then 2 s


def test_retry_waits_end_with_the_deadline():
    with server({"/e": lambda h: h.send(429, b"slow down", Retry_After="3600")}) as base:
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded):
            get(Transport(), f"{base}/e", seconds=0.5)
        assert time.monotonic() - started < 2


@pytest.mark.full("waits 3 s between retries")
def test_a_closed_port_is_a_transport_error():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there
    with pytest.raises(TransportError) as caught:
        Transport()._retried("GET", f"http://127.0.0.1:{port}/x", {}, None, 100, Deadline(10, "x"))
    assert caught.value.kind == "ConnectionError"
    assert caught.value.reason == "ConnectionError (connection refused: nothing listens there)"


def test_rebuildctl_says_why_a_site_cannot_be_reached(tmp_path):
    """A refused connection is named as such, in one line (it was a bare "ConnectionError")."""
    import subprocess
    import sys

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    out = subprocess.run([sys.executable, "-c", "from jobs.ctl.fast import main; main()",
                          "-H", f"http://127.0.0.1:{port}", "pkgs", "ls"],
                         capture_output=True, text=True, env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}, timeout=60)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        f"rebuildctl: error: cannot fetch: ConnectionError (connection refused: nothing listens there) "
        f"(url: http://127.0.0.1:{port}/api/v1/index.json)"]


@pytest.mark.parametrize(("detail", "reason"), [
    ("gaierror", "ConnectionError (the host name does not resolve)"),
    ("RemoteDisconnected", "ConnectionError (the server closed the connection without answering)"),
    ("BadStatusLine", "ConnectionError"),  # what the server sent is not shown, nor named past its kind
    ("", "ConnectionError"),
])
def test_a_transport_error_names_its_cause_only_in_plain_words(detail, reason):
    assert TransportError("ConnectionError", detail).reason == reason


def test_redirects_within_the_origin_only():
    with server({"/r": lambda h: h.send(302, Location="/a"), "/a": lambda h: h.send(200, b"A"),
                 "/away": lambda h: h.send(301, Location="http://127.0.0.2:1/x"),
                 "/loop": lambda h: h.send(307, Location="/loop")}) as base:
        t = Transport()
        assert get(t, f"{base}/r").body == b"A"
        assert get(t, f"{base}/r", redirects=0).status_code == 302
        with pytest.raises(RedirectRefused, match="another origin"):
            get(t, f"{base}/away")
        with pytest.raises(RedirectRefused, match="redirects"):
            get(t, f"{base}/loop")


@pytest.mark.parametrize("port", ["99999", "ab"])
def test_a_redirect_to_a_port_that_is_no_port_is_refused(port):
    # urlsplit's .port raises ValueError for it: same_origin let it out as a traceback.
    with server({"/r": lambda h: h.send(302, Location=f"http://127.0.0.1:{port}/x")}) as base:
        with pytest.raises(RedirectRefused, match="another origin"):
            get(Transport(), f"{base}/r")


def test_a_retry_after_of_digits_float_refuses_is_the_backoff():
    # "²".isdigit() is True but float() refuses it: it was a ValueError out of the request.
    answers = iter([503, 200])

    def flaky(h):
        status = next(answers)
        h.send(status, b"ok" if status == 200 else b"busy", Retry_After="\u00b2")

    with server({"/f": flaky}) as base:
        assert get(Transport(), f"{base}/f").status_code == 200 and len(_Handler.seen) == 2


def test_caps_and_encodings():
    big = b"x" * 5000
    with server({"/big": lambda h: h.send(200, big), "/gz": lambda h: h.send(200, gzip.compress(big),
                                                                             Content_Encoding="gzip"),
                 "/br": lambda h: h.send(200, b"??", Content_Encoding="br")}) as base:
        t = Transport()
        with pytest.raises(OverLimit):
            get(t, f"{base}/big", limit=4999)
        assert get(t, f"{base}/big", limit=5000).body == big
        assert get(t, f"{base}/gz", limit=5000).body == big
        with pytest.raises(OverLimit):
            get(t, f"{base}/gz", limit=4000)  # decoded past the cap
        with pytest.raises(CorruptData, match="br"):
            get(t, f"{base}/br")


def test_a_trickled_body_ends_at_the_deadline():
    def trickle(h):
        h.send_response(200)
        h.send_header("Content-Length", "1000")
        h.end_headers()
        for _ in range(1000):
            h.wfile.write(b"x")
            h.wfile.flush()
            time.sleep(0.1)

    with server({"/t": trickle}) as base:
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded):
            get(Transport(), f"{base}/t", seconds=1)
        assert time.monotonic() - started < 2.5


def test_the_proxy_of_the_environment():
    with server({"http://elsewhere.invalid/p": lambda h: h.send(200, b"proxied")}) as proxy:
        env = {"http_proxy": proxy, "no_proxy": "example.org"}
        assert get(Transport(env=env), "http://elsewhere.invalid/p").body == b"proxied"
        assert _Handler.seen[-1][1] == "http://elsewhere.invalid/p"  # the absolute URL: asked through the proxy
        with pytest.raises((TransportError, DeadlineExceeded)):  # not proxied: a direct connection that fails
            get(Transport(env=env), "http://x.example.org.invalid.example.org/p", seconds=0.5)
        assert len(_Handler.seen) == 1


@pytest.mark.parametrize("content", [None, b"not a certificate\n"])
def test_an_unusable_ca_bundle_is_one_transport_error_naming_it(tmp_path, content):
    bundle = tmp_path / "ca.pem"
    if content is not None:
        bundle.write_bytes(content)
    t = Transport(env={"REQUESTS_CA_BUNDLE": str(bundle)})
    with pytest.raises(TransportError) as info:
        t._retried("GET", "https://127.0.0.1:9/x", {}, None, 100, Deadline(10, "x"))
    assert info.value.kind == "CABundleError"
    assert str(bundle) in str(info.value)
