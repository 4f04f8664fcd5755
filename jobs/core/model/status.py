"""The one build status enum (docs/design.md#invariants, invariant 7) and the queue priorities.

The same `Status` values travel unchanged from the history Parquet through the JSON
feeds to the CSS classes and the CLI's `--status` choices, so nothing ever translates
between spellings except at the two edges that need it: `Status.parse` for text read
from outside (old rebuilderd feeds, user input) and `Status.v0` for the legacy API.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class Status(StrEnum):
    """Outcome of a rebuild (per build attempt) or of one artifact within it.

    Semantics follow rebuilderd's `BuildStatus` (docs/design.md#statuses): GOOD iff every
    artifact is bit-for-bit identical; BAD if any differs or is missing; FAIL when the
    worker hit an error (download, spawn, diffoscope) and compared nothing; UNKWN when
    there is no result yet. Artifacts only ever carry GOOD, BAD or UNKWN.
    """

    GOOD = "GOOD"
    BAD = "BAD"
    FAIL = "FAIL"
    UNKWN = "UNKWN"

    @classmethod
    def parse(cls, text: str) -> Status:
        """Read a status in any case, including rebuilderd's older spellings; ValueError if unknown."""
        try:
            return _SPELLINGS[text.strip().lower()]
        except (KeyError, AttributeError):
            choices = ", ".join(s.value for s in cls)
            raise ValueError(f"unknown build status {text!r} (expected one of {choices})") from None

    @classmethod
    def choices(cls) -> list[str]:
        """The wire values, in display order, for CLI choices and form options."""
        return [s.value for s in cls]

    @property
    def css_class(self) -> str:
        """The class name in site/static/style.css, e.g. "status-good"."""
        return f"status-{self.value.lower()}"

    @property
    def dashboard_key(self) -> str:
        """The counter name in rebuilderd's dashboard JSON ("good", "bad", "fail", "unknown")."""
        # v1 DashboardState and v0 DashboardResponse spell UNKWN out in full.
        return "unknown" if self is Status.UNKWN else self.value.lower()

    def v0(self) -> Status:
        """The value the v0 API shows: FAIL reads as BAD there, as rebuilderd's v0 parser maps it."""
        # v0 consumers (arch-repro-status, debian-repro-status, pacman-bintrans) only
        # know GOOD/BAD/UNKWN and reject anything else when deserialising.
        return Status.BAD if self is Status.FAIL else self


# Every spelling seen on the wire: our own values, the v0.21 worker protocol's
# "Good"/"Bad"/"Fail" (lowercased here), the OpenAPI's wrong "UNKNOWN" and the
# dashboards' "unknown" counter key (docs/design.md#statuses, #feeds-that-existing-tools-read).
_SPELLINGS: dict[str, Status] = {
    "good": Status.GOOD,
    "bad": Status.BAD,
    "fail": Status.FAIL,
    "unkwn": Status.UNKWN,
    "unknown": Status.UNKWN,
}


class Priority(IntEnum):
    """Queue priority, lower runs sooner (rebuilderd `Priority`, docs/design.md#priorities).

    Any other integer is a valid custom priority (`rebuildctl queue push --priority N`),
    so job rows store a plain int and only the named levels get a member here.
    """

    MANUAL = 0
    NEW = 1
    RETRY = 2

    @classmethod
    def of(cls, value: int) -> int:
        """The named member for a known level, else the custom integer unchanged."""
        try:
            return cls(value)
        except ValueError:
            return int(value)
