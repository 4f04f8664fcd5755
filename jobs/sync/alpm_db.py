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
from urllib.parse import quote

from jobs.core.bounded import cap
from jobs.core.gcpause import cyclic_gc_paused
from jobs.sync.alpm_desc import Desc, InvalidDesc, parse_desc
from jobs.sync.records import BinaryEntry, Skipped
from jobs.sync.tar_members import TarMembers

# Real descs are a few KB (the largest, with long %PROVIDES% lists, some tens of KB).
MAX_DESC_BYTES = cap("index_member")
_UNRESERVED = re.compile(r"[A-Za-z0-9._~-]+")


def parse_db(data: bytes, *, repo: str, base_url: str, location: str,
             max_unpacked: int | None = None) -> tuple[list[BinaryEntry], list[Skipped]]:
    """The packages of one repository database, and the members left out; CorruptIndex if unreadable.

    `base_url` is the mirror directory of this repo and architecture; an artifact's URL is
    `base_url/<%FILENAME%, percent-encoded>`. Packages come sorted by member name (the order
    repo-add writes in the C locale), whatever order the archive has; of two packages with
    the same %NAME% the first is kept and the other reported.
    """
    skipped: list[Skipped] = []
    seen: set[bytes] = set()
    descs: list[tuple[str, Desc]] = []

    def skip(path: str, reason: str) -> None:
        skipped.append(Skipped(f"{repo}.db: {_shown(path)}", reason))

    def want(path: bytes, size: int) -> bool:  # only bytes that will be parsed are read
        return path.endswith(b"/desc") and path not in seen and size <= MAX_DESC_BYTES

    with cyclic_gc_paused(), TarMembers(data, location=location, max_unpacked=max_unpacked) as archive:
        for member in archive.members(want):
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
                try:
                    descs.append((path, parse_desc(member.data or b"")))
                except InvalidDesc as exc:
                    skip(path, exc.reason)

    descs.sort(key=lambda item: item[0])
    entries: list[BinaryEntry] = []
    names: set[str] = set()
    prefix = base_url.rstrip("/") + "/"
    unreserved = _UNRESERVED.fullmatch
    for path, desc in descs:
        name = desc.name
        if name in names:
            skip(path, f"another desc already lists package {name!r}")
            continue
        filename = desc.filename
        # Positional, in BinaryEntry's field order: name, version, architecture, source_name,
        # source_version, url, filename, sha256, size, component, maintainers, description.
        entry = BinaryEntry(name, desc.version, desc.arch, desc.base, desc.version,
                            # the file name percent-encoded: all but RFC 3986's unreserved characters
                            prefix + (filename if unreserved(filename) else quote(filename, safe="")),
                            filename, desc.sha256, desc.csize, repo, (desc.packager,), desc.desc)
        problem = entry.problem()
        if problem:
            skip(path, problem)
            continue
        names.add(name)
        entries.append(entry)
    return entries, skipped


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
