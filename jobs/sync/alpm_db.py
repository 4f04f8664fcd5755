"""An Arch repository database (`<repo>.db`) → its packages (`BinaryEntry`) and what was left out.

The database is a tar archive (read by `tar_members`, strictly and bounded: an unreadable one
is `CorruptIndex`, never a partial list) of `<name>-<version>/desc` files (parsed by
`alpm_desc`). Member by member, whatever cannot be used is skipped and reported with its
location and reason: names that are not UTF-8, absolute or with `..`, links and devices
(never followed), a desc elsewhere than `<dir>/desc`, a second copy of a member or of a
package name, a desc too large or invalid.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from itertools import repeat
from urllib.parse import quote

from jobs.core.bounded import cap
from jobs.core.gcpause import cyclic_gc_paused
from jobs.core.model.limits import NAME_MAX, REASON_MAX, URL_MAX, VERSION_MAX
from jobs.sync.alpm_desc import Descs, parse_descs
from jobs.sync.records import BinaryEntry, Skipped
from jobs.sync.tar_members import TarMembers

# Real descs are a few KB (the largest, with long %PROVIDES% lists, some tens of KB).
MAX_DESC_BYTES = cap("index_member")
_UNRESERVED = re.compile(r"[A-Za-z0-9._~-]+")  # RFC 3986's unreserved characters
# A member name that passes every check below as it is: `<name>-<version>/desc` in printable
# ASCII, its directory not starting with "." (so never ".."), no other "/".
_USUAL_PATH = re.compile(rb"[A-Za-z0-9@_+:~-][A-Za-z0-9@._+:~-]*/desc")
_ALL_UNRESERVED = re.compile(r"[A-Za-z0-9._~-]+(?:\n[A-Za-z0-9._~-]+)*")


def parse_db(data: bytes, *, repo: str, base_url: str, location: str,
             max_unpacked: int | None = None) -> tuple[list[BinaryEntry], list[Skipped]]:
    """The packages of one repository database, and the members left out; CorruptIndex if unreadable.

    `base_url` is the mirror directory of this repo and architecture; an artifact's URL is
    `base_url/<%FILENAME%, percent-encoded>`. Packages come sorted by member name (the order
    repo-add writes in the C locale), whatever order the archive has; of two packages with
    the same %NAME% the first is kept and the other reported.
    """
    # Member problems, each after how many descs were read before it (to keep the archive's order).
    problems: list[tuple[int, Skipped]] = []
    seen: set[bytes] = set()
    paths: list[str] = []

    def skip(path: str, reason: str) -> None:
        problems.append((len(paths), Skipped(f"{repo}.db: {_shown(path)}", reason)))

    def want(path: bytes, size: int) -> bool:  # only bytes that will be parsed are read
        return path.endswith(b"/desc") and path not in seen and size <= MAX_DESC_BYTES

    with cyclic_gc_paused():
        with TarMembers(data, location=location, max_unpacked=max_unpacked) as archive:
            # Each desc is parsed as it is read: its bytes are not kept.
            descs = parse_descs(_desc_members(archive, want, skip, seen, paths))
        skipped = [s for _, s in sorted([*problems, *((i, Skipped(f"{repo}.db: {_shown(paths[i])}", reason))
                                                      for i, reason in descs.invalid.items())],
                                        key=lambda p: p[0])]
        return _entries(descs, [paths[i] for i in descs.index], repo, base_url, skipped), skipped


def _desc_members(archive: TarMembers, want, skip, seen: set[bytes], paths: list[str]) -> Iterator[bytes]:
    """The bytes of each usable desc, its member name added to `paths` first; what cannot be used to `skip`."""
    usual = _USUAL_PATH.fullmatch
    for member in archive.members(want):
        # Bytes were read (`want`: a new */desc within the size) of a plain name: nothing to check.
        if member.data is not None and usual(member.path):
            seen.add(member.path)
            paths.append(member.path.decode("ascii"))
            yield member.data
            continue
        path, problem = _member_name(member.path)
        if problem:
            skip(path, problem)
        elif member.kind != "file":
            skip(path, f"{member.kind}, not a regular file")
        elif path.rpartition("/")[2] != "desc":
            continue  # `files` (in <repo>.files) and whatever later formats add
        elif path.count("/") != 1 or path.startswith("."):
            skip(path, "desc not at <name>-<version>/desc")
        elif member.path in seen:
            skip(path, "duplicate member")
        elif member.size > MAX_DESC_BYTES:
            skip(path, f"desc larger than {MAX_DESC_BYTES} bytes")
        else:
            seen.add(member.path)
            paths.append(path)
            yield member.data or b""


def _entries(descs: Descs, paths: list[str], repo: str, base_url: str, skipped: list[Skipped]) -> list[BinaryEntry]:
    """The packages of the parsed descs (`paths`: each row's member), sorted by member name.

    The usual database (no two descs name the same package, every entry within the field
    limits) is made column by column; otherwise entry by entry, each problem reported.
    """
    columns = [descs.filename, descs.name, descs.base, descs.version, descs.arch, descs.packager, descs.sha256,
               descs.csize, descs.desc]
    if paths != sorted(paths):
        order = sorted(range(len(paths)), key=paths.__getitem__)
        paths = [paths[i] for i in order]
        columns = [[column[i] for i in order] for column in columns]
    filename, name, base, version, arch, packager, sha256, csize, desc = columns
    prefix = base_url.rstrip("/") + "/"
    if _ALL_UNRESERVED.fullmatch("\n".join(filename)):  # the file names need no percent-encoding
        urls = (prefix + ("\n" + prefix).join(filename)).split("\n") if filename else []
    else:
        unreserved = _UNRESERVED.fullmatch
        urls = [prefix + (f if unreserved(f) else quote(f, safe="")) for f in filename]
    maintainers = list(zip(packager))  # (packager,) each
    # Positional, in BinaryEntry's field order: name, version, architecture, source_name,
    # source_version, url, filename, sha256, size, component, maintainers, description.
    rows = zip(name, version, arch, base, version, urls, filename, sha256, csize, repeat(repo), maintainers, desc)
    if len(set(name)) == len(name) and _within_limits(name, version, arch, base, urls, filename, packager, repo):
        return list(map(tuple.__new__, repeat(BinaryEntry), rows))
    entries: list[BinaryEntry] = []
    names: set[str] = set()
    for path, row in zip(paths, rows):
        entry = BinaryEntry._make(row)
        problem = f"another desc already lists package {entry.name!r}" if entry.name in names else entry.problem()
        if problem:
            skipped.append(Skipped(f"{repo}.db: {_shown(path)}", problem))
            continue
        names.add(entry.name)
        entries.append(entry)
    return entries


def _within_limits(name: list[str], version: list[str], arch: list[str], base: list[str], urls: list[str],
                   filename: list[str], packager: list[str], repo: str) -> bool:
    """Whether `BinaryEntry.problem()` is None for every row, checked column by column.

    What `jobs.core.model.limits.entry_problem` accepts in its first pass, for all rows at once
    (source version = version, maintainers = (packager,), component = repo): True only if each
    row would pass it; tests/sync/test_alpm_columns.py compares the two.
    """
    if not name:
        return True

    def within(column: list[str], maximum: int) -> bool:
        return 0 < min(map(len, column)) and max(map(len, column)) <= maximum

    if not (within(name, NAME_MAX) and within(arch, NAME_MAX) and within(base, NAME_MAX)
            and within(version, VERSION_MAX) and within(urls, URL_MAX) and len(repo) <= NAME_MAX
            and max(map(len, filename)) <= NAME_MAX and within(packager, REASON_MAX)):
        return False
    tight = "".join([*name, *version, *arch, *base, *urls, repo])
    return (tight.isprintable() and " " not in tight and "".join(urls).isascii()
            and "".join([*filename, *packager]).isprintable())


def _member_name(raw: bytes) -> tuple[str, str | None]:
    """A member's name, and why it is unsafe (None if it is not)."""
    try:
        path = raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("utf-8", "backslashreplace"), "member name is not valid UTF-8"
    if not path or path[0] == "/" or (".." in path and ".." in path.split("/")):
        return path, "unsafe member name (absolute or with '..')"
    if not path.isprintable():
        return path, "member name contains control characters"
    return path, None


def _shown(path: str, limit: int = 200) -> str:
    text = path if len(path) <= limit else path[:limit] + "…"
    return text if text.isprintable() else ascii(text)[1:-1]
