"""%DESC% is found with str.find as the regex `(?:^|\\n)%DESC%\\n([^\\n]*)` finds it."""

from __future__ import annotations

import random
import re

from jobs.sync.alpm_desc import _pkgdesc, parse_desc

_REGEX = re.compile(r"(?:^|\n)%DESC%\n([^\n]*)")


def test_pkgdesc_is_what_the_regex_finds() -> None:
    rnd = random.Random(18)
    pieces = ["%DESC%", "\n", "x", "%DESC%\n", "\n%DESC%\n", "a b", "%", "DESC", "\r", "\n\n"]
    for _ in range(30_000):
        text = "".join(rnd.choices(pieces, k=rnd.randint(0, 8)))
        found = _REGEX.search(text)
        assert _pkgdesc(text) == (found.group(1) if found else None), repr(text)


def test_a_desc_keeps_its_first_description_line() -> None:
    desc = (b"%FILENAME%\nzstd-1.5.6-1-x86_64.pkg.tar.zst\n\n%NAME%\nzstd\n\n%VERSION%\n1.5.6-1\n\n"
            b"%DESC%\nZstandard  -  fast\treal-time compression\nsecond line\n\n%CSIZE%\n1\n\n"
            b"%SHA256SUM%\n" + b"a" * 64 + b"\n\n%ARCH%\nx86_64\n\n%PACKAGER%\nA <a@example.org>\n\n")
    assert parse_desc(desc).desc == "Zstandard - fast real-time compression"
    assert parse_desc(desc.replace(b"%DESC%", b"%XDESC%")).desc is None
