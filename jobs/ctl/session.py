"""rebuildctl's HTTP session: keep-alive connections for a few fetchers, retries, the environment read once.

Imported only when a site is read over HTTP (`jobs.ctl.feeds`), so a file:// site never
imports requests.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import requests

from jobs.core.bounded_http import DeadlineRetry, deadline_adapter

USER_AGENT = "rebuildctl (rebuilder)"


class _Session(requests.Session):
    """A Session that reads proxies and the CA bundle from the environment once per host.

    requests reads them on every request (`merge_environment_settings` scans `os.environ`
    twice): 0.13 ms a request, 7 ms of a `pkgs ls` that reads a long list in 50 parts. The
    answer depends only on the scheme and host, and the environment does not change while a
    command runs. Redirects still go through requests' own per-URL proxy lookup.
    """

    def __init__(self) -> None:
        super().__init__()
        self._by_host: dict[tuple[str, str], dict[str, Any]] = {}

    def merge_environment_settings(self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
                                   ) -> dict[str, Any]:
        if proxies or verify is not None or cert is not None or not self.trust_env:
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        parts = urlsplit(url)
        host = (parts.scheme, parts.netloc)
        settings = self._by_host.get(host)
        if settings is None:
            settings = self._by_host[host] = super().merge_environment_settings(url, {}, None, None, None)
        return {**settings, "proxies": dict(settings["proxies"]), "stream": stream}


def session(connections: int) -> requests.Session:
    """A Session keeping up to `connections` connections per host alive, retrying GETs on
    connection errors, 429 and 5xx (urllib3's Retry, backing off), every request within its
    total deadline (headers too: `jobs.core.bounded_http`)."""
    retry = DeadlineRetry(total=3, backoff_factor=0.5, status_forcelist=(429, 500, 502, 503, 504),
                  allowed_methods=frozenset({"GET"}), raise_on_status=False)
    s = _Session()
    s.headers["User-Agent"] = USER_AGENT
    for prefix in ("http://", "https://"):
        s.mount(prefix, deadline_adapter(max_retries=retry, pool_maxsize=connections))
    return s
