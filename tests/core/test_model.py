"""The status enum, ids, safe path segments and record invariants of jobs.core.model."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobs.core.errors import TerminalError
from jobs.core.model import (
    MAX_SEGMENT_BYTES,
    Artifact,
    ArtifactResult,
    JobRow,
    PackageStateRow,
    Priority,
    ResultRow,
    SchemaError,
    SegmentError,
    Status,
    build_id,
    is_job_id,
    job_id,
    parse_build_id,
    parse_timestamp,
    record_from_json,
    record_to_json,
    safe_segment,
    unescape_segment,
)
from tests.core.model_strategies import RECORD_STRATEGIES, names

STYLE_CSS = Path(__file__).resolve().parents[2] / "site" / "static" / "style.css"
UTC = timezone.utc
T0 = datetime(2026, 5, 1, 12, 34, 56, 123456, tzinfo=UTC)

# ---------------------------------------------------------------- Status / Priority


def test_status_values_are_the_wire_values() -> None:
    assert [s.value for s in Status] == ["GOOD", "BAD", "FAIL", "UNKWN"]
    assert Status.choices() == ["GOOD", "BAD", "FAIL", "UNKWN"]
    assert json.dumps({"status": Status.FAIL}) == '{"status": "FAIL"}'
    assert f"{Status.GOOD}" == "GOOD" and Status.BAD == "BAD"


@pytest.mark.parametrize("status", list(Status))
def test_css_class_exists_in_the_stylesheet(status: Status) -> None:
    assert status.css_class == f"status-{status.value.lower()}"
    assert re.search(rf"\.{re.escape(status.css_class)}\b", STYLE_CSS.read_text())


@pytest.mark.parametrize(("text", "expected"), [
    ("GOOD", Status.GOOD), ("good", Status.GOOD), ("Good", Status.GOOD), (" bad\n", Status.BAD),
    ("Bad", Status.BAD), ("Fail", Status.FAIL), ("FAIL", Status.FAIL), ("UNKWN", Status.UNKWN),
    ("unkwn", Status.UNKWN), ("UNKNOWN", Status.UNKWN), ("unknown", Status.UNKWN),
])
def test_parse_accepts_all_known_spellings(text: str, expected: Status) -> None:
    assert Status.parse(text) is expected


@given(st.sampled_from(["good", "bad", "fail", "unkwn", "unknown"]), st.data())
def test_parse_is_case_insensitive(word: str, data: st.DataObject) -> None:
    flips = data.draw(st.lists(st.booleans(), min_size=len(word), max_size=len(word)))
    mixed = "".join(c.upper() if f else c for c, f in zip(word, flips, strict=True))
    assert Status.parse(mixed) is Status.parse(word)


@pytest.mark.parametrize("text", ["", "ok", "GOODS", "UNKNWN", "none", "null"])
def test_parse_rejects_unknown_text(text: str) -> None:
    with pytest.raises(ValueError, match="unknown build status"):
        Status.parse(text)


def test_parse_rejects_non_text() -> None:
    with pytest.raises(ValueError):
        Status.parse(None)  # type: ignore[arg-type]


def test_v0_maps_fail_to_bad_like_rebuilderd() -> None:
    assert [s.v0() for s in Status] == [Status.GOOD, Status.BAD, Status.BAD, Status.UNKWN]
    assert {s.v0().value for s in Status} == {"GOOD", "BAD", "UNKWN"}


def test_dashboard_keys() -> None:
    assert [s.dashboard_key for s in Status] == ["good", "bad", "fail", "unknown"]


def test_priority_levels_follow_rebuilderd() -> None:
    assert (Priority.MANUAL, Priority.NEW, Priority.RETRY) == (0, 1, 2)
    assert sorted([Priority.RETRY, Priority.MANUAL, Priority.NEW]) == [0, 1, 2]
    assert Priority.of(2) is Priority.RETRY
    assert Priority.of(-5) == -5 and type(Priority.of(-5)) is int


# ---------------------------------------------------------------- ids

ACL_INPUT = "https://buildinfos.debian.net/buildinfo-pool/a/acl/acl_2.3.2-2+b1_amd64.buildinfo"


def test_job_id_is_pinned() -> None:
    # A changed value re-keys every job in every bucket: it must be a deliberate migration.
    assert job_id("debian", "amd64", ACL_INPUT) == "73e67683bab6c0cdcf313e6ba4a236c6"


def test_job_id_shape_and_friends() -> None:
    a = job_id("debian", "amd64", ACL_INPUT)
    assert is_job_id(a) and len(a) == 32
    # The same input seen in sid and forky is one job: release is not part of the id.
    assert job_id("debian", "amd64", ACL_INPUT) == a
    assert job_id("debian", "arm64", ACL_INPUT) != a
    assert job_id("archlinux", "amd64", ACL_INPUT) != a


def test_job_id_fields_cannot_bleed_into_each_other() -> None:
    assert job_id("ab", "c", "u") != job_id("a", "bc", "u")
    assert job_id("a", "b:c", "u") != job_id("a", "b", ":cu")
    assert job_id("a", "1:b,", "u") != job_id("a", "1", "b,u")


@given(st.tuples(names, names, names), st.tuples(names, names, names))
def test_job_id_distinct_inputs_distinct_ids(x: tuple[str, str, str], y: tuple[str, str, str]) -> None:
    assert (job_id(*x) == job_id(*y)) == (x == y)


@pytest.mark.parametrize("args", [("", "amd64", "u"), ("debian", "", "u"), ("debian", "amd64", "")])
def test_job_id_rejects_empty_fields(args: tuple[str, str, str]) -> None:
    with pytest.raises(ValueError):
        job_id(*args)


@given(st.tuples(names, names, names), st.integers(1, 2**40))
def test_build_id_round_trips(inputs: tuple[str, str, str], attempt: int) -> None:
    job = job_id(*inputs)
    bid = build_id(job, attempt)
    assert parse_build_id(bid) == (job, attempt)
    assert safe_segment(bid) == bid  # usable as builds/<build-id>/ unchanged


@pytest.mark.parametrize(("job", "attempt"), [
    ("73e67683bab6c0cdcf313e6ba4a236c6", 0), ("73e67683bab6c0cdcf313e6ba4a236c6", True),
    ("73e67683bab6c0cdcf313e6ba4a236c6", "1"), ("73E67683BAB6C0CDCF313E6BA4A236C6", 1), ("acl", 1),
])
def test_build_id_rejects_bad_parts(job: str, attempt: object) -> None:
    with pytest.raises(ValueError):
        build_id(job, attempt)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["", "x-1", "73e67683bab6c0cdcf313e6ba4a236c6-0",
                                  "73e67683bab6c0cdcf313e6ba4a236c6-01", "73e67683bab6c0cdcf313e6ba4a236c6"])
def test_parse_build_id_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_build_id(text)


# ---------------------------------------------------------------- safe segments

any_text = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=60)
BIG = 60 * 12  # the length limit is tested on its own; here every escape must fit
SEGMENT_RE = re.compile(r"(?:[A-Za-z0-9._+-]|%[0-9A-F]{2})+")


@given(any_text)
def test_safe_segment_is_one_harmless_segment(text: str) -> None:
    segment = safe_segment(text, max_bytes=BIG)
    assert "/" not in segment and "\\" not in segment
    assert segment not in (".", "..") and not segment.startswith(".")
    assert SEGMENT_RE.fullmatch(segment)  # so no NUL, no control chars, no spaces
    assert segment.isascii()


@given(any_text)
def test_safe_segment_round_trips(text: str) -> None:
    assert unescape_segment(safe_segment(text, max_bytes=BIG)) == text


@given(any_text, any_text)
def test_safe_segment_is_injective(a: str, b: str) -> None:
    assert (safe_segment(a, max_bytes=BIG) == safe_segment(b, max_bytes=BIG)) == (a == b)


@pytest.mark.parametrize(("text", "segment"), [
    ("acl", "acl"), ("libstdc++6", "libstdc++6"), ("2.3.2-2+b1", "2.3.2-2+b1"), ("1:2.0~rc1", "1%3A2.0%7Erc1"),
    (".", "%2E"), ("..", "%2E."), (".hidden", "%2Ehidden"), ("a/b", "a%2Fb"), ("100%", "100%25"),
    ("a b", "a%20b"), ("\x00", "%00"), ("é", "%C3%A9"), ("x.", "x."),
])
def test_safe_segment_examples(text: str, segment: str) -> None:
    assert safe_segment(text) == segment
    assert unescape_segment(segment) == text


@pytest.mark.parametrize("segment", ["", ".", "..", "a/b", "%41", "%2e", "%2", "%", "%G0", "é", "a b",
                                     ".hidden", "%FF", "%C3", "a\x00"])
def test_unescape_refuses_non_canonical_segments(segment: str) -> None:
    with pytest.raises(SegmentError):
        unescape_segment(segment)


@given(any_text)
def test_safe_segment_fits_the_default_limit_or_refuses(text: str) -> None:
    try:
        segment = safe_segment(text)
    except SegmentError:
        assert len(safe_segment(text, max_bytes=BIG)) > MAX_SEGMENT_BYTES
    else:
        assert len(segment) <= MAX_SEGMENT_BYTES


def test_safe_segment_errors_are_terminal_value_errors() -> None:
    for bad in ("", "\ud800", "x" * (MAX_SEGMENT_BYTES + 1), "/" * 100):
        with pytest.raises(SegmentError) as caught:
            safe_segment(bad)
        assert isinstance(caught.value, TerminalError) and isinstance(caught.value, ValueError)
    assert safe_segment("x" * MAX_SEGMENT_BYTES) == "x" * MAX_SEGMENT_BYTES


# ---------------------------------------------------------------- records

ARTIFACT = Artifact(name="libacl1", version="2.3.2-2+b1", architecture="amd64",
                    url="http://deb.example/pool/main/a/acl/libacl1_2.3.2-2+b1_amd64.deb",
                    sha256="0" * 64, size=12345, filename="libacl1_2.3.2-2+b1_amd64.deb", component="main")


def _state(**overrides: object) -> PackageStateRow:
    fields: dict = dict(distro="debian", release="sid", architecture="amd64", source_name="acl",
                        source_version="2.3.2-2+b1", backend="debian", input_url=ACL_INPUT,
                        sync_id="s1", seen_at=T0, maintainers=["Jane Doe <jane@example.org>"])
    fields.update(overrides)
    return PackageStateRow.for_artifact(ARTIFACT, **fields)


def test_state_row_carries_its_artifact_and_job() -> None:
    row = _state()
    assert row.artifact == ARTIFACT
    assert row.job_id == job_id("debian", "amd64", ACL_INPUT)
    assert row.maintainers == ("Jane Doe <jane@example.org>",)
    assert hash(row) == hash(_state())


def test_records_normalise_time_to_utc_and_refuse_naive() -> None:
    plus2 = timezone(timedelta(hours=2))
    row = _state(seen_at=T0.astimezone(plus2))
    assert row.seen_at.tzinfo is UTC and row.seen_at == T0 and row == _state()
    with pytest.raises(ValueError, match="timezone-aware"):
        _state(seen_at=datetime(2026, 5, 1))
    with pytest.raises(TypeError):
        _state(seen_at="2026-05-01T00:00:00Z")


def test_state_row_refuses_a_forged_job_id() -> None:
    good = _state()
    fields = {f: getattr(good, f) for f in good.__slots__}
    fields["job_id"] = job_id("debian", "amd64", "https://evil.example/x.buildinfo")
    with pytest.raises(ValueError, match="does not match"):
        PackageStateRow(**fields)


def _job(**overrides: object) -> JobRow:
    fields: dict = dict(job_id=job_id("debian", "amd64", ACL_INPUT), backend="debian", architecture="amd64",
                        input_url=ACL_INPUT, distro="debian", releases=["sid", "forky"], source_name="acl",
                        source_version="2.3.2-2+b1", artifacts=[ARTIFACT], priority=1, queued_at=T0,
                        not_before=None, attempt=1, retries=0)
    fields.update(overrides)
    return JobRow(**fields)


def test_job_row_normalises_and_validates() -> None:
    job = _job()
    assert job.releases == ("sid", "forky") and job.artifacts == (ARTIFACT,)
    assert job.priority is Priority.NEW and _job(priority=7).priority == 7
    for bad in (dict(attempt=0), dict(retries=-1), dict(priority="1"), dict(priority=True),
                dict(job_id="0" * 32), dict(not_before=datetime(2026, 1, 1))):
        with pytest.raises((ValueError, TypeError)):
            _job(**bad)


def _result(**overrides: object) -> ResultRow:
    job = job_id("debian", "amd64", ACL_INPUT)
    fields: dict = dict(build_id=build_id(job, 1), job_id=job, attempt=1, distro="debian", architecture="amd64",
                        source_name="acl", source_version="2.3.2-2+b1", status="BAD", reason="libacl1 differs",
                        artifacts=[ArtifactResult("libacl1", "BAD", "1" * 64)], worker_key_id="k1",
                        worker_name=None, started_at=T0, built_at=T0 + timedelta(minutes=3),
                        log_key=None, diffoscope_key=None, attestation_key=None)
    fields.update(overrides)
    return ResultRow(**fields)


def test_result_row_normalises_and_validates() -> None:
    result = _result()
    assert result.status is Status.BAD and result.artifacts[0].status is Status.BAD
    with pytest.raises(ValueError, match="does not match"):
        _result(attempt=2)
    with pytest.raises(ValueError):
        _result(status="good")  # records are strict; Status.parse is for outside text
    with pytest.raises(ValueError, match="not an artifact status"):
        ArtifactResult("libacl1", Status.FAIL)


# ---------------------------------------------------------------- JSON form


@pytest.mark.parametrize("record_type", list(RECORD_STRATEGIES), ids=lambda t: t.__name__)
@given(data=st.data())
def test_json_form_round_trips(record_type: type, data: st.DataObject) -> None:
    record = data.draw(RECORD_STRATEGIES[record_type])
    text = json.dumps(record_to_json(record), ensure_ascii=False)
    assert record_from_json(record_type, json.loads(text)) == record


def test_json_form_spells_time_and_status_plainly() -> None:
    obj = record_to_json(_result(started_at=datetime(999, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=1)))))
    assert obj["started_at"] == "0999-01-02T02:04:05.000000Z"
    assert obj["status"] == "BAD" and obj["artifacts"] == [{"name": "libacl1", "status": "BAD", "sha256": "1" * 64}]
    assert parse_timestamp(obj["started_at"]).tzinfo is UTC


@pytest.mark.parametrize("change", [
    {"extra": 1}, {"status": "Good"}, {"attempt": "1"}, {"attempt": True}, {"attempt": 2**31},
    {"distro": None}, {"built_at": "2026-05-01T12:00:00"}, {"built_at": 1746100000},
    {"artifacts": [{"name": "x", "status": "GOOD"}]}, {"artifacts": "libacl1"},
    {"artifacts": [{"name": "x", "status": "FAIL", "sha256": None}]},
])
def test_json_form_is_strict(change: dict) -> None:
    obj = record_to_json(_result())
    obj.update(change)
    with pytest.raises(SchemaError):
        record_from_json(ResultRow, obj)
    with pytest.raises(SchemaError, match="missing keys"):
        record_from_json(ResultRow, {k: v for k, v in record_to_json(_result()).items() if k != "reason"})
    with pytest.raises(SchemaError, match="JSON object"):
        record_from_json(ResultRow, [])


def test_json_lists_of_text_are_checked() -> None:
    obj = record_to_json(_job())
    obj["releases"] = ["sid", None]
    assert record_from_json(JobRow, obj).releases == ("sid", None)
    obj["releases"] = ["sid", 7]
    with pytest.raises(SchemaError):
        record_from_json(JobRow, obj)
