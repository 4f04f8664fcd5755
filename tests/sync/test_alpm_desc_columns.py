"""`parse_descs`'s one-match reading of repo-add's descs gives what `parse_desc` gives, desc by desc.

The reference is `parse_desc` on each desc alone (its fields, or the reason it is left out);
`parse_descs` must give the same columns, rows and reasons for regular descs, descs of every
odd shape that are still valid, broken ones, and thousands of random mutations of both.
"""

from __future__ import annotations

import random

import pytest

from jobs.core.model.limits import DESCRIPTION_MAX
from jobs.sync import alpm_desc
from jobs.sync.alpm_desc import Desc, Descs, InvalidDesc, parse_desc, parse_descs
from tests.sync.alpm_builders import desc


def reference(datas: list[bytes]) -> Descs:
    rows, index, invalid = [], [], {}
    for i, data in enumerate(datas):
        try:
            rows.append(parse_desc(data))
            index.append(i)
        except InvalidDesc as exc:
            invalid[i] = exc.reason
    columns = [list(column) for column in zip(*rows)] if rows else [[] for _ in Desc._fields]
    return Descs(*columns, index=index, invalid=invalid)


def regular(rnd: random.Random, i: int) -> str:
    name = f"pkg{i}-{rnd.getrandbits(20):x}"
    extra = "".join(f"%{key}%\n" + "\n".join(f"dep{rnd.getrandbits(12)}>=1.{k}" for k in range(rnd.randint(1, 5)))
                    + "\n\n" for key in ("PROVIDES", "DEPENDS", "OPTDEPENDS") if rnd.random() < 0.7)
    text = desc(name, f"{rnd.randint(0, 3)}:{rnd.randint(0, 99)}.{rnd.randint(0, 9)}-{rnd.randint(1, 4)}"
                if rnd.random() < 0.2 else f"{rnd.randint(0, 99)}.{rnd.randint(0, 9)}-1",
                base=rnd.choice([None, "", f"base{i}"]), arch=rnd.choice(["x86_64", "any"]), v1=rnd.random() < 0.3,
                packager=rnd.choice(["Jane Doe <jane@example.org>", "Levente Polyák <anthraxx@archlinux.org>"]),
                extra=extra)
    if rnd.random() < 0.5:  # a %PGPSIG% and a %GROUPS% as repo-add places them
        text = text.replace("%URL%", "%PGPSIG%\n" + "QUJD" * 150 + "\n\n%URL%", 1)
        text = text.replace("%CSIZE%", "%GROUPS%\nkde-applications\nkde-utilities\n\n%CSIZE%", 1)
    return text


def test_the_match_groups_are_taken_in_desc_field_order():
    assert alpm_desc._REGULAR_ORDER == tuple(alpm_desc._REGULAR.groupindex[key] for key in Desc._fields)


def test_regular_descs_take_the_one_match_and_give_parse_descs_fields():
    rnd = random.Random(1)
    texts = [regular(rnd, i) for i in range(400)]
    assert all(alpm_desc._REGULAR.match(t) for t in texts)
    datas = [t.encode() for t in texts]
    assert parse_descs(datas) == reference(datas)


ODD = [
    desc("a", extra="%DESC%\nsecond\n\n"),  # a second %DESC%: a section of its own, never read
    desc("a").replace("%DESC%\nThe a package\n\n", ""),  # no %DESC%
    desc("a").replace("%DESC%\nThe a package\n\n", "") + "%DEPENDS%\n%DESC%\nx\n\n",  # "%DESC%" in a list
    desc("a", filename="%DESC%"),
    desc("a", extra="%GROUPS%\n%DESC%\nx\n\n"),
    desc("a").replace("%NAME%", "%GROUPS%\n%DESC%\nx\n\n%NAME%"),
    desc("a").replace("The a package", ""),  # an empty %DESC%
    desc("a").replace("The a package", "%DESC%"),
    desc("a").replace("The a package", "  two  spaces\tand a tab "),
    desc("a").replace("The a package", "x" * (DESCRIPTION_MAX + 5)),
    desc("a").replace("The a package", "bidi \u202e text"),
    desc("a").replace("The a package", "é" * 30),
    desc("a", filename="a b.pkg.tar.zst"),
    desc("a", filename="é.pkg.tar.zst"),
    desc("a", filename="x" * 256),
    desc("a", filename="é" * 128),
    desc("a", filename=".a"),
    desc("a", filename="a/b"),
    desc("a", csize="9" * 19),
    desc("a", csize="9223372036854775807"),
    desc("a", csize="0" * 19),
    desc("a", csize="12a"),
    desc("a", packager="Bad\x01Packager"),
    desc("a", packager="%PACKAGER%"),
    desc("a", packager="\u00e9t\u00e9 <e@x>"),
    desc("a", version="1:2:3-1"),
    desc("a", version="1.0-1-1"),
    desc("a", version="1.0é-1"),
    desc("a", sha256="A" * 64),
    desc("a", sha256="g" * 64),
    desc("a", arch="x86-64"),
    desc("a", base="b", extra="%BASE%\nc\n\n"),
    desc("a", extra="%NAME%\nb\n\n"),
    desc("a", extra="%NAMES%\nb\n\n%NAME%x\ny\n\n"),
    desc("a", extra="%DEPENDS%\nx\n"),  # the last section without its blank line
    desc("a") + "\n",
    desc("a").rstrip("\n"),
    desc("a").replace("\n", "\r\n"),
    desc("a").replace("%CSIZE%\n1234\n", "%CSIZE%\n1234\n5678\n"),
    desc("a").replace("%ARCH%\nx86_64\n\n", ""),
    desc("a").replace("%ARCH%\nx86_64\n\n", "%ARCH%\n\n\n"),
    desc("a").replace("%VERSION%", "%UNKNOWN%\nv\n\n%VERSION%"),
    desc("a").replace("%VERSION%", "%UNKNOWN%\n%v\n\n%VERSION%"),
    "\n" + desc("a"),
    "",
]


@pytest.mark.parametrize("text", ODD, ids=range(len(ODD)))
def test_an_odd_desc_gives_what_parse_desc_gives(text: str):
    datas = [desc("first").encode(), text.encode(), desc("last").encode()]
    assert parse_descs(datas) == reference(datas)


def test_invalid_utf8_and_a_mix_of_both_readings_give_what_parse_desc_gives():
    rnd = random.Random(2)
    datas = [b"\xff" + desc("x").encode(), *(t.encode() for t in ODD), *(regular(rnd, i).encode() for i in range(30))]
    rnd.shuffle(datas)
    assert parse_descs(datas) == reference(datas)


_BITS = ["%", "%DESC%", "%NAME%", "%BASE%", "\n", "\n\n", " ", "\t", "é", "\x00", "-", ":", "/", ".", "1", "a", "A",
         "\u2028", "\r", "%CSIZE%\n", "\n%DESC%\n", "9" * 19]


@pytest.mark.parametrize("seed", range(8))
def test_random_mutations_give_what_parse_desc_gives(seed: int):
    rnd = random.Random(seed)
    datas = []
    for i in range(250):
        text = regular(rnd, i)
        for _ in range(rnd.randint(1, 3)):
            at = rnd.randrange(len(text) + 1)
            roll = rnd.random()
            if roll < 0.4:
                text = text[:at] + rnd.choice(_BITS) + text[at:]
            elif roll < 0.7:
                text = text[:at] + text[at + rnd.randint(1, 12):]
            else:  # a whole section moved or repeated
                sections = text.split("\n\n")
                j = rnd.randrange(len(sections))
                sections.insert(rnd.randrange(len(sections) + 1), sections[j] if rnd.random() < 0.5
                                else sections.pop(j))
                text = "\n\n".join(sections)
        datas.append(text.encode())
    assert parse_descs(datas) == reference(datas)
