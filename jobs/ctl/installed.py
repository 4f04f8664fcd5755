"""`rebuildctl verify --installed`: the packages installed here against rebuilders' published verdicts.

What arch-repro-status (pacman) and debian-repro-status (dpkg) do
(docs/design.md#feeds-that-existing-tools-read), with one
matching rule for both: an installed package is reproduced when its exact (name, version,
architecture) is GOOD at K rebuilders, counted by their public keys (two URLs of one
rebuilder are one vote). Like those tools this trusts the published status, not a
signature: the installed files are no longer the package files (`verify FILE` checks those).

Databases: pacman's local database (`<dbpath>/local/<name>-<version>/desc`, dbpath
/var/lib/pacman as `pacman -b`) and dpkg's status file (`<admindir>/status`, admindir
/var/lib/dpkg as `dpkg --admindir`; only packages whose state is "installed").
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

from jobs.core import urls
from jobs.core.errors import TerminalError
from jobs.core.model import Status
from jobs.ctl.commands import ARCH_INDEPENDENT, Filters, list_packages
from jobs.ctl.feeds import FeedNotFound, Site

PACMAN_DBPATH = Path("/var/lib/pacman")
DPKG_ADMINDIR = Path("/var/lib/dpkg")
DISTRO_OF = {"pacman": "archlinux", "dpkg": "debian"}  # the distro whose feeds a database is matched with
_RANK = {Status.GOOD: 0, Status.BAD: 1, Status.FAIL: 2, Status.UNKWN: 3}


class NoDatabase(TerminalError):
    """No pacman or dpkg database where we looked, or one that holds no installed package; the message names it."""


@dataclass(frozen=True)
class InstalledPackage:
    name: str
    version: str
    architecture: str


@dataclass(frozen=True)
class Database:
    kind: str  # "pacman" or "dpkg"
    path: str
    packages: list[InstalledPackage]

    @property
    def description(self) -> str:
        """What was read, in words: "the pacman local database /var/lib/pacman/local"."""
        return f"the {KIND_NAMES[self.kind]} {self.path}"


KIND_NAMES = {"pacman": "pacman local database", "dpkg": "dpkg status file"}


# --- reading the local databases ------------------------------------------------------------

def _desc_fields(text: str) -> dict[str, str]:
    """The first value of every %SECTION% of a pacman desc file."""
    fields: dict[str, str] = {}
    lines = text.splitlines()
    for i, line in enumerate(lines[:-1]):
        if len(line) > 2 and line[0] == line[-1] == "%" and (i == 0 or not lines[i - 1]):
            fields.setdefault(line[1:-1], lines[i + 1])
    return fields


def read_pacman_local(local: Path) -> list[InstalledPackage]:
    """Installed packages from a pacman local database directory (`…/local`)."""
    out = []
    for entry in sorted(local.iterdir()):
        try:
            fields = _desc_fields((entry / "desc").read_text(encoding="utf-8", errors="replace"))
        except (NotADirectoryError, FileNotFoundError):
            continue  # ALPM_DB_VERSION and other files
        if all(fields.get(k) for k in ("NAME", "VERSION", "ARCH")):
            out.append(InstalledPackage(fields["NAME"], fields["VERSION"], fields["ARCH"]))
    return out


def read_dpkg_status(status: Path) -> list[InstalledPackage]:
    """Installed packages ("install ok installed", "hold ok installed") from a dpkg status file."""
    return _read_dpkg_status(status)[0]


def _read_dpkg_status(status: Path) -> tuple[list[InstalledPackage], int]:
    """The installed packages of a dpkg status file, and how many package stanzas it has in all."""
    from debian.deb822 import Deb822

    out, stanzas = [], 0
    with open(status, encoding="utf-8", errors="replace") as fh:
        for para in Deb822.iter_paragraphs(fh, use_apt_pkg=False):
            if not para.get("Package"):
                continue
            stanzas += 1
            state = para.get("Status", "").split()
            if state[-1:] == ["installed"] and all(para.get(k) for k in ("Version", "Architecture")):
                out.append(InstalledPackage(para["Package"], para["Version"], para["Architecture"]))
    return out, stanzas


def open_database(dbpath: Path | None = None) -> Database:
    """The package database at `dbpath` (pacman dbpath, its `local` dir, dpkg admindir or status file),
    else the system's: /var/lib/pacman/local, then /var/lib/dpkg/status.

    NoDatabase when there is none, when `dbpath` is neither kind, or when the database holds no
    installed package: "0 of 0 reproduced" would pass for a verified system.
    """
    if dbpath is not None:
        candidates = [dbpath / "local", dbpath / "status", dbpath] if dbpath.is_dir() else [dbpath]
    else:
        candidates = [PACMAN_DBPATH / "local", DPKG_ADMINDIR / "status"]
    for path in candidates:
        if path.is_file():
            try:
                packages, stanzas = _read_dpkg_status(path)
            except (OSError, ValueError) as exc:
                raise NoDatabase(f"cannot read {path} as a dpkg status file: {exc}") from None
            if not stanzas:
                raise NoDatabase(f"{path} is neither a pacman local database nor a dpkg status file "
                                 "(it has no \"Package:\" stanza); pass --dbpath the pacman dbpath or dpkg admindir")
            return _not_empty(Database("dpkg", str(path), packages),
                              f" ({stanzas} package stanzas, none in state \"installed\")")
        if path.is_dir() and (path.name == "local" or any(path.glob("*/desc"))):
            return _not_empty(Database("pacman", str(path), read_pacman_local(path)),
                              " (no <name>-<version>/desc entry with NAME, VERSION and ARCH)")
    if dbpath is not None and dbpath.exists():
        raise NoDatabase(f"{dbpath} is neither a pacman local database nor a dpkg status file, and holds "
                         "neither (no local/ or status in it)")
    raise NoDatabase("no pacman local database or dpkg status file at " + " or ".join(map(str, candidates))
                     + "; pass --dbpath")


def _not_empty(db: Database, why: str) -> Database:
    if not db.packages:
        raise NoDatabase(f"no installed package in {db.description}{why}; nothing to verify")
    return db


# --- what the rebuilders say --------------------------------------------------------------

def published_statuses(site: Site, distro: str, architectures: Iterable[str]) -> dict[tuple[str, str, str], Status]:
    """(name, version, artifact architecture) → best status, from the v1 status feeds or the v0 list."""
    archs = set(architectures) | set(ARCH_INDEPENDENT)
    found: dict[tuple[str, str, str], Status] = {}

    def add(key: tuple[str, str, str], status: Status) -> None:
        if key not in found or _RANK[status] < _RANK[found[key]]:
            found[key] = status

    try:
        rows = list_packages(site, Filters(distro=distro), architectures=archs)
    except FeedNotFound:  # a rebuilderd, or a site without v1 feeds: the v0 list, as the old tools read it
        records = site.json(f"{urls.PKGS_LIST}?{urlencode({'distro': distro})}")
        for r in records if isinstance(records, list) else []:
            if r.get("distro", distro) == distro:
                add((r.get("name"), r.get("version"), r.get("architecture")), Status.parse(r.get("status") or "UNKWN"))
        return found
    for row in rows:
        add((row.name, row.version, row.architecture), Status(row.status))
    return found


def identity(site: Site) -> str:
    """What makes two rebuilders one: their published keys, else their URL."""
    from jobs.core.signing import KeyFormatError, load_public_keys_feed, public_key_b64

    try:
        keys = load_public_keys_feed(site.json(urls.PUBLIC_KEYS))
    except (FeedNotFound, KeyFormatError):
        keys = []
    return ",".join(sorted(public_key_b64(k) for k in keys)) or site.base


@dataclass(frozen=True)
class InstalledStatus:
    """One installed package and what the rebuilders say about it."""

    name: str
    version: str
    architecture: str
    status: str  # GOOD when reproduced by K rebuilders, else the most telling status, UNKWN if unlisted
    listed: bool
    confirmations: int  # distinct rebuilders that say GOOD
    statuses: dict[str, str | None]  # rebuilder URL -> its status, None if it does not list the package

    @property
    def reproduced(self) -> bool:
        return self.status == Status.GOOD.value


@dataclass(frozen=True)
class InstalledReport:
    database: Database
    rebuilders: list[str]
    distro: str
    threshold: int
    packages: list[InstalledStatus] = field(default_factory=list)

    @property
    def reproduced(self) -> int:
        return sum(p.reproduced for p in self.packages)

    def counts(self) -> dict[str, int]:
        c = Counter(p.status if p.listed else "not listed" for p in self.packages)
        return {k: c.get(k, 0) for k in ("GOOD", "BAD", "FAIL", "UNKWN", "not listed")}

    def summary(self) -> str:
        """arch-repro-status' summary: "N/M packages reproduced", and what the others are."""
        c = self.counts()
        return (f"{self.reproduced}/{len(self.packages)} packages reproduced ({c['BAD']} BAD, {c['FAIL']} FAIL, "
                f"{c['UNKWN']} UNKWN, {c['not listed']} not listed)")


def check_installed(database: Database, rebuilders: Sequence[Site], threshold: int = 1,
                    distro: str | None = None) -> InstalledReport:
    """Match every installed package against every rebuilder's published status."""
    if threshold < 1:
        raise ValueError("threshold must be at least 1")
    distro = distro or DISTRO_OF[database.kind]
    archs = {p.architecture for p in database.packages}
    published = [(site.base, identity(site), published_statuses(site, distro, archs)) for site in rebuilders]
    report = InstalledReport(database, [s.base for s in rebuilders], distro, threshold)
    for p in sorted(database.packages, key=lambda p: (p.name, p.architecture)):
        key = (p.name, p.version, p.architecture)
        statuses = {url: found[key].value if key in found else None for url, _, found in published}
        good = {ident for url, ident, found in published if found.get(key) is Status.GOOD}
        seen = [Status(s) for s in statuses.values() if s is not None]
        if len(good) >= threshold:
            status = Status.GOOD
        else:
            status = min((s for s in seen if s is not Status.GOOD), key=_RANK.get, default=Status.UNKWN)
        report.packages.append(InstalledStatus(p.name, p.version, p.architecture, status.value, bool(seen),
                                               len(good), statuses))
    return report
