"""A fast reader of deb822 stanzas (Debian `Packages`, `Sources`, `Release`) that keeps only the fields asked for.

python-debian's `deb822.Packages.iter_paragraphs(use_apt_pkg=False)` builds a full dictionary per
stanza and runs a regular expression per line; a sync needs six to eight fields of each of
~70,000 stanzas. This reader walks the decoded text once, keeps the asked-for fields and
returns the same string values python-debian does for them (property-tested against it):

- a field line is `Name: value`; the value is stripped of surrounding whitespace; names match
  case-insensitively and come back spelled as the caller asked;
- a continuation line (starting with a space or tab) adds `"\\n" + line` unchanged, so
  `Binary:`, `Checksums-Sha256:` and `Package-List:` read exactly as python-debian gives them;
  whitespace-only lines inside a stanza are ignored;
- stanzas are separated by empty lines (a line of only spaces is *not* a separator, as in
  python-debian's Packages/Sources mode and apt); lines starting with `#` are ignored;
- CRLF line ends are accepted (normalised to LF); a lone CR is part of the data.

Unlike python-debian, which drops what it cannot parse silently, a stanza with a line that is
neither a field nor a continuation, a continuation before the first field, or a repeated
asked-for field is returned with `problem` set, so the caller can report it as skipped with
its place (stanza number and first line).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

_BAD_NAME = re.compile(r"[\s:]")
_NOT_NEWLINE = re.compile(r"[^\n]")


class Stanza:
    """The asked-for fields of one stanza, where it starts, and what is wrong with it (if anything)."""

    __slots__ = ("fields", "number", "line", "problem")

    def __init__(self, fields: dict[str, str], number: int, line: int, problem: str | None) -> None:
        self.fields = fields
        self.number = number  # 1-based, counting non-empty stanzas
        self.line = line  # 1-based line of the stanza's first line
        self.problem = problem

    def where(self, source: str) -> str:
        """A location for messages, e.g. `sid/main/binary-amd64/Packages.xz: stanza 12 (line 301)`."""
        return f"{source}: stanza {self.number} (line {self.line})"

    def __repr__(self) -> str:
        return f"Stanza({self.fields!r}, number={self.number}, line={self.line}, problem={self.problem!r})"


def decode(data: bytes) -> str:
    """Index bytes as text: UTF-8 (Debian policy), undecodable bytes replaced rather than fatal."""
    return data.decode("utf-8", errors="replace")


def iter_stanzas_stream(pieces: Iterable[str], fields: Iterable[str]) -> Iterator[Stanza]:
    """`iter_stanzas` over text arriving in pieces (a decompressing download), never holding it whole.

    Each run of complete stanzas (up to the last blank line seen) is read as soon as it has
    arrived, with the stanza numbers and lines it would have in the whole text; the same
    stanzas come out as `iter_stanzas("".join(pieces), fields)` gives.
    """
    fields = tuple(fields)
    pending: list[str] = []  # text since the last blank line, joined only when a stanza ends in it (linear)
    carry, last, number, line = "", "", 0, 1
    for piece in pieces:
        piece, carry = carry + piece, ""
        if piece.endswith("\r"):  # maybe the first half of a CRLF: it waits for the next piece
            piece, carry = piece[:-1], "\r"
        if "\r" in piece:
            piece = piece.replace("\r\n", "\n")
        if not piece:
            continue
        if "\n\n" not in piece and not (last == "\n" and piece[0] == "\n"):
            pending.append(piece)
            last = piece[-1]
            continue
        buffer = "".join(pending) + piece
        cut = buffer.rfind("\n\n")
        block, rest = buffer[:cut + 2], buffer[cut + 2:]
        pending, last = ([rest] if rest else []), buffer[-1]
        for st in iter_stanzas(block, fields, number=number, line=line):
            number = st.number
            yield st
        line += block.count("\n")
    rest = "".join(pending) + carry
    if rest:
        yield from iter_stanzas(rest, fields, number=number, line=line)


def iter_stanzas(text: str, fields: Iterable[str], *, number: int = 0, line: int = 1) -> Iterator[Stanza]:
    """Every non-empty stanza of `text`, with only `fields` kept (see the module docstring); `number`
    and `line` are the stanzas before `text` and its first line's number, when it is part of a stream."""
    canon = {f.lower(): f for f in fields}
    # Raw text before the colon → the canonical asked-for name, "" (not asked for) or None (not
    # a valid field name). A Packages file has ~60 distinct names, so this is a few dict hits.
    names: dict[str, str | None] = {}
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    find, end = text.find, len(text)
    pos = 0
    while pos < end:
        if text[pos] == "\n":  # extra blank lines between stanzas: skipped at C speed (a hostile index is all of them)
            blank = _NOT_NEWLINE.search(text, pos)
            stop = blank.start() if blank else end
            line += stop - pos
            pos = stop
            continue
        stop = find("\n\n", pos)
        if stop < 0:
            stop = end
        chunk = text[pos:stop]
        values: dict[str, str] = {}
        # Continuation lines, joined once at the end of the stanza: `values[cur] += line` copies
        # the whole value every time, quadratic in the lines of one field (a hostile 100,000-line
        # field took 20 s; tests/hostile).
        more: dict[str, list[str]] = {}
        problem: str | None = None
        cur: str | None = None  # field being read; "" for one not asked for; None before the first
        seen = False
        for ln in chunk.split("\n"):
            # The usual line first: a field whose name (the text before the first colon) was seen before.
            key, colon, rest = ln.partition(":")
            name = names.get(key)
            if name is not None and colon:
                seen = True
                if name:
                    if name in values and problem is None:
                        problem = _at(chunk, ln, line, f"repeated field {name!r}")
                    values[name] = rest.strip()
                    if more:
                        more.pop(name, None)  # a repeated field starts over
                cur = name
                continue
            # Anything else: a continuation, a comment, a name not seen yet, not a field. (`names` only ever
            # holds the names of field lines, which never start with a blank or "#" and are never empty.)
            c = ln[:1]
            if c == " " or c == "\t":
                if cur:
                    if not ln.isspace():
                        more.setdefault(cur, []).append(ln)
                elif cur is None and problem is None and not ln.isspace():
                    problem = _at(chunk, ln, line, "continuation line before the first field")
                continue
            if c == "#" or not ln:
                continue
            seen = True
            i = ln.find(":")
            key = ln[:i] if i > 0 else None
            name = names.get(key) if key is not None else None
            if name is None and key is not None and key not in names:
                name = names[key] = _classify(key, canon)
            if name is None:
                if problem is None:
                    problem = _at(chunk, ln, line, "not a field (expected 'Name: value')")
                cur = ""
                continue
            if name:
                if name in values and problem is None:
                    problem = _at(chunk, ln, line, f"repeated field {name!r}")
                values[name] = ln[i + 1:].strip()
                if more:
                    more.pop(name, None)  # a repeated field starts over
            cur = name
        for name, lines in more.items():
            values[name] = "\n".join([values[name], *lines])
        if seen:
            number += 1
            yield Stanza(values, number, line, problem)
        line += chunk.count("\n") + 2
        pos = stop + 2


def _classify(key: str, canon: dict[str, str]) -> str | None:
    name = key.rstrip(" \t")  # python-debian allows blanks before the colon
    if not name or _BAD_NAME.search(name) or name[0] == "-":
        return None
    return canon.get(name.lower(), "")


def _at(chunk: str, ln: str, first: int, what: str) -> str:
    offset = chunk.split("\n").index(ln)
    shown = ln if len(ln) <= 60 else ln[:57] + "..."
    return f"line {first + offset}: {what}: {shown!r}"
