"""The authenticated table of contents of one Debian suite: `dists/<release>/InRelease`.

Every index file a sync reads (`Sources`, `Packages`, compressed or not) must be listed in the
`SHA256` field of the suite's `InRelease` and must have exactly that size and SHA-256; a file
that is not listed or does not match fails the whole sync (nothing is returned, nothing is
written). With a keyring configured the `InRelease` signature is checked with gpgv
(`jobs.sync.gpgv`) and only the signed text is used; without one the hashes still protect
against a broken mirror or transfer, but not against a hostile mirror (a warning says so).

Like apt, a `Valid-Until` date in the past fails the sync (a replayed old index), and a
`Suite`/`Codename` that does not name the release asked for is only a warning (apt's
"conflicting distribution"). When the file at the plain path does not match and the suite
says `Acquire-By-Hash: yes`, the file is fetched once more from `by-hash/SHA256/<hash>`,
which a mirror in the middle of an update still serves (apt does the same).
Not supported: mirrors without `InRelease` (only `Release` + `Release.gpg`).
"""

from __future__ import annotations

import codecs
import logging
import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from urllib.parse import quote

from jobs.core.bounded import GZIP_MAGIC, XZ_MAGIC, CorruptData, OverLimit, cap, decompress_chunks
from jobs.core.errors import TerminalError
from jobs.sync.deb822 import decode, iter_stanzas
from jobs.sync.decompress import CorruptIndex
from jobs.sync.fetch import Fetched, Fetcher, FetchFailed, Validator

log = logging.getLogger(__name__)

# apt's preference: the smallest download first, the plain file last.
COMPRESSIONS = (("xz", ".xz"), ("gz", ".gz"), ("", ""))
_FIELDS = ("SHA256", "Suite", "Codename", "Architectures", "Components", "Valid-Until", "Acquire-By-Hash")
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
_SHA256 = re.compile(r"[0-9a-f]{64}\Z")
_MARKUP = re.compile(r"\s*<")  # an HTML error page or captive portal answering for the index


class IndexNotAuthentic(TerminalError):
    """An index file that the suite's InRelease does not vouch for: unlisted, wrong size or hash, expired."""

    def __init__(self, message: str, *, url: str) -> None:
        super().__init__(message, url=url)
        self.url = url


@dataclass(frozen=True)
class Listed:
    """One file as InRelease lists it."""

    path: str  # relative to dists/<release>/
    sha256: str
    size: int


@dataclass(frozen=True)
class ReleaseIndex:
    """A suite's InRelease, parsed: where it is, what it lists, and whether its signature was checked."""

    url: str  # .../dists/<release>
    sha256: str  # of the InRelease file as fetched
    files: dict[str, Listed]
    suite: str | None = None
    codename: str | None = None
    architectures: frozenset[str] | None = None  # None: the field is absent (no restriction known)
    components: frozenset[str] | None = None
    by_hash: bool = False
    signed_by: tuple[str, ...] = ()  # fingerprints of good signatures; empty when not checked
    valid_until: datetime | None = None
    validator: Validator | None = None  # the InRelease response's, for the next sync's conditional GET

    @property
    def inrelease_url(self) -> str:
        """Where the InRelease file was fetched from."""
        return f"{self.url}/InRelease"

    def variants(self, path: str) -> list[tuple[str, Listed]]:
        """The listed compressed/plain forms of `path` (e.g. `main/binary-amd64/Packages`), preferred first."""
        return [(kind, self.files[path + ext]) for kind, ext in COMPRESSIONS if path + ext in self.files]

    def fetch(self, fetcher: Fetcher, path: str, *, limit: int, sources: dict[str, str]) -> str:
        """The decompressed text of index `path`, checked against this InRelease; its URL → sha256 noted."""
        return "".join(self.fetch_pieces(fetcher, path, limit=limit, sources=sources))

    def fetch_pieces(self, fetcher: Fetcher, path: str, *, limit: int, sources: dict[str, str]) -> Iterator[str]:
        """`fetch`, the text decompressed and decoded piece by piece as it is read (for `iter_stanzas_stream`):
        the compressed file is checked against InRelease before any of it is given out."""
        variants = self.variants(path)
        if not variants:
            raise IndexNotAuthentic(f"{path} is not listed in InRelease (in any compression)",
                                    url=f"{self.url}/{path}")
        missing: FetchFailed | None = None
        for kind, listed in variants:
            if kind == "" and listed.size == 0 and listed.sha256 == EMPTY_SHA256:
                return ""  # apt does not download an empty file either
            try:
                got = self._fetch_checked(fetcher, listed)
            except FetchFailed as exc:
                if exc.status != 404:
                    raise
                missing = missing or exc
                continue
            sources[got.url] = got.sha256
            return _pieces(got, kind, limit)
        assert missing is not None
        raise missing

    def _fetch_checked(self, fetcher: Fetcher, listed: Listed) -> Fetched:
        url = f"{self.url}/{quote(listed.path, safe='/+~')}"
        got = fetcher.fetch(url)
        if len(got.data) == listed.size and got.sha256 == listed.sha256:
            return got
        if self.by_hash:
            alt = f"{self.url}/{posixpath.dirname(listed.path)}/by-hash/SHA256/{listed.sha256}"
            try:
                again = fetcher.fetch(alt)
            except FetchFailed:
                again = None
            if again is not None and len(again.data) == listed.size and again.sha256 == listed.sha256:
                log.info("%s did not match InRelease; used %s", url, alt)
                return again
        raise IndexNotAuthentic(
            f"does not match InRelease (expected {listed.size} bytes with SHA256 {listed.sha256}, "
            f"got {len(got.data)} bytes with SHA256 {got.sha256})", url=url)


def _pieces(got: Fetched, kind: str, limit: int) -> Iterator[str]:
    """The text of a checked index file, decompressed and decoded (UTF-8, bad bytes replaced) in pieces."""
    if kind == "xz" and not got.data.startswith(XZ_MAGIC):
        raise CorruptIndex("not an xz file", url=got.url)
    if kind == "gz" and not got.data.startswith(GZIP_MAGIC):
        raise CorruptIndex("not a gzip file", url=got.url)
    utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
    first = True
    try:
        for chunk in decompress_chunks(got.data, kind, limit, "index"):
            text = utf8.decode(chunk)
            if first and text.strip():
                first = False
                if _MARKUP.match(text):
                    raise CorruptIndex("looks like HTML, not a deb822 index", url=got.url)
            yield text
    except OverLimit:
        what = "decompresses to more than" if kind else "larger than"
        raise CorruptIndex(f"{what} the {limit}-byte limit", url=got.url) from None
    except CorruptData as exc:
        raise CorruptIndex(exc.message.removeprefix("index: "), url=got.url) from None
    yield utf8.decode(b"", final=True)


def fetch_release(fetcher: Fetcher, dist_url: str, release: str, *, keyring: str | None,
                  now: datetime | None = None) -> ReleaseIndex:
    """Fetch and check `<dist_url>/InRelease` (signature when `keyring` is set, then Valid-Until)."""
    url = f"{dist_url}/InRelease"
    got = fetcher.fetch(url, max_bytes=cap("inrelease"))
    signed_by: tuple[str, ...] = ()
    if keyring:
        from jobs.sync.gpgv import verify_clearsigned  # gpgv and its process helpers only with a keyring

        verified = verify_clearsigned(got.data, keyring, url=url)
        text, signed_by = decode(verified.content), verified.fingerprints
    else:
        log.warning("%s: not signature-checked (no keyring configured); only the index hashes are checked", url)
        text = unsigned_content(decode(got.data))
    index = replace(parse_release(text, url=dist_url, sha256=got.sha256, signed_by=signed_by, now=now),
                    validator=got.validator)
    if release not in {index.suite, index.codename} - {None}:
        if index.suite or index.codename:
            # %r: Suite and Codename come from the mirror; repr keeps their escape sequences out of the log.
            log.warning("%s: is for suite %r (codename %r), not %r", url, index.suite, index.codename, release)
    return index


def unsigned_content(text: str) -> str:
    """The message of a clearsigned text without checking the signature (or the text itself if unsigned)."""
    text = text.replace("\r\n", "\n")
    start = text.find("-----BEGIN PGP SIGNED MESSAGE-----\n")
    if start < 0:
        return text
    body = text.find("\n\n", start)  # the armor headers ("Hash: SHA256") end at a blank line
    end = text.find("\n-----BEGIN PGP SIGNATURE-----", body)
    if body < 0 or end < 0:
        return ""
    return "\n".join(ln[2:] if ln.startswith("- ") else ln for ln in text[body + 2:end].split("\n")) + "\n"


def parse_release(text: str, *, url: str, sha256: str, signed_by: tuple[str, ...] = (),
                  now: datetime | None = None) -> ReleaseIndex:
    """A ReleaseIndex from the (signed) text of an InRelease; CorruptIndex or IndexNotAuthentic if unusable."""
    where = f"{url}/InRelease"
    stanzas = list(iter_stanzas(text, _FIELDS))
    if not stanzas or "SHA256" not in stanzas[0].fields:
        raise CorruptIndex("not a Release file: no SHA256 field", url=where)
    if stanzas[0].problem:
        raise CorruptIndex(f"malformed Release file: {stanzas[0].problem}", url=where)
    fields = stanzas[0].fields
    files: dict[str, Listed] = {}
    for line in fields["SHA256"].split("\n"):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 3 or not _SHA256.match(parts[0]) or not (parts[1].isascii() and parts[1].isdigit()):
            raise CorruptIndex(f"malformed SHA256 line {line.strip()!r}", url=where)
        listed = Listed(parts[2], parts[0], int(parts[1]))
        if files.get(listed.path, listed) != listed:
            raise CorruptIndex(f"{listed.path} is listed twice with different checksums", url=where)
        files[listed.path] = listed
    until = None
    if "Valid-Until" in fields:
        until = _date(fields["Valid-Until"], where)
        if until < (now or datetime.now(timezone.utc)):
            raise IndexNotAuthentic(f"expired: Valid-Until {fields['Valid-Until']}", url=where)

    def words(name: str) -> frozenset[str] | None:
        return frozenset(fields[name].split()) if name in fields else None

    return ReleaseIndex(
        url=url, sha256=sha256, files=files, suite=fields.get("Suite"), codename=fields.get("Codename"),
        architectures=words("Architectures"), components=words("Components"),
        by_hash=fields.get("Acquire-By-Hash", "").lower() == "yes", signed_by=signed_by, valid_until=until)


def _date(value: str, where: str) -> datetime:
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: a year past a C int
        raise CorruptIndex(f"unreadable date {value!r}", url=where) from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)
