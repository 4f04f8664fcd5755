"""What a local package file says it is: name, version and architecture from its own metadata.

pacman packages (`.pkg.tar.zst`, `.xz`, `.gz`, `.bz2` or plain tar): the `.PKGINFO` member,
which makepkg writes among the first (dot files first), read by streaming the archive, so a
large package is never held in memory. Debian packages (`.deb`): the `control` file of
`control.tar.*`, found with python-debian's ArFile and parsed with its Deb822. The
compression is chosen from the magic bytes, never from the file name.

The digests are of the whole file: they are what an attestation's products list.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import zstandard

from jobs.core.bounded import cap
from jobs.core.errors import TerminalError
from jobs.core.signing import hash_artifact

MAX_METADATA = cap("package_metadata")  # .PKGINFO and control are a few KB
_ZSTD = b"\x28\xb5\x2f\xfd"
_XZ = b"\xfd7zXZ\x00"
_GZIP = b"\x1f\x8b"
_BZIP2 = b"BZh"
_AR = b"!<arch>\n"


class NotAPackage(TerminalError):
    """A file that is not a pacman or Debian package we can read the identity of."""

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message, path=path)
        self.path = path


@dataclass(frozen=True)
class LocalPackage:
    """A package file on this machine and the identity its metadata declares."""

    path: Path
    kind: str  # "pacman" or "deb"
    name: str
    version: str
    architecture: str
    sha256: str

    @property
    def filename(self) -> str:
        return self.path.name


def read_package(path: Path) -> LocalPackage:
    """Name, version, architecture and sha256 of a pacman or Debian package file; NotAPackage."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(512)
            fh.seek(0)
            if head.startswith(_AR):
                kind, fields = "deb", _deb_control(fh, path)
            else:
                kind, fields = "pacman", _pkginfo(fh, head, path)
    except OSError as exc:
        raise NotAPackage(f"cannot read: {exc.strerror}", path=str(path)) from None
    return LocalPackage(path, kind, fields[0], fields[1], fields[2], hash_artifact(path)["sha256"])


def _decompressed(fh: IO[bytes], head: bytes, path: Path) -> IO[bytes]:
    if head.startswith(_ZSTD):
        return zstandard.ZstdDecompressor().stream_reader(fh)
    if head.startswith(_XZ):
        return lzma.open(fh)
    if head.startswith(_GZIP):
        return gzip.open(fh)
    if head.startswith(_BZIP2):
        return bz2.open(fh)
    if head[257:262] == b"ustar":
        return fh
    raise NotAPackage("not a pacman package (.pkg.tar.*) or a Debian package (.deb)", path=str(path))


def _member(stream: IO[bytes], wanted: set[str], path: Path) -> bytes:
    """The first member of a tar stream whose name is in `wanted`, read sequentially."""
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for info in tar:
                if info.name in wanted and info.isfile():
                    if info.size > MAX_METADATA:
                        break
                    member = tar.extractfile(info)
                    return member.read() if member is not None else b""
    except (tarfile.TarError, OSError, EOFError, lzma.LZMAError, zstandard.ZstdError, ValueError) as exc:
        raise NotAPackage(f"unreadable archive: {exc}", path=str(path)) from None
    raise NotAPackage(f"no {' or '.join(sorted(wanted))} in the archive", path=str(path))


def _pkginfo(fh: IO[bytes], head: bytes, path: Path) -> tuple[str, str, str]:
    text = _member(_decompressed(fh, head, path), {".PKGINFO"}, path).decode("utf-8", "replace")
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(" = ")
        if sep and not key.startswith("#"):
            fields.setdefault(key.strip(), value.strip())  # depend = … repeats; the identity does not
    return _identity(fields, ("pkgname", "pkgver", "arch"), ".PKGINFO", path)


def _deb_control(fh: IO[bytes], path: Path) -> tuple[str, str, str]:
    from debian.arfile import ArError, ArFile
    from debian.deb822 import Deb822

    try:
        ar = ArFile(fileobj=fh)
        names = [n for n in ar.getnames() if n == "control.tar" or n.startswith("control.tar.")]
        if len(names) != 1:
            raise NotAPackage("a .deb needs exactly one control.tar member", path=str(path))
        data = ar.getmember(names[0]).read()
    except (ArError, ValueError, EOFError) as exc:  # ArFile raises ValueError on a corrupt header
        raise NotAPackage(f"not a Debian package: {exc}", path=str(path)) from None
    stream: IO[bytes] = io.BytesIO(data)
    if names[0] != "control.tar":
        stream = _decompressed(stream, data[:512], path)
    control = _member(stream, {"./control", "control"}, path).decode("utf-8", "replace")
    return _identity(Deb822(control), ("Package", "Version", "Architecture"), "control", path)


def _identity(fields, keys: tuple[str, str, str], where: str, path: Path) -> tuple[str, str, str]:
    values = tuple(fields.get(k) for k in keys)
    missing = [k for k, v in zip(keys, values, strict=True) if not v]
    if missing:
        raise NotAPackage(f"{where} lacks {', '.join(missing)}", path=str(path))
    return values  # type: ignore[return-value]
