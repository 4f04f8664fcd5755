"""`rebuildctl verify FILE…`: local package files against rebuilders' signed attestations.

What repro-threshold does (docs/design.md#attestations-and-verification), for each rebuilder:
1. its public keys from `api/v0/public-keys` (rebuilderd ≥ 0.25 and ours; else
   `api/v1/meta/public-keys`): only a signature by one of them counts, never the worker's;
2. the package's builds: our per-package feed `api/v1/packages/<distro>/<name>.json` when the
   site has `api/v1/index.json`, else rebuilderd's `api/v0/pkgs/list?name=` and
   `api/v0/builds/<id>/attestation`;
3. the in-toto link of a build: signed by one of those keys (in-toto's canonical JSON), and
   the file's sha256 listed under the file's name among its products.
A file is verified when K rebuilders confirm it, counted by the key that signed, not by
URL: two URLs of one rebuilder, or two rebuilders sharing a key, are one vote.

A vote counts only when the attestation names the artifact digest of the distro's index
(our v1 package feed publishes the `artifact_sha256` each rebuilder synced): a rebuilder
whose signed GOOD names another digest than its own index says is not counted, and the
output says that its GOOD contradicts the index (`contradicts-index`), whichever file is
checked: a backdoored one it "confirms" or the genuine one. docs/trust.md explains why.

Every way a rebuilder can fail to confirm is a `Reason`, so the output says why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlencode

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from jobs.core import urls
from jobs.core.signing import (
    KeyFormatError,
    SignatureError,
    link_from_json,
    link_key_id,
    load_public_keys_feed,
    verify_link,
)
from jobs.ctl.feeds import FeedInvalid, FeedNotFound, FeedUnavailable, Site
from jobs.ctl.pkgfile import LocalPackage, NotAPackage, read_package


class Reason(StrEnum):
    """Why a rebuilder did or did not confirm a file; earlier members are better outcomes."""

    CONFIRMED = "confirmed"
    SAME_KEY = "same-key"  # confirmed, by a key another rebuilder's vote already counted
    CONTRADICTS_INDEX = "contradicts-index"  # a signed GOOD naming another digest than the distro's index
    SHA256_MISMATCH = "sha256-mismatch"  # a valid attestation for this file name, another sha256
    BAD_SIGNATURE = "bad-signature"  # signed under one of its key ids, but the signature is wrong
    UNKNOWN_KEY = "unknown-key"  # signed, but by no key this rebuilder publishes
    NOT_A_PRODUCT = "not-a-product"  # a valid attestation that does not name this file
    MALFORMED = "malformed-attestation"
    NO_ATTESTATION = "no-attestation"  # GOOD, but no attestation published
    NOT_GOOD = "not-good"  # listed, but not reproduced (BAD, FAIL, UNKWN)
    NOT_LISTED = "not-listed"  # the rebuilder has no such name, version and architecture
    NO_KEYS = "no-public-keys"
    UNREACHABLE = "unreachable"
    NOT_A_PACKAGE = "not-a-package"  # the local file itself could not be read


_RANK = {r: i for i, r in enumerate(Reason)}
MAX_OLDER_BUILDS = 10  # older builds' attestations tried (newest first) when no current one confirms
_SIGNATURE_REASONS = {SignatureError.UNKNOWN_KEY: Reason.UNKNOWN_KEY, SignatureError.UNSIGNED: Reason.UNKNOWN_KEY,
                      SignatureError.BAD_SIGNATURE: Reason.BAD_SIGNATURE, SignatureError.MALFORMED: Reason.MALFORMED}


@dataclass(frozen=True)
class Check:
    """One rebuilder's answer for one file."""

    rebuilder: str
    reason: Reason
    detail: str = ""
    key_ids: tuple[str, ...] = ()  # in-toto key ids of the rebuilder keys whose signature verified
    attestation: str | None = None  # the URL of the attestation that decided

    @property
    def confirmed(self) -> bool:
        return self.reason is Reason.CONFIRMED


@dataclass(frozen=True)
class FileVerdict:
    """Whether a file is verified: at least `threshold` distinct rebuilder keys confirmed it."""

    path: str
    package: LocalPackage | None
    threshold: int
    checks: list[Check]

    @property
    def confirmations(self) -> int:
        return sum(c.confirmed for c in self.checks)

    @property
    def verified(self) -> bool:
        return self.confirmations >= self.threshold


@dataclass
class Rebuilder:
    """One rebuilder as verify sees it: its site, its published keys, and which feeds it has."""

    url: str
    site: Site
    keys: dict[str, Ed25519PublicKey] = field(default_factory=dict)  # in-toto key id -> key
    problem: Check | None = None  # why nothing from it can confirm anything
    distros: list[str] | None = None  # distros of its v1 index; None: a v0-only rebuilder
    _v0_all: list[dict[str, Any]] | None = None  # the whole v0 list, when the host ignored ?name=


def open_rebuilder(site: Site) -> Rebuilder:
    """Fetch a rebuilder's public keys and learn whether it publishes v1 feeds."""
    rb = Rebuilder(site.base, site)
    try:
        try:
            doc = site.json(urls.PUBLIC_KEYS)
        except FeedNotFound:
            doc = site.json(urls.V1_PUBLIC_KEYS)
        rb.keys = {link_key_id(k): k for k in load_public_keys_feed(doc)}
        if not rb.keys:
            rb.problem = Check(rb.url, Reason.NO_KEYS, "its public-keys feed lists no key")
            return rb
        try:
            rb.distros = sorted({s["distro"] for s in site.json(urls.INDEX_FEED)["suites"]})
        except FeedNotFound:
            rb.distros = None
    except FeedUnavailable as exc:
        rb.problem = Check(rb.url, Reason.UNREACHABLE, str(exc))
    except FeedNotFound as exc:
        rb.problem = Check(rb.url, Reason.NO_KEYS, f"publishes no public keys ({exc.url})")
    except (KeyFormatError, FeedInvalid, KeyError, TypeError) as exc:
        rb.problem = Check(rb.url, Reason.NO_KEYS, f"unreadable public keys or index: {exc}")
    return rb


# --- candidates: the attestations that may vouch for a file -------------------------------

@dataclass
class _Candidates:
    attestations: list[str] = field(default_factory=list)  # site keys, best first, no repeats
    statuses: list[str] = field(default_factory=list)  # statuses of the matching listed packages
    other_versions: set[str] = field(default_factory=set)  # what the rebuilder lists under that name
    index_sha256: set[str] = field(default_factory=set)  # the index digests the rebuilder synced for the file

    def add(self, key: str | None) -> None:
        if key and key not in self.attestations:
            self.attestations.append(key)


def _v1_candidates(rb: Rebuilder, pkg: LocalPackage) -> _Candidates:
    found, older = _Candidates(), _Candidates()
    for distro in rb.distros or []:
        try:
            feed = rb.site.json(urls.package_feed(distro, pkg.name))
        except FeedNotFound:
            continue
        for p in feed.get("packages", []):
            if p.get("name") != pkg.name:
                continue
            if p.get("version") == pkg.version and p.get("artifact_architecture") == pkg.architecture:
                found.statuses.append(p.get("status") or "UNKWN")
                if isinstance(p.get("artifact_sha256"), str):
                    found.index_sha256.add(p["artifact_sha256"].lower())
                if p.get("status") == "GOOD":
                    found.add((p.get("files") or {}).get("attestation"))
            else:
                found.other_versions.add(f"{p.get('version')} {p.get('artifact_architecture')}")
        # Older builds: an attestation of a build that is no longer current still proves
        # that this rebuilder reproduced the file it names (the product check decides).
        for b in feed.get("builds", []):
            if any(a.get("name") == pkg.name and a.get("status") == "GOOD" for a in b.get("artifacts", [])):
                older.add((b.get("files") or {}).get("attestation"))
    for key in older.attestations[:MAX_OLDER_BUILDS]:
        found.add(key)
    return found


def _v0_records(rb: Rebuilder, name: str) -> list[dict[str, Any]]:
    if rb._v0_all is not None:
        return rb._v0_all
    records = rb.site.json(f"{urls.PKGS_LIST}?{urlencode({'name': name})}")
    if not isinstance(records, list):
        raise FeedInvalid("api/v0/pkgs/list is not a list", url=rb.site.url(urls.PKGS_LIST))
    if any(r.get("name") != name for r in records):
        rb._v0_all = records  # a static host ignores the query: keep the whole list for the next file
    return records


def _v0_candidates(rb: Rebuilder, pkg: LocalPackage) -> _Candidates:
    found = _Candidates()
    for r in _v0_records(rb, pkg.name):
        if r.get("name") != pkg.name:
            continue
        if r.get("version") == pkg.version and r.get("architecture") == pkg.architecture:
            found.statuses.append(r.get("status") or "UNKWN")
            if r.get("status") == "GOOD" and r.get("has_attestation") and isinstance(r.get("build_id"), int):
                found.add(urls.build_file(r["build_id"], "attestation"))
        else:
            found.other_versions.add(f"{r.get('version')} {r.get('architecture')}")
    return found


# --- checking one attestation ---------------------------------------------------------------

def _check_attestation(rb: Rebuilder, key: str, pkg: LocalPackage, index: set[str] | None = None) -> Check:
    url = rb.site.url(key)
    try:
        link = link_from_json(rb.site.text(key))
        verified = verify_link(link, rb.keys)
    except FeedNotFound:
        return Check(rb.url, Reason.NO_ATTESTATION, f"{url} is listed but not published", attestation=url)
    except SignatureError as exc:
        return Check(rb.url, _SIGNATURE_REASONS.get(exc.reason, Reason.MALFORMED), exc.message, attestation=url)
    products = link["signed"]["products"]
    name = pkg.filename if pkg.filename in products else unquote(pkg.filename)
    key_ids = tuple(sorted(verified))
    if name not in products:
        listed = ", ".join(sorted(products))[:200]
        return Check(rb.url, Reason.NOT_A_PRODUCT, f"{pkg.filename} is not among its products ({listed})",
                     key_ids, url)
    expected = products[name].get("sha256")
    if index and expected not in index:
        return Check(rb.url, Reason.CONTRADICTS_INDEX, f"its signed GOOD names sha256 {expected}, but the distro "
                     f"index it synced records {', '.join(sorted(index))}: not counted", key_ids, url)
    if expected != pkg.sha256:
        return Check(rb.url, Reason.SHA256_MISMATCH, f"the rebuilder reproduced sha256 {expected}, "
                     f"this file has {pkg.sha256}", key_ids, url)
    return Check(rb.url, Reason.CONFIRMED, "signed attestation lists this sha256", key_ids, url)


def check_file(rb: Rebuilder, pkg: LocalPackage) -> Check:
    """One rebuilder's best answer for one package file."""
    if rb.problem is not None:
        return rb.problem
    try:
        found = _v1_candidates(rb, pkg) if rb.distros is not None else _v0_candidates(rb, pkg)
        best: Check | None = None
        for key in found.attestations:
            check = _check_attestation(rb, key, pkg, found.index_sha256)
            if best is None or _RANK[check.reason] < _RANK[best.reason]:
                best = check
            if check.confirmed:
                break
    except FeedUnavailable as exc:
        return Check(rb.url, Reason.UNREACHABLE, str(exc))
    except (FeedInvalid, AttributeError, TypeError) as exc:
        return Check(rb.url, Reason.MALFORMED, f"unreadable feed: {exc}")
    if best is not None:
        return best
    what = f"{pkg.name} {pkg.version} {pkg.architecture}"
    if "GOOD" in found.statuses:
        return Check(rb.url, Reason.NO_ATTESTATION, f"{what} is GOOD but has no published attestation")
    if found.statuses:
        return Check(rb.url, Reason.NOT_GOOD, f"{what} is {', '.join(sorted(set(found.statuses)))}")
    others = f" (it lists {', '.join(sorted(found.other_versions)[:5])})" if found.other_versions else ""
    return Check(rb.url, Reason.NOT_LISTED, f"{what} is not listed{others}")


def _count_distinct(checks: list[Check]) -> list[Check]:
    """Keep one confirmation per signing key: later rebuilders sharing a counted key become SAME_KEY."""
    counted: dict[str, str] = {}  # key id -> the rebuilder whose vote it was
    out = []
    for c in checks:
        if c.confirmed:
            shared = [counted[k] for k in c.key_ids if k in counted]
            if shared:
                c = replace(c, reason=Reason.SAME_KEY, detail=f"signed by the same key as {shared[0]}: one vote")
            else:
                counted.update(dict.fromkeys(c.key_ids, c.rebuilder))
        out.append(c)
    return out


def verify_files(paths: Sequence[Path], rebuilders: Sequence[Site], threshold: int) -> list[FileVerdict]:
    """Check every file against every rebuilder; a verdict per file, in the order given."""
    if threshold < 1:
        raise ValueError("threshold must be at least 1")
    opened = [open_rebuilder(site) for site in rebuilders]
    verdicts = []
    for path in paths:
        try:
            pkg = read_package(path)
        except NotAPackage as exc:
            verdicts.append(FileVerdict(str(path), None, threshold, [Check("-", Reason.NOT_A_PACKAGE, exc.message)]))
            continue
        checks = _count_distinct([check_file(rb, pkg) for rb in opened])
        verdicts.append(FileVerdict(str(path), pkg, threshold, checks))
    return verdicts
