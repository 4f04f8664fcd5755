"""Object storage: the only state the jobs share (docs/storage.md).

`open_store(url)` names a store by URL:

- `file:///var/lib/rebuilder` or a plain path: a local directory (the embedded default);
- `s3://bucket/prefix`: S3 or any S3-compatible server. Credentials and the endpoint come
  from boto3's usual environment and config (`AWS_ACCESS_KEY_ID`, `AWS_ENDPOINT_URL`, ...);
  query parameters `endpoint_url`, `region`, `addressing_style` and `max_attempts`
  override them, e.g. `s3://rebuilder?endpoint_url=http://127.0.0.1:8333&region=us-east-1`.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from jobs.core.errors import ConfigError
from jobs.core.store.base import (
    Blob,
    Body,
    InvalidKey,
    NotFound,
    ObjectInfo,
    PreconditionFailed,
    Reads,
    Store,
    StoreError,
    StoreUnavailable,
    put_new,
)
from jobs.core.store.local import LocalStore

__all__ = [
    "Blob", "Body", "InvalidKey", "LocalStore", "NotFound", "ObjectInfo", "PreconditionFailed", "Reads", "S3Store",
    "Store", "StoreError", "StoreUnavailable", "open_store", "put_new",
]



def __getattr__(name: str):
    # S3Store (boto3, a tenth of a second to import) is loaded only when asked for: a job
    # on a local store never needs it.
    if name == "S3Store":
        from jobs.core.store.s3 import S3Store

        return S3Store
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_S3_PARAMS = {"endpoint_url", "region", "addressing_style", "max_attempts"}


def open_store(url: str) -> Store:
    """Open the store a URL names (file://, a plain path, or s3://)."""
    parts = urlsplit(url)
    if parts.scheme in ("", "file"):
        if parts.scheme == "file" and parts.netloc not in ("", "localhost"):
            raise ConfigError(f"file URL with a host is not a local path: {url!r}", key="store.url",
                              expected="file:///absolute/path")
        path = unquote(parts.path) if parts.scheme else url
        if not path:
            raise ConfigError("empty store path", key="store.url", expected="file:///absolute/path")
        root = Path(path).expanduser()
        for existing in (root, *root.parents):  # the nearest part of the path that exists must be a directory
            if existing.exists():
                if not existing.is_dir():
                    raise ConfigError(f"store path {str(root)!r}: {str(existing)!r} is not a directory",
                                      key="store.url", expected="file:///a/directory (or one to create)")
                break
        return LocalStore(root)
    if parts.scheme == "s3":
        if not parts.netloc:
            raise ConfigError(f"S3 URL without a bucket: {url!r}", key="store.url",
                              expected="s3://bucket/prefix")
        params = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        unknown = set(params) - _S3_PARAMS
        if unknown:
            raise ConfigError(f"unknown S3 URL parameter(s) {sorted(unknown)}", key="store.url",
                              expected=f"one of {sorted(_S3_PARAMS)}")
        attempts = params.get("max_attempts", "8")
        if not attempts.isdigit() or int(attempts) < 1:
            raise ConfigError(f"max_attempts={attempts!r}", key="store.url", expected="a positive integer")
        from jobs.core.store.s3 import S3Store

        return S3Store(parts.netloc, unquote(parts.path), endpoint_url=params.get("endpoint_url") or None,
                       region=params.get("region") or None,
                       addressing_style=params.get("addressing_style") or None,
                       max_attempts=int(attempts))
    raise ConfigError(f"unsupported store URL scheme {parts.scheme!r} in {url!r}", key="store.url",
                      expected="file:///path or s3://bucket/prefix")
