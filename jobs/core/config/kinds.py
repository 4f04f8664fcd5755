"""Scalar value kinds of config settings, and how a position in a config file is named.

A Kind checks one TOML value and converts it; its ``text`` is the type column of the reference and
``expected`` completes the error message "(expected ...)". ``Where`` names the file and the dotted
key (``profile."arch-core".architectures[1]``) so every error points at the offending value.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

from jobs.core.errors import ConfigError
from jobs.core.signing.strength import GENERATE, secret_problem

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
# Profile and backend names become parts of object keys and file names: no '/', no spaces, no '..'.
SAFE_NAME_MAX = 64  # the `profile_name` limit of jobs.core.bounded.LIMITS (a test keeps them equal)
_SAFE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,%d}" % (SAFE_NAME_MAX - 1))
SAFE_NAME_RULE = f"letters, digits, '-', '_' and '.', not starting with '.', at most {SAFE_NAME_MAX} characters"


class Invalid(ValueError):
    """A cross-field check failed in a config dataclass; ``parse_table`` adds the file and key."""

    def __init__(self, key: str, message: str, expected: str | None = None) -> None:
        super().__init__(f"{key}: {message}")
        self.key, self.message, self.expected = key, message, expected


@dataclass(frozen=True)
class Where:
    """A position in a config file (file path + dotted TOML key), used to word errors."""

    path: str
    key: str = ""

    def child(self, key: str) -> Where:
        """The position of ``key`` inside this table."""
        part = key if _BARE_KEY.fullmatch(key) else quote_key(key)
        return Where(self.path, f"{self.key}.{part}" if self.key else part)

    def entry(self, name: str) -> Where:
        """The position of a user-named table (profile, endpoint, backend), always quoted."""
        return Where(self.path, f"{self.key}.{quote_key(name)}" if self.key else quote_key(name))

    def index(self, i: int) -> Where:
        """The position of item ``i`` of the array at this position."""
        return Where(self.path, f"{self.key}[{i}]")

    def error(self, message: str, expected: str | None = None) -> ConfigError:
        """A ConfigError located here."""
        return ConfigError(message, path=self.path or None, key=self.key or None, expected=expected)


def quote_key(name: str) -> str:
    """Quote a TOML key the way users write it (``"arch-core"``); TOML basic strings escape like JSON."""
    return json.dumps(name, ensure_ascii=False)


def check_safe_name(name: str, at: Where) -> None:
    """Refuse a user-chosen table name that cannot be used as part of an object key."""
    if not _SAFE_NAME.fullmatch(name):
        raise at.error(f"name {quote_key(name)} is not allowed (it becomes part of object keys)",
                       f"a name of {SAFE_NAME_RULE}")


def describe(value: object) -> str:
    """Name a parsed TOML value's type for an error message, with a short preview of it."""
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int):
        return f"an integer ({value})"
    if isinstance(value, float):
        return f"a float ({value})"
    if isinstance(value, str):
        preview = value if len(value) <= 40 else value[:37] + "..."
        return f"a string ({quote_key(preview)})"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, (datetime, date, time)):
        return "a date/time"
    return type(value).__name__


class Kind:
    """How one TOML value is checked and converted; ``text`` is the reference's type column."""

    text = "value"
    expected = "a value"

    def parse(self, value: object, at: Where) -> Any:
        """Validate and convert ``value`` found at ``at``; raise ConfigError when it does not fit."""
        raise NotImplementedError

    def wrong(self, value: object, at: Where) -> ConfigError:
        """The error for a value of the wrong type."""
        return at.error(f"wrong type: {describe(value)}", self.expected)


class Str(Kind):
    """A non-empty string: an empty secret, path or name is always a mistake."""

    text, expected = "string", "a non-empty string"

    def parse(self, value: object, at: Where) -> str:
        if not isinstance(value, str):
            raise self.wrong(value, at)
        if not value.strip():
            raise at.error("empty string", self.expected)
        return value


class Secret(Str):
    """A shared secret that keys HMACs stored in the bucket: at least 128 bits of randomness."""

    text = "secret string (>= 128 bits)"
    expected = f"a random secret, e.g. from {GENERATE}"

    def parse(self, value: object, at: Where) -> str:
        text = super().parse(value, at)
        problem = secret_problem(text)
        if problem is not None:
            raise at.error(problem)  # never quotes the secret
        return text


class Url(Str):
    """A string that must start with one of the given URL schemes."""

    def __init__(self, *schemes: str) -> None:
        self.schemes = schemes
        self.text = "URL (" + ", ".join(f"`{s}://`" for s in schemes) + ")"
        self.expected = "a URL starting with " + " or ".join(f"{s}://" for s in schemes)

    def parse(self, value: object, at: Where) -> str:
        text = super().parse(value, at)
        if not any(text.startswith(f"{s}://") for s in self.schemes):
            raise at.error(f"not a supported URL: {quote_key(text)}", self.expected)
        return text


class HostPort(Str):
    """A listen address ``host:port`` (``[::1]:8484`` for IPv6)."""

    text, expected = "`host:port`", "an address like 127.0.0.1:8484"

    def parse(self, value: object, at: Where) -> str:
        text = super().parse(value, at)
        host, _, port = text.rpartition(":")
        if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise at.error(f"not a host:port address: {quote_key(text)}", self.expected)
        return text


class Int(Kind):
    """An integer with a lower bound; booleans are refused although Python calls them ints."""

    def __init__(self, minimum: int = 0) -> None:
        self.minimum = minimum
        self.text = f"integer >= {minimum}"
        self.expected = f"an integer >= {minimum}"

    def parse(self, value: object, at: Where) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.wrong(value, at)
        if value < self.minimum:
            raise at.error(f"{value} is out of range", self.expected)
        return value


class Bool(Kind):
    """``true`` or ``false``; the strings "yes"/"true" are refused, TOML has real booleans."""

    text, expected = "boolean", "true or false"

    def parse(self, value: object, at: Where) -> bool:
        if not isinstance(value, bool):
            raise self.wrong(value, at)
        return value


def _glob_problem(pattern: str) -> str | None:
    """Why rebuilderd's Rust ``glob::Pattern`` would refuse ``pattern`` (only the unclosed ``[``)."""
    i = 0
    while i < len(pattern):
        if pattern[i] == "[":
            j = i + 1
            if j < len(pattern) and pattern[j] == "!":
                j += 1
            # a ']' right after '[' or '[!' is a member of the set, not its end
            end = pattern.find("]", j + 1)
            if end < 0:
                return "unclosed '[' in glob pattern"
            i = end
        i += 1
    return None


class StrList(Kind):
    """An array of non-empty strings, returned as a tuple; with ``glob=True`` each is a glob pattern."""

    def __init__(self, *, glob: bool = False) -> None:
        self.glob = glob
        self.text = "list of glob patterns" if glob else "list of strings"
        self.expected = "a list of glob patterns" if glob else "a list of strings"

    def parse(self, value: object, at: Where) -> tuple[str, ...]:
        if not isinstance(value, list):
            raise self.wrong(value, at)
        items = []
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                raise at.index(i).error(f"wrong item: {describe(item)}", self.expected)
            if self.glob and (problem := _glob_problem(item)):
                raise at.index(i).error(f"{problem}: {quote_key(item)}", self.expected)
            items.append(item)
        return tuple(items)
