"""Failure classification: the result's reason first, the log tail second, phrases never single words."""

from __future__ import annotations

import gzip

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobs.core.model import Status
from jobs.core.store import LocalStore
from jobs.publish.site.classify import FailureClass, classify, classify_reason
from jobs.publish.site.inputs import read_log_tail

F = FailureClass


@pytest.mark.parametrize(("status", "reason", "expected"), [
    (Status.FAIL, "download failed: https://m.example/python-timeout-decorator-1.pkg: HTTP 404 Not Found",
     F.DOWNLOAD_FAILED),
    (Status.FAIL, "sha256 mismatch for foo-1.pkg: expected 00, got 11", F.CHECKSUM),
    (Status.FAIL, "build timed out after 3600 s", F.TIMEOUT),
    (Status.FAIL, "tool missing: diffoscope (install the diffoscope package)", F.TOOL_MISSING),
    (Status.FAIL, "backend exited with status 1: archlinux-repro not found: the archlinux backend needs an Arch host",
     F.TOOL_MISSING),
    (Status.FAIL, "backend exited with status 2: cannot download the source package acl=2.3 (deb-src)",
     F.DOWNLOAD_FAILED),
    (Status.BAD, "not reproducible: foo differs", F.NOT_REPRODUCIBLE),
    (Status.BAD, "not reproducible: foo differs, bar missing; diffoscope timed out", F.NOT_REPRODUCIBLE),
])
def test_the_reason_decides_first(status, reason, expected):
    assert classify_reason(status, reason) is expected
    assert classify(status, reason, "make: *** [all] Error 2\n") is expected  # the log is not needed


@pytest.mark.parametrize(("tail", "expected"), [
    ("==> ERROR: A failure occurred in build().\n    Aborting...\n", F.FTBFS),
    ("dpkg-buildpackage: error: debian/rules binary subprocess returned exit status 2\n", F.FTBFS),
    ("E: Build failure (dpkg-buildpackage died)\n", F.FTBFS),
    ("output\n\nTRUNCATED DUE TO TIMEOUT: 3600 seconds\n\n", F.TIMEOUT),
    ("error: target not found: libfoo\n", F.MISSING_DEPENDENCY),
    ("E: Unmet build dependencies: debhelper-compat (= 13)\n", F.MISSING_DEPENDENCY),
    ("cp: error writing 'x': No space left on device\n", F.NO_SPACE),
    ("==> Validating source files with sha256sums...\n    foo.tar.gz ... FAILED\n"
     "==> ERROR: One or more files did not pass the validity check!\n", F.CHECKSUM),
    ("error: failed retrieving file 'foo.pkg' from mirror : Could not resolve host: mirror\n", F.DOWNLOAD_FAILED),
    ("/bin/sh: line 1: cmake: command not found\n", F.TOOL_MISSING),
])
def test_a_vague_reason_reads_the_log_tail(tail, expected):
    assert classify_reason(Status.FAIL, "backend exited with status 1") is None
    assert classify(Status.FAIL, "backend exited with status 1", tail) is expected


def test_defaults_and_non_failures():
    assert classify(Status.GOOD, "whatever") is None
    assert classify(Status.UNKWN, None) is None
    assert classify(Status.FAIL, None) is F.UNKNOWN
    assert classify(Status.FAIL, "backend exited with status 1", "nothing recognisable\n") is F.UNKNOWN
    # A BAD build compared its output: without anything more specific it is not reproducible.
    assert classify(Status.BAD, "not reproducible: foo missing") is F.NOT_REPRODUCIBLE
    # ... but an artifact missing because the build failed is a build failure.
    assert classify(Status.BAD, "not reproducible: foo missing", "A failure occurred in package()") is F.FTBFS


def test_package_names_alone_never_decide():
    for name in ("python-timeout-decorator", "nospace", "make-sha256-mismatch-tool", "download-helper"):
        assert classify_reason(Status.FAIL, f"backend exited with status 1: {name} 1.0-1") is None


def test_labels_and_css_classes():
    assert F.FTBFS.label == "fails to build" and F.FTBFS.css_class == "failure-ftbfs"
    assert {c.value for c in F} >= {"checksum-mismatch", "missing-dependency", "timeout", "ftbfs",
                                    "not-reproducible", "download-failed", "no-space-left", "tool-missing", "unknown"}


def test_read_log_tail(tmp_path):
    store = LocalStore(tmp_path)
    text = "x" * 200_000 + "\nthe end\n"
    store.put("builds/a/log", gzip.compress(text.encode()), content_encoding="gzip")
    store.put("builds/a/plain", text.encode())
    store.put("builds/a/corrupt", gzip.compress(text.encode())[:5000])
    assert read_log_tail(store, "builds/a/log", limit=100) == text[-100:]
    assert read_log_tail(store, "builds/a/plain", limit=100) == text[-100:]
    assert len(read_log_tail(store, "builds/a/log")) == 64 * 1024
    assert read_log_tail(store, "builds/a/missing") is None
    assert read_log_tail(store, "builds/a/corrupt") is not None  # what could be read, no exception


@given(st.sampled_from(list(Status)), st.one_of(st.none(), st.text()), st.one_of(st.none(), st.text()))
def test_classify_takes_any_text(status, reason, tail):
    found = classify(status, reason, tail)
    assert (found is None) == (status in (Status.GOOD, Status.UNKWN))
