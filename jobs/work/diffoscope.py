"""Explain a BAD rebuild with diffoscope: one run over the originals and the rebuilt files.

rebuilderd (``worker/src/diffoscope.rs``, docs/design.md#build-execution-and-the-backend-contract) runs
``diffoscope <args> --timeout=<timeout> -- <original> <rebuilt>`` per artifact, captures the text
report from stdout, kills diffoscope at ``[diffoscope] max_bytes`` and gives the process the
timeout plus 600 s. We run it once for all differing artifacts, over two directories
``original/`` and ``rebuilt/`` that hold them under their published names, and also ask for an
HTML report. The text report still streams through ``jobs.core.proc``, which enforces the cap,
the kill and the truncation marker; the HTML file is cut at the same cap afterwards.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from jobs.core import proc
from jobs.core.config import DiffoscopeConfig

TOOL = "diffoscope"
PACKAGE = "diffoscope-minimal"  # Debian's diffoscope without the heavy optional tools; enough for packages
PROCESS_GRACE = 600.0  # rebuilderd gives the process this much past diffoscope's own --timeout
TEXT_NAME, HTML_NAME = "diffoscope.txt", "diffoscope.html"
ORIGINAL, REBUILT = "original", "rebuilt"
# Exit statuses (diffoscope(1)): 0 no differences, 1 differences, 2 an error.
IDENTICAL, DIFFERENT = 0, 1


@dataclass(frozen=True)
class Pair:
    """One artifact to compare: its published file name, the original and the rebuilt file."""

    name: str
    original: Path
    rebuilt: Path


@dataclass
class DiffoscopeReport:
    """What one diffoscope run left: the reports (None if not written) and what went wrong."""

    text: Path | None
    html: Path | None
    truncated: bool
    cancelled: bool = False
    problems: list[str] = field(default_factory=list)  # one line each, for the build log and the reason


def html_marker(max_bytes: int) -> bytes:
    """What follows an HTML report cut at ``max_bytes`` (the text report gets proc's size marker)."""
    return f"\n<!-- TRUNCATED DUE TO SIZE LIMIT: {max_bytes} bytes -->\n".encode()


def diffoscope_argv(config: DiffoscopeConfig, html: Path, original: str, rebuilt: str) -> list[str]:
    """The diffoscope command line: our defaults, then the configured args (which win), then ours."""
    argv = [TOOL, "--exclude-directory-metadata", "yes"]  # the two directories are ours: their stat is noise
    if config.max_bytes:
        # diffoscope's own limits shorten the HTML gracefully; the hard cut below is the backstop.
        argv += ["--max-report-size", str(config.max_bytes), "--max-page-size", str(config.max_bytes)]
    argv += list(config.args)
    argv += ["--timeout", str(config.timeout), "--text", "-", "--html", str(html), "--", original, rebuilt]
    return argv


def run_diffoscope(pairs: Sequence[Pair], *, scratch: Path, reports: Path, config: DiffoscopeConfig,
                   cancel: threading.Event | None = None, kill_grace: float = 10.0,
                   process_grace: float = PROCESS_GRACE) -> DiffoscopeReport:
    """Compare ``pairs`` with one diffoscope run; reports go to ``reports``; MissingToolError if absent."""
    if not pairs:
        raise ValueError("nothing to compare")
    _stage(pairs, scratch)
    text, html = reports / TEXT_NAME, reports / HTML_NAME
    html.unlink(missing_ok=True)
    result = proc.run(
        diffoscope_argv(config, html, ORIGINAL, REBUILT), log=text, cwd=scratch,
        timeout=config.timeout + process_grace, max_bytes=config.max_bytes, kill_on_max_bytes=True,
        kill_grace=kill_grace, cancel=cancel, cancel_reason="build cancelled", tool_package=PACKAGE,
    )
    report = DiffoscopeReport(text=text, html=html if html.exists() else None, truncated=result.truncated,
                              cancelled=result.cancelled)
    if result.cancelled:
        return report
    if result.timed_out:
        report.problems.append(f"diffoscope timed out after {config.timeout + process_grace:g} s")
    elif result.truncated:
        report.problems.append(f"diffoscope output truncated at {config.max_bytes} bytes (diffoscope killed)")
    elif result.exit_code == IDENTICAL:
        report.problems.append("diffoscope found no differences")
    elif result.exit_code != DIFFERENT:
        how = f"status {result.exit_code}" if result.exit_code is not None else f"signal {result.signal}"
        report.problems.append(f"diffoscope failed with {how}; its report may be incomplete")
    if report.html is not None and config.max_bytes and _cut(report.html, config.max_bytes):
        report.truncated = True
        report.problems.append(f"diffoscope HTML report truncated at {config.max_bytes} bytes")
    return report


def _stage(pairs: Sequence[Pair], scratch: Path) -> None:
    """Put each original into ``original/<name>`` and each rebuilt file into ``rebuilt/<name>``."""
    for side in (ORIGINAL, REBUILT):
        (scratch / side).mkdir(parents=True)
    for pair in pairs:
        for side, source in ((ORIGINAL, pair.original), (REBUILT, pair.rebuilt)):
            target = scratch / side / pair.name
            # A hard link costs nothing; a symlink would not do, diffoscope compares symlinks as links.
            try:
                os.link(source, target)
            except OSError:
                shutil.copyfile(source, target)


def _cut(path: Path, max_bytes: int) -> bool:
    """Truncate ``path`` to ``max_bytes`` and append the marker; False if it was within the cap."""
    if path.stat().st_size <= max_bytes:
        return False
    with open(path, "r+b") as f:
        f.truncate(max_bytes)
        f.seek(0, os.SEEK_END)
        f.write(html_marker(max_bytes))
    return True
