"""The S3 store (boto3): AWS S3 or any S3-compatible server via `endpoint_url`.

Conditional writes use `IfNoneMatch='*'` (create-only) and `IfMatch=<etag>` (CAS) on
`put_object` and on `complete_multipart_upload`. s3transfer's managed upload does not
accept those headers, so large bodies are uploaded part by part here.

Servers differ on a failed `IfMatch` against a missing key (AWS: 404, SeaweedFS: 412);
both mean "precondition failed". Transient failures (connection errors, 5xx, throttling)
are retried by botocore's "standard" retry mode with exponential backoff and jitter, each
retry said in one line (`jobs.core.progress.line`: what failed, the request, attempt n of m);
what is left after the retries is raised as `StoreUnavailable`, naming the cause in a few words.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any, BinaryIO

import boto3
import botocore.config
import botocore.exceptions
from botocore.retries import standard

from jobs.core import progress
from jobs.core.neterrors import describe
from jobs.core.store.base import (
    CHUNK_SIZE,
    Blob,
    Body,
    NotFound,
    ObjectInfo,
    PreconditionFailed,
    StoreError,
    StoreUnavailable,
    check_key,
    check_prefix,
    normalise_etag,
)

_PRECONDITION_CODES = {"PreconditionFailed", "412"}
_NOT_FOUND_CODES = {"NoSuchKey", "404", "NotFound"}
# AWS answers 409 when two conditional writes to one key overlap; the outcome is not
# decided yet, so the write is tried again and then ends in success or 412.
_CONFLICT_CODES = {"ConditionalRequestConflict", "409", "OperationAborted"}
_TRANSIENT_CODES = {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "503", "500",
                    "502", "504", "Throttling", "ThrottlingException", "RequestTimeTooSkewed"}


def _http_what(status: str, code: str) -> str:
    """`HTTP 503`, `HTTP 503 SlowDown`: an S3 error answer in a few words."""
    return f"HTTP {status} {code}" if code and code != status else f"HTTP {status}"


def _report_retries(client: Any, max_attempts: int) -> None:
    """Say each retry of botocore's standard retry handler in one line (botocore retries silently).

    The handler botocore registered is replaced by the same handler (`register_retry_handler`
    makes a new one under the same id), wrapped.
    """
    event = f"needs-retry.{client.meta.service_model.service_id.hyphenize()}"
    unique_id = f"retry-config-{client.meta.service_model.service_id.hyphenize()}"
    client.meta.events.unregister(event, unique_id=unique_id)
    handler = standard.register_retry_handler(client, max_attempts=max_attempts)
    client.meta.events.unregister(event, unique_id=unique_id)

    def needs_retry(**kwargs: Any) -> Any:
        delay = handler.needs_retry(**kwargs)
        if delay is not None and delay is not False:
            exc, response = kwargs.get("caught_exception"), kwargs.get("response")
            if exc is not None:
                what = describe(exc)
            else:
                http, parsed = response if isinstance(response, tuple) else (None, {})
                what = _http_what(str(getattr(http, "status_code", "?")), (parsed or {}).get("Error", {}).get("Code", ""))
            request = kwargs.get("request_dict") or {}
            progress.line(f"S3 {request.get('method', '')} {request.get('url', '')}: {what} "
                          f"(attempt {kwargs.get('attempts')} of {max_attempts}); retrying in {delay:.1f} s")
        return delay

    client.meta.events.register(event, needs_retry, unique_id=unique_id)


class S3Store:
    """A store in an S3 bucket under an optional prefix (`s3://bucket/prefix`)."""

    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None,
                 region: str | None = None, addressing_style: str | None = None,
                 max_attempts: int = 8, client: Any = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        if client is None:
            config = botocore.config.Config(
                retries={"mode": "standard", "max_attempts": max_attempts},
                connect_timeout=10, read_timeout=120,
                s3={"addressing_style": addressing_style or ("path" if endpoint_url else "auto")},
            )
            client = boto3.session.Session().client(
                "s3", endpoint_url=endpoint_url, region_name=region, config=config)
        self.client = client
        # botocore's max_attempts counts retries; total_max_attempts the first try as well.
        retries = getattr(getattr(client, "meta", None), "config", None)
        retries = getattr(retries, "retries", None) or {}
        self.attempts = int(retries.get("total_max_attempts") or max_attempts + 1)
        if retries.get("mode") == "standard":
            _report_retries(client, self.attempts)

    def __repr__(self) -> str:
        return f"S3Store({self.url!r})"

    def _full(self, key: str, op: str) -> str:
        check_key(key, op=op)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _endpoint(self) -> str:
        return getattr(getattr(self.client, "meta", None), "endpoint_url", None) or "S3"

    def _error(self, exc: Exception, op: str, key: str | None) -> Exception:
        """Translate a botocore failure into this project's store errors."""
        if isinstance(exc, botocore.exceptions.ClientError):
            code = str(exc.response.get("Error", {}).get("Code", ""))
            status = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
            msg = exc.response.get("Error", {}).get("Message") or code or status
            if code in _PRECONDITION_CODES or status == "412":
                return PreconditionFailed(f"precondition failed: {msg}", op=op, key=key, store=self.url)
            if code in _NOT_FOUND_CODES or status == "404":
                if op == "put_if_match":
                    return PreconditionFailed("object does not exist", op=op, key=key, store=self.url)
                return NotFound("no such object", op=op, key=key, store=self.url)
            if code in _TRANSIENT_CODES or status.startswith("5"):
                retried = code in _TRANSIENT_CODES or status in ("500", "502", "503", "504")
                return StoreUnavailable(f"{_http_what(status, code)} ({msg}) at {self._endpoint()}"
                                        + (f" after {self.attempts} attempts" if retried else ""),
                                        op=op, key=key, store=self.url)
            return StoreError(f"S3 error: {code} {msg}", op=op, key=key, store=self.url)
        if isinstance(exc, (botocore.exceptions.EndpointConnectionError,
                            botocore.exceptions.ConnectionError,
                            botocore.exceptions.ReadTimeoutError,
                            botocore.exceptions.ConnectTimeoutError,
                            botocore.exceptions.ResponseStreamingError)):
            return StoreUnavailable(f"{describe(exc)} at {self._endpoint()} after {self.attempts} attempts", op=op,
                                    key=key, store=self.url)
        if isinstance(exc, botocore.exceptions.NoCredentialsError):
            return StoreError("no S3 credentials (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile)",
                              op=op, key=key, store=self.url)
        return StoreError(f"S3 request failed: {exc}", op=op, key=key, store=self.url)

    def _call(self, op: str, key: str | None, fn: Any, **kwargs: Any) -> Any:
        delay = 0.2
        for attempt in range(6):
            try:
                return fn(**kwargs)
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
                code = ""
                if isinstance(exc, botocore.exceptions.ClientError):
                    code = str(exc.response.get("Error", {}).get("Code", ""))
                if code in _CONFLICT_CODES and attempt < 5:
                    time.sleep(delay)
                    delay *= 2
                    continue
                raise self._error(exc, op, key) from exc
        raise AssertionError("unreachable")

    # -- reading -------------------------------------------------------------------

    def get(self, key: str) -> Blob:
        """Read a whole object with its ETag."""
        resp = self._call("get", key, self.client.get_object, Bucket=self.bucket, Key=self._full(key, "get"))
        try:
            data = resp["Body"].read()
        except (botocore.exceptions.BotoCoreError, OSError) as exc:
            raise StoreUnavailable(f"connection lost while reading: {exc}", op="get", key=key,
                                   store=self.url) from exc
        return Blob(data, self._info(key, resp, len(data)))

    def open(self, key: str) -> BinaryIO:
        """Stream an object; the caller closes the returned body."""
        resp = self._call("open", key, self.client.get_object, Bucket=self.bucket, Key=self._full(key, "open"))
        return resp["Body"]

    def head(self, key: str) -> ObjectInfo:
        """Metadata of an object."""
        resp = self._call("head", key, self.client.head_object, Bucket=self.bucket,
                          Key=self._full(key, "head"))
        return self._info(key, resp, resp["ContentLength"])

    def _info(self, key: str, resp: dict, size: int) -> ObjectInfo:
        return ObjectInfo(key=key, size=size, etag=normalise_etag(resp["ETag"]),
                          last_modified=resp.get("LastModified"),
                          content_type=resp.get("ContentType"),
                          content_encoding=resp.get("ContentEncoding"))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Objects under `prefix`, following continuation tokens past 1,000 keys."""
        check_prefix(prefix)
        full = f"{self.prefix}/{prefix}" if self.prefix else prefix
        strip = len(self.prefix) + 1 if self.prefix else 0
        token = None
        while True:
            kwargs = {"Bucket": self.bucket, "Prefix": full}
            if token:
                kwargs["ContinuationToken"] = token
            resp = self._call("list", prefix, self.client.list_objects_v2, **kwargs)
            for obj in resp.get("Contents", []):
                yield ObjectInfo(key=obj["Key"][strip:], size=obj["Size"],
                                 etag=normalise_etag(obj["ETag"]), last_modified=obj.get("LastModified"))
            if not resp.get("IsTruncated"):
                return
            token = resp["NextContinuationToken"]

    # -- writing -------------------------------------------------------------------

    def put(self, key: str, body: Body, *, content_type: str | None = None,
            content_encoding: str | None = None) -> str:
        """Write unconditionally."""
        return self._write("put", key, body, {}, content_type, content_encoding)

    def put_if_absent(self, key: str, body: Body, *, content_type: str | None = None,
                      content_encoding: str | None = None) -> str:
        """Create-only write (`If-None-Match: *`)."""
        return self._write("put_if_absent", key, body, {"IfNoneMatch": "*"}, content_type, content_encoding)

    def put_if_match(self, key: str, body: Body, etag: str, *, content_type: str | None = None,
                     content_encoding: str | None = None) -> str:
        """Compare-and-swap write (`If-Match: <etag>`)."""
        return self._write("put_if_match", key, body, {"IfMatch": normalise_etag(etag)},
                           content_type, content_encoding)

    def delete(self, key: str) -> None:
        """Remove an object (absent keys are fine, as in S3)."""
        try:
            self._call("delete", key, self.client.delete_object, Bucket=self.bucket,
                       Key=self._full(key, "delete"))
        except NotFound:
            pass

    def abort_incomplete_uploads(self, started_before: datetime) -> int:
        """Abort the multipart uploads under this store's prefix initiated before `started_before`."""
        full = f"{self.prefix}/" if self.prefix else ""
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": full}
        aborted = 0
        while True:
            resp = self._call("abort_incomplete", None, self.client.list_multipart_uploads, **kwargs)
            for upload in resp.get("Uploads", []):
                if upload["Initiated"] >= started_before:
                    continue  # may still be in progress
                try:
                    self._call("abort_incomplete", upload["Key"][len(full):], self.client.abort_multipart_upload,
                               Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"])
                except NotFound:
                    continue  # finished or aborted meanwhile
                aborted += 1
            if not resp.get("IsTruncated"):
                return aborted
            kwargs["KeyMarker"] = resp.get("NextKeyMarker", "")
            kwargs["UploadIdMarker"] = resp.get("NextUploadIdMarker", "")

    def _write(self, op: str, key: str, body: Body, cond: dict, content_type: str | None,
               content_encoding: str | None) -> str:
        full = self._full(key, op)
        meta: dict[str, str] = {}
        if content_type:
            meta["ContentType"] = content_type
        if content_encoding:
            meta["ContentEncoding"] = content_encoding
        if isinstance(body, (bytes, bytearray, memoryview)):
            first, rest = bytes(body), None
        else:
            first, rest = body.read(CHUNK_SIZE), body
            if len(first) < CHUNK_SIZE:
                rest = None
        if rest is None:
            resp = self._call(op, key, self.client.put_object, Bucket=self.bucket, Key=full, Body=first,
                              **meta, **cond)
            return normalise_etag(resp["ETag"])
        return self._multipart(op, key, full, first, rest, meta, cond)

    def _multipart(self, op: str, key: str, full: str, first: bytes, rest: BinaryIO, meta: dict,
                   cond: dict) -> str:
        """Upload in CHUNK_SIZE parts (bounded memory); the condition applies at completion."""
        upload = self._call(op, key, self.client.create_multipart_upload, Bucket=self.bucket, Key=full, **meta)
        upload_id = upload["UploadId"]
        parts = []
        try:
            chunk, number = first, 1
            while chunk:
                resp = self._call(op, key, self.client.upload_part, Bucket=self.bucket, Key=full,
                                  UploadId=upload_id, PartNumber=number, Body=chunk)
                parts.append({"PartNumber": number, "ETag": resp["ETag"]})
                chunk, number = rest.read(CHUNK_SIZE), number + 1
            resp = self._call(op, key, self.client.complete_multipart_upload, Bucket=self.bucket, Key=full,
                              UploadId=upload_id, MultipartUpload={"Parts": parts}, **cond)
        except BaseException:
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=full, UploadId=upload_id)
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError):
                pass  # an unfinished upload is invisible; a bucket lifecycle rule reaps it
            raise
        return normalise_etag(resp["ETag"])
