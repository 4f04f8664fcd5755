"""The builders of the hostile corpus: small archives and mirrors committed under corpus/, big ones at test time.

    .venv/bin/python -m tests.hostile.generate     # rewrite the committed arch/ and debian/ cases

`ARCH` and `DEBIAN` make the binary or derived inputs that are committed (Arch databases, Debian
mirrors with the InRelease that lists them); `test_corpus.py` checks the committed bytes are exactly
what these builders make, so a case is changed here and regenerated, never edited by hand.
`BIG` makes the inputs too large to commit (10 MB fields, 100,000 entries, bombs) into a
temporary directory when the tests run. Text inputs (descs, state rows, result recipes) are
committed as they are and need no builder.

Every Arch database holds the package `good` besides its hostile part, and every Debian mirror
the source and binary `good`: a case that only skips must still keep it.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import lzma
import shutil
import sys
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import zstandard

from tests.sync import alpm_builders as alpm
from tests.sync.alpm_builders import M, desc, package
from tests.sync.debian_mirror import release_text

CORPUS = Path(__file__).resolve().parent / "corpus"
GOOD = package("good", "1.0-1")
MB = 1 << 20


# --- Arch repository databases ------------------------------------------------------------------------------------

def _db(members: list[M], kind: str = "gzip") -> bytes:
    return alpm.db([*GOOD, *members], kind)


def _pax(name: str, data: bytes, pax: dict[str, str]) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.pax_headers = len(data), alpm.MTIME, pax
    return info.tobuf(tarfile.PAX_FORMAT) + data + b"\0" * (-len(data) % 512)


def _bad_checksum() -> bytes:
    raw = bytearray(alpm.tar([*GOOD, *package("other")]))
    raw[512 * 3 + 100] ^= 0x01  # the mode of the third header, covered by its checksum
    return alpm.compress(bytes(raw), "gzip")


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        info = zipfile.ZipInfo("good-1.0-1/desc", date_time=(2024, 1, 1, 0, 0, 0))
        archive.writestr(info, desc("good"))
    return buf.getvalue()


ARCH: dict[str, Callable[[], bytes]] = {
    "arch-truncated-gzip": lambda: (lambda d: d[: len(d) // 2])(_db(package("other"))),
    "arch-truncated-zstd-tail": lambda: _db(package("other"), "zstd")[:-6],
    "arch-truncated-at-member-boundary": lambda: alpm.tar([*GOOD, *package("other")], end=False),
    "arch-html-error-page": lambda: b"<!DOCTYPE html>\n<html><body><h1>503 Service Unavailable</h1></body></html>\n",
    "arch-zip-archive": _zip,
    "arch-lz4-compression": lambda: b"\x04\x22\x4d\x18\x64\x40\xa7" + b"\0" * 64,
    "arch-gzip-magic-on-zstd": lambda: b"\x1f\x8b" + _db([], "zstd")[2:],
    "arch-bzip2-bad-level": lambda: b"BZh0" + _db([], "bzip2")[4:],
    "arch-bad-header-checksum": _bad_checksum,
    "arch-dotdot-member": lambda: _db([M("../escape-1-1/desc", desc("escape").encode())]),
    "arch-absolute-member": lambda: _db([M("/etc/abs-1-1/desc", desc("abs").encode())]),
    "arch-inner-dotdot-member": lambda: _db([M("a/../../inner-1-1/desc", desc("inner").encode())]),
    "arch-pax-path-dotdot": lambda: alpm.compress(
        b"".join(alpm.member_bytes(m) for m in GOOD)
        + _pax("pax-1-1/desc", desc("pax").encode(), {"path": "../../pax-1-1/desc"}) + b"\0" * 1024, "gzip"),
    "arch-gnu-longname-dotdot": lambda: _db([M("../" + "l" * 150 + "-1-1/desc", desc("long").encode())]),
    "arch-symlink-desc": lambda: _db([M("link-1-1/desc", type=tarfile.SYMTYPE, linkname="/etc/passwd")]),
    "arch-symlink-dir-then-desc": lambda: _db([M("evil-1-1", type=tarfile.SYMTYPE, linkname="/etc"),
                                               M("evil-1-1/desc", desc("evil").encode())]),
    "arch-hardlink-desc": lambda: _db([M("hard-1-1/desc", type=tarfile.LNKTYPE, linkname="good-1.0-1/desc")]),
    "arch-char-device": lambda: _db([M("chr-1-1/desc", type=tarfile.CHRTYPE)]),
    "arch-fifo": lambda: _db([M("fifo-1-1/desc", type=tarfile.FIFOTYPE)]),
    "arch-member-name-invalid-utf8": lambda: _db([M(b"bad\xff-1-1/desc", desc("bad").encode())]),
    "arch-member-name-control-chars": lambda: _db([M("ctl\x1b[31m-1-1/desc", desc("ctl").encode())]),
    "arch-desc-at-top": lambda: _db([M("desc", desc("top").encode())]),
    "arch-desc-nested": lambda: _db([M("nested/deep-1-1/desc", desc("deep").encode())]),
    "arch-desc-hidden-dir": lambda: _db([M(".hidden/desc", desc("hidden").encode())]),
    "arch-duplicate-member": lambda: _db([M("good-1.0-1/desc", desc("good", "9.9-9").encode())]),
    "arch-duplicate-package-name": lambda: _db(package("good", "0.1-1")),
}


# --- Debian mirrors -----------------------------------------------------------------------------------------------

SOURCES = """\
Package: good
Version: 1.0-1
Maintainer: Good Maintainer <good@example.org>
Architecture: any
Directory: pool/main/g/good
"""


def stanza(name: str = "good", version: str = "1.0-1", **fields: str) -> str:
    """A Packages stanza as dak writes it; `fields` add to or replace its fields (None drops one)."""
    base = {"Package": name, "Version": version, "Architecture": "amd64",
            "Maintainer": "Good Maintainer <good@example.org>",
            "Filename": f"pool/main/{name[:1]}/{name}/{name}_{version}_amd64.deb", "Size": "1234",
            "SHA256": hashlib.sha256(f"{name}_{version}".encode()).hexdigest(), "Description": f"the {name} package"}
    base.update({k.replace("_", "-"): v for k, v in fields.items()})
    return "".join(f"{k}: {v}\n" for k, v in base.items() if v is not None)


GOOD_STANZA = stanza()


def write_mirror(root: Path, packages: str | bytes = GOOD_STANZA, *, sources: str | bytes = SOURCES,
                 packed: str = "", release: Callable[[Path], str] | None = None,
                 after: Callable[[Path], None] | None = None) -> Path:
    """A one-suite mirror (`sid`, main, amd64) at `root`; `packed` "xz"/"gz" compresses Packages.

    `release(dist)` replaces the InRelease text; `after(dist)` damages files once InRelease lists them.
    """
    dist = root / "dists" / "sid"
    for rel, data in (("main/source/Sources", sources), ("main/binary-amd64/Packages", packages)):
        path = dist / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
    if packed:
        plain = dist / "main/binary-amd64/Packages"
        raw = plain.read_bytes()
        data = lzma.compress(raw, format=lzma.FORMAT_XZ) if packed == "xz" else gzip.compress(raw, mtime=0)
        plain.with_name(f"Packages.{packed}").write_bytes(data)
        plain.unlink()
    text = release(dist) if release else release_text(dist, extra={"Architectures": "amd64"})
    (dist / "InRelease").write_text(text)
    if after:
        after(dist)
    return root


def _edit(rel: str, change: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    def apply(dist: Path) -> None:
        path = dist / rel
        path.write_bytes(change(path.read_bytes()))
    return apply


def _release(**extra: str | None) -> Callable[[Path], str]:
    return lambda dist: release_text(dist, extra={"Architectures": "amd64", **extra})


def _release_lines(change: Callable[[str], str]) -> Callable[[Path], str]:
    return lambda dist: change(release_text(dist, extra={"Architectures": "amd64"}))


def _sha_line(dist: Path, rel: str, *, size: int | None = None, digest: str | None = None) -> str:
    data = (dist / rel).read_bytes()
    return f" {digest or hashlib.sha256(data).hexdigest()} {size if size is not None else len(data):>8} {rel}\n"


def _listed_twice(text: str) -> str:
    return text + f" {'0' * 64} {12:>8} main/binary-amd64/Packages\n"


def _size_off_by_one(dist: Path) -> str:
    text = release_text(dist, extra={"Architectures": "amd64"})
    right = _sha_line(dist, "main/binary-amd64/Packages")
    wrong = _sha_line(dist, "main/binary-amd64/Packages", size=(dist / "main/binary-amd64/Packages").stat().st_size + 1)
    return text.replace(right, wrong)


def _md5_only(text: str) -> str:
    return text.replace("SHA256:\n", "MD5Sum:\n")


def _short_sha_line(text: str) -> str:
    head, _, rest = text.partition("SHA256:\n")
    return head + "SHA256:\n 1234 main/binary-amd64/Packages\n" + rest


EVIL_SOURCE = "Package: evil\nVersion: 1.0-1\nMaintainer: Evil <evil@example.org>\n"
DEBIAN: dict[str, Callable[[Path], Path]] = {
    "debian-packages-changed-after-inrelease": lambda root: write_mirror(
        root, after=_edit("main/binary-amd64/Packages", lambda b: b.replace(b"Size: 1234", b"Size: 4321"))),
    "debian-packages-not-listed": lambda root: write_mirror(
        root, release=lambda dist: release_text(dist, extra={"Architectures": "amd64"},
                                                omit=("main/binary-amd64/Packages",))),
    "debian-inrelease-size-mismatch": lambda root: write_mirror(root, release=_size_off_by_one),
    "debian-inrelease-listed-twice": lambda root: write_mirror(root, release=_release_lines(_listed_twice)),
    "debian-inrelease-malformed-sha-line": lambda root: write_mirror(root, release=_release_lines(_short_sha_line)),
    "debian-inrelease-md5-only": lambda root: write_mirror(root, release=_release_lines(_md5_only)),
    "debian-inrelease-expired": lambda root: write_mirror(
        root, release=_release(**{"Valid-Until": "Sat, 01 Jan 2000 00:00:00 UTC"})),
    "debian-inrelease-unreadable-date": lambda root: write_mirror(
        root, release=_release(**{"Valid-Until": "$(date) <soon>"})),
    "debian-inrelease-html": lambda root: write_mirror(
        root, release=lambda dist: "<!DOCTYPE html>\n<html><body>Captive portal</body></html>\n"),
    "debian-inrelease-nul-and-control": lambda root: write_mirror(
        root, release=_release_lines(lambda t: t.replace("Suite: unstable", "Suite: unst\0able\x1b[2J").replace(
            "Codename: sid", "Codename: s\x1b]0;pwned\x07id"))),
    "debian-packages-html": lambda root: write_mirror(
        root, "<!DOCTYPE html>\n<html><body>Mirror maintenance</body></html>\n"),
    "debian-xz-truncated": lambda root: _truncate_listed(write_mirror(root, packed="xz"), "xz"),
    "debian-gz-truncated": lambda root: _truncate_listed(write_mirror(root, packed="gz"), "gz"),
    "debian-gz-holding-xz": lambda root: _relabel(write_mirror(root, packed="xz"), "xz", "gz"),
    "debian-xz-trailing-junk": lambda root: _append_listed(write_mirror(root, packed="xz"), "xz", b"<html>"),
    "debian-packages-missing-version": lambda root: write_mirror(
        root, GOOD_STANZA + "\n" + stanza("noversion", Version=None)),
    "debian-packages-missing-filename": lambda root: write_mirror(
        root, GOOD_STANZA + "\n" + stanza("nofile", Filename=None)),
    "debian-packages-nul-in-name": lambda root: write_mirror(root, GOOD_STANZA + "\n" + stanza("ev\0il")),
    "debian-packages-control-in-version": lambda root: write_mirror(
        root, GOOD_STANZA + "\n" + stanza("good", "1.0-1\x1b[2J")),
    "debian-packages-invalid-utf8": lambda root: write_mirror(
        root, GOOD_STANZA.encode() + b"\n" + stanza("evil").replace("Package: evil", "Package: ev\udcffil")
        .encode("utf-8", "surrogateescape")),
    "debian-packages-filename-traversal": lambda root: write_mirror(
        root, GOOD_STANZA + "\n" + stanza("evil", Filename="pool/../../../../etc/passwd"), sources=SOURCES + "\n"
        + EVIL_SOURCE),
    "debian-packages-filename-absolute": lambda root: write_mirror(
        root, GOOD_STANZA + "\n" + stanza("evil", Filename="/etc/passwd"), sources=SOURCES + "\n" + EVIL_SOURCE),
    "debian-packages-filename-percent": lambda root: write_mirror(
        root, GOOD_STANZA + "\n" + stanza("evil", Filename="pool/%2e%2e/%2e%2e/etc/passwd"),
        sources=SOURCES + "\n" + EVIL_SOURCE),
    "debian-packages-name-script": lambda root: write_mirror(
        root, GOOD_STANZA + "\n" + stanza("<script>alert(1)</script>", Source="good")),
    "debian-packages-version-shell": lambda root: write_mirror(
        root, GOOD_STANZA + "\n" + stanza("evil", "$(touch${IFS}pwned)", Source="good (1.0-1)")),
    "debian-packages-source-traversal": lambda root: write_mirror(
        root, GOOD_STANZA + "\n" + stanza("evil", Source="../../etc (1.0-1)")),
    "debian-packages-repeated-field": lambda root: write_mirror(
        root, GOOD_STANZA + "\n" + stanza("evil") + "Package: good\n", sources=SOURCES + "\n" + EVIL_SOURCE),
    "debian-packages-continuation-first": lambda root: write_mirror(root, GOOD_STANZA + "\n  Package: x\n"
                                                                    + stanza("evil")),
    "debian-packages-not-a-field": lambda root: write_mirror(root, GOOD_STANZA + "\n" + stanza("evil")
                                                             + "<script>alert(1)</script>\n"),
    "debian-packages-bad-sha256": lambda root: write_mirror(
        root, GOOD_STANZA + "\n" + stanza("evil", SHA256="'; rm -rf / #"), sources=SOURCES + "\n" + EVIL_SOURCE),
    "debian-packages-bad-size": lambda root: write_mirror(
        root, GOOD_STANZA + "\n" + stanza("evil", Size="1e999"), sources=SOURCES + "\n" + EVIL_SOURCE),
    "debian-packages-no-source": lambda root: write_mirror(root, GOOD_STANZA + "\n" + stanza("orphan")),
    "debian-sources-name-script": lambda root: write_mirror(
        root, GOOD_STANZA, sources=SOURCES + "\nPackage: <script>alert(1)</script>\nVersion: 1\n"),
    "debian-maintainer-html": lambda root: write_mirror(
        root, GOOD_STANZA + "\n" + stanza("evil", Maintainer="<script>alert(1)</script> \"$(id)\" <x@example.org>"),
        sources=SOURCES + "\n" + EVIL_SOURCE),
    "debian-crlf-line-ends": lambda root: write_mirror(root, (GOOD_STANZA + "\n" + stanza("evil")).replace(
        "\n", "\r\n"), sources=SOURCES + "\n" + EVIL_SOURCE),
}


def _listed_file(root: Path, kind: str) -> Path:
    return root / "dists" / "sid" / "main" / "binary-amd64" / f"Packages.{kind}"


def _relist(root: Path) -> Path:
    dist = root / "dists" / "sid"
    (dist / "InRelease").write_text(release_text(dist, extra={"Architectures": "amd64"}))
    return root


def _truncate_listed(root: Path, kind: str) -> Path:
    """Cut a compressed index short, then list the cut file: the hash check passes, decompression must not."""
    path = _listed_file(root, kind)
    path.write_bytes(path.read_bytes()[:-12])
    return _relist(root)


def _relabel(root: Path, kind: str, as_kind: str) -> Path:
    path = _listed_file(root, kind)
    path.rename(_listed_file(root, as_kind))
    return _relist(root)


def _append_listed(root: Path, kind: str, junk: bytes) -> Path:
    path = _listed_file(root, kind)
    path.write_bytes(path.read_bytes() + junk)
    return _relist(root)


# --- big inputs, made at test time: each builder writes the case's `input` (a file or a mirror) --------------------

def _arch_big(body: Callable[[], bytes], kind: str = "zstd") -> Callable[[Path], None]:
    """A database of `good` and the tar members `body()` makes (bytes: 100,000 members via tarfile take 2 s)."""
    def make(path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        head = b"".join(alpm.member_bytes(m) for m in GOOD)
        path.write_bytes(alpm.compress(head + body() + b"\0" * 1024, kind))
    return make


def _arch_bomb(kind: str) -> Callable[[Path], None]:
    """A member declaring 8 GiB (zstd) or 2 GiB (gzip) and holding as many zeros, in concatenated frames."""
    def make(path: Path) -> None:
        zeros = b"\0" * (64 * MB)
        info = tarfile.TarInfo("bomb-1-1/desc")
        info.mtime = alpm.MTIME
        pack = zstandard.ZstdCompressor(level=3).compress if kind == "zstd" else (
            lambda b: gzip.compress(b, compresslevel=9, mtime=0))
        frames = 128 if kind == "zstd" else 32  # gzip's ratio is at most ~1:1000: 2 GiB is 2 MB already
        info.size = frames * 64 * MB
        head = b"".join(alpm.member_bytes(m) for m in GOOD) + info.tobuf(tarfile.GNU_FORMAT)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pack(head + zeros) + pack(zeros) * (frames - 1))
    return make


def _debian_gzip_bomb(root: Path) -> None:
    """A Packages.gz of 1 GiB of newlines in 16 concatenated gzip members (1 MB): twice the 512 MiB limit."""
    write_mirror(root, packed="gz")
    member = gzip.compress(b"\n" * (64 * MB), compresslevel=9, mtime=0)
    _listed_file(root, "gz").write_bytes(gzip.compress(GOOD_STANZA.encode() + b"\n", mtime=0) + member * 16)
    _relist(root)


def _long_desc() -> bytes:
    return alpm.member_bytes(M("huge-1-1/desc", desc("huge", extra="%NOTE%\n" + "x" * (10 * MB) + "\n\n").encode()))


def _long_member_name() -> bytes:
    return alpm.member_bytes(M("n" * (10 * MB) + "-1-1/desc", desc("n").encode()))


def _same_member(n: int) -> bytes:
    return alpm.member_bytes(M("a-1.0-1/desc", desc("a").encode())) * n


def _same_name(n: int) -> bytes:
    """`a-<i>-1/desc` for i < n, all the same desc: one header made, the others patched (name and checksum)."""
    member = alpm.member_bytes(M("a-000000-1/desc", desc("a").encode()))
    header, data = bytearray(member[:512]), member[512:]
    header[148:156] = b" " * 8
    base = sum(header) - sum(b"000000")
    out = []
    for i in range(n):
        digits = b"%06d" % i
        header[2:8] = digits
        header[148:156] = b"%06o\0 " % (base + sum(digits))
        out.append(bytes(header) + data)
    return b"".join(out)


def _debian_big_field(root: Path) -> Path:
    return write_mirror(root, GOOD_STANZA + "\n" + stanza("evil", Description="x" * (10 * MB)),
                        sources=SOURCES + "\n" + EVIL_SOURCE)


def _debian_long_version(root: Path) -> Path:
    version = "1" * (10 * MB)
    return write_mirror(root, GOOD_STANZA + "\n" + stanza("evil", version, Filename="pool/main/e/evil/evil_1_amd64.deb"),
                        sources=SOURCES + "\n" + EVIL_SOURCE)


def _debian_long_name(root: Path) -> Path:
    name = "a" * (10 * MB)
    return write_mirror(root, GOOD_STANZA + "\n" + stanza(name, Source="good (1.0-1)"))


def _debian_oversized_inrelease(root: Path) -> None:
    """An InRelease one byte over the 64 MiB a Release file may have (sparse: nothing is written)."""
    write_mirror(root)
    with open(root / "dists" / "sid" / "InRelease", "r+b") as f:
        f.truncate(64 * MB + 1)


def _debian_long_invalid_name(root: Path) -> Path:
    return write_mirror(root, GOOD_STANZA + "\n" + stanza("A" * (10 * MB), Filename="pool/main/a/a/a.deb"))


def _debian_same_name(root: Path) -> Path:
    evil = stanza("evil")
    return write_mirror(root, GOOD_STANZA + "\n" + "\n".join([evil] * 100_000),
                        sources=SOURCES + "\n" + EVIL_SOURCE)


def _debian_big_inrelease(root: Path) -> Path:
    def text(dist: Path) -> str:
        junk = "".join(f" {hashlib.sha256(str(i).encode()).hexdigest()} {i:>8} junk/{i}/Packages\n"
                       for i in range(100_000))
        return release_text(dist, extra={"Architectures": "amd64"}) + junk
    return write_mirror(root, release=text)


BIG: dict[str, Callable[[Path], object]] = {
    "arch-bomb-zstd": _arch_bomb("zstd"),
    "arch-bomb-gzip": _arch_bomb("gzip"),
    "arch-10mb-desc-field": _arch_big(_long_desc, "gzip"),
    "arch-10mb-member-name": _arch_big(_long_member_name, "xz"),
    "arch-100k-same-member": _arch_big(lambda: _same_member(100_000)),
    "arch-100k-same-name": _arch_big(lambda: _same_name(100_000)),
    "debian-bomb-gz": _debian_gzip_bomb,
    "debian-inrelease-oversized": _debian_oversized_inrelease,
    "debian-10mb-description": _debian_big_field,
    "debian-10mb-package-name": _debian_long_name,
    "debian-10mb-version": _debian_long_version,
    "debian-10mb-invalid-name": _debian_long_invalid_name,
    "debian-100k-same-package": _debian_same_name,
    "debian-inrelease-100k-entries": _debian_big_inrelease,
    "result-oversized": lambda path: _write(path, b'{"signed": {"reason": "' + b"x" * (2 * MB) + b'"}}'),
    "result-deep-nesting": lambda path: _write(path, b"[" * 100_000 + b"]" * 100_000),
}


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def make_small(case_id: str, root: Path) -> Path:
    """Write the committed input of one small Arch or Debian case under `root` (its case directory)."""
    if case_id in ARCH:
        root.mkdir(parents=True, exist_ok=True)
        (root / "core.db").write_bytes(ARCH[case_id]())
        return root
    return DEBIAN[case_id](root)


def main(argv: list[str]) -> None:
    """Rewrite every committed Arch and Debian case (or only the ids given)."""
    wanted = argv or [*ARCH, *DEBIAN]
    for case_id in wanted:
        folder = CORPUS / ("arch" if case_id in ARCH else "debian") / case_id
        shutil.rmtree(folder, ignore_errors=True)
        make_small(case_id, folder)
        print(f"wrote {folder.relative_to(CORPUS.parent.parent.parent)}")


if __name__ == "__main__":
    main(sys.argv[1:])
