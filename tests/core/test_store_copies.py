"""A local store keeps Content-Type and Content-Encoding when it is copied, restored or chmod'ed.

The sidecar's recorded identity (inode, size, mtime, ctime) changes with every copy; the bytes
do not. A published site is copied each way an operator would copy it, then read through the
store and served by the real `rebuilder serve`: pages must stay `text/html`, gzip-encoded logs
must stay `Content-Encoding: gzip`, and every ETag must be the MD5 of the bytes.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from jobs.core.config import RebuilderConfig
from jobs.core.store import LocalStore
from jobs.publish.run import publish
from tests.tools import require_tool

LOG_KEY = "site/api/v0/builds/1/log"  # extensionless and gzip-encoded, as the worker uploads logs
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> tuple[Path, dict]:
    """A store with a real published site plus a gzip-encoded log; its directory and metadata."""
    root = tmp_path_factory.mktemp("published") / "store"
    store = LocalStore(root)
    publish(store, RebuilderConfig())
    store.put(LOG_KEY, gzip.compress(b"build log\n"), content_type="text/plain; charset=utf-8",
              content_encoding="gzip")
    meta = {o.key: _meta(store, o.key) for o in store.list("site/")}
    assert meta["site/index.html"][0] == "text/html; charset=utf-8"
    assert meta[LOG_KEY][:2] == ("text/plain; charset=utf-8", "gzip")
    return root, meta


def _meta(store: LocalStore, key: str) -> tuple[str | None, str | None, str | None]:
    info = store.head(key)
    return info.content_type, info.content_encoding, info.etag


def _cp_a(src: Path, dst: Path) -> None:
    subprocess.run(["cp", "-a", str(src), str(dst)], check=True)


def _cp_r(src: Path, dst: Path) -> None:
    # No preservation at all: new inodes, new mtimes.
    subprocess.run(["cp", "-r", str(src), str(dst)], check=True)


def _rsync(src: Path, dst: Path) -> None:
    rsync = require_tool("rsync", "rsync")
    subprocess.run([rsync, "-a", f"{src}/", f"{dst}/"], check=True)


def _tar(src: Path, dst: Path) -> None:
    # GNU tar's default format keeps whole seconds of mtime only.
    dst.mkdir()
    archive = dst.parent / "store.tar"
    subprocess.run(["tar", "-C", str(src), "-cf", str(archive), "."], check=True)
    subprocess.run(["tar", "-C", str(dst), "-xf", str(archive)], check=True)


def _copytree(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst)


def _chmod(src: Path, dst: Path) -> None:
    # The same directory, every file chmod'ed (only the ctime changes).
    _cp_a(src, dst)
    for path in dst.rglob("*"):
        if path.is_file():
            path.chmod(0o600)
            path.chmod(0o644)


COPIES = {"cp -a": _cp_a, "cp -r": _cp_r, "rsync -a": _rsync, "tar": _tar, "copytree": _copytree, "chmod": _chmod}


@pytest.mark.parametrize("how", list(COPIES))
def test_a_copied_store_keeps_its_metadata_and_is_served_right(published, tmp_path, how):
    src, meta = published
    dst = tmp_path / "copy"
    COPIES[how](src, dst)
    copy = LocalStore(dst)
    assert {o.key: _meta(copy, o.key) for o in copy.list("site/")} == meta
    # The sidecars now record the copy's identity: the next read trusts them without hashing.
    for key in meta:
        sidecar = json.loads((dst / ".rebuilder-meta" / (key + ".json")).read_bytes())
        st = os.stat(dst / key)
        assert sidecar["fingerprint"] == [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns], key
    headers = _served(dst, ["index.html", "api/v0/builds/1/log", "static/style.css", "api/v0/dashboard"])
    assert headers["index.html"][0] == "text/html; charset=utf-8"
    assert headers["api/v0/builds/1/log"] == ("text/plain; charset=utf-8", "gzip")
    assert headers["static/style.css"][0] == "text/css; charset=utf-8"
    assert headers["api/v0/dashboard"][0] == "application/json"


def test_changed_bytes_behind_an_unchanged_identity_still_get_their_own_etag(published, tmp_path):
    # Same size, mtime put back, copied so the inode differs as after a crash between the
    # renames: the sidecar no longer describes the bytes and must not be believed.
    src, meta = published
    dst = tmp_path / "copy"
    _cp_a(src, dst)
    page = dst / "site/index.html"
    st = page.stat()
    data = page.read_bytes()
    page.write_bytes(data[:-1] + (b"x" if data[-1:] != b"x" else b"y"))
    os.utime(page, ns=(st.st_atime_ns, st.st_mtime_ns))
    store = LocalStore(dst)
    info = store.head("site/index.html")
    assert info.etag == '"' + hashlib.md5(page.read_bytes()).hexdigest() + '"' != meta["site/index.html"][2]
    assert store.get("site/index.html").etag == info.etag
    assert info.content_type == "text/html; charset=utf-8"  # guessed from the name, not from the sidecar


def test_a_copy_without_the_metadata_guesses_types_from_names(published, tmp_path):
    src, _ = published
    dst = tmp_path / "copy"
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".rebuilder-*"))
    store = LocalStore(dst)
    assert store.head("site/index.html").content_type == "text/html; charset=utf-8"
    assert store.head("site/static/style.css").content_type == "text/css; charset=utf-8"
    assert store.head("site/static/filter.js").content_type == "text/javascript; charset=utf-8"
    assert store.head("site/api/v1/index.json").content_type == "application/json"
    assert store.head(LOG_KEY).content_type is None  # nothing to guess from: served as octet-stream


def test_a_copy_whose_sidecars_cannot_be_refreshed_is_still_read(published, tmp_path):
    src, meta = published
    dst = tmp_path / "copy"
    _tar(src, dst)
    store = LocalStore(dst)
    (dst / ".rebuilder-tmp").rmdir()
    (dst / ".rebuilder-tmp").write_bytes(b"")  # no temporary file can be made: the refresh fails
    for _ in range(2):
        assert _meta(store, "site/index.html") == meta["site/index.html"]
        assert _meta(store, LOG_KEY) == meta[LOG_KEY]


def _served(root: Path, paths: list[str]) -> dict[str, tuple[str, str | None]]:
    """(Content-Type, Content-Encoding) of each path as `rebuilder serve` sends it."""
    server = subprocess.Popen([str(BIN / "rebuilder"), "--store", root.as_uri(), "serve", "--bind", "127.0.0.1:0"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=root.parent,
                              env={**os.environ, "HOME": str(root.parent)})
    try:
        line = server.stdout.readline()
        assert " at " in line, server.stderr.read()
        url = line.split(" at ")[1].strip()
        out = {}
        for path in paths:
            # As a browser asks: a client that does not accept gzip gets the log decoded (docs/api.md).
            ask = urllib.request.Request(url + path, headers={"Accept-Encoding": "gzip"})
            with urllib.request.urlopen(ask, timeout=30) as resp:
                resp.read()
                out[path] = (resp.headers["Content-Type"], resp.headers.get("Content-Encoding"))
        return out
    finally:
        server.terminate()
        server.wait(timeout=30)
