"""Text from outside, made safe to print in HTML, XML and SVG.

Control characters from an index or a reason are no danger once escaped, but they make HTML and
XML invalid, and bidi controls reorder what follows: every printed string loses them, each
replaced by U+FFFD.
"""

from __future__ import annotations

import re

NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
                     "\u2028\u2029\ufffe\uffff\ud800-\udfff]")


def printable(value: str) -> str:
    """`value` with every character that XML forbids, and every bidi control, replaced by U+FFFD."""
    return NOT_XML.sub("\ufffd", value)
