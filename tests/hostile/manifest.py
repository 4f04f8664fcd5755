"""The hostile corpus's manifest (`corpus/cases.toml`): every case, its input and the outcome it must have.

An expected outcome is one of
- `error: <text>`: the job stops with a clear error whose message contains <text>, and the
  store is exactly as before (no new snapshot, pointer or queue);
- `skip: counted, <text>`: the job goes on; the bad entry is left out and counted, with a
  reason containing <text> (for results: the rejection reason code, e.g. `unsigned`);
- `ok: <what is kept>`: accepted as it is (the text says what), shown escaped on the site.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CORPUS = Path(__file__).resolve().parent / "corpus"
MANIFEST = CORPUS / "cases.toml"
KINDS = ("arch-db", "arch-desc", "debian-mirror", "state-row", "result")
OUTCOMES = ("error", "skip", "ok")


@dataclass(frozen=True)
class Case:
    """One entry of the manifest."""

    id: str
    kind: str
    input: str  # relative to corpus/ (or, when generated, to the directory the generator wrote)
    breaks: str  # what the input tries to break
    expect: str
    generated: bool = False
    keep: tuple[str, ...] = ()  # sync kinds: the artifact names the new snapshot must hold
    skipped: int | None = None  # sync kinds: how many entries must be counted as skipped
    fields: dict[str, Any] = field(default_factory=dict)  # exact state-row values of the hostile artifact
    site: bool = False  # sync kinds: render the synced state and check the site too
    isolated: bool = False  # state-row and result kinds: publish in a store of its own (it may bring publish down)
    xfail: str | None = None  # a known bug outside tests/hostile's reach, with the reason

    @property
    def outcome(self) -> str:
        """"error", "skip" or "ok"."""
        return self.expect.split(":", 1)[0]

    @property
    def detail(self) -> str:
        """The text after the outcome (and after "counted, " for skips)."""
        text = self.expect.split(":", 1)[1].strip()
        return text.removeprefix("counted, ") if self.outcome == "skip" else text

    def path(self, generated_root: Path | None = None) -> Path:
        """Where the input is: in the committed corpus, or under the generated root."""
        if self.generated:
            assert generated_root is not None, f"{self.id} is generated at test time"
            return generated_root / self.input
        return CORPUS / self.input

    def load_json(self) -> Any:
        """The input parsed as JSON (state rows)."""
        return json.loads(self.path().read_text())

    def expected_skips(self) -> int:
        """How many entries must be counted as skipped (1 for a skip unless the manifest says)."""
        if self.skipped is not None:
            return self.skipped
        return 1 if self.outcome == "skip" else 0


def load(path: Path = MANIFEST) -> list[Case]:
    """Every case of the manifest, checked for shape."""
    raw = tomllib.loads(path.read_text())
    cases = []
    for entry in raw["case"]:
        entry = dict(entry)
        entry["keep"] = tuple(entry.get("keep", ()))
        case = Case(**entry)
        if case.kind not in KINDS:
            raise ValueError(f"{case.id}: unknown kind {case.kind!r} (known: {KINDS})")
        if case.outcome not in OUTCOMES or not case.detail:
            raise ValueError(f"{case.id}: expect must be 'error: …', 'skip: counted, …' or 'ok: …'")
        if case.outcome == "skip" and not case.expect.split(":", 1)[1].strip().startswith("counted, "):
            raise ValueError(f"{case.id}: a skip must say 'skip: counted, <reason>'")
        cases.append(case)
    ids = [c.id for c in cases]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ValueError(f"duplicate case ids: {duplicates}")
    return cases


def by_kind(cases: list[Case], *kinds: str) -> list[Case]:
    """The cases of these kinds, in manifest order."""
    return [c for c in cases if c.kind in kinds]
