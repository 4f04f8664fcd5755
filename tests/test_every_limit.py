"""Every row of the Limits table (`jobs.core.bounded.LIMITS`, docs/design.md "Limits") has a test
that enforces it (issue #15). `ENFORCED_BY` names it; the test below checks that the table and
the names agree and that every named test exists, so a new limit cannot land untested.

The limits that had no test of their own are tested here, each on both stores where the bytes
come from a store (`store`: local, and SeaweedFS in the full tier): an object over the cap is
refused, read capped even when it grew after it was listed.
"""

from __future__ import annotations

import ast
import gzip
import io
import json
import tarfile
import tomllib
from datetime import datetime, timezone
from pathlib import Path

import pytest

from jobs.core.bounded import LIMITS, cap
from jobs.core.config import parse_rebuilder_config
from jobs.core.layout import claim_notice_key
from jobs.core.model import ArtifactResult, ResultRow, Status, build_id
from jobs.core.signing import generate_key
from jobs.publish.site.inputs import read_log_tail

ROOT = Path(__file__).resolve().parents[1]
MB = 1 << 20
COOKIE = "Fk3q9ZmT7vXc2LpW8nRb4HsY6dJg5QeA"
HERE = "tests/test_every_limit.py"

# limit -> the tests that enforce it: "path::test_function", or "corpus:<case id>" (tests/hostile/corpus/cases.toml).
ENFORCED_BY: dict[str, list[str]] = {
    "index_download": ["tests/test_configured_limits.py::test_a_configured_sync_cap_fails_the_profile_and_writes_nothing",
                       "corpus:debian-bomb-gz"],
    "index_unpacked": ["tests/test_configured_limits.py::test_a_configured_sync_cap_fails_the_profile_and_writes_nothing"],
    "index_member": ["tests/sync/test_archlinux.py::test_ten_megabyte_field_is_skipped_without_being_read"],
    "inrelease": ["corpus:debian-inrelease-oversized"],
    "mirror_deadline": ["tests/test_deadlines.py::test_a_sync_fetch_ends_at_its_total_deadline",
                        "tests/test_deadlines.py::test_rebuilder_sync_against_a_slow_mirror_exits_75_with_one_line"],
    "artifact_download": ["tests/work/test_download.py::test_a_file_bigger_than_the_index_says_is_cut_off"],
    "download_deadline": ["tests/test_deadlines.py::test_a_worker_download_ends_at_its_deadline_and_leaves_no_file",
                          "tests/test_deadlines.py::test_a_rebuild_whose_mirror_trickles_fails_at_the_configured_deadline"],
    "result": ["corpus:result-oversized"],
    "notice": [f"{HERE}::test_a_claim_notice_over_its_cap_fails_closed"],
    "enrolment": [f"{HERE}::test_an_enrolment_record_that_grew_after_the_listing_is_oversized"],
    "attestation": [f"{HERE}::test_an_attestation_over_its_cap_is_a_mismatch"],
    "record": [f"{HERE}::test_a_worker_record_over_its_cap_is_not_read"],
    "run_attestations": ["tests/publish/test_carried_attestation.py::"
                         "test_a_run_keeps_attestations_up_to_its_cap_and_leaves_the_rest_for_the_next"],
    "upload": ["tests/test_configured_limits.py::test_configured_publish_caps_are_enforced_and_the_rest_is_published",
               "tests/hostile/test_memory.py::test_publish_and_rebuildctl_stay_under_512_mib_on_every_hostile_input"],
    "report_decoded": ["tests/publish/test_sanitize.py::test_a_gzip_bomb_is_refused_while_it_expands",
                       "tests/test_configured_limits.py::test_configured_publish_caps_are_enforced_and_the_rest_is_published"],
    "report_tags": ["tests/publish/test_sanitize.py::test_a_report_with_more_tags_than_the_cap_is_refused_before_it_is_parsed"],
    "log_decoded": [f"{HERE}::test_a_log_tail_is_read_only_up_to_the_decoded_cap",
                    "tests/publish/test_sitewriter.py::"
                    "test_a_gzip_build_file_a_browser_would_inflate_past_the_cap_is_not_published"],
    "signed_file": [f"{HERE}::test_a_signed_file_over_its_cap_is_refused_unread"],
    "admin_request": [f"{HERE}::test_an_admin_request_over_its_cap_is_refused",
                      "tests/serve/test_api.py::test_oversized_and_lengthless_bodies"],
    "serve_list": [f"{HERE}::test_serve_reads_feeds_and_lists_capped"],
    "serve_feed": [f"{HERE}::test_serve_reads_feeds_and_lists_capped"],
    "serve_inflated": [f"{HERE}::test_serve_reads_feeds_and_lists_capped"],
    "serve_idle": ["tests/serve/test_api.py::test_a_client_that_sends_nothing_is_cut_off_at_the_idle_limit"],
    "feed": ["tests/hostile/test_ctl_site.py::test_a_feed_larger_than_the_cap_is_refused_naming_it_and_the_cap"],
    "feeds_total": ["tests/hostile/test_ctl_site.py::test_the_json_a_command_parses_has_a_memory_budget"],
    "request_deadline": ["tests/hostile/test_ctl_site.py::test_a_trickling_server_is_cut_off_at_the_total_deadline",
                         "tests/test_deadlines.py::test_rebuildctl_against_a_site_trickling_its_headers_ends_at_the_deadline"],
    "redirects": ["tests/hostile/test_ctl_site.py::test_redirects_are_followed_within_the_origin_only",
                  f"{HERE}::test_redirects_past_the_cap_are_refused"],
    "package_metadata": [f"{HERE}::test_package_metadata_over_its_cap_is_not_read"],
    "name": ["tests/core/test_bounded.py::test_sync_entries_past_a_field_limit_are_refused"],
    "version": ["tests/core/test_bounded.py::test_sync_entries_past_a_field_limit_are_refused"],
    "url": ["tests/core/test_bounded.py::test_sync_entries_past_a_field_limit_are_refused"],
    "reason": ["tests/core/test_bounded.py::test_result_fields_past_a_limit_are_a_schema_error"],
    "worker_name": [f"{HERE}::test_a_worker_name_past_its_limit_is_a_schema_error"],
    "maintainers": ["tests/sync/test_debian_columns.py::test_a_source_naming_thousands_of_uploaders_keeps_the_first_few"],
    "description": ["tests/sync/test_descriptions.py::test_clean_description_keeps_one_printable_bounded_line",
                    "tests/sync/test_descriptions.py::test_arch_desc_gives_the_description_and_a_bad_one_never_costs_the_package"],
    "profile_name": ["tests/core/test_bounded.py::test_profile_names_are_limited_before_any_key_is_made"],
    "key_segment": ["tests/core/test_bounded.py::test_key_limits_are_the_same_on_both_stores"],
    "key": ["tests/core/test_bounded.py::test_key_limits_are_the_same_on_both_stores"],
}


def _functions(path: Path) -> set[str]:
    return {node.name for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.FunctionDef)}


def test_every_limit_names_a_test_that_exists():
    assert set(ENFORCED_BY) == set(LIMITS)
    cases = {case["id"] for case in tomllib.loads((ROOT / "tests/hostile/corpus/cases.toml").read_text())["case"]}
    for name, tests in ENFORCED_BY.items():
        assert tests, name
        for test in tests:
            if test.startswith("corpus:"):
                assert test.removeprefix("corpus:") in cases, (name, test)
                continue
            path, _, function = test.partition("::")
            assert function in _functions(ROOT / path), (name, test)


def _result(**over) -> ResultRow:
    jid = "0" * 32
    fields = dict(build_id=build_id(jid, 1), job_id=jid, attempt=1, distro="archlinux", architecture="x86_64",
                  source_name="hello", source_version="1.0-1", status=Status.GOOD, reason=None,
                  artifacts=(ArtifactResult("hello", Status.GOOD),), worker_key_id="k" * 64, worker_name="w1",
                  started_at=datetime(2026, 1, 1, tzinfo=timezone.utc), built_at=datetime(2026, 1, 1, 0, 1,
                                                                                          tzinfo=timezone.utc),
                  log_key=None, diffoscope_key=None, attestation_key=None)
    return ResultRow(**{**fields, **over})


def test_a_worker_name_past_its_limit_is_a_schema_error():
    from jobs.core.model import SchemaError, check_result_fields

    check_result_fields(_result(worker_name="w" * cap("worker_name")))
    with pytest.raises(SchemaError, match="worker_name is longer than 255"):
        check_result_fields(_result(worker_name="w" * (cap("worker_name") + 1)))


@pytest.mark.parametrize(("kind", "limit"), [("lost", "notice"), ("done", "result")])
def test_a_claim_notice_over_its_cap_fails_closed(store, kind, limit):
    # A done receipt may be the worker's result (read with the result's cap); markers and
    # takeover notices are small.
    from jobs.core.store import ObjectInfo
    from jobs.publish.state.verify import Trust, _check_notices
    from jobs.publish.state.workerobjects import MAX_NOTICE_BYTES, Reason, Reject, WorkerObjects

    assert MAX_NOTICE_BYTES == cap("notice")
    kid = "a" * 64
    key = claim_notice_key("0" * 32, 1, kind, kid)
    store.put(key, b'{"signed": {}, "pad": "' + b"x" * cap(limit) + b'"}')  # grew after the listing
    trust = Trust(keys={kid: generate_key().public_key()}, sources={kid: "authorized_workers"})
    with pytest.raises(Reject) as exc:
        _check_notices(WorkerObjects(store), trust, [ObjectInfo(key, 100)], _result(), "token", "")
    assert exc.value.reason is Reason.CLAIM_TAKEN_OVER  # fail closed: whoever wrote it cannot erase the evidence


def test_an_enrolment_record_that_grew_after_the_listing_is_oversized(store):
    from jobs.publish.state.enrolment import MAX_ENROLMENT_BYTES, RecordError, read_record

    assert MAX_ENROLMENT_BYTES == cap("enrolment")
    store.put("workers/abc.json", b'{"signed": {"name": "w"}}')
    assert read_record(store, "workers/abc.json", 25) == {"signed": {"name": "w"}}
    store.put("workers/abc.json", b'{"pad": "' + b"x" * cap("enrolment") + b'"}')
    with pytest.raises(RecordError, match="more than 65,?536 bytes"):
        read_record(store, "workers/abc.json", 25)  # the listing said 25 bytes


def test_an_attestation_over_its_cap_is_a_mismatch(store):
    from jobs.publish.state.matches import MAX_ATTESTATION_BYTES, Mismatch, check_attestation

    assert MAX_ATTESTATION_BYTES == cap("attestation")
    store.put("builds/x/attestation.json", b"{" + b" " * cap("attestation") + b"}")
    with pytest.raises(Mismatch, match="attestation of more than 1048576 bytes"):
        check_attestation(store, _result(attestation_key="builds/x/attestation.json"), {},
                          generate_key().public_key())
    # Carried inside the signed result (rebuilder.result/3): bounded alike.
    with pytest.raises(Mismatch, match="attestation of more than 1048576 bytes"):
        check_attestation(store, _result(), {}, generate_key().public_key(),
                          b"{" + b" " * cap("attestation") + b"}", carried=True)


def test_a_worker_record_over_its_cap_is_not_read(store):
    from jobs.publish.site.inputs import read_workers

    small, big = "a" * 64, "b" * 64
    store.put(f"workers/{small}.json", json.dumps({"signed": {"name": "small"}}).encode())
    store.put(f"workers/{big}.json", json.dumps({"signed": {"name": "big"}, "pad": "x" * cap("record")}).encode())
    names = read_workers(store).to_pydict()
    assert "small" in names["name"] and "big" not in names["name"]


def test_a_log_tail_is_read_only_up_to_the_decoded_cap(store, monkeypatch):
    from jobs.publish.site import classify

    assert classify.MAX_DECOMPRESSED == cap("log_decoded")
    monkeypatch.setattr(classify, "MAX_DECOMPRESSED", MB)
    store.put("builds/x/log", gzip.compress(b"A" * MB + b"B" * MB), content_encoding="gzip")
    tail = read_log_tail(store, "builds/x/log")  # jobs.publish.site.inputs: classify only decompresses
    assert tail == "A" * classify.TAIL_BYTES  # the cap's last bytes: nothing past it was decompressed


def test_a_signed_file_over_its_cap_is_refused_unread(store, monkeypatch):
    from jobs.publish.state import matches

    assert matches.MAX_FILE_BYTES == cap("signed_file")
    monkeypatch.setattr(matches, "MAX_FILE_BYTES", 100)
    store.put("builds/x/log", b"x" * 101)
    with pytest.raises(matches.Mismatch, match=r"101 bytes \(limit 100\)"):
        matches._check_file(store, "builds/x/log", "0" * 64, 101)


def test_an_admin_request_over_its_cap_is_refused(store):
    from jobs.publish.state.requests import MAX_REQUEST_BYTES, Refusal, load_requests

    assert MAX_REQUEST_BYTES == cap("admin_request")
    store.put("requests/big.json", b'{"payload": "' + b"x" * cap("admin_request") + b'", "hmac": ""}')
    accepted, rejected = load_requests(store, parse_rebuilder_config({"auth": {"cookie": COOKIE}}))
    assert accepted == [] and [(r.key, r.reason) for r in rejected] == [("requests/big.json", Refusal.OVERSIZED)]


def test_serve_reads_feeds_and_lists_capped(store):
    from jobs.serve import api

    assert (api.MAX_LIST_BYTES, api.MAX_FEED_BYTES, api.MAX_INFLATED) == \
        (cap("serve_list"), cap("serve_feed"), cap("serve_inflated"))
    store.put("site/plain.json", b"[" + b" " * 200 + b"]")
    assert api._read_bounded(store, "site/plain.json", 202) == b"[" + b" " * 200 + b"]"
    with pytest.raises(ValueError, match="more than the 201 bytes"):
        api._read_bounded(store, "site/plain.json", 201)
    store.put("site/bomb.json", gzip.compress(b"[" + b" " * (8 * MB) + b"]"), content_encoding="gzip")
    with pytest.raises(ValueError, match="decompresses to more than 1048576 bytes"):
        api._read_bounded(store, "site/bomb.json", MB)
    assert sum(len(c) for c in api.inflate(io.BytesIO(gzip.compress(b"x" * (4 * MB))), MB)) <= MB


def test_redirects_past_the_cap_are_refused():
    import requests

    from jobs.core.bounded import Deadline, RedirectRefused, get_capped
    from tests.hostile.site import Answer, hostile_site

    hops = cap("redirects") + 1
    answers = {f"/{i}": Answer(302, {"Location": f"/{i + 1}"}) for i in range(hops)}
    answers[f"/{hops}"] = Answer(body=b"{}")
    with hostile_site(answers) as base, requests.Session() as session:
        with pytest.raises(RedirectRefused, match=f"more than {cap('redirects')} redirects"):
            get_capped(session, f"{base}/0", limit=MB, deadline=Deadline(10, "x"))
        _, body = get_capped(session, f"{base}/1", limit=MB, deadline=Deadline(10, "x"))
    assert body == b"{}"


def test_package_metadata_over_its_cap_is_not_read(tmp_path):
    from jobs.ctl.pkgfile import MAX_METADATA, NotAPackage, read_package

    assert MAX_METADATA == cap("package_metadata")

    def package(pkginfo: bytes) -> Path:
        path = tmp_path / "hello-1-1-x86_64.pkg.tar"
        with tarfile.open(path, "w") as tar:
            info = tarfile.TarInfo(".PKGINFO")
            info.size = len(pkginfo)
            tar.addfile(info, io.BytesIO(pkginfo))
        return path

    fields = b"pkgname = hello\npkgver = 1-1\narch = x86_64\n"
    assert read_package(package(fields)) is not None
    with pytest.raises(NotAPackage, match="no .PKGINFO"):
        read_package(package(fields + b"#" * MAX_METADATA))
