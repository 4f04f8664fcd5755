"""One `desc` file of an Arch repository database (alpm-repo-desc v1 and v2).

A desc is `%SECTION%` blocks: the header line, one or more value lines, a blank line
(repo-add's `db_write_entry`). v1 (pacman 6.0) has `%MD5SUM%`; v2 (pacman >= 6.1) drops it
and makes `%PGPSIG%` optional. Both are read the same way: only the sections the sync uses
are looked at (a header is a line at the start or after a blank line) and the rest is
ignored, as pacman does. A used section must appear once, with exactly one value, and pass
its check; otherwise the desc is `InvalidDesc` with the reason, and the caller skips that
package and counts it.

Speed matters (Arch's extra has 15,000 descs): the well-formed case costs two regex scans.
Only a desc that fails is looked at again, section by section, to say why.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import NamedTuple

from jobs.core.model.limits import clean_description

# Sections the sync needs (rebuilderd: FILENAME NAME BASE VERSION ARCH PACKAGER; we also take
# the download's sha256 and size). %BASE% is optional: a package without one is its own base.
REQUIRED = ("FILENAME", "NAME", "VERSION", "ARCH", "PACKAGER", "SHA256SUM", "CSIZE")
_FIELDS = (*REQUIRED, "BASE")

# Every header of a used section, with its first value line and what follows that line (a
# blank line when the section has exactly one value). The desc is framed with blank lines, so
# the first and the last section are found too; only the header is consumed.
_SECTION = re.compile(r"\n\n%(" + "|".join(_FIELDS) + r")%(?=\n([^\n]*)\n(\n?))")

# What each used value must look like (besides being printable).
_PATTERNS = {
    # A file name, never a path: it is appended to the mirror URL and the worker writes it.
    "FILENAME": r"[^./\\\n][^/\\\n]*",
    # alpm-package-name: alphanumerics and @._+-, not starting with '-' or '.' (makepkg lint_pkgname).
    "NAME": r"[A-Za-z0-9@_+][A-Za-z0-9@._+-]*",
    "BASE": r"[A-Za-z0-9@_+][A-Za-z0-9@._+-]*",
    # alpm-package-version: [epoch:]pkgver-pkgrel, pkgver without whitespace, ':', '/' or '-'.
    "VERSION": r"(?:[0-9]+:)?[^\s:/-]+-[^\s:/-]+",
    "ARCH": r"[A-Za-z0-9_]+",
    "SHA256SUM": r"[0-9a-fA-F]{64}",
    "CSIZE": r"[0-9]{1,19}",  # int() alone would take "1_000", " 12" and other scripts' digits
    "PACKAGER": r"[^\n]+",
}
_PROBLEMS = {
    "FILENAME": "is not a plain file name",
    "CSIZE": "is not a size in bytes",
}
_CHECKED = tuple(_PATTERNS)
_ALL_VALID = re.compile("\n".join(f"(?:{_PATTERNS[key]})" for key in _CHECKED))
_MAX_INT64 = (1 << 63) - 1
_MAX_FILENAME_BYTES = 255  # a file name longer than this cannot be written by the worker


class InvalidDesc(ValueError):
    """A desc the sync cannot use; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# %DESC% (pkgdesc): optional and cosmetic, so read apart from the checked sections: a missing,
# empty or odd one never costs the package (jobs.core.model.limits.clean_description bounds it).
# The line after the first `%DESC%` line that starts the text or follows a newline: what the
# regex `(?:^|\n)%DESC%\n([^\n]*)` finds, with str.find in a fifth of its time.
def _pkgdesc(text: str) -> str | None:
    if text.startswith("%DESC%\n"):
        start = 7
    else:
        found = text.find("\n%DESC%\n")
        if found < 0:
            return None
        start = found + 8
    end = text.find("\n", start)
    return text[start:] if end < 0 else text[start:end]


class Desc(NamedTuple):  # a tuple: cheap to make 15,000 times
    """The fields of one desc the sync uses, checked."""

    filename: str
    name: str
    base: str
    version: str
    arch: str
    packager: str
    sha256: str  # lowercase hex
    csize: int
    desc: str | None = None  # %DESC%, cleaned and bounded


def parse_desc(data: bytes) -> Desc:
    """The checked fields of one desc file, or InvalidDesc."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidDesc(f"not valid UTF-8 (byte {exc.start})") from None
    sections = _SECTION.findall(f"\n\n{text}\n\n")
    found = {key: value for key, value, blank in sections if blank}
    if len(found) != len(sections) or "" in found.values():
        raise InvalidDesc(_explain_sections(sections))
    if "BASE" not in found:
        found["BASE"] = found.get("NAME", "")
    if len(found) != len(_FIELDS):
        raise InvalidDesc(f"missing %{next(key for key in REQUIRED if key not in found)}%")
    joined = "\n".join([found[key] for key in _CHECKED])
    if not (_ALL_VALID.fullmatch(joined) and joined.replace("\n", " ").isprintable()):
        raise InvalidDesc(_explain_values(found))
    filename, csize = found["FILENAME"], int(found["CSIZE"])
    if len(filename.encode("utf-8")) > _MAX_FILENAME_BYTES:
        raise InvalidDesc(f"%FILENAME% is longer than {_MAX_FILENAME_BYTES} bytes")
    if csize > _MAX_INT64:
        raise InvalidDesc(f"%CSIZE% is too large: {csize}")
    return Desc(filename=filename, name=found["NAME"], base=found["BASE"], version=found["VERSION"],
                arch=found["ARCH"], packager=found["PACKAGER"], sha256=found["SHA256SUM"].lower(),
                csize=csize, desc=clean_description(_pkgdesc(text)))


def _explain_sections(sections: list[tuple[str, str, str]]) -> str:
    seen = set()
    for key, value, blank in sections:
        if key in seen:
            return f"%{key}% appears twice"
        seen.add(key)
        if not value:
            return f"%{key}% has no value"
        if not blank:
            return f"%{key}% has more than one value"
    raise AssertionError("unreachable: called only when a section is repeated, empty or multi-valued")


def _explain_values(found: dict[str, str]) -> str:
    for key in _CHECKED:
        value = found[key]
        if not value.isprintable():
            return f"%{key}% contains a control or other non-printable character"
        if not re.fullmatch(_PATTERNS[key], value):
            return f"%{key}% {_PROBLEMS.get(key, 'is not valid')}: {_shown(value)}"
    raise AssertionError("unreachable: the combined pattern is the fields' patterns joined")


def _shown(value: str, limit: int = 60) -> str:
    """A value for an error message: quoted, escaped, and cut short."""
    return ascii(value if len(value) <= limit else value[:limit] + "…")


class Descs(NamedTuple):
    """Many descs' fields as columns (one list per field, in the descs' order) and the descs left out."""

    filename: list[str]
    name: list[str]
    base: list[str]
    version: list[str]
    arch: list[str]
    packager: list[str]
    sha256: list[str]
    csize: list[int]
    desc: list[str | None]
    index: list[int]  # which of the descs given each row is
    invalid: dict[int, str]  # the descs left out: their index → InvalidDesc's reason


def parse_descs(datas: Iterable[bytes]) -> Descs:
    """`parse_desc` of every desc in `datas` (read as they come), as columns (what `alpm_db` builds entries from)."""
    rows: list[Desc] = []
    index: list[int] = []
    invalid: dict[int, str] = {}
    for i, data in enumerate(datas):
        try:
            rows.append(parse_desc(data))
            index.append(i)
        except InvalidDesc as exc:
            invalid[i] = exc.reason
    columns = [list(column) for column in zip(*rows)] if rows else [[] for _ in Desc._fields]
    return Descs(*columns, index=index, invalid=invalid)
