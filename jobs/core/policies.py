"""AWS-style IAM policies for the four store roles, generated from `jobs.core.layout.PREFIXES`.

Invariant 6 of the design: reads are public, writes are by role. Every role may list and
read the whole store (it could read the published copy anyway); it may put and delete only
under the prefixes `PREFIXES` names it a writer of (workers only put: docs/trust.md). S3 conditional writes (`If-None-Match`,
`If-Match`) need nothing beyond `s3:PutObject`, and multipart uploads are covered by it too.

    python -m jobs.core.policies --write infra/policies   # regenerate the committed files
    python -m jobs.core.policies --check infra/policies   # exit 1 if they drifted
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from jobs.core.layout import CLAIMS, DONE_RECEIPTS, PREFIXES, RESULTS, SITE

ROLES: tuple[str, ...] = ("sync", "worker", "publish", "admin")
# Worker prefixes whose objects publish deletes once their build is compacted (jobs/publish/state/update.py).
PUBLISH_PRUNES = (CLAIMS, RESULTS)
VERSION = "2012-10-17"  # the IAM policy language version, not a date we chose
DEFAULT_BUCKET = "rebuilder"


def _base(prefix: str) -> str:
    """`prefix` as a key prefix: "" or "a/b/"."""
    prefix = prefix.strip("/")
    if prefix and any(part in ("", ".", "..") for part in prefix.split("/")):
        raise ValueError(f"unsafe store prefix {prefix!r}")
    return f"{prefix}/" if prefix else ""


def _check_bucket(bucket: str) -> str:
    if not bucket or any(c in bucket for c in "/*?\"") or bucket != bucket.strip():
        raise ValueError(f"not a bucket name: {bucket!r}")
    return bucket


def writable_prefixes(role: str) -> list[str]:
    """The layout prefixes `role` writes, in `PREFIXES` order."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r} (one of {', '.join(ROLES)})")
    return [p for p, (_what, writers) in PREFIXES.items() if role in writers]


def role_policy(role: str, bucket: str, prefix: str = "") -> dict:
    """The identity policy of one role's credential for the store `s3://bucket/prefix`."""
    writes = writable_prefixes(role)
    bucket, base = _check_bucket(bucket), _base(prefix)
    listing: dict = {"Sid": "ListStore", "Effect": "Allow", "Action": ["s3:ListBucket"],
                     "Resource": [f"arn:aws:s3:::{bucket}"]}
    if base:
        listing["Condition"] = {"StringLike": {"s3:prefix": [f"{base}*"]}}
    statements = [
        listing,
        {"Sid": "ReadStore", "Effect": "Allow", "Action": ["s3:GetObject"],
         "Resource": [f"arn:aws:s3:::{bucket}/{base}*"]},
        {"Sid": "WriteOwnPrefixes", "Effect": "Allow",
         # Workers never delete (publish prunes what they wrote): without DeleteObject a hostile
         # worker credential cannot erase another worker's result, claim or takeover notice.
         "Action": ["s3:PutObject"] if role == "worker" else ["s3:PutObject", "s3:DeleteObject"],
         "Resource": [f"arn:aws:s3:::{bucket}/{base}{p}*" for p in writes]},
    ]
    if role == "publish":
        statements += [
            # Publish prunes the claims and results of compacted builds (workers may not delete).
            {"Sid": "PruneCompactedWorkerObjects", "Effect": "Allow", "Action": ["s3:DeleteObject"],
             "Resource": [f"arn:aws:s3:::{bucket}/{base}{p}*" for p in PUBLISH_PRUNES]},
            # ... and aborts multipart uploads a killed writer left behind (billed until aborted).
            {"Sid": "ListStaleUploads", "Effect": "Allow", "Action": ["s3:ListBucketMultipartUploads"],
             "Resource": [f"arn:aws:s3:::{bucket}"]},
            {"Sid": "AbortStaleUploads", "Effect": "Allow", "Action": ["s3:AbortMultipartUpload"],
             "Resource": [f"arn:aws:s3:::{bucket}/{base}*"]},
        ]
    return {"Version": VERSION, "Statement": statements}


def public_site_policy(bucket: str, prefix: str = "") -> dict:
    """The bucket policy that lets anyone read the published site (and nothing else)."""
    bucket, base = _check_bucket(bucket), _base(prefix)
    return {"Version": VERSION, "Statement": [
        {"Sid": "PublicReadSite", "Effect": "Allow", "Principal": "*", "Action": ["s3:GetObject"],
         "Resource": [f"arn:aws:s3:::{bucket}/{base}{SITE}*"]},
    ]}


# Key patterns whose objects are written only once, by create-only (`If-None-Match: *`) writes:
# results of earlier workers, and results stored as done receipts.
CREATE_ONLY = (RESULTS, DONE_RECEIPTS)


def create_only_policy(bucket: str, prefix: str = "") -> dict:
    """A bucket-policy statement (AWS S3) refusing any write under `CREATE_ONLY` without `If-None-Match`.

    Workers write results create-only (at their done receipt's key, or, before results were
    receipts, under `results/`); a hostile holder of the worker credential could otherwise
    overwrite a finished result with a plain PUT (docs/trust.md). The condition keys
    `s3:if-none-match` and `s3:ObjectCreationOperation` are AWS's (2024); S3-compatible servers
    may ignore or reject them, so this statement is shipped separately, to be merged into the
    bucket policy where the server supports it. Results are small single PUTs, so multipart
    parts need no exemption.
    """
    bucket, base = _check_bucket(bucket), _base(prefix)
    return {"Version": VERSION, "Statement": [
        {"Sid": "ResultsCreateOnly", "Effect": "Deny", "Principal": "*", "Action": ["s3:PutObject"],
         "Resource": [f"arn:aws:s3:::{bucket}/{base}{p}*" for p in CREATE_ONLY],
         "Condition": {"Null": {"s3:if-none-match": "true"}}},
    ]}


def render(bucket: str = DEFAULT_BUCKET, prefix: str = "") -> dict[str, str]:
    """File name → JSON text of every policy, as committed under `infra/policies/`."""
    docs = {f"{role}.json": role_policy(role, bucket, prefix) for role in ROLES}
    docs["public-site.json"] = public_site_policy(bucket, prefix)
    docs["results-create-only.json"] = create_only_policy(bucket, prefix)
    return {name: json.dumps(doc, indent=2) + "\n" for name, doc in docs.items()}


def drift(directory: Path, bucket: str = DEFAULT_BUCKET, prefix: str = "") -> list[str]:
    """Names of policy files in `directory` that are missing or differ from the generated ones."""
    stale = []
    for name, text in render(bucket, prefix).items():
        path = directory / name
        if not path.is_file() or path.read_text() != text:
            stale.append(name)
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.core.policies", description=__doc__.splitlines()[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", metavar="DIR", type=Path, help="write the policy files into DIR")
    action.add_argument("--check", metavar="DIR", type=Path, help="exit 1 if DIR's files differ")
    parser.add_argument("--bucket", default=DEFAULT_BUCKET, help=f"bucket name [default: {DEFAULT_BUCKET}]")
    parser.add_argument("--prefix", default="", help="key prefix of the store inside the bucket")
    args = parser.parse_args(argv)
    if args.write:
        args.write.mkdir(parents=True, exist_ok=True)
        for name, text in render(args.bucket, args.prefix).items():
            (args.write / name).write_text(text)
        return 0
    stale = drift(args.check, args.bucket, args.prefix)
    for name in stale:
        print(f"{args.check / name}: out of date; run python -m jobs.core.policies --write {args.check}",
              file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
