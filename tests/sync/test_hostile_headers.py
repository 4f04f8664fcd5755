"""A Content-Length of digits int() refuses ("²": str.isdigit takes it) from a mirror or a site: read as no length."""

from __future__ import annotations

import pytest

from jobs.core.bounded import Deadline
from jobs.ctl.transport import Transport
from jobs.sync.fetch import Fetcher
from jobs.work.download import default_session, fetch
from tests.httpd import _QuietHandler, serve

BODY = b"the index"


class _Superscript(_QuietHandler):
    protocol_version = "HTTP/1.0"  # the body ends with the connection: no usable length needed
    seen = 0

    def do_GET(self) -> None:  # noqa: N802
        type(self).seen += 1
        self.send_response(200)
        self.send_header("Content-Length", "\u00b2")
        self.end_headers()
        self.wfile.write(BODY)


def test_sync_worker_and_rebuildctl_read_the_body_once(tmp_path):
    # int("²") raised ValueError out of the sync's fetch (a traceback); the worker's download and rebuildctl
    # took it as a broken connection and asked three more times before failing.
    _Superscript.seen = 0
    with serve(tmp_path, _Superscript) as base:
        url = f"{base}/x.pkg"
        assert Fetcher(retries=0).fetch(url).data == BODY and _Superscript.seen == 1
        fetched = fetch(url, tmp_path / "x.pkg", session=default_session())
        assert (tmp_path / "x.pkg").read_bytes() == BODY and fetched.size == len(BODY) and _Superscript.seen == 2
        resp = Transport().request("GET", url, limit=1000, deadline=Deadline(10, url))
        assert (resp.status_code, resp.body) == (200, BODY) and _Superscript.seen == 3


PAST_THE_CALENDAR = "1 Jan 99999999999 00:00:00 GMT"  # parsedate_to_datetime: OverflowError, not ValueError


class _FarFuture(_Superscript):
    def do_GET(self) -> None:  # noqa: N802
        type(self).seen += 1
        busy = self.path == "/busy" and type(self).seen == 1
        self.send_response(503 if busy else 200)
        self.send_header("Last-Modified", PAST_THE_CALENDAR)
        self.send_header("Retry-After", PAST_THE_CALENDAR)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)


def test_dates_past_the_calendar_from_a_mirror_or_a_site_are_no_dates(tmp_path):
    # The sync's Last-Modified (the validator it keeps) and rebuildctl's Retry-After raised OverflowError.
    from jobs.sync.decompress import CorruptIndex
    from jobs.sync.inrelease import _date

    _Superscript.seen = 0
    with serve(tmp_path, _FarFuture) as base:
        fetched = Fetcher(retries=0).fetch(f"{base}/Packages")
        assert fetched.data == BODY and (fetched.validator is None or fetched.validator.last_modified is None)
        resp = Transport().request("GET", f"{base}/busy", limit=1000, deadline=Deadline(10, base))
        assert (resp.status_code, resp.body) == (200, BODY)
    with pytest.raises(CorruptIndex, match="unreadable date"):
        _date(PAST_THE_CALENDAR, "dists/sid/InRelease")
