"""Conditional GETs of a profile's root indexes: an unchanged profile costs one small request per root.

The snapshot pointer `state/<profile>/HEAD.json` is what a sync remembers. Its metadata holds,
next to the SHA-256 of every index file the snapshot was made from (`sources`):

- `validators`: each *root* index (an Arch database; a Debian InRelease, whose SHA256 field
  vouches for every Packages and Sources file, so apt too stops when it is unchanged) → the
  validator its server sent (`{}`: none worth keeping, see `jobs.sync.fetch`);
- `profile_digest`: the profile's settings the snapshot was made with;
- `valid_until`: the earliest Debian `Valid-Until` of the roots, when there is one.

They are written by the compare-and-swap that makes the snapshot current, so a stored
validator always describes data that was written; a sync killed before that leaves the
previous pointer and its validators as they were.

The next sync with the same settings, before anything expired, asks for each root with its
validator. A root is unchanged when the server answers 304, or sends the bytes whose SHA-256
was stored (a mirror that ignores validators). All roots unchanged: the profile is unchanged,
and nothing else is downloaded, parsed or written. The probe stops at the first changed
root; what it downloaded goes to the parser (`Fetcher.answering`), which fetches the rest,
including the roots that answered 304 (no index bodies are kept in the store, so a partly
changed profile costs one extra request per unchanged root).

A state written before validators existed has neither `validators` nor `profile_digest`: that
sync reads everything as before, and writes the state once more in the new form.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jobs.core.config import SyncProfile
from jobs.sync.fetch import Fetched, Fetcher, Validator
from jobs.sync.records import IndexResult


@dataclass
class Probe:
    """What asking for the roots found: unchanged (with their current validators), or the bytes downloaded."""

    unchanged: bool
    validators: dict[str, Validator | None] = field(default_factory=dict)
    kept: list[Fetched] = field(default_factory=list)
    not_modified: int = 0  # 304 answers


def profile_digest(profile: SyncProfile) -> str:
    """A digest of the settings a snapshot depends on: any change makes the next sync read everything."""
    blob = json.dumps(dataclasses.asdict(profile), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def state_meta(result: IndexResult, digest: str) -> dict[str, Any]:
    """The pointer metadata that lets the next sync revalidate what `result` was read from."""
    meta: dict[str, Any] = {"sources": result.sources, "profile_digest": digest,
                            "validators": validators_json(result.validators)}
    if result.valid_until is not None:
        meta["valid_until"] = result.valid_until.isoformat()
    return meta


def validators_json(validators: Mapping[str, Validator | None]) -> dict[str, dict[str, str]]:
    """Validators as stored (`{}` for a root without one)."""
    return {url: v.to_json() if v else {} for url, v in validators.items()}


def probe(fetcher: Fetcher, meta: Mapping[str, Any], *, digest: str, now: datetime) -> Probe | None:
    """Ask the mirror whether the roots `meta` lists changed; None when this state cannot say (read everything)."""
    roots, sources = meta.get("validators"), meta.get("sources")
    if meta.get("profile_digest") != digest or not isinstance(roots, dict) or not roots \
            or not isinstance(sources, dict) or not all(isinstance(sources.get(url), str) for url in roots):
        return None
    until = meta.get("valid_until")
    if until is not None:
        try:
            if datetime.fromisoformat(until) <= now:
                return None  # read it again, so that the parser reports the expired InRelease
        except (TypeError, ValueError):
            return None
    found = Probe(unchanged=True)
    for url, raw in roots.items():
        sent = Validator.from_json(raw)
        got = fetcher.fetch(url, validator=sent)
        if got.not_modified:
            found.not_modified += 1
            found.validators[url] = sent
            continue
        found.kept.append(got)
        if got.sha256 != sources[url]:
            return Probe(unchanged=False, kept=found.kept, not_modified=found.not_modified)
        found.validators[url] = got.validator
    return found
