"""Debian: `Sources` + `Packages` of each release, component and architecture → build inputs.

rebuilderd's semantics (`tools/src/schedule/debian.rs`, docs/design.md#sync-import-and-friends):

- per release, the `Sources` of every component (`main/debian-installer` reads `main`'s) are
  read first; stanzas with `Extra-Source-Only: yes` are not real uploads and are left out;
- a binary's source is its `Source:` field (`name` or `name (version)`), else its own name and
  version; a binNMU's `+bN` version suffix is appended to the source version, so
  `acl 2.3.2-2` + binary `2.3.2-2+b1` is the build input `acl 2.3.2-2+b1`; a binary whose source
  is not listed is skipped ("No matching source package found");
- a binary is kept only if its `Architecture` is one of the profile's (`all` only if listed);
- one build input per (release, binary architecture, source, source version), with the input
  URL `<buildinfo_base_url>/<p>/<src>/<src>_<version without epoch>_<arch>.buildinfo` (`p`: the
  first 4 characters for `lib*` names, else the first). The same source version in two
  releases gives the same URL, backend and architecture, hence the same job (rebuilderd's
  "friends").

Ours on top: every index file is checked against the release's `InRelease` (`jobs.sync.inrelease`);
names, versions, architectures and file names are checked against Debian policy's character
sets before they go into a URL (and are URL-quoted as well); an arch:all package listed in both
`binary-all` and `binary-<arch>` is one artifact; maintainer filters see the binary's
`Maintainer` plus its source's `Maintainer` and `Uploaders` (rebuilderd looks for `Uploaders` in
`Packages`, where it never is, so its maintainer filters match nothing). Malformed stanzas are
returned as `Skipped` with their place. Removals need no empty report here: a snapshot replaces
the whole profile's state.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import NamedTuple
from urllib.parse import quote

from jobs.core import progress
from jobs.core.bounded import cap
from jobs.core.config import SyncProfile
from jobs.core.errors import ConfigError
from jobs.core.model.limits import (
    NAME_MAX,
    REASON_MAX,
    URL_MAX,
    VERSION_MAX,
    clean_description,
    entry_problem,
    field_problem,
)
from jobs.sync.deb822 import Stanza, iter_stanzas_stream
from jobs.sync.fetch import Fetcher
from jobs.sync.filters import Filter
from jobs.sync.inrelease import ReleaseIndex, fetch_release
from jobs.sync.records import BinaryEntry, BuildInput, IndexResult, Skipped

log = logging.getLogger(__name__)

BACKEND = "debian"
PACKAGES_FIELDS = ("Package", "Version", "Source", "Architecture", "Filename", "Size", "SHA256", "Maintainer",
                   "Description")
SOURCES_FIELDS = ("Package", "Version", "Extra-Source-Only", "Maintainer", "Uploaders")

# Debian policy §5.6.1 (names), §5.6.12 (versions); architectures and pool paths as dak writes them.
_NAME = re.compile(r"[a-z0-9][a-z0-9+.-]*\Z")
_VERSION = re.compile(r"(?:[0-9]+:[A-Za-z0-9][A-Za-z0-9.+~:-]*|[A-Za-z0-9][A-Za-z0-9.+~-]*)\Z")
_ARCH = re.compile(r"[a-z0-9][a-z0-9-]*\Z")
_PATH = re.compile(r"[A-Za-z0-9+_~-][A-Za-z0-9+._~-]*(?:/[A-Za-z0-9+_~-][A-Za-z0-9+._~-]*)*\Z")
_SHA256 = re.compile(r"[0-9a-f]{64}\Z")
_SOURCE = re.compile(r"(\S+)(?: \((\S+)\))?\Z")
_DIGITS = re.compile(r"[0-9]{1,18}\Z")  # a size: at most 18 digits, within the snapshot's int64
_BINNMU = re.compile(r"\+b[0-9]+\Z")
_START = re.compile(r"[^,\s]")  # where an address may start (`_addresses`)
_ANGLE = re.compile(r"[<>]")
_END = r"\Z"
# _NAME, _VERSION, _ARCH, _PATH, _SHA256 and _DIGITS in a row, one field a line (none of them admits a newline).
_PLAIN_BINARY = re.compile("\n".join(f"(?:{p.pattern.removesuffix(_END)})"
                                     for p in (_NAME, _VERSION, _ARCH, _PATH, _SHA256, _DIGITS)) + _END)
_URL_PLAIN = re.compile(r"[A-Za-z0-9_.~+-]*\Z")  # what `quote(..., safe="+~")` leaves as it is
_MAINTAINERS_MAX = cap("maintainers")
_MAX_FILENAME_BYTES = 255  # the worker writes the artifact under this name (alpm_desc has the same bound)


class SourcePackage(NamedTuple):  # a tuple: made for every Sources stanza, 3x faster than a frozen dataclass
    """One Sources stanza: what a binary is matched against."""

    name: str
    version: str
    maintainers: tuple[str, ...]


def read_index(profile: SyncProfile, fetcher: Fetcher, *, now: datetime | None = None,
               max_index_bytes: int | None = None, columns: bool = False) -> IndexResult:
    """The build inputs of a Debian profile, every index file checked against its release's InRelease.

    `columns`: the inputs as `result.columns` (`jobs.sync.debian_columns.DebianColumns`, what the
    sync job writes its snapshot and queue from) instead of a `BuildInput` each.
    """
    max_index_bytes = cap("index_download") if max_index_bytes is None else max_index_bytes
    for key in ("releases", "components", "architectures"):
        if not getattr(profile, key):
            raise ConfigError(f"a Debian profile needs {key}", key=f'profile."{profile.name}".{key}')
    result = IndexResult()
    groups: dict[tuple[str, str, str, str], dict[tuple[str, str, str, str | None], BinaryEntry]] = {}
    flt = Filter.of(profile)
    takes = None if flt.takes_everything else flt.takes
    for release in profile.releases:
        mirror = (release.source or profile.source).rstrip("/")
        # A release name may hold a slash (the old security suites, "buster/updates").
        dist = fetch_release(fetcher, f"{mirror}/dists/{quote(release.name, safe='/+~')}", release.name,
                             keyring=profile.keyring, now=now)
        result.sources[dist.inrelease_url] = dist.sha256
        result.validators[dist.inrelease_url] = dist.validator
        result.expires(dist.valid_until)
        components = [c for c in profile.components if _has_component(dist, c)]
        archs = [a for a in profile.architectures if _has_architecture(dist, a)]
        packages = _read_sources(components, dist, fetcher, release.name, result, max_index_bytes)
        # Each binary is filtered and grouped as it is read (never a list of the whole index). Those
        # without a source are reported after the malformed ones of the release, as when they were
        # gathered first.
        unmatched: list[Skipped] = []
        # An arch:all stanza read once already (binary-<arch> lists them too) → its entry: binary-all's copy is
        # the same entry again without checking and matching it a second time.
        seen_all: dict[tuple, dict[tuple, BinaryEntry]] = {}
        for component in components:
            for arch in archs:
                path = f"{component}/binary-{arch}/Packages"
                pieces = dist.fetch_pieces(fetcher, path, limit=max_index_bytes, sources=result.sources)
                count = 0
                for entry, problem in _binaries(pieces, f"{release.name}/{path}", profile, mirror, component,
                                                packages, result.skipped, seen_all):
                    count += 1
                    if takes is not None and not takes(entry):
                        continue
                    if problem is not None:
                        unmatched.append(problem)
                        continue
                    key = (release.name, entry.architecture, entry.source_name, entry.source_version)
                    group = groups.get(key)
                    if group is None:
                        group = groups[key] = {}
                    group.setdefault((entry.name, entry.version, entry.architecture, entry.component), entry)
                progress.advance("parse", count)
        result.skipped.extend(unmatched)
    base = profile.buildinfo_base_url.rstrip("/")
    if columns:
        from jobs.sync.debian_columns import DebianColumns

        result.columns = DebianColumns(
            [(release_name, arch, src, version, buildinfo_url(base, src, version, arch), list(artifacts.values()))
             for (release_name, arch, src, version), artifacts in sorted(groups.items())],
            distro=profile.distro, backend=BACKEND)
        return result
    for (release_name, arch, src, version), artifacts in sorted(groups.items()):
        result.inputs.append(BuildInput(
            distro=profile.distro, release=release_name, architecture=arch, backend=BACKEND, source_name=src,
            source_version=version, input_url=buildinfo_url(base, src, version, arch),
            artifacts=tuple(artifacts.values())))
    return result


def buildinfo_url(base: str, source: str, version: str, arch: str) -> str:
    """Where buildinfos.debian.net keeps the .buildinfo of one source version built on one architecture."""
    pool = source[:4] if source.startswith("lib") else source[:1]
    plain = version.split(":", 1)[1] if ":" in version else version
    return f"{base}/{_q(pool)}/{_q(source)}/{_q(f'{source}_{plain}_{arch}')}.buildinfo"


def _q(segment: str) -> str:
    return segment if _URL_PLAIN.match(segment) else quote(segment, safe="+~")


def _has_component(dist: ReleaseIndex, component: str) -> bool:
    """Whether the release carries this component (else: warn and skip it, as rebuilderd does on a 404).

    `Components:` names only top-level components; a sub-component such as
    `main/debian-installer` exists when InRelease lists files under it.
    """
    base = component.split("/", 1)[0]
    present = dist.components is None or base in dist.components
    if present and base != component:
        present = any(path.startswith(component + "/") for path in dist.files)
    if not present:
        log.warning("%s: no component %r in this release, skipping it", dist.inrelease_url, component)
    return present


def _has_architecture(dist: ReleaseIndex, arch: str) -> bool:
    """Whether the release carries this architecture (else: warn and skip)."""
    if dist.architectures is not None and arch not in dist.architectures:
        log.warning("%s: no architecture %r in this release, skipping it", dist.inrelease_url, arch)
        return False
    return True


def _read_sources(components: list[str], dist: ReleaseIndex, fetcher: Fetcher, release: str,
                  result: IndexResult, limit: int) -> dict[str, list[SourcePackage]]:
    """Source name → its stanzas, from the Sources of every component (udebs' come from the base component)."""
    sources: dict[str, list[SourcePackage]] = {}
    for base in dict.fromkeys(c.removesuffix("/debian-installer") for c in components):
        path = f"{base}/source/Sources"
        pieces = dist.fetch_pieces(fetcher, path, limit=limit, sources=result.sources)
        where = f"{release}/{path}"
        for st in iter_stanzas_stream(pieces, SOURCES_FIELDS):
            src = _source(st, where, result.skipped)
            if src is not None:
                sources.setdefault(src.name, []).append(src)
    return sources


def _source(st: Stanza, where: str, skipped: list[Skipped]) -> SourcePackage | None:
    f = st.fields
    problem = st.problem or _missing(f, ("Package", "Version"))
    if problem is None and not _NAME.match(f["Package"]):
        problem = f"invalid source package name {_shown(f['Package'])}"
    if problem is None:
        problem = field_problem("source name", f["Package"], NAME_MAX) or field_problem(
            "version", f["Version"], VERSION_MAX)
    if problem is None and not _VERSION.match(f["Version"]):
        problem = f"invalid version {_shown(f['Version'])}"
    if problem:
        skipped.append(Skipped(st.where(where), problem))
        return None
    if f.get("Extra-Source-Only", "").lower() == "yes":
        return None  # kept in the archive for Built-Using, not built from (rebuilderd skips it too)
    people = [f["Maintainer"]] if f.get("Maintainer") else []
    people += _addresses(f.get("Uploaders", ""))
    return SourcePackage(f["Package"], f["Version"], tuple(dict.fromkeys(p.strip() for p in people)))


def _addresses(text: str) -> list[str]:
    """The addresses of an Uploaders field: what `re.findall(r"[^,\\s][^<>]*?<[^<>]*>", text)` gives, in linear
    time. The expression tries every start and scans from each to the next "<" or ">": on a long field
    without an address that is quadratic (a 60 kB one took 12 s of CPU). A start (not a comma or blank) whose
    next angle bracket is a "<" followed by a ">" before any other "<" is an address up to that ">"; the
    starts before a failing one's bracket fail the same way, so the search goes on from that bracket."""
    found: list[str] = []
    pos = 0
    while (start := _START.search(text, pos)) is not None:
        begin = start.start()
        if (opening := _ANGLE.search(text, begin + 1)) is None:
            break
        pos = opening.start()
        if text[pos] == "<":
            if (closing := _ANGLE.search(text, pos + 1)) is None:
                break
            if text[closing.start()] == ">":
                found.append(text[begin:closing.start() + 1])
                pos = closing.start() + 1
    return found


def _binaries(pieces: Iterable[str], where: str, profile: SyncProfile, mirror: str, component: str,
              sources: dict[str, list[SourcePackage]], skipped: list[Skipped],
              seen_all: dict[tuple, dict[tuple, BinaryEntry]] | None = None,
              ) -> Iterator[tuple[BinaryEntry, Skipped | None]]:
    """(entry, why it cannot be built or None) for each binary of a wanted architecture.

    `seen_all` (shared by the Packages files of one release read with the same `sources` and
    `mirror`): arch:all stanzas that gave an entry with its source, by component and fields; a stanza
    with the same fields is that entry again (the same checks would give the same answer).
    """
    wanted = {arch: arch for arch in profile.architectures}  # also one string object per architecture
    # What `BinaryEntry.problem()` checks of the profile's own values (the mirror, the component, the
    # architectures): when they pass, a plain stanza's entry needs only the lengths `_fits` checks and its maintainers'.
    trusted = entry_problem(name="a", version="1", url=f"{mirror}/a", architecture="a", source_name="a",
                            source_version="1", component=component, filename="a") is None and all(
        0 < len(a) <= NAME_MAX and a.isprintable() and " " not in a for a in wanted) and _MAX_FILENAME_BYTES <= NAME_MAX
    # (binary's Maintainer, its source) → the maintainers tuple: made once and shared by the binaries of
    # a source (a Packages file repeats the same few thousand people 60,000 times). Keyed by the source's
    # id: `sources` outlives this generator.
    people_of: dict[tuple[str | None, int], tuple[str, ...]] = {}
    source_of: dict[tuple[str, str], tuple] = {}  # (Source field, version) → `_resolve`'s answer
    for st in iter_stanzas_stream(pieces, PACKAGES_FIELDS):
        f = st.fields
        arch = wanted.get(f.get("Architecture"))
        if arch is None and st.problem is None and "Architecture" in f:
            continue  # the common case for arch:all in binary-amd64 when "all" is not listed: cheap
        known = bucket = None
        if arch == "all" and seen_all is not None and st.problem is None:
            # By component and field names (a handful of shapes), then by the values: a tuple per stanza.
            bucket = seen_all.get((component, *f))
            if bucket is None:
                bucket = seen_all[(component, *f)] = {}
            known = tuple(f.values())
            again = bucket.get(known)
            if again is not None:
                yield again, None
                continue
        if st.problem is None and f.get("Package") and f.get("Version") and arch and f.get("Filename") \
                and _plain_binary(f):
            problem = None  # the usual stanza, checked in one go
            plain = trusted
        else:
            problem = st.problem or _missing(f, ("Package", "Version", "Architecture", "Filename")) or _invalid(f)
            plain = False
        if problem:
            skipped.append(Skipped(st.where(where), problem))
            continue
        name, version = f["Package"], f["Version"]
        raw_source = f.get("Source", name)
        # The binaries of one source version share its Source field and version: matched once.
        resolved = source_of.get((raw_source, version))
        if resolved is None:
            resolved = source_of[(raw_source, version)] = _resolve(raw_source, version, sources)
        src, src_name, source_version, version, lookup = resolved
        if src is False:
            skipped.append(Skipped(st.where(where), f"invalid Source field {_shown(raw_source)}"))
            continue
        maintainer = f.get("Maintainer") or None
        people, people_fit = people_of.get((maintainer, id(src))) or (None, False)
        if people is None:
            people = (maintainer,) if maintainer else ()
            if src is not None:  # at most cap("maintainers"): each of the source's binaries carries them
                people = tuple(dict.fromkeys(people + src.maintainers))[:_MAINTAINERS_MAX]
            people_fit = all(0 < len(m) <= REASON_MAX for m in people) and "".join(people).isprintable()
            people_of[(maintainer, id(src))] = people, people_fit
        filename = f["Filename"]
        size = f.get("Size")
        entry = BinaryEntry(  # positionally, in BinaryEntry's field order
            # `_invalid` let through only characters `quote(filename, safe="/+~")` keeps as they are.
            name, version, arch, src_name, source_version, f"{mirror}/{filename}", filename.rpartition("/")[2],
            f.get("SHA256"), None if size is None else int(size), component, people,
            clean_description(f.get("Description")))  # its first line: the synopsis
        # A plain stanza's name, version, architecture and file name are checked (`_plain_binary`), so is the
        # source's name (`_NAME` in `_resolve`) and what the profile gives: `entry_problem`'s first pass is
        # then these lengths and the maintainers (tests/sync/test_debian_columns.py compares the two).
        if plain and people_fit and _fits(src_name, source_version, entry.url):
            problem = None
        else:
            problem = entry.problem()
        if problem:
            skipped.append(Skipped(st.where(where), problem))
            continue
        if bucket is not None and src is not None:
            bucket[known] = entry
        yield entry, None if src is not None else Skipped(
            st.where(where), f"No matching source package found: {_cut(src_name)} {_cut(lookup)}")


def _fits(source_name: str, source_version: str, url: str) -> bool:
    """The lengths `entry_problem` checks that a plain stanza's checks and the profile's leave open."""
    return len(source_name) <= NAME_MAX and len(source_version) <= VERSION_MAX and len(url) <= URL_MAX


def _resolve(raw_source: str, version: str, sources: dict[str, list[SourcePackage]]) -> tuple:
    """A binary's source from its Source field (or name) and version: (the source or None, source name,
    source version, the binary's version, the version looked up); the source is False when the Source
    field is not a valid `name` or `name (version)`."""
    m = _SOURCE.match(raw_source)
    src_name, src_version = (m.group(1), m.group(2)) if m else ("", None)
    if not _NAME.match(src_name) or (src_version is not None and not _VERSION.match(src_version)):
        return False, src_name, None, version, None
    binnmu = _BINNMU.search(version) if "+b" in version else None
    suffix = binnmu.group(0) if binnmu else ""
    lookup = src_version or version
    src = _match(sources, src_name, lookup)
    if src is None and src_version is None and suffix:
        src = _match(sources, src_name, version[: -len(suffix)])  # binNMU without "(version)"
    if src is not None:
        src_name = src.name  # equal; one string object for all of the source's binaries
        # A source version that itself ends in +bN (binary version == source version) is no binNMU.
        if version == src.version:
            version = source_version = src.version
        else:
            source_version = src.version + suffix
    else:
        source_version = lookup + suffix if src_version else version
    return src, src_name, source_version, version, lookup


def _match(sources: dict[str, list[SourcePackage]], name: str, version: str) -> SourcePackage | None:
    candidates = sources.get(name, ())
    for src in candidates:
        if src.version == version:
            return src
    if not candidates:
        return None
    from debian.debian_support import version_compare  # python-debian: only for a version spelt differently

    for src in candidates:  # the same version spelt differently ("1.0-01", "0:1.0-1")
        if version_compare(src.version, version) == 0:
            return src
    return None


def _plain_binary(f: dict[str, str]) -> bool:
    """Whether `_invalid` has nothing to say about these fields (one regular expression instead of six)."""
    if len(f["Package"]) > NAME_MAX or len(f["Version"]) > VERSION_MAX or \
            len(f.get("Source", "")) > NAME_MAX + VERSION_MAX + 3:
        return False
    line = "\n".join((f["Package"], f["Version"], f["Architecture"], f["Filename"], f.get("SHA256", "0" * 64),
                      f.get("Size", "0")))
    return _PLAIN_BINARY.match(line) is not None and len(f["Filename"].rpartition("/")[2]) <= _MAX_FILENAME_BYTES


def _missing(f: dict[str, str], required: tuple[str, ...]) -> str | None:
    absent = [k for k in required if not f.get(k)]
    return f"missing field(s): {', '.join(absent)}" if absent else None


def _invalid(f: dict[str, str]) -> str | None:
    # lengths first: a 10 MB version must not reach a regex, a version comparison or int()
    for key, what, maximum in (("Package", "name", NAME_MAX), ("Version", "version", VERSION_MAX),
                               ("Source", "Source field", NAME_MAX + VERSION_MAX + 3)):
        if len(f.get(key, "")) > maximum:
            return f"{what} is longer than {maximum} characters ({len(f[key])})"
    checks = (("Package", _NAME, "binary package name"), ("Version", _VERSION, "version"),
              ("Architecture", _ARCH, "architecture"), ("Filename", _PATH, "file name"))
    for key, pattern, what in checks:
        if not pattern.match(f[key]):
            return f"invalid {what} {_shown(f[key])}"
    basename = f["Filename"].rpartition("/")[2]  # ASCII: the pattern allows nothing else
    if len(basename) > _MAX_FILENAME_BYTES:
        return f"file name longer than {_MAX_FILENAME_BYTES} bytes: {_shown(basename)}"
    if "SHA256" in f and not _SHA256.match(f["SHA256"]):
        return f"invalid SHA256 {_shown(f['SHA256'])}"
    if "Size" in f and not _DIGITS.match(f["Size"]):
        return f"invalid Size {_shown(f['Size'])}"
    return None


def _cut(value: str, limit: int = 60) -> str:
    """A value from the mirror, cut short for a skip reason (reasons are logged; a field may be 10 MB)."""
    return value if len(value) <= limit else value[:limit] + "…"


def _shown(value: str) -> str:
    """A value from the mirror for a skip reason: quoted, control characters escaped, cut short."""
    return repr(_cut(value))
