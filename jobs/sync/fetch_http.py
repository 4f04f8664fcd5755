"""The HTTP side of `jobs.sync.fetch`, imported on the first HTTP(S) fetch only.

requests and urllib3 take a tenth of a second to import; a sync of a local (file://) mirror
never needs them.
"""

from __future__ import annotations

import requests

from jobs.core import progress
from jobs.core.bounded_http import DeadlineRetry, deadline_adapter
from jobs.core.neterrors import describe


class _ReportingRetry(DeadlineRetry):
    """urllib3's Retry, saying each retry in one line (urllib3 itself retries silently)."""

    def increment(self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None):
        new = super().increment(method, url, response, error, _pool, _stacktrace)  # raises when exhausted
        failed = len(new.history)
        attempts = failed + (new.total if isinstance(new.total, int) else 0) + 1
        where = url or ""
        if _pool is not None and url and url.startswith("/"):
            default = {"http": 80, "https": 443}.get(_pool.scheme)
            port = f":{_pool.port}" if _pool.port and _pool.port != default else ""
            where = f"{_pool.scheme}://{_pool.host}{port}{url}"
        what = describe(error) if error is not None else f"HTTP {response.status}" if response is not None \
            else "no answer"
        wait = new.get_retry_after(response) if response is not None and new.respect_retry_after_header else None
        wait = new.get_backoff_time() if wait is None else wait
        progress.line(f"{method or 'GET'} {where}: {what} (attempt {failed} of {attempts}); retrying in {wait:.1f} s")
        return new


def http_session(*, retries: int, backoff: float, user_agent: str) -> requests.Session:
    """A session retrying connection errors, timeouts and 429/5xx with exponential backoff, each retry said."""
    session = requests.Session()
    retry = _ReportingRetry(total=retries, connect=retries, read=retries, status=retries, backoff_factor=backoff,
                            status_forcelist=(429, 500, 502, 503, 504), allowed_methods=("GET", "HEAD"),
                            raise_on_status=False, respect_retry_after_header=True)
    adapter = deadline_adapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = user_agent
    return session


def grow(resp: requests.Response) -> None:
    length = resp.headers.get("Content-Length", "")
    if resp.status_code == 200 and length.isascii() and length.isdigit():  # not "²": int() refuses it
        progress.grow("download", int(length))
