"""``/etc/rebuilderd-sync.conf``: sync profiles, one ``[profile."<name>"]`` table each.

Key names are rebuildctl's (``tools/src/config.rs``, ``tools/src/rules.rs``). rebuilderd renamed
keys over time (``suite`` -> ``components``, ``architecture`` -> ``architectures``); every
spelling is accepted and folded into one normalised field, so the sync code sees one shape.
``keyring`` and ``buildinfo_base_url`` are ours.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from jobs.core.config.fields import Alias, TableList, TableMap, parse_table, setting
from jobs.core.config.kinds import Bool, Kind, Str, StrList, Url, Where, check_safe_name, describe, quote_key
from jobs.core.errors import ConfigError

DEFAULT_BUILDINFO_BASE_URL = "https://buildinfos.debian.net/buildinfo-pool"

# The index parsers `rebuilder sync` has (jobs.sync.run.PARSERS; a test keeps the two equal).
SYNC_METHODS = ("archlinux", "debian")
# Keys only the Debian parser reads. A profile of another sync method that sets one is refused,
# and `check-config` does not show them for it.
DEBIAN_ONLY_KEYS = ("releases", "keyring", "buildinfo_base_url")
# What each parser cannot work without (each may also be spelled with a legacy alias).
REQUIRED_LISTS = {
    "archlinux": (("components", 'repositories, e.g. ["core", "extra"]'),
                  ("architectures", 'e.g. ["x86_64"]')),
    "debian": (("releases", 'suites, e.g. ["trixie"]'), ("components", 'e.g. ["main"]'),
               ("architectures", 'e.g. ["all", "amd64"]')),
}


@dataclass(frozen=True)
class Release:
    """One release (Debian suite) of a profile, optionally from its own mirror."""

    name: str = setting(Str(), "Release name, e.g. `trixie-backports`.")
    source: str | None = setting(
        Str(), "Mirror for this release only; unset: the profile's `source`.", default=None)


class ReleaseList(Kind):
    """rebuilderd 0.27 ``releases``: each item a name or a ``{name, source}`` table."""

    item_cls = Release  # its keys get their own reference rows
    text = "list of strings or `{name, source}` tables"
    expected = "a list of release names or {name, source} tables"

    def parse(self, value: object, at: Where) -> tuple[Release, ...]:
        if not isinstance(value, list):
            raise self.wrong(value, at)
        out = []
        for i, item in enumerate(value):
            if isinstance(item, str):
                out.append(Release(Str().parse(item, at.index(i))))
            elif isinstance(item, dict):
                out.append(parse_table(Release, item, at.index(i)))
            else:
                raise at.index(i).error(f"wrong item: {describe(item)}", self.expected)
        return tuple(out)


@dataclass(frozen=True)
class IncludeRule:
    """One ``include`` rule; the first rule matching a package decides (rebuilderd >= 0.27 HEAD)."""

    exclude: bool = setting(Bool(), "`true`: a matching package is skipped instead of taken.",
                            default=False)
    component: str | None = setting(Str(), "Matches only this component.", default=None)
    binary_pkgs: tuple[str, ...] = setting(
        StrList(glob=True), "Matches if any glob matches the binary package name.", default=())
    source_pkgs: tuple[str, ...] = setting(
        StrList(glob=True), "Matches if any glob matches the source package name.", default=())
    maintainer: str | None = setting(
        Str(), "Matches if any maintainer starts with this string.", default=None)


@dataclass(frozen=True)
class SyncProfile:
    """One ``[profile."<name>"]``: which packages of which repository to rebuild."""

    name: str  # the table's name, not a key inside it
    distro: str = setting(Str(), "Distribution, e.g. `archlinux`, `debian`.")
    source: str = setting(
        Str(), "Mirror URL (or local path); `$repo` and `$arch` are substituted, e.g. "
        "`https://mirror/archlinux/$repo/os/$arch`.")
    sync_method: str | None = setting(
        Str(), "Index parser to use.", default=None, default_text="`distro`")
    components: tuple[str, ...] = setting(
        StrList(), "Arch: repositories (`core`, `extra`); Debian: components (`main`, "
        "`main/debian-installer`).", default=(), aliases=(
            Alias("suite", Str(), "Legacy spelling of one `components` entry."),
            Alias("suites", StrList(), "Legacy spelling of `components`."),
        ))
    architectures: tuple[str, ...] = setting(
        StrList(), "Architectures to import; Debian needs `all` listed to get arch:all packages.",
        default=(), aliases=(
            Alias("architecture", Str(), "Legacy spelling of one `architectures` entry."),
        ))
    releases: tuple[Release, ...] = setting(
        ReleaseList(), "Releases to import (Debian suites), merged into one set; Arch has none.",
        default=())
    maintainers: tuple[str, ...] = setting(
        StrList(), "Legacy filter: take packages with a maintainer starting with one of these.",
        default=(), aliases=(Alias("maintainer", StrList(), "Oldest spelling of `maintainers`."),))
    pkgs: tuple[str, ...] = setting(
        StrList(glob=True), "Legacy filter: take packages whose binary name matches a glob.",
        default=())
    excludes: tuple[str, ...] = setting(
        StrList(glob=True), "Skip packages whose binary name matches a glob; always wins.",
        default=())
    include: tuple[IncludeRule, ...] = setting(
        TableList(IncludeRule), "Ordered rules; the first that matches takes or skips a package. "
        "With no filter at all every package is taken.", default=())
    keyring: str | None = setting(
        Str(), "OpenPGP keyring to verify the Debian `InRelease` files with; unset: not verified.",
        default=None)
    buildinfo_base_url: str = setting(
        Url("http", "https", "file"), "Where Debian `.buildinfo` files (the build inputs) are "
        "fetched from.", default=DEFAULT_BUILDINFO_BASE_URL)

    def __post_init__(self) -> None:
        if self.sync_method is None:
            # rebuildctl: "--sync-method selects parser, default = distro name"
            object.__setattr__(self, "sync_method", self.distro)


@dataclass(frozen=True)
class SyncConfig:
    """The whole of ``/etc/rebuilderd-sync.conf``."""

    profiles: dict[str, SyncProfile] = setting(
        TableMap(SyncProfile, "name", name_field="name", check_name=check_safe_name), "",
        key="profile", default_factory=dict)

    def profile(self, name: str) -> SyncProfile:
        """The profile called ``name``; a ConfigError with a did-you-mean hint if there is none."""
        if name in self.profiles:
            return self.profiles[name]
        close = difflib.get_close_matches(name, list(self.profiles), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"no such sync profile{hint}", key=f"profile.{quote_key(name)}",
                          expected="one of: " + (", ".join(sorted(self.profiles)) or "(none defined)"))


def is_debian(profile: SyncProfile) -> bool:
    """Whether the Debian parser reads this profile (and so its Debian-only keys)."""
    return profile.sync_method == "debian"


def _check_fit(profile: SyncProfile, table: dict, at: Where) -> None:
    """Refuse keys the profile's parser never reads, and a profile missing what its parser needs."""
    if profile.sync_method not in SYNC_METHODS:
        return  # `rebuilder sync` refuses the profile itself; check-config says so
    if not is_debian(profile):
        for key in DEBIAN_ONLY_KEYS:
            if key in table:
                raise at.child(key).error(
                    f"Debian-only key in a profile with sync method {profile.sync_method!r}, which never "
                    "reads it",
                    f"no {key} here: remove it (it is read only with sync_method \"debian\")")
    for key, example in REQUIRED_LISTS[profile.sync_method]:
        if not getattr(profile, key):
            raise at.child(key).error(f"a profile with sync method {profile.sync_method!r} needs {key}",
                                      f"a non-empty list: {example}")
    if is_debian(profile) and ("$repo" in profile.source or "$arch" in profile.source):
        raise at.child("source").error(
            "$repo/$arch are Arch mirror variables; a Debian source is the archive root",
            "a URL like https://deb.debian.org/debian")


def parse_sync_config(raw: dict, path: str = "") -> SyncConfig:
    """Validate a parsed ``rebuilderd-sync.conf`` table; ``path`` names the file in errors."""
    config = parse_table(SyncConfig, raw, Where(path))
    at = Where(path).child("profile")
    for name, profile in config.profiles.items():
        _check_fit(profile, raw["profile"][name], at.entry(name))
    return config
