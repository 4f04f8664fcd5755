r"""Strings from a site made safe for a terminal: `clean` (one line) and `clean_text` (keeps newlines, tabs).

C0 and C1 control characters (escape sequences, carriage returns), bidi overrides and
isolates, and line/paragraph separators are shown as visible escapes (`\x1b`, `\u202e`)
instead of reaching the terminal. Used by the commands (a row's one-line form) and by
`jobs.ctl.terminal` (everything printed).
"""

from __future__ import annotations

import re

# Characters a site's string may not put on a terminal: C0 and C1 controls and DEL, bidi
# marks, embeddings, overrides and isolates (they reorder what follows on the line), line and
# paragraph separators, and the BOM / zero-width no-break space.
_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
UNSAFE = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI}\u2028\u2029\ufeff]")
_UNSAFE_TEXT = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI}\u2028\u2029\ufeff]")  # keeps \t and \n
_UNSAFE_BUT_NEWLINE = re.compile(f"[\x00-\x09\x0b-\x1f\x7f-\x9f{_BIDI}\u2028\u2029\ufeff]")
# The characters of UNSAFE that ASCII has, as bytes for `bytes.translate` to delete.
_ASCII_UNSAFE = bytes([*range(0x00, 0x20), 0x7f])


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def clean(value: object) -> str:
    """A value from a site as one safe line: every control, bidi and separator character escaped visibly."""
    text = value if isinstance(value, str) else str(value)
    return UNSAFE.sub(_visible, text) if UNSAFE.search(text) else text


def clean_lines(lines: list[str]) -> str:
    """`lines`, each as `clean` makes it, joined by newlines: one pass over the whole text when none needs it."""
    text = "\n".join(lines)
    if _safe_but_newlines(text, len(lines) - 1):
        return text
    return "\n".join(map(clean, lines))


def _safe_but_newlines(text: str, newlines: int) -> bool:
    """Whether the only characters of `text` that `clean` escapes are exactly `newlines` newlines.

    ASCII text (nearly every listing) is checked by deleting those characters, newlines
    included, from its bytes: a sixth of the time of the regular expression's search over a
    15,000-line listing, and no second pass to count the newlines.
    """
    if text.isascii():
        data = text.encode("ascii")
        return len(data.translate(None, _ASCII_UNSAFE)) == len(data) - newlines
    return _UNSAFE_BUT_NEWLINE.search(text) is None and text.count("\n") == newlines


def clean_text(text: str) -> str:
    """Text from a site (a build log, a report) safe for a terminal: as `clean`, but newlines and tabs stay."""
    return _UNSAFE_TEXT.sub(_visible, text) if _UNSAFE_TEXT.search(text) else text
