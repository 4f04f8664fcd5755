"""pacman's version comparison, `alpm_pkg_vercmp` (libalpm `lib/libalpm/version.c`), in Python.

A version is `[epoch:]pkgver[-pkgrel]`, split as `parseEVR` does: leading digits followed
by `:` are the epoch ("0" if absent or empty); the pkgrel is the text after the *last* `-`
and may be absent. Epochs, then pkgvers, then pkgrels are compared with `rpmvercmp`; the
pkgrel only if both sides have one, so `1.5-1` equals `1.5` (vercmp(8)). Hence vercmp is not
transitive across versions with and without pkgrel: do not sort a mix of the two with it.

`rpmvercmp` walks both strings segment by segment:
- bytes that are not ASCII letters or digits separate segments; when the two separator runs
  before a segment differ in length, the longer one is newer (`1..0` > `1.0`); `~` and `+`
  are plain separators (unlike dpkg, `1.0~rc1` > `1.0`);
- a segment is a maximal run of digits or of letters; digits against letters: digits win;
- digit runs compare as numbers of any length (leading zeros dropped, more digits wins, then
  bytewise); letter runs compare bytewise (`A` < `a`);
- when one side runs out, a remaining letter segment is older and anything else is newer:
  `1.0a < 1.0 < 1.0.a < 1.0.1`.

Strings are compared as the C code sees them: their UTF-8 bytes up to the first NUL, with the
C locale's character classes (so `é` is a two-byte separator).

`VERSION_ORDER` names the order of each distro's versions: pacman's for Arch (it fits
rpm-style versions too), dpkg's (python-debian's `version_compare`) for Debian.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from debian.debian_support import version_compare

_DIGITS = re.compile(rb"[0-9]*")
_ALPHAS = re.compile(rb"[A-Za-z]*")
_SEPARATORS = re.compile(rb"[^A-Za-z0-9]*")


def _isalpha(s: bytes, i: int) -> bool:
    return i < len(s) and (65 <= s[i] <= 90 or 97 <= s[i] <= 122)


def rpmvercmp(a: bytes, b: bytes) -> int:
    """Compare two version segments (epoch, pkgver or pkgrel): -1, 0 or 1."""
    if a == b:
        return 0
    one = two = 0  # start of the current segment in a, b
    end1 = end2 = 0  # end of the previous segment
    while one < len(a) and two < len(b):
        one, two = _SEPARATORS.match(a, one).end(), _SEPARATORS.match(b, two).end()
        if one == len(a) or two == len(b):
            break
        if one - end1 != two - end2:  # separator runs of different length
            return -1 if one - end1 < two - end2 else 1
        isnum = 48 <= a[one] <= 57
        segment = _DIGITS if isnum else _ALPHAS
        end1, end2 = segment.match(a, one).end(), segment.match(b, two).end()
        if end2 == two:  # b has the other kind of segment here: numbers are newer
            return 1 if isnum else -1
        s1, s2 = a[one:end1], b[two:end2]
        if isnum:
            s1, s2 = s1.lstrip(b"0"), s2.lstrip(b"0")
            if len(s1) != len(s2):
                return 1 if len(s1) > len(s2) else -1
        if s1 != s2:
            return 1 if s1 > s2 else -1
        one, two = end1, end2
    if one == len(a) and two == len(b):
        return 0  # only the separators differed
    # The final showdown: a remaining letter segment is older, anything else newer.
    if (one == len(a) and not _isalpha(b, two)) or _isalpha(a, one):
        return -1
    return 1


def parse_evr(version: bytes) -> tuple[bytes, bytes, bytes | None]:
    """Split `[epoch:]pkgver[-pkgrel]` into (epoch, pkgver, pkgrel or None), as libalpm's parseEVR."""
    s = _DIGITS.match(version).end()
    dash = version.rfind(b"-", s)
    if version[s:s + 1] == b":":
        epoch, start = version[:s] or b"0", s + 1
    else:
        epoch, start = b"0", 0
    if dash == -1:
        return epoch, version[start:], None
    return epoch, version[start:dash], version[dash + 1:]


def _c_string(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape").split(b"\0", 1)[0]


def vercmp(a: str, b: str) -> int:
    """pacman's `vercmp a b`: 1 if a is newer, 0 if equal, -1 if b is newer."""
    x, y = _c_string(a), _c_string(b)
    if x == y:
        return 0
    epoch1, ver1, rel1 = parse_evr(x)
    epoch2, ver2, rel2 = parse_evr(y)
    ret = rpmvercmp(epoch1, epoch2)
    if ret == 0:
        ret = rpmvercmp(ver1, ver2)
        if ret == 0 and rel1 is not None and rel2 is not None:
            ret = rpmvercmp(rel1, rel2)
    return ret


# Which version is "latest", per distro (pacman's order fits rpm-style versions too).
VERSION_ORDER: dict[str, Callable[[str, str], int]] = {"archlinux": vercmp, "debian": version_compare}
