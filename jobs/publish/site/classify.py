"""Why a build failed, in one of a few words: failure classes for FAIL and BAD builds.

The same idea as rebuilderd-website-ts's client-side classifiers (docs/design.md#failure-classes), done once
at publish time: the result's `reason` (our worker writes a precise one line) decides
first; only when it says nothing specific is the end of the build log searched. The log
is untrusted text: it only ever selects a class, it is never shown from here.
"""

from __future__ import annotations

import re
from enum import StrEnum

from jobs.core.bounded import CorruptData, OverLimit, cap, decompress_chunks
from jobs.core.model import Status

TAIL_BYTES = 64 * 1024
# A log is bounded by the worker's size limit, but the object is untrusted: stop
# decompressing a bomb long before memory or time run out.
MAX_DECOMPRESSED = cap("log_decoded")


class FailureClass(StrEnum):
    """A failure class: its value is the slug used in URLs, feeds and CSS."""

    CHECKSUM = "checksum-mismatch"
    MISSING_DEPENDENCY = "missing-dependency"
    TIMEOUT = "timeout"
    FTBFS = "ftbfs"
    NOT_REPRODUCIBLE = "not-reproducible"
    DOWNLOAD_FAILED = "download-failed"
    NO_SPACE = "no-space-left"
    TOOL_MISSING = "tool-missing"
    UNKNOWN = "unknown"

    @property
    def label(self) -> str:
        """Words for people."""
        return _LABELS[self]

    @property
    def css_class(self) -> str:
        """The class name in site/static/style.css."""
        return f"failure-{self.value}"


_LABELS = {
    FailureClass.CHECKSUM: "checksum mismatch",
    FailureClass.MISSING_DEPENDENCY: "missing dependency",
    FailureClass.TIMEOUT: "timeout",
    FailureClass.FTBFS: "fails to build",
    FailureClass.NOT_REPRODUCIBLE: "not reproducible",
    FailureClass.DOWNLOAD_FAILED: "download failed",
    FailureClass.NO_SPACE: "no space left",
    FailureClass.TOOL_MISSING: "tool missing",
    FailureClass.UNKNOWN: "unknown",
}


def _rx(*patterns: str) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE | re.MULTILINE)


# Phrases, never single words: names of packages (and so URLs in reasons) can contain any
# word ("python-timeout-decorator"), so a class needs a whole message to match.
_RULES: list[tuple[FailureClass, re.Pattern[str]]] = [
    (FailureClass.TIMEOUT, _rx(r"TRUNCATED DUE TO TIMEOUT", r"\btimed out after \d", r"build timed out")),
    (FailureClass.NO_SPACE, _rx(r"No space left on device", r"\bENOSPC\b", r"Disk quota exceeded")),
    (FailureClass.TOOL_MISSING, _rx(r"^tool missing:", r": command not found", r"\bnot found: the \S+ backend needs",
                                    r"executable file not found")),
    (FailureClass.CHECKSUM, _rx(r"sha256 mismatch", r"checksum mismatch", r"Hash Sum mismatch",
                                r"did not pass the validity check", r"sha256sums? (?:do|does|did) not match")),
    (FailureClass.DOWNLOAD_FAILED, _rx(r"^download failed:", r"Failed to download", r"Could not resolve host",
                                       r"Temporary failure in name resolution", r"failed retrieving file",
                                       r"Failed to fetch \S+", r"cannot download the source package")),
    (FailureClass.MISSING_DEPENDENCY, _rx(r"target not found: ", r"could not satisfy dependenc",
                                          r"unable to satisfy dependency", r"Unmet build dependencies",
                                          r"not (?:found )?in (?:the )?archive", r"Unable to locate package",
                                          r"has no installation candidate", r"failed to install missing dependencies",
                                          r"could not find or read package", r"installed package .* not available")),
    (FailureClass.FTBFS, _rx(r"A failure occurred in (?:prepare|build|check|package\w*)\(\)",
                             r"dpkg-buildpackage died", r"dpkg-buildpackage: error: ",
                             r"^make(?:\[\d+\])?: \*\*\*", r"^E: Build failure", r"ERROR: Build failed",
                             r"makepkg exited with status")),
]

_NOT_REPRODUCIBLE = re.compile(r"^not reproducible:.*\bdiffers\b", re.IGNORECASE)


def _first(text: str) -> FailureClass | None:
    for cls, pattern in _RULES:
        if pattern.search(text):
            return cls
    return None


def classify_reason(status: Status, reason: str | None) -> FailureClass | None:
    """The class the result's reason alone decides; None when the log must be read."""
    if status not in (Status.BAD, Status.FAIL):
        return None
    text = reason or ""
    if status is Status.BAD and _NOT_REPRODUCIBLE.search(text):
        return FailureClass.NOT_REPRODUCIBLE  # it built; an artifact differs
    return _first(text)


def classify(status: Status, reason: str | None, log_tail: str | None = None) -> FailureClass | None:
    """The failure class of a build (None for GOOD and UNKWN): reason first, log tail second."""
    if status not in (Status.BAD, Status.FAIL):
        return None
    found = classify_reason(status, reason) or (_first(log_tail) if log_tail else None)
    if found is not None:
        return found
    # A BAD build compared what it produced; with nothing more specific, it is BAD.
    return FailureClass.NOT_REPRODUCIBLE if status is Status.BAD else FailureClass.UNKNOWN


def log_tail(data: bytes, key: str, *, limit: int = TAIL_BYTES) -> str:
    """The last `limit` bytes of a build log's stored bytes (gzip or plain) as text.

    `data` is what `jobs.publish.site.inputs.read_log_tail` read; a gzip log is decompressed
    up to `MAX_DECOMPRESSED` only, and a corrupt one gives what could be read.
    """
    if data[:2] != b"\x1f\x8b":
        return data[-limit:].decode("utf-8", "replace")
    tail = b""
    try:
        for chunk in decompress_chunks(data, "gz", MAX_DECOMPRESSED, key):
            tail = (tail + chunk)[-limit:]
    except OverLimit:
        pass  # classify the tail of what the cap let through
    except CorruptData:
        pass  # a truncated or corrupt log: classify what could be read
    return tail.decode("utf-8", "replace")
