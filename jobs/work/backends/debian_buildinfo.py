"""The ``.buildinfo`` of a Debian rebuild (backend ``debian-local``), read and checked.

Everything in a .buildinfo is untrusted input. Every field this backend uses is checked against
the characters Debian allows before anything uses it, and a value that fails is refused (a
RebuildRefused naming the field), never cleaned up. With a keyring, the file must be clearsigned
by a key in it (checked with ``gpgv``) and only the signed text is read.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path

from debian.deb822 import BuildInfo

from jobs.core.errors import TerminalError
from jobs.work.backends.script import SetupError

MAX_BUILDINFO = 1 << 20
MAX_DEPENDS = 10000
MAX_ENV = 200
PACKAGE = re.compile(r"[a-z0-9][a-z0-9+.-]{0,127}")
VERSION = re.compile(r"(?:[0-9]{1,9}:)?[A-Za-z0-9][A-Za-z0-9.+~-]{0,127}")
ARCH = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
DEPENDS_ENTRY = re.compile(r"(?P<name>[a-z0-9][a-z0-9+.-]{0,127})(?::(?P<arch>[a-z0-9-]{1,32}))?"
                           r"\s*\(\s*=\s*(?P<version>[^\s()]{1,140})\s*\)")
ENV_LINE = re.compile(r'(?P<key>[A-Za-z_][A-Za-z0-9_]{0,63})="(?P<value>[^"\\\x00-\x1f\x7f]{0,4096})"')
# Variables the build environment must not take from a .buildinfo: they steer the shell, the loader
# or where the build looks for its own files, not the package.
ENV_DENIED = re.compile(r"PATH|HOME|SHELL|USER|LOGNAME|IFS|ENV|BASH_ENV|TMPDIR|PWD|LD_.*")
BUILD_PATH = re.compile(r"/build/[A-Za-z0-9._+~-]+(?:/[A-Za-z0-9._+~-]+){0,7}")


class RebuildRefused(TerminalError):
    """The input asks for something this backend cannot or will not do (exit status 1)."""


@dataclass(frozen=True)
class DebianBuildinfo:
    """The fields of a .buildinfo this backend uses, checked."""

    source: str
    source_version: str  # the source package's version (without a binNMU suffix)
    version: str
    architectures: tuple[str, ...]
    build_architecture: str
    build_path: str
    build_date: datetime
    environment: dict[str, str]
    installed: tuple[tuple[str, str], ...]  # (name[:arch], version)
    binnmu: bool = False  # a binary-only upload: "Source: name (version)" or Binary-Only-Changes
    binary_only_changes: str = ""  # a binNMU's changelog entry, as debian/changelog's first entry
    checksums: dict[str, str] = field(default_factory=dict)  # file name → sha256

    @property
    def build_type(self) -> str:
        """dpkg-buildpackage's option for the recorded Architecture."""
        arches = set(self.architectures) - {"source"}
        if arches == {"all"}:
            return "-A"
        if "all" in arches:
            return "-b"
        return "-B"


def read_buildinfo(path: Path, *, keyring: Path | None = None) -> DebianBuildinfo:
    """Read and check a .buildinfo; raise RebuildRefused naming the field that is wrong.

    With ``keyring``, the .buildinfo must be clearsigned by a key in it, and only the text
    gpgv verified is read."""
    with open(path, "rb") as f:
        data = f.read(MAX_BUILDINFO + 1)
    if len(data) > MAX_BUILDINFO:
        raise RebuildRefused(f"{path.name}: larger than {MAX_BUILDINFO} bytes")
    if keyring is not None:
        data = verified_text(path, data, keyring)
    text = _utf8(data, path)
    if text.startswith("-----BEGIN PGP SIGNED MESSAGE-----"):
        text = strip_clearsign(text, path)
    info = BuildInfo(text)

    def need(name: str) -> str:
        value = info.get(name)
        if not value or not str(value).strip():
            raise RebuildRefused(f"{path.name}: field {name} is missing")
        return str(value).strip()

    source_field = need("Source")
    version = need("Version")
    match = re.fullmatch(r"(\S+)(?:\s+\((\S+)\))?", source_field)
    if match is None or not PACKAGE.fullmatch(match[1]):
        raise RebuildRefused(f"{path.name}: Source is not a package name: {source_field[:100]!r}")
    source, source_version = match[1], match[2] or re.sub(r"\+b[0-9]+$", "", version)
    for what, value in (("Version", version), ("Source version", source_version)):
        if not VERSION.fullmatch(value):
            raise RebuildRefused(f"{path.name}: {what} is not a Debian version: {value[:100]!r}")
    architectures = tuple(need("Architecture").split())
    if not architectures or len(architectures) > 8 or not all(ARCH.fullmatch(a) for a in architectures):
        raise RebuildRefused(f"{path.name}: Architecture is not a list of architectures")
    if set(architectures) <= {"source"}:
        raise RebuildRefused(f"{path.name}: a source-only build has no binary packages to rebuild")
    build_arch = need("Build-Architecture")
    if not ARCH.fullmatch(build_arch):
        raise RebuildRefused(f"{path.name}: Build-Architecture is not an architecture: {build_arch[:40]!r}")
    host_arch = info.get("Host-Architecture")
    if host_arch and host_arch.strip() != build_arch:
        raise RebuildRefused(f"{path.name}: cross builds (Host-Architecture {host_arch.strip()[:40]}) "
                             "are not supported")
    build_path = str(info.get("Build-Path") or "").strip()
    if not build_path:
        build_path = f"/build/{source}-{re.sub(r'^[0-9]+:', '', source_version)}"
    if not BUILD_PATH.fullmatch(build_path) or ".." in build_path.split("/") or "." in build_path.split("/"):
        raise RebuildRefused(f"{path.name}: Build-Path must be a plain path under /build/: {build_path[:200]!r}")
    try:
        build_date = parsedate_to_datetime(need("Build-Date"))
        if build_date.tzinfo is None:
            build_date = build_date.replace(tzinfo=timezone.utc)
        build_date.astimezone(timezone.utc)  # within the calendar in UTC too: the snapshot URL is made of it
    except (TypeError, ValueError, OverflowError):  # OverflowError: a year past a C int, or a UTC past 9999
        raise RebuildRefused(f"{path.name}: Build-Date is not an RFC 2822 date") from None
    environment: dict[str, str] = {}
    for line in str(info.get("Environment") or "").splitlines():
        line = line.strip()
        if not line:
            continue
        env_match = ENV_LINE.fullmatch(line)
        if env_match is None:
            raise RebuildRefused(f"{path.name}: Environment line is not KEY=\"value\": {line[:100]!r}")
        key = env_match["key"]
        if ENV_DENIED.fullmatch(key):
            raise RebuildRefused(f"{path.name}: Environment sets {key}, which a build must not take from input")
        environment[key] = env_match["value"]
    if len(environment) > MAX_ENV:
        raise RebuildRefused(f"{path.name}: more than {MAX_ENV} Environment variables")
    installed = []
    depends = str(info.get("Installed-Build-Depends") or "")
    entries = [e.strip() for e in depends.replace("\n", " ").split(",") if e.strip()]
    if not entries:
        raise RebuildRefused(f"{path.name}: Installed-Build-Depends is missing or empty")
    if len(entries) > MAX_DEPENDS:
        raise RebuildRefused(f"{path.name}: more than {MAX_DEPENDS} Installed-Build-Depends")
    for entry in entries:
        dep = DEPENDS_ENTRY.fullmatch(entry)
        if dep is None or not VERSION.fullmatch(dep["version"]):
            raise RebuildRefused(f"{path.name}: Installed-Build-Depends entry is not 'name (= version)': "
                                 f"{entry[:100]!r}")
        name = dep["name"] + (f":{dep['arch']}" if dep["arch"] else "")
        installed.append((name, dep["version"]))
    checksums = {}
    for row in info.get("Checksums-Sha256") or []:
        checksums[str(row.get("name", ""))] = str(row.get("sha256", ""))
    binnmu = match[2] is not None or bool(info.get("Binary-Only-Changes"))
    changes = ""
    if binnmu:
        if version == source_version:
            raise RebuildRefused(f"{path.name}: a binNMU's Version must differ from its source's ({version[:100]})")
        changes = binary_only_entry(str(info.get("Binary-Only-Changes") or ""), source, version, path)
    return DebianBuildinfo(source=source, source_version=source_version, version=version,
                           architectures=architectures, build_architecture=build_arch, build_path=build_path,
                           build_date=build_date, environment=environment, installed=tuple(installed),
                           binnmu=binnmu, binary_only_changes=changes, checksums=checksums)


MAX_BINNMU_ENTRY = 16384
BINNMU_HEADER = re.compile(r"(?P<source>[a-z0-9][a-z0-9+.-]{0,127}) \((?P<version>[^\s()]{1,140})\)"
                           r"(?: [a-z0-9][a-z0-9.+-]{0,63})+; [A-Za-z0-9=, .+-]{0,200}")
BINNMU_TRAILER = re.compile(r" -- [^\n]{1,300} <[^<>\s]{1,200}>  [A-Za-z0-9,:+ -]{1,60}")


def binary_only_entry(value: str, source: str, version: str, path: Path) -> str:
    """The changelog entry of a binNMU from its Binary-Only-Changes field (a multi-line field:
    one leading space per line, " ." for an empty line), checked: its header names this source and
    binary version and says binary-only=yes, and it ends with a maintainer trailer."""
    if not value.strip():
        raise RebuildRefused(f"{path.name}: a binNMU ({source} {version[:100]}) without Binary-Only-Changes "
                             "(its changelog entry) cannot be rebuilt")
    if len(value) > MAX_BINNMU_ENTRY:
        raise RebuildRefused(f"{path.name}: Binary-Only-Changes is larger than {MAX_BINNMU_ENTRY} bytes")
    lines = value.split("\n")
    if not lines[0].strip():
        lines = lines[1:]
    entry = []
    for line in lines:
        line = line[1:] if line.startswith(" ") else line
        entry.append("" if line == "." else line)
    if any(re.search(r"[\x00-\x08\x0b-\x1f\x7f]", line) for line in entry):
        raise RebuildRefused(f"{path.name}: Binary-Only-Changes holds control characters")
    header = BINNMU_HEADER.fullmatch(entry[0])
    if header is None or "binary-only=yes" not in entry[0].split(";", 1)[1].replace(" ", "").split(","):
        raise RebuildRefused(f"{path.name}: Binary-Only-Changes does not start with a binary-only changelog "
                             f"header ('{source} ({version}) suite; urgency=…, binary-only=yes'): {entry[0][:200]!r}")
    if header["source"] != source or header["version"] != version:
        raise RebuildRefused(f"{path.name}: Binary-Only-Changes is the entry of {header['source']} "
                             f"{header['version']}, not of {source} {version}")
    while entry and not entry[-1]:
        entry.pop()
    if not BINNMU_TRAILER.fullmatch(entry[-1]):
        raise RebuildRefused(f"{path.name}: Binary-Only-Changes does not end with a ' -- Name <email>  date' line")
    return "\n".join(entry) + "\n"


def verified_text(path: Path, data: bytes, keyring: Path, *, timeout: float = 120) -> bytes:
    """The signed text of a clearsigned ``data`` (the file ``path``) whose signature gpgv checks
    against ``keyring``; RebuildRefused saying why otherwise (unsigned, bad signature, unknown key)."""
    if not data.startswith(b"-----BEGIN PGP SIGNED MESSAGE-----"):
        raise RebuildRefused(f"{path.name}: not signed, and REBUILDER_DEBIAN_BUILDINFO_KEYRING asks for a "
                             "signature by a key in " + str(keyring))
    with tempfile.TemporaryDirectory(prefix="rebuilder-gpgv-") as home:
        out = Path(home) / "signed.txt"
        try:
            done = subprocess.run(["gpgv", "--homedir", home, "--keyring", str(keyring), "--status-fd", "1",
                                   "--output", str(out), "-"], input=data, capture_output=True, timeout=timeout)
        except FileNotFoundError:
            raise SetupError("gpgv not found: REBUILDER_DEBIAN_BUILDINFO_KEYRING needs gpgv (apt-get install gpgv)") \
                from None
        except subprocess.TimeoutExpired:
            raise RebuildRefused(f"{path.name}: gpgv timed out after {timeout:.0f} s") from None
        status = done.stdout.decode("utf-8", errors="replace")
        codes = {line.split()[1] for line in status.splitlines() if line.startswith("[GNUPG:] ") and
                 len(line.split()) > 1}
        if done.returncode == 0 and "VALIDSIG" in codes and out.is_file():
            signed = out.read_bytes()
            if len(signed) > MAX_BUILDINFO:
                raise RebuildRefused(f"{path.name}: signed text larger than {MAX_BUILDINFO} bytes")
            return signed
    if "BADSIG" in codes:
        why = "bad signature (the text was changed after it was signed, or the signature is corrupt)"
    elif "NO_PUBKEY" in codes or "ERRSIG" in codes:
        why = f"signed by a key that is not in {keyring}"
    elif "EXPKEYSIG" in codes or "REVKEYSIG" in codes:
        why = "signed by an expired or revoked key"
    elif "NODATA" in codes:
        why = "malformed signature"
    else:
        why = f"gpgv refused the signature (status {done.returncode})"
    raise RebuildRefused(f"{path.name}: {why}")


def _utf8(data: bytes, path: Path) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise RebuildRefused(f"{path.name}: not UTF-8 text") from None


def strip_clearsign(text: str, path: Path) -> str:
    """The signed text of a clearsigned .buildinfo (the signature is not ours to judge here)."""
    match = re.match(r"-----BEGIN PGP SIGNED MESSAGE-----\n(?:[^\n]+\n)*\n(.*?)\n-----BEGIN PGP SIGNATURE-----",
                     text, re.DOTALL)
    if match is None:
        raise RebuildRefused(f"{path.name}: malformed clearsigned text")
    return re.sub(r"^- ", "", match[1], flags=re.MULTILINE) + "\n"
