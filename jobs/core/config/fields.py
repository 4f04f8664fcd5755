"""Typed settings: every config dataclass field states its TOML key, type, default and meaning.

One description drives both validation (``parse_table``) and documentation (``reference``), so the
two cannot drift apart. ``parse_table`` walks a dataclass's settings, rejects unknown keys with a
did-you-mean hint and names the exact dotted key on every error.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any

from jobs.core.config.kinds import Invalid, Kind, Where, describe
from jobs.core.errors import ConfigError


class Table(Kind):
    """A TOML table ``[key]`` parsed into the dataclass ``cls``."""

    text, expected = "table", "a table"

    def __init__(self, cls: type) -> None:
        self.cls = cls

    def parse(self, value: object, at: Where) -> Any:
        return parse_table(self.cls, value, at)


class TableMap(Kind):
    """Tables named by the user, ``[key."<name>"]``, parsed into ``{name: cls}``."""

    text, expected = "tables", "a table of tables"

    def __init__(self, cls: type, placeholder: str, *, name_field: str | None = None,
                 check_name: Callable[[str, Where], None] | None = None) -> None:
        self.cls, self.placeholder = cls, placeholder
        self.name_field, self.check_name = name_field, check_name

    def parse(self, value: object, at: Where) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.wrong(value, at)
        out = {}
        for name, table in value.items():
            where = at.entry(name)
            if self.check_name is not None:
                self.check_name(name, where)
            extra = {self.name_field: name} if self.name_field else {}
            out[name] = parse_table(self.cls, table, where, **extra)
        return out


class TableList(Kind):
    """An array of tables (``include = [{...}, ...]``), parsed into a tuple of ``cls``."""

    text, expected = "list of tables", "a list of tables"

    def __init__(self, cls: type) -> None:
        self.cls = self.item_cls = cls

    def parse(self, value: object, at: Where) -> tuple[Any, ...]:
        if not isinstance(value, list):
            raise self.wrong(value, at)
        return tuple(parse_table(self.cls, item, at.index(i)) for i, item in enumerate(value))


@dataclass(frozen=True)
class Alias:
    """A legacy key folded into a list setting (rebuilderd's ``suite`` into ``components``)."""

    key: str
    kind: Kind
    doc: str


@dataclass(frozen=True)
class Setting:
    """What the reference and the parser know about one field: key, kind, meaning."""

    kind: Kind
    doc: str
    key: str = ""
    default_text: str | None = None
    aliases: tuple[Alias, ...] = ()


def setting(kind: Kind, doc: str, *, default: Any = MISSING, default_factory: Any = MISSING,
            key: str = "", default_text: str | None = None, aliases: tuple[Alias, ...] = ()) -> Any:
    """A dataclass field carrying its Setting; no default means the key is required."""
    meta = {"setting": Setting(kind, doc, key, default_text, aliases)}
    return field(default=default, default_factory=default_factory, metadata=meta)


def settings_of(cls: type) -> Iterator[tuple[Field[Any], Setting]]:
    """The fields of ``cls`` that are TOML keys, in declaration (= reference) order."""
    for f in fields(cls):
        if "setting" in f.metadata:
            yield f, f.metadata["setting"]


def toml_key(f: Field[Any], s: Setting) -> str:
    """The TOML key of a field (its name unless the Setting says otherwise)."""
    return s.key or f.name


def is_required(f: Field[Any]) -> bool:
    """A field without any default must be present in the file."""
    return f.default is MISSING and f.default_factory is MISSING


def _unknown_key(key: str, known: list[str], at: Where) -> ConfigError:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return at.child(key).error(f"unknown key{hint}", "one of: " + ", ".join(sorted(known)))


def parse_table(cls: type, raw: object, at: Where, **extra: Any) -> Any:
    """Build dataclass ``cls`` from TOML table ``raw``; ``extra`` fills fields that are not keys."""
    if not isinstance(raw, dict):
        raise at.error(f"wrong type: {describe(raw)}", "a table")
    accepted = {toml_key(f, s) for f, s in settings_of(cls)}
    accepted |= {a.key for _, s in settings_of(cls) for a in s.aliases}
    for key in raw:
        if key not in accepted:
            raise _unknown_key(key, sorted(accepted), at)
    values = dict(extra)
    for f, s in settings_of(cls):
        key = toml_key(f, s)
        if s.aliases:
            found = [a.kind.parse(raw[a.key], at.child(a.key)) for a in s.aliases if a.key in raw]
            if key in raw:
                found.append(s.kind.parse(raw[key], at.child(key)))
            if found:
                flat = [x for v in found for x in (v if isinstance(v, tuple) else (v,))]
                values[f.name] = tuple(dict.fromkeys(flat))  # union, first spelling's order
        elif key in raw:
            values[f.name] = s.kind.parse(raw[key], at.child(key))
        if f.name not in values and is_required(f):
            raise at.child(key).error("missing required key", s.kind.expected)
    try:
        return cls(**values)
    except Invalid as e:
        raise at.child(e.key).error(e.message, e.expected) from None
