"""rebuilderd's v0 API over a published site: what upstream `rebuildctl` (0.23/0.24) and the
v0 consumers call, answered from the site's own files (no database) — docs/api.md.

Read endpoints (public, as upstream):
- `GET api/v0/pkgs/list?name=&status=&distro=&suite=&architecture=`: the published list,
  filtered in memory; every given parameter must equal the record's field (upstream's
  `WHERE field = ?`), `status` is one of GOOD, BAD, UNKWN (anything else is a 400, as
  actix's query extractor answers), a repeated parameter is a 400. `Last-Modified` is the
  newest `built_at`; `If-Modified-Since` at or after it answers 304.
- `POST api/v0/queue/list {"limit": N|null}`: `{"now", "queue": [QueueItem]}` from
  `api/v1/queue.json`, in its claim order.
- `GET api/v0/workers` (admin cookie, as upstream): the workers of `api/v1/workers.json` seen
  in the last 540 s (upstream's online window) in both the ≤0.25 (`addr`) and ≥0.26
  (`address`, `name`) shapes at once.
- everything else under the site (dashboard, public-keys, build files) is the published file.

Admin endpoints (`X-Auth-Cookie` must equal `[auth] cookie`; compared in constant time):
`POST api/v0/pkg/requeue`, `api/v0/queue/push`, `api/v0/queue/drop` become signed admin
requests in the store (jobs.publish.state.requests), which the next publish applies; the answer
is 200 `null` (upstream's `()`) once the request is stored. Names are matched exactly, as
upstream matches them (a glob character in a name is escaped, not a pattern).

Every body and file is bounded: a request body at `MAX_BODY` bytes, the list at
`MAX_LIST_BYTES` (it is ours, but a store is shared), a decompressed file at `MAX_INFLATED`.
"""

from __future__ import annotations

import hmac
import json
import threading
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qsl

from jobs.core import urls
from jobs.core.bounded import OverLimit, cap, read_object
from jobs.core.errors import TransientError
from jobs.core.feeds import API_MODE, naive
from jobs.core.layout import SITE
from jobs.core.model import parse_timestamp
from jobs.core.requests import MAX_REQUEST_BYTES, write_request
from jobs.core.store import NotFound, Store

MAX_BODY = MAX_REQUEST_BYTES
MAX_LIST_BYTES = cap("serve_list")  # ~3 million records; a bigger file is refused, not read
MAX_FEED_BYTES = cap("serve_feed")
MAX_INFLATED = cap("serve_inflated")  # most bytes one decompressed file is sent as
ONLINE_SECONDS = 540  # upstream marks a worker offline after 540 s without a ping
LIST_FILTERS = ("name", "status", "distro", "suite", "architecture")
V0_STATUSES = ("GOOD", "BAD", "UNKWN")
ADMIN = {"/api/v0/pkg/requeue": "requeue", "/api/v0/queue/push": "push", "/api/v0/queue/drop": "drop"}
# Upstream's other v0 writers (sync, worker protocol): not served, as rebuilderd ≥ 0.26 answers.
UNSUPPORTED = ("/api/v0/pkgs/sync", "/api/v0/queue/pop", "/api/v0/build/ping", "/api/v0/build/report")
JSON = "application/json"


@dataclass
class Response:
    status: int
    body: bytes | Iterator[bytes] = b""
    content_type: str = JSON
    headers: dict[str, str] = field(default_factory=dict)


def _json(status: int, value: Any, **headers: str) -> Response:
    return Response(status, json.dumps(value).encode(), JSON, dict(headers))


TEXT = "text/plain; charset=utf-8"


def error(status: int, message: str) -> Response:
    """An error as upstream answers one: its message as plain text."""
    return Response(status, message.encode(), TEXT)


def accepts_gzip(header: str | None) -> bool:
    """Whether an `Accept-Encoding` header accepts gzip (by name or `*`, with a q above 0)."""
    for part in (header or "").split(","):
        name, _, params = part.strip().partition(";")
        if name.strip().lower() not in ("gzip", "x-gzip", "*"):
            continue
        q = 1.0
        for p in params.split(";"):
            k, _, v = p.strip().partition("=")
            if k.strip().lower() == "q":
                try:
                    q = float(v)
                except ValueError:
                    q = 0.0
        if q > 0:
            return True
    return False


def inflate(stream, limit: int = MAX_INFLATED) -> Iterator[bytes]:
    """A gzip stream's decompressed bytes, in chunks, stopping at `limit` bytes."""
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    sent = 0
    with stream:
        while sent < limit and (chunk := stream.read(1 << 16)):
            out = d.decompress(chunk, limit - sent)
            while out:
                sent += len(out)
                yield out
                if sent >= limit or not d.unconsumed_tail:
                    break
                out = d.decompress(d.unconsumed_tail, limit - sent)
            if d.eof:
                return


def _read_bounded(store: Store, key: str, limit: int) -> bytes:
    try:
        data, info = read_object(store, key, limit)  # checked before and while reading
    except OverLimit:
        raise ValueError(f"{key} is more than the {limit} bytes this server reads") from None
    if info.content_encoding == "gzip":
        data = b"".join(inflate(_Bytes(data), limit + 1))
        if len(data) > limit:
            raise ValueError(f"{key} decompresses to more than {limit} bytes")
    return data


class _Bytes:
    def __init__(self, data: bytes) -> None:
        self._data, self._pos = data, 0

    def read(self, n: int) -> bytes:
        chunk = self._data[self._pos:self._pos + n]
        self._pos += len(chunk)
        return chunk

    def __enter__(self) -> _Bytes:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class Api:
    """The v0 API of the site under `prefix` of `site`; admin requests go to `requests` keyed by `cookie`."""

    def __init__(self, site: Store, prefix: str = SITE, *, cookie: str | None = None,
                 requests: Store | None = None, clock: Callable[[], datetime] | None = None) -> None:
        self.site, self.prefix, self.cookie, self.requests = site, prefix, cookie, requests
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self._lock = threading.Lock()
        self._list: tuple[tuple, list[dict], datetime | None] | None = None

    # --- dispatch ---------------------------------------------------------------------

    def handle(self, method: str, path: str, query: str, headers: Mapping[str, str],
               read_body: Callable[[int], bytes]) -> Response | None:
        """The answer to one request, or None to serve the published file as it is."""
        path = "/" + path.strip("/")  # upstream trims a trailing slash (NormalizePath)
        try:
            if path in ADMIN:
                return self._admin(method, ADMIN[path], headers, read_body) if method == "POST" else \
                    error(405, f"{path} takes POST")
            if path == "/api/v0/pkgs/list" and method in ("GET", "HEAD"):
                return self._pkgs_list(query, headers)
            if path == "/api/v0/queue/list":
                return self._queue_list(read_body, headers) if method == "POST" else error(405, f"{path} takes POST")
            if path == "/api/v0/workers" and method in ("GET", "HEAD"):
                return self._workers(headers)
            if path in UNSUPPORTED:
                return error(501, f"{path} is not served: this rebuilder's state is written by its own jobs")
            if path == "/" + urls.INDEX_FEED and method in ("GET", "HEAD"):
                index = json.loads(_read_bounded(self.site, self.prefix + urls.INDEX_FEED, MAX_FEED_BYTES))
                return _json(200, {**index, "mode": API_MODE})
        except NotFound as exc:
            return error(404, f"{exc.key or path} is not published yet")
        except (ValueError, json.JSONDecodeError) as exc:
            return error(500, f"the published site cannot answer {path}: {exc}")
        except TransientError as exc:
            return error(503, f"the store cannot be read now: {exc}")
        if method not in ("GET", "HEAD"):
            return error(404 if path.startswith("/api/") else 405, f"no {method} {path} here")
        return None

    # --- read endpoints ---------------------------------------------------------------

    def _records(self) -> tuple[list[dict], datetime | None]:
        key = self.prefix + urls.PKGS_LIST
        info = self.site.head(key)
        version = (info.etag, info.size, info.last_modified)
        with self._lock:
            if self._list is not None and self._list[0] == version:
                return self._list[1], self._list[2]
        records = json.loads(_read_bounded(self.site, key, MAX_LIST_BYTES))
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise ValueError(f"{key} is not a JSON array of records")
        stamps = [r["built_at"] for r in records if isinstance(r.get("built_at"), str)]
        newest = None
        if stamps:
            newest = datetime.fromisoformat(max(stamps)).replace(tzinfo=timezone.utc, microsecond=0)
        with self._lock:
            self._list = (version, records, newest)
        return records, newest

    def _pkgs_list(self, query: str, headers: Mapping[str, str]) -> Response:
        wanted: dict[str, str] = {}
        for name, value in parse_qsl(query, keep_blank_values=True):
            if name not in LIST_FILTERS:
                continue  # upstream's query struct ignores unknown parameters
            if name in wanted:
                return error(400, f"Query deserialize error: duplicate field `{name}`")
            wanted[name] = value
        status = wanted.get("status")
        if status is not None and status not in V0_STATUSES:
            return error(400, f"Query deserialize error: unknown variant `{status}`, expected one of "
                              + ", ".join(f"`{s}`" for s in V0_STATUSES))
        records, newest = self._records()
        modified = {} if newest is None else {"Last-Modified": format_datetime(newest, usegmt=True)}
        since = headers.get("If-Modified-Since")
        if newest is not None and since:
            try:
                if newest <= parsedate_to_datetime(since):
                    return Response(304, b"", JSON, modified)
            except (TypeError, ValueError, OverflowError):  # OverflowError: a year past a C int
                pass
        items = [r for r in records if all(r.get(k) == v for k, v in wanted.items())]
        return _json(200, items, **modified)

    def _feed(self, key: str) -> dict:
        feed = json.loads(_read_bounded(self.site, self.prefix + key, MAX_FEED_BYTES))
        if not isinstance(feed, dict):
            raise ValueError(f"{key} is not a JSON object")
        return feed

    def _queue_list(self, read_body: Callable[[int], bytes], headers: Mapping[str, str]) -> Response:
        body = _body(read_body, headers)
        if isinstance(body, Response):
            return body
        limit = body.get("limit") if isinstance(body, dict) else None
        if not isinstance(body, dict) or (limit is not None and (isinstance(limit, bool) or not isinstance(limit, int))):
            return error(400, "Json deserialize error: limit must be an integer or null")
        feed = self._feed(urls.QUEUE_FEED)
        jobs = feed.get("jobs") or []
        if limit is not None:
            jobs = jobs[:max(0, limit)]
        return _json(200, {"now": naive(self.clock()), "queue": [_queue_item(i, j) for i, j in enumerate(jobs, 1)]})

    def _workers(self, headers: Mapping[str, str]) -> Response:
        refused = self._refused(headers)
        if refused is not None:
            return refused
        feed = self._feed(urls.WORKERS_FEED)
        now = self.clock()
        out = []
        for i, w in enumerate(feed.get("workers") or [], 1):
            seen = _stamp(w.get("last_seen"))
            job = w.get("current_job")
            if job is None and (seen is None or now - seen > timedelta(seconds=ONLINE_SECONDS)):
                continue
            status = None if job is None else f"working hard on {job.get('source_name')} {job.get('source_version')}"
            out.append({"id": w.get("worker_id") or i, "name": w.get("name"), "key": w.get("key_id"),
                        "addr": "", "address": "", "status": status,
                        "last_ping": naive(seen or now), "online": True})
        return _json(200, out)

    # --- admin ------------------------------------------------------------------------

    def _refused(self, headers: Mapping[str, str]) -> Response | None:
        given = headers.get("X-Auth-Cookie")
        if self.cookie is None or given is None or not hmac.compare_digest(
                given.encode("utf-8", "surrogateescape"), self.cookie.encode("utf-8")):
            return error(403, "Authentication failed\n")  # upstream's words, with or without a cookie configured
        return None

    def _admin(self, method: str, verb: str, headers: Mapping[str, str],
               read_body: Callable[[int], bytes]) -> Response:
        refused = self._refused(headers)
        if refused is not None:
            return refused
        if self.requests is None:
            return error(501, "this server takes no admin requests (start `rebuilder serve` with --admin)")
        body = _body(read_body, headers)
        if isinstance(body, Response):
            return body
        try:
            fields = _request_fields(verb, body)
        except ValueError as exc:
            return error(400, f"Json deserialize error: {exc}")
        try:
            write_request(self.requests, self.cookie, verb, **fields)  # type: ignore[arg-type]
        except ValueError as exc:
            return error(400, str(exc))
        return _json(200, None)


def _body(read_body: Callable[[int], bytes], headers: Mapping[str, str]) -> Any:
    length = headers.get("Content-Length")
    if length is None or not length.isdigit():
        return error(411, "a JSON body with a Content-Length is required")
    if int(length) > MAX_BODY:
        return error(413, f"the body is more than {MAX_BODY} bytes")
    try:
        return json.loads(read_body(int(length)))
    except (ValueError, UnicodeDecodeError):
        return error(400, "Json deserialize error: the body is not JSON")


def _text(body: dict, name: str, *, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string" + ("" if required else " or null"))
    return value


def _exact(name: str | None) -> str | None:
    """A name as an fnmatch pattern that matches only itself (upstream compares names exactly)."""
    if name is None:
        return None
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def _request_fields(verb: str, body: object) -> dict[str, object]:
    """The admin request a v0 body asks for (rebuildctl 0.23's RequeueQuery, PushQueue, DropQueueItem)."""
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    fields: dict[str, object] = {"architecture": _text(body, "architecture")}
    if verb == "requeue":
        fields.update(name=_exact(_text(body, "name")), distro=_text(body, "distro"),
                      component=_text(body, "suite"), status=_text(body, "status"))
        if fields["status"] is not None and fields["status"] not in V0_STATUSES:
            raise ValueError(f"unknown status {fields['status']!r}, expected one of {V0_STATUSES}")
        reset = body.get("reset", False)
        if not isinstance(reset, bool):
            raise ValueError("reset must be true or false")
        fields["reset"] = reset
    else:
        fields.update(name=_exact(_text(body, "name", required=True)), distro=_text(body, "distro", required=True),
                      component=_text(body, "suite", required=True), version=_text(body, "version"))
    if verb != "drop":
        priority = body.get("priority", 0)
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise ValueError("priority must be an integer")
        fields["priority"] = priority
    return fields


def _stamp(text: object) -> datetime | None:
    try:
        return parse_timestamp(text) if isinstance(text, str) else None
    except ValueError:
        return None


def _queue_item(position: int, job: dict) -> dict[str, Any]:
    """One v0 QueueItem from a `api/v1/queue.json` job (`id` is its position in claim order)."""
    running = job.get("running") or None
    version = job.get("source_version")
    artifacts = job.get("artifacts") or []
    # the group's architecture, as upstream's sync gives it: its input package's (as in pkgs/list)
    group = next((a.get("architecture") for a in artifacts if a.get("url") == job.get("input_url")), None)
    pkgbase = {"name": job.get("source_name"), "version": version, "distro": job.get("distro"),
               "suite": job.get("component") or "", "architecture": group or job.get("architecture"),
               "input_url": job.get("input_url"),
               "artifacts": [{"name": a.get("name"), "version": a.get("version"), "url": a.get("url") or ""}
                             for a in artifacts]}
    started = _stamp(running.get("started_at")) if running else None
    pinged = _stamp(running.get("renewed_at")) if running else None
    return {"id": position, "pkgbase": pkgbase, "version": version,
            "queued_at": naive(_stamp(job.get("queued_at")) or datetime.now(timezone.utc)),
            "worker_id": None if running is None else 1, "started_at": naive(started), "last_ping": naive(pinged)}


__all__ = ["Api", "Response", "accepts_gzip", "inflate"]
