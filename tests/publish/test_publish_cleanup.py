"""Publish cleans up after writers that were killed mid-upload: open multipart uploads on S3,
temporary files in a local store, once they are a day old, and says how many it aborted."""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta, timezone

from jobs.core.config import RebuilderConfig
from jobs.core.store import LocalStore, S3Store, open_store
from jobs.core.store.base import CHUNK_SIZE
from jobs.publish.run import STALE_UPLOAD_AGE, publish


def _leave_an_incomplete_upload(store) -> None:
    """What a writer SIGKILLed in the middle of a large put leaves behind."""
    if isinstance(store, S3Store):
        key = f"{store.prefix}/results/x/1.log"
        upload = store.client.create_multipart_upload(Bucket=store.bucket, Key=key)
        store.client.upload_part(Bucket=store.bucket, Key=key, UploadId=upload["UploadId"], PartNumber=1,
                                 Body=b"z" * CHUNK_SIZE)
    else:
        assert isinstance(store, LocalStore)
        (store.root / ".rebuilder-tmp" / "d-0123456789abcdef").write_bytes(b"z" * 1024)


def _incomplete(store) -> int:
    if isinstance(store, S3Store):
        resp = store.client.list_multipart_uploads(Bucket=store.bucket, Prefix=store.prefix + "/")
        return len(resp.get("Uploads", []))
    return len(os.listdir(store.root / ".rebuilder-tmp"))


def test_publish_aborts_incomplete_uploads_older_than_a_day(store_factory):
    store = open_store(store_factory.url())
    other = open_store(store_factory.url())  # another store under the same bucket: not ours to touch
    _leave_an_incomplete_upload(store)
    _leave_an_incomplete_upload(other)
    time.sleep(1.1)  # a whole second older than "now" below, whatever the server's time resolution
    summary = publish(store, RebuilderConfig())
    assert summary.uploads_aborted == 0 and _incomplete(store) == 1  # a fresh one may still be running
    assert "incomplete upload" not in summary.line()
    later = datetime.now(timezone.utc) + STALE_UPLOAD_AGE + timedelta(minutes=5)
    summary = publish(store, RebuilderConfig(), now=later)
    assert summary.uploads_aborted == 1 and _incomplete(store) == 0
    assert "1 incomplete upload(s) of killed writers aborted" in summary.line()
    assert _incomplete(other) == 1  # only under this store's prefix
    assert publish(store, RebuilderConfig(), now=later).uploads_aborted == 0
