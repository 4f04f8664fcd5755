"""Downloading a job's inputs: names, checksums, caps and errors, over a real loopback HTTP server and file://."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import threading
from datetime import datetime, timezone
from pathlib import Path

import pytest
import requests

from jobs.core.model import Artifact, JobRow, job_id
from jobs.work.download import (
    ChecksumMismatch,
    DownloadCancelled,
    DownloadError,
    TransientDownloadError,
    UnsafeFileName,
    download_inputs,
    fetch,
    safe_file_name,
    shown_url,
    url_file_name,
)
from tests.httpd import serve


def job(*artifacts: Artifact, input_url: str | None = None) -> JobRow:
    url = input_url or artifacts[0].url
    return JobRow(job_id=job_id("b", "x86_64", url), backend="b", architecture="x86_64", input_url=url,
                  distro="d", releases=(None,), source_name="s", source_version="1", artifacts=artifacts,
                  priority=1, queued_at=datetime(2026, 1, 1, tzinfo=timezone.utc), not_before=None,
                  attempt=1, retries=0)


def artifact(url: str, **fields: object) -> Artifact:
    return Artifact(name=str(fields.pop("name", "pkg")), version="1", architecture="any", url=url, **fields)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    path = tmp_path / "inputs"
    path.mkdir()
    return path


@pytest.mark.parametrize("name", ["hello-1.0-1-x86_64.pkg.tar.zst", "libstdc++6_14.2.0-19_amd64.deb", "a b", "..."])
def test_plain_file_names_are_safe(name):
    assert safe_file_name(name) == name


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "/etc", "a\\b", "a\x00b", "tab\there", "del\x7f", "x" * 256])
def test_names_that_could_escape_or_confuse_are_refused(name):
    with pytest.raises(UnsafeFileName):
        safe_file_name(name)


def test_the_url_file_name_is_the_unquoted_last_segment():
    assert url_file_name("https://deb.example/pool/h/hello_2.10-3%2Bb1_amd64.deb?x=1") == "hello_2.10-3+b1_amd64.deb"
    with pytest.raises(UnsafeFileName):
        url_file_name("https://example.org/a%2F..%2F..%2Fetc")


def test_credentials_never_reach_a_message():
    assert shown_url("https://user:secret@mirror.example:8443/x.deb") == "https://mirror.example:8443/x.deb"
    assert shown_url("file:///srv/x") == "file:///srv/x"


def test_artifacts_and_a_separate_input_are_fetched_and_hashed(tmp_path, inputs):
    (tmp_path / "a.deb").write_bytes(b"A")
    (tmp_path / "s.buildinfo").write_bytes(b"B")
    a = artifact((tmp_path / "a.deb").as_uri(), sha256=sha(b"A"))
    notes: list[str] = []
    with requests.Session() as session:
        got = download_inputs(job(a, input_url=(tmp_path / "s.buildinfo").as_uri()), inputs, session=session,
                              note=notes.append)
    assert [(art, f.path.read_bytes(), f.sha256) for art, f in got.artifacts] == [(a, b"A", sha(b"A"))]
    assert (got.input.path, got.input.sha256) == (inputs / "s.buildinfo", sha(b"B"))
    assert len(notes) == 2


def test_an_input_that_is_an_artifact_is_downloaded_once(tmp_path, inputs):
    (tmp_path / "a.pkg").write_bytes(b"A")
    a = artifact((tmp_path / "a.pkg").as_uri())
    with requests.Session() as session:
        got = download_inputs(job(a), inputs, session=session)
    assert got.input is got.artifacts[0][1]
    assert [p.name for p in inputs.iterdir()] == ["a.pkg"]


def test_a_checksum_mismatch_names_the_artifact(tmp_path, inputs):
    (tmp_path / "a.pkg").write_bytes(b"A")
    a = artifact((tmp_path / "a.pkg").as_uri(), name="alpha", sha256="F" * 64)
    with requests.Session() as session, pytest.raises(ChecksumMismatch) as caught:
        download_inputs(job(a), inputs, session=session)
    assert caught.value.message == f"sha256 mismatch for alpha (a.pkg): expected {'f' * 64}, got {sha(b'A')}"


def test_two_urls_cannot_share_a_file_name(tmp_path, inputs):
    a, b = artifact("file:///one/x.pkg"), artifact("file:///two/x.pkg")
    with requests.Session() as session, pytest.raises(UnsafeFileName, match="used by both"):
        download_inputs(job(a, b), inputs, session=session)


def test_a_file_bigger_than_the_index_says_is_cut_off(tmp_path, inputs):
    (tmp_path / "big").write_bytes(b"x" * (3 << 20))
    a = artifact((tmp_path / "big").as_uri(), size=10)
    with requests.Session() as session, pytest.raises(DownloadError, match="larger than"):
        download_inputs(job(a), inputs, session=session)


def test_file_urls_of_other_hosts_and_other_schemes_are_refused(tmp_path):
    with requests.Session() as session:
        with pytest.raises(DownloadError, match="another host"):
            fetch("file://mirror.example/x", tmp_path / "x", session=session)
        with pytest.raises(DownloadError, match="unsupported URL scheme 'ftp'"):
            fetch("ftp://mirror.example/x", tmp_path / "y", session=session)
        with pytest.raises(DownloadError, match="No such file"):
            fetch((tmp_path / "missing").as_uri(), tmp_path / "z", session=session)


class _Mislabelled(http.server.SimpleHTTPRequestHandler):
    """Serves gzip bytes labelled Content-Encoding: gzip (a misconfigured mirror), and a 503."""

    body = gzip.compress(b"payload", mtime=0)

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        if self.path == "/busy":
            self.send_error(503)
            return
        self.send_response(200)
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


def test_http_bytes_are_kept_as_served(tmp_path):
    with serve(tmp_path, _Mislabelled) as url, requests.Session() as session:
        got = fetch(f"{url}/x.tar.gz", tmp_path / "x.tar.gz", session=session)
        with pytest.raises(TransientDownloadError, match="HTTP 503"):
            fetch(f"{url}/busy", tmp_path / "busy", session=session)
    assert got.path.read_bytes() == _Mislabelled.body and got.sha256 == sha(_Mislabelled.body)


def test_a_content_length_over_the_cap_fails_before_the_body(tmp_path):
    (tmp_path / "f").write_bytes(b"x" * 1000)
    with serve(tmp_path) as url, requests.Session() as session:
        with pytest.raises(DownloadError, match="Content-Length 1000"):
            fetch(f"{url}/f", tmp_path / "g", session=session, max_bytes=999)


def test_a_cancel_stops_the_download(tmp_path):
    (tmp_path / "f").write_bytes(b"x" * (3 << 20))
    cancel = threading.Event()
    cancel.set()
    with requests.Session() as session, pytest.raises(DownloadCancelled):
        fetch((tmp_path / "f").as_uri(), tmp_path / "g", session=session, cancel=cancel)


def test_an_unsafe_build_input_name_is_refused(tmp_path, inputs):
    (tmp_path / "a.pkg").write_bytes(b"A")
    a = artifact((tmp_path / "a.pkg").as_uri())
    with requests.Session() as session, pytest.raises(UnsafeFileName, match="for the build input"):
        download_inputs(job(a, input_url="https://example.org/%2E%2E"), inputs, session=session)
