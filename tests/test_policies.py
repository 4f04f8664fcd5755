"""The committed IAM policies in infra/policies/ are exactly what jobs.core.layout implies."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from jobs.core.layout import PREFIXES
from jobs.core.policies import ROLES, SITE, drift, public_site_policy, render, role_policy

REPO = Path(__file__).resolve().parent.parent
POLICIES = REPO / "infra" / "policies"


def _statement(policy: dict, sid: str) -> dict:
    (found,) = [s for s in policy["Statement"] if s["Sid"] == sid]
    return found


def _writable(policy: dict, bucket: str, base: str = "") -> set[str]:
    write = _statement(policy, "WriteOwnPrefixes")
    assert "s3:PutObject" in write["Action"] and set(write["Action"]) <= {"s3:DeleteObject", "s3:PutObject"}
    head = f"arn:aws:s3:::{bucket}/{base}"
    assert all(r.startswith(head) and r.endswith("/*") for r in write["Resource"])
    return {r[len(head):-1] for r in write["Resource"]}


def test_committed_files_are_the_generated_ones():
    assert drift(POLICIES) == []
    assert sorted(p.name for p in POLICIES.glob("*.json")) == sorted(render())


def test_check_cli_passes_on_committed_and_fails_on_drift(tmp_path):
    ok = subprocess.run([sys.executable, "-m", "jobs.core.policies", "--check", str(POLICIES)], cwd=REPO)
    assert ok.returncode == 0
    subprocess.run([sys.executable, "-m", "jobs.core.policies", "--write", str(tmp_path)], cwd=REPO, check=True)
    (tmp_path / "worker.json").write_text("{}\n")
    bad = subprocess.run([sys.executable, "-m", "jobs.core.policies", "--check", str(tmp_path)],
                         cwd=REPO, capture_output=True, text=True)
    assert bad.returncode == 1 and "worker.json" in bad.stderr


@pytest.mark.parametrize("name", sorted(render()))
def test_committed_json_parses_as_a_policy(name):
    doc = json.loads((POLICIES / name).read_text())
    assert doc["Version"] == "2012-10-17"
    for statement in doc["Statement"]:
        assert statement["Effect"] == ("Deny" if name == "results-create-only.json" else "Allow")
        assert all(a.startswith("s3:") and "*" not in a for a in statement["Action"])


def test_every_writer_in_the_layout_is_a_role():
    assert {w for _what, writers in PREFIXES.values() for w in writers} == set(ROLES)


@pytest.mark.parametrize("role", ROLES)
def test_role_writes_exactly_the_prefixes_that_name_it(role):
    expected = {p for p, (_what, writers) in PREFIXES.items() if role in writers}
    committed = json.loads((POLICIES / f"{role}.json").read_text())
    assert _writable(committed, "rebuilder") == expected
    assert _writable(role_policy(role, "b", "deploy/one"), "b", "deploy/one/") == expected


@pytest.mark.parametrize("role", ROLES)
def test_role_reads_and_lists_the_whole_store(role):
    policy = role_policy(role, "b", "/pre/")
    assert _statement(policy, "ReadStore")["Resource"] == ["arn:aws:s3:::b/pre/*"]
    listing = _statement(policy, "ListStore")
    assert listing["Resource"] == ["arn:aws:s3:::b"]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["pre/*"]}}
    assert "Condition" not in _statement(role_policy(role, "b"), "ListStore")


def test_only_publish_writes_the_site():
    for role in ROLES:
        assert (SITE in _writable(role_policy(role, "b"), "b")) == (role == "publish")


def test_admin_writes_only_requests():
    assert _writable(role_policy("admin", "b"), "b") == {"requests/"}


def test_public_read_is_the_site_only():
    (statement,) = public_site_policy("b", "pre")["Statement"]
    assert statement["Principal"] == "*"
    assert statement["Action"] == ["s3:GetObject"]
    assert statement["Resource"] == ["arn:aws:s3:::b/pre/site/*"]
    assert json.loads((POLICIES / "public-site.json").read_text())["Statement"][0]["Resource"] == [
        "arn:aws:s3:::rebuilder/site/*"]


@pytest.mark.parametrize("bad", [("nobody", "b", ""), ("worker", "", ""), ("worker", "b/c", ""),
                                 ("worker", "b", "a/../c"), ("worker", "b*", "")])
def test_bad_arguments_are_refused(bad):
    with pytest.raises(ValueError):
        role_policy(*bad)


def test_workers_may_not_delete():
    """A worker credential cannot erase another worker's result, claim or takeover notice (docs/trust.md)."""
    assert _statement(role_policy("worker", "b"), "WriteOwnPrefixes")["Action"] == ["s3:PutObject"]
    for role in ("sync", "publish", "admin"):
        assert "s3:DeleteObject" in _statement(role_policy(role, "b"), "WriteOwnPrefixes")["Action"]


def test_results_may_be_made_create_only_on_aws():
    """The optional bucket statement denies any result PUT without If-None-Match (docs/trust.md)."""
    from jobs.core.layout import PREFIXES
    from jobs.core.policies import CREATE_ONLY, create_only_policy

    (statement,) = create_only_policy("b", "p")["Statement"]
    assert statement["Effect"] == "Deny" and statement["Action"] == ["s3:PutObject"]
    assert statement["Resource"] == ["arn:aws:s3:::b/p/results/*", "arn:aws:s3:::b/p/claims/*.done/*"]
    assert statement["Condition"] == {"Null": {"s3:if-none-match": "true"}}
    prefixes = [next(q for q in PREFIXES if p.startswith(q)) for p in CREATE_ONLY]
    assert all("publish" not in PREFIXES[q][1] for q in prefixes)  # publish only deletes


def test_the_create_only_patterns_cover_results_and_receipts_but_never_a_claim():
    """S3 matches `*` across `/`: the receipt pattern must take every done receipt and no lease,
    which workers renew by If-Match (a deny without If-None-Match would stop every renewal)."""
    from fnmatch import fnmatchcase

    from jobs.core.layout import claim_key, claim_notice_key, result_key
    from jobs.core.policies import CREATE_ONLY

    def create_only(key):
        return any(fnmatchcase(key, pattern + "*") for pattern in CREATE_ONLY)

    job = "a" * 32
    assert create_only(result_key(job, 3))
    assert create_only(claim_notice_key(job, 3, "done", "k1"))
    assert not create_only(claim_key(job, 3))
    assert not create_only(claim_notice_key(job, 3, "start", "k1"))  # withdrawn later by a plain PUT
    assert not create_only(claim_notice_key(job, 3, "lost", "k1"))


def test_publish_may_prune_what_it_prunes_and_abort_stale_uploads():
    """Publish deletes compacted claims and results and aborts stale multipart uploads: the policy allows it."""
    doc = role_policy("publish", "b")
    assert _statement(doc, "PruneCompactedWorkerObjects")["Resource"] == [
        "arn:aws:s3:::b/claims/*", "arn:aws:s3:::b/results/*"]
    assert _statement(doc, "PruneCompactedWorkerObjects")["Action"] == ["s3:DeleteObject"]
    assert _statement(doc, "AbortStaleUploads")["Action"] == ["s3:AbortMultipartUpload"]
    assert _statement(doc, "ListStaleUploads")["Resource"] == ["arn:aws:s3:::b"]
    for role in ("sync", "worker", "admin"):
        assert not any(s["Sid"] == "PruneCompactedWorkerObjects" for s in role_policy(role, "b")["Statement"])
