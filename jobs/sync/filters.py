"""Profile filters, the same for every distro (rebuildctl's `rules.rs` semantics).

Per binary package:
1. a matching `excludes` glob skips it (always wins);
2. otherwise the first `include` rule that matches decides (take, or skip if `exclude = true`);
   a rule matches when every field it sets matches;
3. otherwise, with no `include`, `maintainers` or `pkgs` at all, the package is taken;
   else it is taken if a `maintainers` entry is a prefix of one of its maintainers or a
   `pkgs` glob matches its name (with both set, matching either includes).

Globs are matched against the whole name with `*`, `?` and `[...]`, as Rust's `glob::Pattern`.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache

from jobs.core.config import IncludeRule, SyncProfile
from jobs.sync.records import BinaryEntry


@lru_cache(maxsize=1024)
def _glob(pattern: str) -> re.Pattern[str]:
    return re.compile(fnmatch.translate(pattern))


def _any_glob(patterns: Sequence[str], name: str) -> bool:
    return any(_glob(p).match(name) for p in patterns)


def _any_prefix(prefixes: Sequence[str], maintainers: Sequence[str]) -> bool:
    return any(m.startswith(p) for p in prefixes for m in maintainers)


@dataclass(frozen=True)
class Filter:
    """The filters of one profile, compiled once."""

    excludes: tuple[str, ...]
    include: tuple[IncludeRule, ...]
    maintainers: tuple[str, ...]
    pkgs: tuple[str, ...]

    @classmethod
    def of(cls, profile: SyncProfile) -> Filter:
        """The filter a sync profile configures."""
        return cls(tuple(profile.excludes), tuple(profile.include), tuple(profile.maintainers),
                   tuple(profile.pkgs))

    @property
    def takes_everything(self) -> bool:
        """Whether `takes` is true of every entry (no filter configured): a parser may skip asking."""
        return not (self.excludes or self.include or self.maintainers or self.pkgs)

    def takes(self, entry: BinaryEntry) -> bool:
        """Whether this binary package is imported."""
        if _any_glob(self.excludes, entry.name):
            return False
        for rule in self.include:
            if _rule_matches(rule, entry):
                return not rule.exclude
        if not (self.include or self.maintainers or self.pkgs):
            return True
        return _any_prefix(self.maintainers, entry.maintainers) or _any_glob(self.pkgs, entry.name)


def _rule_matches(rule: IncludeRule, entry: BinaryEntry) -> bool:
    if rule.component is not None and rule.component != entry.component:
        return False
    if rule.binary_pkgs and not _any_glob(rule.binary_pkgs, entry.name):
        return False
    if rule.source_pkgs and not _any_glob(rule.source_pkgs, entry.source_name):
        return False
    if rule.maintainer is not None and not _any_prefix((rule.maintainer,), entry.maintainers):
        return False
    return True


def select(profile: SyncProfile, entries: Iterable[BinaryEntry]) -> Iterator[BinaryEntry]:
    """The entries a profile's filters take, in their original order."""
    flt = Filter.of(profile)
    return (e for e in entries if flt.takes(e))
