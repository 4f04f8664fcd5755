"""Identifiers: job ids, build ids, and safe object-key segments for untrusted names.

A job is one build input (backend, architecture, input URL). Its id is a digest of
exactly those three strings, so the same input seen in several releases (rebuilderd's
"friends", docs/design.md#sync-import-and-friends) is one job, every sync computes the same id without
coordination, and a result written for it applies to every release it appears in.

Package names, versions and release names come from distro indexes and from the
bucket, both untrusted; `safe_segment` is the one way such a name becomes part of an
object key or URL path.
"""

from __future__ import annotations

import re
import urllib.parse
from functools import lru_cache

from jobs.core.errors import TerminalError

# Bumping this tag re-keys every job; only do it together with a data migration.
_JOB_ID_TAG = "rebuilder.job/1"
JOB_ID_HEX_CHARS = 32  # 128 bits: collisions are out of reach for any package count
_JOB_ID_RE = re.compile(r"[0-9a-f]{%d}" % JOB_ID_HEX_CHARS)
_BUILD_ID_RE = re.compile(r"([0-9a-f]{%d})-([1-9][0-9]*)" % JOB_ID_HEX_CHARS)

# Bytes kept as they are in a segment. Everything else, including "%" itself, becomes
# %XX of its UTF-8 bytes. "+" stays because Debian versions and names ("libstdc++",
# "2.3.2-2+b1") are full of it; "~" and ":" (epochs) are escaped because some HTTP
# stacks and Windows file systems treat them specially.
_PLAIN = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._+-")
_DOT = ord(".")
_PLAIN_RE = re.compile(r"[A-Za-z0-9_+-][A-Za-z0-9._+-]*")  # _PLAIN, not starting with a dot

# Local file systems limit one path component to 255 bytes (NAME_MAX); keep room for
# suffixes such as ".json", ".html.gz" or ".parquet" that callers append.
MAX_SEGMENT_BYTES = 200


class SegmentError(TerminalError, ValueError):
    """A name cannot become an object-key segment (empty, not UTF-8, too long) or a segment is malformed."""

    def __init__(self, message: str, *, text: str) -> None:
        shown = text if len(text) <= 80 else text[:77] + "..."
        super().__init__(message, text=shown)
        self.text = text


def _netstring(value: str) -> bytes:
    data = value.encode("utf-8")
    return b"%d:%s," % (len(data), data)


@lru_cache(maxsize=1 << 17)  # a sync computes each id several times (rows, jobs, validation)
def job_id(backend: str, architecture: str, input_url: str) -> str:
    """The stable id (32 lowercase hex chars) of the build input (backend, architecture, input_url)."""
    for name, value in (("backend", backend), ("architecture", architecture), ("input_url", input_url)):
        if not isinstance(value, str) or not value:
            raise ValueError(f"job_id: {name} must be a non-empty string, got {value!r}")
    # Netstrings (length-prefixed) make the encoding injective: no choice of field
    # contents can make two different triples hash the same bytes. The input URL is
    # hashed exactly as given: normalising it would merge inputs rebuilderd keeps apart.
    import hashlib  # here, not at the top: OpenSSL's load is 5% of a `rebuildctl pkgs ls --name N`, which needs no id

    digest = hashlib.sha256()
    for value in (_JOB_ID_TAG, backend, architecture, input_url):
        digest.update(_netstring(value))
    return digest.hexdigest()[:JOB_ID_HEX_CHARS]


def is_job_id(text: str) -> bool:
    """True if text has the shape of a job id (32 lowercase hex chars)."""
    return isinstance(text, str) and _JOB_ID_RE.fullmatch(text) is not None


def build_id(job_id: str, attempt: int) -> str:
    """The id of one build attempt of a job: "<job_id>-<attempt>", attempts counting from 1."""
    if not is_job_id(job_id):
        raise ValueError(f"build_id: not a job id: {job_id!r}")
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
        raise ValueError(f"build_id: attempt must be an int >= 1, got {attempt!r}")
    return f"{job_id}-{attempt}"


def parse_build_id(text: str) -> tuple[str, int]:
    """Split a build id into (job_id, attempt); ValueError if it is not one."""
    match = _BUILD_ID_RE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"not a build id: {text!r}")
    return match.group(1), int(match.group(2))


def safe_segment(text: str, *, max_bytes: int = MAX_SEGMENT_BYTES) -> str:
    """Escape an untrusted name into exactly one object-key/URL path segment (reversible)."""
    if not isinstance(text, str) or not text:
        raise SegmentError("an empty name cannot be a path segment", text=str(text))
    if len(text) <= max_bytes and _PLAIN_RE.fullmatch(text):  # most names: nothing to escape
        return text
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: not text any index can contain
        raise SegmentError("name is not valid Unicode text", text=text) from None
    parts = []
    for index, byte in enumerate(data):
        # A leading dot is escaped too: that alone rules out ".", ".." and hidden files.
        if byte in _PLAIN and not (index == 0 and byte == _DOT):
            parts.append(chr(byte))
        else:
            parts.append(f"%{byte:02X}")
    segment = "".join(parts)
    if len(segment) > max_bytes:
        raise SegmentError(f"name is too long for a path segment ({len(segment)} > {max_bytes} bytes escaped)",
                           text=text)
    return segment


def unescape_segment(segment: str) -> str:
    """The name a `safe_segment` result came from; SegmentError unless segment is exactly such a result."""
    if not isinstance(segment, str) or not segment:
        raise SegmentError("an empty segment names nothing", text=str(segment))
    try:
        text = urllib.parse.unquote_to_bytes(segment).decode("utf-8")
    except UnicodeDecodeError:
        raise SegmentError("segment does not decode to UTF-8 text", text=segment) from None
    # Only the canonical spelling is accepted ("%41" for "A", lowercase hex, stray "%"
    # are refused), so one name has exactly one key and keys cannot alias each other.
    try:
        canonical = safe_segment(text, max_bytes=len(segment))
    except SegmentError:
        canonical = None
    if canonical != segment:
        raise SegmentError("not a canonical safe segment", text=segment)
    return text
