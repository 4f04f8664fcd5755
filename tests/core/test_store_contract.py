"""The store contract: one suite, run against the local directory and a real SeaweedFS."""

from __future__ import annotations

import hashlib
import io
import os
import tracemalloc
from concurrent.futures import ThreadPoolExecutor

import pytest

from jobs.core.store import (
    InvalidKey,
    LocalStore,
    NotFound,
    PreconditionFailed,
    S3Store,
    StoreError,
    StoreUnavailable,
    open_store,
)
from jobs.core.store.base import CHUNK_SIZE


def test_put_get_head_agree_on_etag(store):
    etag = store.put("a/b.json", b'{"x": 1}', content_type="application/json")
    blob = store.get("a/b.json")
    assert blob.data == b'{"x": 1}'
    assert blob.etag == etag == store.head("a/b.json").etag
    assert etag == '"' + hashlib.md5(b'{"x": 1}').hexdigest() + '"'
    assert store.head("a/b.json").size == 8


def test_missing_object_is_not_found_with_key_and_op(store):
    with pytest.raises(NotFound) as exc:
        store.get("no/such/key")
    assert exc.value.key == "no/such/key" and exc.value.op == "get"
    assert "no/such/key" in str(exc.value)
    with pytest.raises(NotFound):
        store.head("no/such/key")
    with pytest.raises(NotFound):
        store.open("no/such/key")


def test_put_if_absent_creates_once(store):
    etag = store.put_if_absent("claims/j/1.json", b"first")
    with pytest.raises(PreconditionFailed) as exc:
        store.put_if_absent("claims/j/1.json", b"second")
    assert exc.value.op == "put_if_absent" and exc.value.key == "claims/j/1.json"
    assert store.get("claims/j/1.json").data == b"first"
    assert store.head("claims/j/1.json").etag == etag


def test_put_if_match_is_compare_and_swap(store):
    e1 = store.put("ptr/HEAD.json", b"1")
    e2 = store.put_if_match("ptr/HEAD.json", b"2", e1)
    assert e2 != e1
    with pytest.raises(PreconditionFailed):
        store.put_if_match("ptr/HEAD.json", b"3", e1)  # stale ETag
    assert store.get("ptr/HEAD.json").data == b"2"
    # unquoted ETags (as some tools print them) are accepted
    store.put_if_match("ptr/HEAD.json", b"4", e2.strip('"'))
    assert store.get("ptr/HEAD.json").data == b"4"


def test_put_if_match_on_missing_key_fails_as_precondition(store):
    # AWS says 404 and SeaweedFS 412 here; both must mean "lost the race".
    with pytest.raises(PreconditionFailed):
        store.put_if_match("nothing/here", b"x", '"0123456789abcdef0123456789abcdef"')


def test_delete_and_delete_missing(store):
    store.put("d/x", b"x")
    store.delete("d/x")
    with pytest.raises(NotFound):
        store.get("d/x")
    store.delete("d/x")  # idempotent
    store.put_if_absent("d/x", b"again")  # a deleted key can be created again
    assert store.get("d/x").data == b"again"


def test_content_type_and_encoding_are_kept(store):
    store.put("site/api/v0/pkgs/list", b"\x1f\x8b...", content_type="application/json",
              content_encoding="gzip")
    info = store.head("site/api/v0/pkgs/list")
    assert info.content_type == "application/json"
    assert info.content_encoding == "gzip"
    assert store.get("site/api/v0/pkgs/list").info.content_encoding == "gzip"


def test_list_is_ordered_and_prefix_is_a_string_prefix(store):
    keys = ["results/ab/1.json", "results/abc/1.json", "results/b/2.json", "results/a-b", "state/x",
            "results/ab/10.json", "results/ab/2.json"]
    for k in keys:
        store.put(k, k.encode())
    assert [o.key for o in store.list("results/ab")] == sorted(k for k in keys if k.startswith("results/ab"))
    assert [o.key for o in store.list("results/")] == sorted(k for k in keys if k.startswith("results/"))
    assert [o.key for o in store.list("")] == sorted(keys)
    assert list(store.list("nope/")) == []
    sizes = {o.key: o.size for o in store.list("state/")}
    assert sizes == {"state/x": 7}


def test_list_past_1000_keys(store):
    keys = [f"many/{i:05d}" for i in range(1234)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: store.put(k, b"."), keys))
    assert [o.key for o in store.list("many/")] == keys


def test_unicode_keys_round_trip(store):
    key = "pkgs/ünïcödé/名前/x y+z"
    store.put(key, b"u")
    assert store.get(key).data == b"u"
    assert [o.key for o in store.list("pkgs/")] == [key]


@pytest.mark.parametrize("key", ["", "/abs", "a//b", "a/../b", "..", "a/./b", "a/", "a\x00b", "a\nb",
                                 "a\\b", ".rebuilder-meta/x", "x/.rebuilder-tmp", "a" * 1100])
def test_hostile_keys_are_rejected_before_any_io(store, key):
    with pytest.raises(InvalidKey):
        store.put(key, b"x")
    with pytest.raises(InvalidKey):
        store.get(key)


class _Chunks(io.RawIOBase):
    """A readable stream of `total` pseudo-random bytes that never holds them all."""

    def __init__(self, total: int) -> None:
        self.left, self.counter, self.sha = total, 0, hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        out = hashlib.shake_256(self.counter.to_bytes(8, "big")).digest(n)
        self.counter += 1
        self.left -= n
        self.sha.update(out)
        return out


def test_streaming_put_and_get_of_a_large_object_in_bounded_memory(store):
    size = 2 * CHUNK_SIZE + 12345  # multipart on S3: three parts
    body = _Chunks(size)
    tracemalloc.start()
    try:
        etag = store.put_if_absent("builds/big/log", body, content_type="text/plain")
        sha = hashlib.sha256()
        with store.open("builds/big/log") as f:
            while chunk := f.read(1 << 20):
                sha.update(chunk)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert sha.hexdigest() == body.sha.hexdigest()
    assert store.head("builds/big/log").size == size
    assert store.head("builds/big/log").etag == etag
    assert peak < 3 * CHUNK_SIZE, f"peak {peak} bytes for a {size}-byte object"
    # The condition also holds for a multipart upload.
    with pytest.raises(PreconditionFailed):
        store.put_if_absent("builds/big/log", _Chunks(size))
    assert store.head("builds/big/log").etag == etag


def test_large_cas_write(store):
    etag = store.put("big/cas", b"small")
    new = store.put_if_match("big/cas", _Chunks(CHUNK_SIZE + 1), etag)
    assert store.head("big/cas").etag == new
    with pytest.raises(PreconditionFailed):
        store.put_if_match("big/cas", _Chunks(CHUNK_SIZE + 1), etag)


def test_open_store_urls(tmp_path):
    s = open_store(tmp_path.as_uri())
    assert isinstance(s, LocalStore) and s.root == tmp_path
    assert isinstance(open_store(str(tmp_path / "plain")), LocalStore)
    s3 = open_store("s3://bucket/some/prefix/?region=eu-west-1&endpoint_url=http://127.0.0.1:1")
    assert isinstance(s3, S3Store) and s3.bucket == "bucket" and s3.prefix == "some/prefix"
    from jobs.core.errors import ConfigError
    for bad in ("ftp://x/y", "s3:///nobucket", "s3://b?colour=red", "file://host/path", "s3://b?max_attempts=0"):
        with pytest.raises(ConfigError):
            open_store(bad)
    # a local path through a file is one clear error, not a NotADirectoryError traceback at the first write
    (tmp_path / "afile").write_text("")
    for bad in ((tmp_path / "afile").as_uri(), (tmp_path / "afile" / "x" / "y").as_uri()):
        with pytest.raises(ConfigError, match=f"'{tmp_path / 'afile'}' is not a directory"):
            open_store(bad)
    assert isinstance(open_store((tmp_path / "new" / "deeper").as_uri()), LocalStore)  # created when written


def test_local_store_recovers_from_a_stale_sidecar(tmp_path):
    # A crash between the data rename and the sidecar rename leaves an old sidecar:
    # the ETag must still describe the bytes, so CAS can never act on a wrong state.
    store = LocalStore(tmp_path)
    etag = store.put("k", b"old")
    (tmp_path / "k").write_bytes(b"new bytes")
    current = store.head("k").etag
    assert current != etag and current == '"' + hashlib.md5(b"new bytes").hexdigest() + '"'
    with pytest.raises(PreconditionFailed):
        store.put_if_match("k", b"x", etag)
    store.put_if_match("k", b"x", current)


def test_local_store_leaves_no_temporary_files(tmp_path):
    store = LocalStore(tmp_path)
    store.put("a", b"1")
    with pytest.raises(PreconditionFailed):
        store.put_if_absent("a", b"2")
    with pytest.raises(PreconditionFailed):
        store.put_if_match("a", b"2", '"bad"')
    assert os.listdir(tmp_path / ".rebuilder-tmp") == []
    assert [o.key for o in store.list()] == ["a"]


def test_local_store_site_is_plain_files(tmp_path):
    store = LocalStore(tmp_path)
    store.put("site/api/v0/pkgs/list", b"[]", content_type="application/json")
    assert (tmp_path / "site/api/v0/pkgs/list").read_bytes() == b"[]"


def test_s3_wrong_credentials_is_a_permanent_error_naming_key_and_op(seaweed, monkeypatch):
    bucket = seaweed.new_bucket()
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    store = S3Store(bucket, "p", endpoint_url=seaweed.endpoint, region="us-east-1", max_attempts=2)
    with pytest.raises(StoreError) as exc:
        store.put("x/y", b"1")
    assert not isinstance(exc.value, (PreconditionFailed, NotFound))
    assert exc.value.op == "put" and exc.value.key == "x/y"
    assert not exc.value.transient


def test_s3_unreachable_endpoint_is_transient(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    store = S3Store("b", endpoint_url=f"http://127.0.0.1:{port}", region="us-east-1", max_attempts=2)
    with pytest.raises(StoreUnavailable) as exc:
        store.get("k")
    assert exc.value.transient and exc.value.key == "k"


class _Broken(io.RawIOBase):
    """A body that fails after `good` bytes, as a dying upstream stream does."""

    def __init__(self, good: int) -> None:
        self.left = good

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        if self.left <= 0:
            raise ConnectionResetError("upstream went away")
        n = min(len(buf), self.left)
        buf[:n] = b"x" * n
        self.left -= n
        return n


def _incomplete(store) -> list[str]:
    """The unfinished writes a store holds: open multipart uploads, or temporary files."""
    if isinstance(store, S3Store):
        resp = store.client.list_multipart_uploads(Bucket=store.bucket, Prefix=store.prefix + "/")
        return [u["Key"] for u in resp.get("Uploads", [])]
    return os.listdir(store.root / ".rebuilder-tmp")


def test_a_failed_streaming_put_leaves_no_incomplete_upload(store):
    with pytest.raises((ConnectionResetError, StoreError)):  # the local store names the key
        store.put("big/broken", io.BufferedReader(_Broken(CHUNK_SIZE + 1024)))
    with pytest.raises(NotFound):
        store.head("big/broken")
    assert _incomplete(store) == []


KILLED_WRITER = """
import sys, time
from jobs.core.store import open_store
class Slow:
    def __init__(self): self.sent = 0
    def read(self, n):
        if self.sent >= 2 * n:
            time.sleep(600)  # stalls after two parts: killed here
        self.sent += n
        return b"y" * n
open_store(sys.argv[1]).put("big/killed", Slow())
"""


def test_an_upload_killed_midway_is_aborted_by_the_cleanup(store_factory):
    """A writer SIGKILLed in the middle of a streamed put cannot abort its own upload; the
    cleanup publish runs aborts it once it is older than the threshold, and only then."""
    import subprocess
    import sys
    import time
    from datetime import datetime, timedelta, timezone
    from pathlib import Path

    url = store_factory.url()
    store = open_store(url)
    child = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, url], env=store_factory.env(),
                             cwd=Path(__file__).parents[2])
    try:
        deadline = time.monotonic() + 60
        while not _incomplete(store):
            assert child.poll() is None and time.monotonic() < deadline, "the upload never started"
            time.sleep(0.1)
        time.sleep(1)  # let the second part land
    finally:
        child.kill()
        child.wait()
    assert len(_incomplete(store)) == 1
    now = datetime.now(timezone.utc)
    assert store.abort_incomplete_uploads(now - timedelta(hours=1)) == 0  # too young: may be in progress
    assert len(_incomplete(store)) == 1
    assert store.abort_incomplete_uploads(now + timedelta(minutes=1)) == 1
    assert _incomplete(store) == []
    with pytest.raises(NotFound):
        store.head("big/killed")
    store.put("big/killed", b"later writes are fine")
