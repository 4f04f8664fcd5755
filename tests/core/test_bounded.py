"""The bounded-read module and the limits table (issue #15): every limit is enforced, on both stores.

`jobs.core.bounded.LIMITS` is the one table: docs/design.md "Limits" is generated from it
(tests/test_readme.py checks the block), and each test below enforces one row.
"""

from __future__ import annotations

import gzip
import io
import lzma
import time
import zlib

import pytest

from jobs.core.bounded import (
    LIMITS,
    CorruptData,
    Deadline,
    DeadlineExceeded,
    OverLimit,
    cap,
    decompress_capped,
    limits_markdown,
    read_capped,
    read_object,
    same_origin,
)
from jobs.core.config.kinds import SAFE_NAME_MAX
from jobs.core.config.sync_conf import parse_sync_config
from jobs.core.docblocks import ROOT, block
from jobs.core.errors import ConfigError
from jobs.core.model import ArtifactResult, ResultRow, SchemaError, Status, build_id, check_result_fields
from jobs.core.model.limits import entry_problem, fit_text
from jobs.core.store import InvalidKey

MB = 1 << 20


def _bomb(kind: str, decoded: int) -> bytes:
    if kind == "xz":
        comp = lzma.LZMACompressor(format=lzma.FORMAT_XZ)
        return b"".join(comp.compress(b"\0" * MB) for _ in range(decoded // MB)) + comp.flush()
    comp = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return b"".join(comp.compress(b"\0" * MB) for _ in range(decoded // MB)) + comp.flush()


def test_the_docs_table_is_the_limits():
    assert block((ROOT / "docs/design.md").read_text(), "limits") == limits_markdown()
    for name in LIMITS:
        assert f"| `{name}` |" in limits_markdown()


def test_read_capped_stops_one_byte_past_the_cap_for_bytes_files_and_chunks():
    for source in (b"x" * 11, io.BytesIO(b"x" * 11), [b"x" * 5, b"x" * 6]):
        with pytest.raises(OverLimit, match="thing: larger than the limit of 10 bytes"):
            read_capped(source, 10, "thing")
    assert read_capped(io.BytesIO(b"x" * 10), 10, "thing") == b"x" * 10


@pytest.mark.parametrize("kind", ["gz", "xz"])
def test_decompression_streams_and_stops_at_the_cap(kind):
    bomb = _bomb(kind, 256 * MB)
    assert len(bomb) < 2 * MB
    started = time.monotonic()
    with pytest.raises(OverLimit, match="report decompressed: larger than the limit of 1,048,576 bytes"):
        decompress_capped(bomb, kind, MB, "report")
    assert time.monotonic() - started < 5  # stopped at 1 MiB, not after 256
    data = b"hello " * 1000
    packed = gzip.compress(data) if kind == "gz" else lzma.compress(data)
    assert decompress_capped(packed + packed, kind, 2 * len(data), "x") == data + data  # members/streams
    with pytest.raises(CorruptData, match="truncated"):
        decompress_capped(packed[:-12], kind, len(data), "x")
    with pytest.raises(CorruptData, match="trailing data"):
        decompress_capped(packed + b"junk", kind, len(data), "x")
    with pytest.raises(CorruptData, match="not a"):
        decompress_capped(b"plain", kind, len(data), "x")


def test_a_deadline_is_total():
    deadline = Deadline(0.2, "GET x")
    assert deadline.left() > 0
    time.sleep(0.25)
    with pytest.raises(DeadlineExceeded, match="GET x: not complete within the 0.2-second deadline"):
        deadline.left()


def test_same_origin_is_scheme_host_and_port():
    assert same_origin("http://a:1/x", "http://a:1/y/z")
    assert not same_origin("http://a:1/x", "https://a:1/x")
    assert not same_origin("http://a:1/x", "http://a:2/x")
    assert not same_origin("http://127.0.0.1:1/x", "http://localhost:1/x")


def test_an_object_over_its_cap_is_never_read(store):
    store.put("builds/a/log", b"x" * 1000)
    with pytest.raises(OverLimit, match="builds/a/log: larger than the limit of 999 bytes"):
        read_object(store, "builds/a/log", 999)
    data, info = read_object(store, "builds/a/log", 1000)
    assert data == b"x" * 1000 and info.size == 1000


def test_key_limits_are_the_same_on_both_stores(store):
    segment = "a" * cap("key_segment")
    store.put(f"x/{segment}", b"1")
    assert store.get(f"x/{segment}").data == b"1"
    for key in (f"x/{segment}b", "x/" + "é" * 126):  # 251 characters; 252 bytes
        for call in (lambda k: store.put(k, b"1"), store.get, store.head, lambda k: store.put_if_absent(k, b"1")):
            with pytest.raises(InvalidKey, match="longer than 250 bytes"):
                call(key)
    long_key = "/".join(["a" * 200] * 6)
    with pytest.raises(InvalidKey, match="longer than 1024 bytes"):
        store.put(long_key, b"1")


def test_profile_names_are_limited_before_any_key_is_made():
    assert SAFE_NAME_MAX == cap("profile_name")
    profile = {"distro": "archlinux", "source": "https://m.example/$repo/os/$arch", "architectures": ["x86_64"],
               "suite": "core"}
    parse_sync_config({"profile": {"p" * SAFE_NAME_MAX: profile}}, "sync.conf")
    with pytest.raises(ConfigError, match="at most 64 characters"):
        parse_sync_config({"profile": {"p" * 300: profile}}, "sync.conf")


def _entry(**over):
    fields = {"name": "hello", "version": "1.0-1", "url": "https://m.example/hello.pkg", "architecture": "x86_64",
              "source_name": "hello", "source_version": "1.0-1", "component": "core", "filename": "hello.pkg",
              "maintainers": ("A <a@example.org>",)}
    return entry_problem(**{**fields, **over})


@pytest.mark.parametrize(("field", "value", "problem"), [
    ("name", "n" * 256, "name is longer than 255 characters"),
    ("version", "1" * (10 * MB), "version is longer than 255 characters"),
    ("source_version", "1" * 256, "source version is longer than 255"),
    ("url", "https://m.example/" + "a" * 2048, "URL is longer than 2048"),
    ("url", "https://m.example/\u202eexe.png", "URL has control, bidi or space"),
    ("name", "a\u2066b", "name has control, bidi or space"),
    ("version", "1.0 1", "version has control, bidi or space"),
    ("architecture", "x86\x1b[2J", "architecture has control"),
    ("maintainers", ("x" * 5000,), "maintainer is longer than 4096"),
])
def test_sync_entries_past_a_field_limit_are_refused(field, value, problem):
    assert _entry() is None
    found = _entry(**{field: value})
    assert found is not None and problem in found and len(found) < 200


def _result(**over) -> ResultRow:
    jid = "0" * 32
    fields = dict(build_id=build_id(jid, 1), job_id=jid, attempt=1, distro="archlinux", architecture="x86_64",
                  source_name="hello", source_version="1.0-1", status=Status.BAD, reason="not reproducible",
                  artifacts=(ArtifactResult("hello", Status.BAD),), worker_key_id="k" * 64, worker_name="w 1",
                  started_at="2026-01-01T00:00:00Z", built_at="2026-01-01T00:01:00Z", log_key=None,
                  diffoscope_key=None, attestation_key=None)
    from jobs.core.model import parse_timestamp

    fields["started_at"], fields["built_at"] = parse_timestamp(fields["started_at"]), parse_timestamp(fields["built_at"])
    return ResultRow(**{**fields, **over})


@pytest.mark.parametrize(("over", "words"), [
    ({"reason": "x" * 4097}, "reason is longer than 4096"),
    ({"reason": "a\x1b[2Jb"}, "reason has control"),
    ({"worker_name": "\u202eevil"}, "worker_name has control, bidi"),
    ({"source_version": "1" * 256}, "source_version is longer than 255"),
    ({"artifacts": (ArtifactResult("a" * 256, Status.BAD),)}, "artifact name is longer"),
])
def test_result_fields_past_a_limit_are_a_schema_error(over, words):
    check_result_fields(_result())
    with pytest.raises(SchemaError, match=words):
        check_result_fields(_result(**over))


def test_our_own_worker_fits_its_reason_to_the_limit():
    fitted = fit_text("line one\nline two\t" + "x" * 10_000)
    assert fitted is not None and len(fitted) == cap("reason") and fitted.isprintable() and fitted.endswith("…")
    check_result_fields(_result(reason=fitted))


