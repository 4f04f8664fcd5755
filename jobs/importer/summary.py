"""What one `rebuilder import-rebuilderd` did, and the error that stops it before it starts."""

from __future__ import annotations

from dataclasses import dataclass, field

from jobs.core.errors import TerminalError

SHOWN = 20  # problems named in the summary


class ImportRefused(TerminalError):
    """The database cannot be imported at all (not SQLite, not rebuilderd's schema)."""


@dataclass
class ImportSummary:
    """What one import did."""

    builds: int = 0  # history rows added
    packages: int = 0  # packages those rows carry a verdict for
    present: int = 0  # builds whose row the history held already
    unbuilt: int = 0  # packages rebuilderd has no build of (UNKWN there and here)
    unmatched: int = 0  # packages no synced state row matches
    rejected: int = 0  # packages or builds refused for a field or blob out of bounds
    files: int = 0  # build files written
    queued: int = 0  # jobs queued or made sooner from the daemon's queue
    busy: str = ""  # another publish or import held the lock: nothing was done
    problems: list[str] = field(default_factory=list)

    def problem(self, text: str) -> None:
        if len(self.problems) < SHOWN:
            self.problems.append(text)

    def line(self) -> str:
        if self.busy:
            return f"import-rebuilderd: nothing done: {self.busy}"
        return (f"import-rebuilderd: {self.builds} builds imported ({self.packages} packages, {self.files} files), "
                f"{self.present} already in the history, {self.unbuilt} packages never built, "
                f"{self.unmatched} packages not in the synced state, {self.rejected} rejected; "
                f"{self.queued} jobs queued")
