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

from jobs.core.model import limits
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

# A desc as repo-add writes it, in one match: the used sections in repo-add's order, each with
# one value of a stricter form than `_PATTERNS` (printable ASCII; no `%` in the file name or
# version, so no line before %DESC% reads "%DESC%"), and between them any number of other
# sections (a header that is none of the used ones nor %DESC%, value lines that do not start
# with `%`, a blank line). What it matches, `parse_desc` reads the same: no used header
# appears anywhere else, each is one value followed by a blank line, and the first "%DESC%"
# line is the %DESC% section's. %PACKAGER% may be any text: its `isprintable` is checked apart.
# (Possessive: each section has one way to match, so nothing is kept to backtrack into.)
_OTHER = r"(?:%(?!(?:" + "|".join((*_FIELDS, "DESC")) + r")%)[^\n]*+\n(?:[^%\n][^\n]*+\n)++\n)*+"
_REGULAR = re.compile(
    r"%FILENAME%\n(?P<filename>[!-$&-\-0-\[\]-~][!-$&-.0-\[\]-~]*)\n\n" + _OTHER
    + r"%NAME%\n(?P<name>[A-Za-z0-9@_+][A-Za-z0-9@._+-]*)\n\n" + _OTHER
    + r"(?:%BASE%\n(?P<base>[A-Za-z0-9@_+][A-Za-z0-9@._+-]*)\n\n" + _OTHER + r")?"
    + r"%VERSION%\n(?P<version>(?:[0-9]+:)?[!-$&-,.0-9;-~]+-[!-$&-,.0-9;-~]+)\n\n" + _OTHER
    + r"(?:%DESC%\n(?P<desc>[^\n]*)\n\n" + _OTHER + r")?"
    + r"%CSIZE%\n(?P<csize>[0-9]{1,19})\n\n" + _OTHER
    + r"%SHA256SUM%\n(?P<sha256>[0-9a-fA-F]{64})\n\n" + _OTHER
    + r"%ARCH%\n(?P<arch>[A-Za-z0-9_]+)\n\n" + _OTHER
    + r"%PACKAGER%\n(?P<packager>[^\n]+)\n\n" + _OTHER + r"\Z")
# Its groups in `Desc`'s field order (numbers: `Match.group` takes them faster than names).
_REGULAR_ORDER = tuple(_REGULAR.groupindex[key] for key in
                       ("filename", "name", "base", "version", "arch", "packager", "sha256", "csize", "desc"))
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
    """`parse_desc` of every desc in `datas` (read as they come), as columns (what `alpm_db` builds entries from).

    A desc as repo-add writes it is taken apart by one match of `_REGULAR` and checked column
    by column; any other goes through `parse_desc` (the same fields, or the reason it is left
    out). tests/sync/test_alpm_desc_columns.py compares the two on regular, odd and broken descs.
    """
    rows: list[tuple] = []
    index: list[int] = []
    invalid: dict[int, str] = {}
    slow: list[int] = []  # rows that `parse_desc` made (their values final already)
    match, order = _REGULAR.match, _REGULAR_ORDER
    for i, data in enumerate(datas):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        found = match(text) if text is not None else None
        if found is not None:
            row = found.group(*order)  # filename, name, base, version, arch, packager, sha256, csize, desc
            if row[5].isprintable() and len(row[0]) <= _MAX_FILENAME_BYTES and (len(row[7]) < 19
                                                                                  or int(row[7]) <= _MAX_INT64):
                if row[2] is None or row[8] is None:
                    row = (*row[:2], row[2] or row[1], *row[3:8], row[8] if row[8] is not None else _pkgdesc(text))
                rows.append(row)
                index.append(i)
                continue
        try:
            desc = parse_desc(data)
        except InvalidDesc as exc:
            invalid[i] = exc.reason
            continue
        slow.append(len(rows))
        rows.append(desc)
        index.append(i)
    if not rows:
        return Descs(*[[] for _ in Desc._fields], index=index, invalid=invalid)
    filename, name, base, version, arch, packager, sha256, csize, desc = map(list, zip(*rows))
    sha256 = list(map(str.lower, sha256))
    csize = list(map(int, csize))
    descriptions = _cleaned(desc)
    for r in slow:
        descriptions[r] = rows[r].desc
    return Descs(filename, name, base, version, arch, packager, sha256, csize, descriptions, index=index,
                 invalid=invalid)


def _cleaned(values: list[str | None]) -> list[str | None]:
    """`clean_description` of each value: the values themselves when that is what it would give for all."""
    present = [v for v in values if v is not None]
    joined = "\n".join(present)
    if present and (min(map(len, present)) == 0 or max(map(len, present)) > limits.DESCRIPTION_MAX
                    or not joined.replace("\n", "x").isprintable() or "  " in joined or " \n" in joined
                    or "\n " in joined or joined[0] == " " or joined[-1] == " "):
        return list(map(clean_description, values))
    return list(values)
