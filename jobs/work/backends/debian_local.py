"""Backend ``debian-local``: rebuild Debian binary packages from a ``.buildinfo`` with mmdebstrap and dpkg-buildpackage.

It follows rebuilderd's backend contract (see ``jobs.work.backends``)::

    REBUILDERD_OUTDIR=<dir> rebuilder-backend-debian-local <source>_<version>_<arch>.buildinfo

The script ``rebuilder-debian-local`` next to this module runs the same thing, for a worker config
that names a file: ``[backend."debian-local"] path = "…/rebuilder-debian-local"``.

Environment (the worker passes its own environment through to the backend):

``REBUILDERD_OUTDIR``
    Required. The rebuilt ``.deb`` files are written here under dpkg's names, which are the
    published names when the rebuild matches.
``REBUILDER_DEBIAN_SOURCES``
    Required. apt one-line sources, one per line (or the path of a file holding them): ``deb``
    lines for the build root, ``deb-src`` lines for the source package, e.g.
    ``deb [signed-by=/etc/rebuilder/archive.gpg] http://mirror/debian bookworm main``. A
    ``signed-by`` keyring is copied into the build root. Lines without ``signed-by`` use the
    host's apt keyrings.
``REBUILDER_DEBIAN_SNAPSHOT``
    Optional. A snapshot-style URL template, e.g.
    ``https://snapshot.debian.org/archive/debian/{timestamp}/ sid main``: ``{timestamp}`` becomes the
    .buildinfo's Build-Date as ``YYYYMMDDTHHMMSSZ``, and the line is added as ``deb`` and
    ``deb-src`` source. Operators with snapshot access so get the exact old versions (debrebuild's
    role); without it only versions the configured sources still carry can be installed.
``REBUILDER_DEBIAN_ROOT_CACHE``
    Optional. A directory keeping the build roots (mmdebstrap tarballs) keyed by the sources,
    architecture and the exact package set, so a second rebuild with the same
    Installed-Build-Depends does not download them again.
``REBUILDER_DEBIAN_BUILDINFO_KEYRING``
    Optional. An OpenPGP keyring (binary, as apt's ``signed-by``): every .buildinfo must then be
    clearsigned by a key in it, checked with ``gpgv``; an unsigned one, a bad signature or an
    unknown key is a FAIL with that reason, and only the signed text is read. Unset, a clearsigned
    .buildinfo is read without checking its signature.
``REBUILDER_BUILD_USER``
    The unprivileged user the build runs as inside the root (default ``builder``; created there).
``REBUILDER_BUILD_TIMEOUT``
    Seconds before the build is killed (default 86400).

What it does (docs/operating.md#running-a-debian-rebuilder): read and check the .buildinfo
(Source, Version, Architecture, Build-Architecture, Build-Path, Environment,
Installed-Build-Depends); make a build root with ``mmdebstrap --variant=buildd`` and
``--include`` of every ``name=version`` of Installed-Build-Depends from the configured sources,
then check that the root holds exactly those versions; download the source package with apt
(checked against the signed Sources) and check the .dsc's own checksums; unpack it at the
recorded Build-Path and run ``dpkg-buildpackage`` (``-B``, ``-A`` or ``-b`` as the recorded
Architecture says) as the build user with the recorded Environment, in a private mount and PID
namespace; copy the ``.deb`` files out.

Limits: it needs root (mmdebstrap's root mode, chroot, mounts), mmdebstrap, apt and dpkg-dev; the
host architecture must be the Build-Architecture; Build-Path must lie under ``/build/`` (where
dpkg-genbuildinfo records it); cross builds are refused. A binNMU (``Source: name (version)``,
a ``+bN`` Version) is built as sbuild builds one: its Binary-Only-Changes entry is put first in
the unpacked source's ``debian/changelog``; one without that entry is refused.

Exit status: 0 when dpkg-buildpackage completed (the worker then compares, the result may still be
BAD); 1 when the rebuild could not run (a build-dependency version the sources do not carry, a
checksum mismatch, a failed build); 2 for a usage or configuration error. On a non-zero status the
last line of output is ``rebuilder-backend: FAIL: <reason>``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path, PurePosixPath

from debian.deb822 import BuildInfo, Deb822, Dsc

from jobs.core.errors import TerminalError
from jobs.work.backends.script import UsageError, guarded, stop_on_signals
from jobs.work.backends.script import run as run_tool
from jobs.work.backends.script import say as _say

USAGE = "usage: rebuilder-backend-debian-local <file.buildinfo> (with REBUILDERD_OUTDIR set)"
DEFAULT_TIMEOUT = 86400.0
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
KEYRING_PATH = re.compile(r"/[A-Za-z0-9._+/-]{1,255}")
SOURCE_LINE = re.compile(r"(?P<type>deb|deb-src)\s+(?:\[(?P<options>[^\]\n]*)\]\s+)?(?P<uri>\S+)\s+(?P<suite>\S+)"
                         r"(?P<components>(?:\s+\S+)*)\s*")


class RebuildRefused(TerminalError):
    """The input asks for something this backend cannot or will not do (exit status 1)."""


@dataclass(frozen=True)
class SourceLine:
    """One apt one-line source."""

    type: str
    options: str
    uri: str
    suite: str
    components: tuple[str, ...]

    def text(self, type_: str | None = None) -> str:
        options = f" [{self.options}]" if self.options else ""
        return " ".join([f"{type_ or self.type}{options}", self.uri, self.suite, *self.components])

    def keyrings(self) -> list[str]:
        found = []
        for option in self.options.split():
            key, _, value = option.partition("=")
            if key == "signed-by":
                found += [v for v in value.split(",") if v]
        return found


def parse_sources(text: str, *, what: str = "REBUILDER_DEBIAN_SOURCES") -> list[SourceLine]:
    """apt one-line sources, one a line; blank lines and ``#`` comments are skipped."""
    lines = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = SOURCE_LINE.fullmatch(line)
        if match is None:
            raise UsageError(f"{what} line {number}: not an apt source line "
                             f"('deb [options] URI suite component...'): {line[:200]!r}")
        source = SourceLine(match["type"], (match["options"] or "").strip(), match["uri"], match["suite"],
                            tuple(match["components"].split()))
        if not re.fullmatch(r"(?:https?|file)://[^\s'\"\\]+", source.uri):
            raise UsageError(f"{what} line {number}: unsupported URI {source.uri[:200]!r} "
                             "(http://, https:// or file://)")
        for keyring in source.keyrings():
            if not KEYRING_PATH.fullmatch(keyring) or ".." in keyring.split("/"):
                raise UsageError(f"{what} line {number}: signed-by must be an absolute keyring path: {keyring!r}")
            if not Path(keyring).is_file():
                raise UsageError(f"{what} line {number}: keyring {keyring} does not exist")
        lines.append(source)
    return lines


@dataclass(frozen=True)
class LocalConfig:
    """The backend's configuration, read from the environment."""

    outdir: Path
    sources: tuple[SourceLine, ...]
    snapshot: str | None = None
    root_cache: Path | None = None
    user: str = "builder"
    timeout: float = DEFAULT_TIMEOUT
    buildinfo_keyring: Path | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> LocalConfig:
        outdir = env.get("REBUILDERD_OUTDIR", "")
        if not outdir:
            raise UsageError("REBUILDERD_OUTDIR is not set: it must name the directory for the rebuilt packages")
        text = env.get("REBUILDER_DEBIAN_SOURCES", "")
        if not text.strip():
            raise UsageError("REBUILDER_DEBIAN_SOURCES is not set: it must hold apt source lines "
                             "('deb [signed-by=…] URI suite component', and deb-src for the sources)")
        if text.startswith("/") and "\n" not in text.strip():
            try:
                text = Path(text.strip()).read_text()
            except OSError as e:
                raise UsageError(f"REBUILDER_DEBIAN_SOURCES: cannot read {text.strip()}: {e.strerror}") from None
        sources = tuple(parse_sources(text))
        if not any(s.type == "deb" for s in sources):
            raise UsageError("REBUILDER_DEBIAN_SOURCES has no 'deb' line for the build root")
        snapshot = env.get("REBUILDER_DEBIAN_SNAPSHOT") or None
        if snapshot is not None:
            if "{timestamp}" not in snapshot:
                raise UsageError("REBUILDER_DEBIAN_SNAPSHOT must contain {timestamp} "
                                 "(e.g. 'https://snapshot.debian.org/archive/debian/{timestamp}/ sid main')")
            parse_sources("deb " + snapshot.replace("{timestamp}", "20250101T000000Z"),
                          what="REBUILDER_DEBIAN_SNAPSHOT")
        cache = env.get("REBUILDER_DEBIAN_ROOT_CACHE") or None
        keyring = env.get("REBUILDER_DEBIAN_BUILDINFO_KEYRING") or None
        if keyring is not None and (not KEYRING_PATH.fullmatch(keyring) or not Path(keyring).is_file()):
            raise UsageError(f"REBUILDER_DEBIAN_BUILDINFO_KEYRING: not an existing keyring file (absolute path): "
                             f"{keyring[:200]!r}")
        user = env.get("REBUILDER_BUILD_USER") or "builder"
        if not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", user) or user == "root":
            raise UsageError(f"REBUILDER_BUILD_USER: not a valid unprivileged user name: {user!r}")
        try:
            timeout = float(env.get("REBUILDER_BUILD_TIMEOUT") or DEFAULT_TIMEOUT)
        except ValueError:
            raise UsageError("REBUILDER_BUILD_TIMEOUT must be a number of seconds") from None
        return cls(outdir=Path(outdir), sources=sources, snapshot=snapshot,
                   root_cache=Path(cache) if cache else None, user=user, timeout=timeout,
                   buildinfo_keyring=Path(keyring) if keyring else None)

    def sources_for(self, info: DebianBuildinfo) -> list[SourceLine]:
        """The configured sources plus, with a snapshot template, the snapshot of the build's date."""
        lines = list(self.sources)
        if self.snapshot:
            stamp = info.build_date.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
            (line,) = parse_sources("deb " + self.snapshot.replace("{timestamp}", stamp),
                                    what="REBUILDER_DEBIAN_SNAPSHOT")
            lines += [line, SourceLine("deb-src", line.options, line.uri, line.suite, line.components)]
        return lines


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
        text = _strip_clearsign(text, path)
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
    except (TypeError, ValueError):
        raise RebuildRefused(f"{path.name}: Build-Date is not an RFC 2822 date") from None
    if build_date.tzinfo is None:
        build_date = build_date.replace(tzinfo=timezone.utc)
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
            raise UsageError("gpgv not found: REBUILDER_DEBIAN_BUILDINFO_KEYRING needs gpgv (apt-get install gpgv)") \
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


def _strip_clearsign(text: str, path: Path) -> str:
    """The signed text of a clearsigned .buildinfo (the signature is not ours to judge here)."""
    match = re.match(r"-----BEGIN PGP SIGNED MESSAGE-----\n(?:[^\n]+\n)*\n(.*?)\n-----BEGIN PGP SIGNATURE-----",
                     text, re.DOTALL)
    if match is None:
        raise RebuildRefused(f"{path.name}: malformed clearsigned text")
    return re.sub(r"^- ", "", match[1], flags=re.MULTILINE) + "\n"


# --- tools ------------------------------------------------------------------------------------------


def _run(argv: list[str], *, what: str, timeout: float, env: Mapping[str, str] | None = None,
         cwd: Path | None = None, capture: bool = False) -> subprocess.CompletedProcess:
    """Run a tool with its output into our log (or captured); raise RebuildRefused when it fails."""
    sys.stdout.flush()
    try:
        done = run_tool(argv, env=dict(env) if env is not None else None, cwd=cwd, stdin=subprocess.DEVNULL,
                        stdout=subprocess.PIPE if capture else sys.stdout,
                        stderr=subprocess.STDOUT, timeout=timeout, start_new_session=False)
    except FileNotFoundError:
        raise UsageError(f"{argv[0]} not found: debian-local needs mmdebstrap, apt and dpkg-dev") from None
    except subprocess.TimeoutExpired:
        raise RebuildRefused(f"{what} timed out after {timeout:.0f} s") from None
    if capture:
        out = done.stdout.decode("utf-8", errors="replace")
        sys.stdout.write(out)
        sys.stdout.flush()
    if done.returncode != 0:
        raise ToolFailed(what, done.returncode, done.stdout.decode("utf-8", errors="replace") if capture else "")
    return done


class ToolFailed(RebuildRefused):
    def __init__(self, what: str, status: int, output: str) -> None:
        super().__init__(f"{what} failed (status {status})")
        self.output = output


def host_architecture() -> str:
    done = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True, timeout=60)
    return done.stdout.strip()


# --- the build root ---------------------------------------------------------------------------------


def root_key(sources: Sequence[SourceLine], arch: str, variant: str, includes: Sequence[str]) -> str:
    """The cache key of a build root: everything that decides what mmdebstrap installs."""
    blob = json.dumps({"sources": [s.text() for s in sources if s.type == "deb"], "arch": arch, "variant": variant,
                       "include": sorted(includes)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def cached_root(cache: Path, sources: Sequence[SourceLine], *, arch: str, includes: Sequence[str],
                variant: str = "buildd", key_extra: str = "") -> Path:
    """Where make_root keeps the root of these inputs in ``cache`` (it may not exist yet)."""
    key = root_key([s for s in sources if s.type == "deb"], arch, variant, includes)
    if key_extra:
        key = hashlib.sha256(f"{key} {key_extra}".encode()).hexdigest()
    return cache / f"root-{key}.tar"


def make_root(sources: Sequence[SourceLine], *, arch: str, includes: Sequence[str], dest: Path,
              cache: Path | None, timeout: float, variant: str = "buildd", key_extra: str = "") -> Path:
    """A build root tarball with ``includes`` (``name`` or ``name=version``): from the cache or mmdebstrap."""
    debs = [s for s in sources if s.type == "deb"]
    key = root_key(debs, arch, variant, includes)
    if key_extra:
        key = hashlib.sha256(f"{key} {key_extra}".encode()).hexdigest()
    if cache is not None:
        cached = cached_root(cache, sources, arch=arch, includes=includes, variant=variant, key_extra=key_extra)
        if cached.is_file():
            _say(f"build root from the cache: {cached}")
            return cached
        cache.mkdir(parents=True, exist_ok=True)
        target = cache / f".root-{key}.{os.getpid()}.tar"
    else:
        target = dest
    argv = ["mmdebstrap", "--mode=root", f"--variant={variant}", f"--architectures={arch}", "--format=tar",
            "--skip=output/mknod"]
    if includes:
        argv.append("--include=" + ",".join(includes))
    for keyring in sorted({k for s in debs for k in s.keyrings()}):
        parent = str(PurePosixPath(keyring).parent)
        argv += [f"--setup-hook=mkdir -p \"$1\"{shlex.quote(parent)}",
                 f"--setup-hook=copy-in {shlex.quote(keyring)} {shlex.quote(parent)}"]
    argv += [debs[0].suite, str(target), *(s.text() for s in debs)]
    _say(f"making the build root: mmdebstrap --variant={variant} with {len(includes)} package(s)")
    try:
        _run(argv, what="mmdebstrap", timeout=timeout, capture=True)
    except ToolFailed as e:
        target.unlink(missing_ok=True)
        missing = re.findall(r"Version '([^']+)' for '([^']+)' was not found", e.output)
        if missing:
            listed = ", ".join(f"{name}={version}" for version, name in missing[:5])
            raise RebuildRefused(f"build dependency not available from the configured sources: {listed}"
                                 + (" (and more)" if len(missing) > 5 else "")) from None
        unknown = re.findall(r"Unable to locate package (\S+)", e.output)
        if unknown:
            raise RebuildRefused(f"build dependency not available from the configured sources: "
                                 f"{', '.join(unknown[:5])}") from None
        raise
    except BaseException:  # stopped: a half-written root must not stay in the cache directory
        target.unlink(missing_ok=True)
        raise
    if cache is not None:
        final = cache / f"root-{key}.tar"
        os.replace(target, final)
        return final
    return target


# --- the source package -----------------------------------------------------------------------------


def fetch_source(sources: Sequence[SourceLine], info: DebianBuildinfo, dest: Path, *, timeout: float) -> Path:
    """Download the source package with apt (checked against the signed Sources); check the .dsc; return it."""
    srcs = [s for s in sources if s.type == "deb-src"]
    if not srcs:
        raise UsageError("REBUILDER_DEBIAN_SOURCES has no 'deb-src' line for the source package")
    aptdir = dest / "apt"
    for sub in ("etc/apt/apt.conf.d", "etc/apt/preferences.d", "etc/apt/trusted.gpg.d", "var/lib/apt/lists/partial",
                "var/cache/apt/archives/partial", "var/lib/dpkg"):
        (aptdir / sub).mkdir(parents=True, exist_ok=True)
    (aptdir / "var/lib/dpkg/status").touch()
    (aptdir / "etc/apt/sources.list").write_text("".join(s.text() + "\n" for s in srcs))
    for host_keys in Path("/etc/apt/trusted.gpg.d").glob("*"):
        if host_keys.is_file():
            shutil.copy(host_keys, aptdir / "etc/apt/trusted.gpg.d" / host_keys.name)
    options = ["-o", f"Dir={aptdir}", "-o", "Dir::State::status=" + str(aptdir / "var/lib/dpkg/status"),
               "-o", "Debug::NoLocking=1", "-o", "APT::Sandbox::User=root", "-q"]
    try:
        _run(["apt-get", *options, "update", "--error-on=any"], what="apt-get update (deb-src)", timeout=timeout,
             capture=True)
    except ToolFailed as e:
        errors = re.findall(r"^E: (.+)$", e.output, re.MULTILINE)
        if errors:
            raise RebuildRefused(f"apt-get update (deb-src) failed: {errors[0][:300]}") from None
        raise
    srcdir = dest / "src"
    srcdir.mkdir()
    spec = f"{info.source}={info.source_version}"
    try:
        _run(["apt-get", *options, "source", "--download-only", spec], what="apt-get source", timeout=timeout,
             cwd=srcdir, capture=True)
    except ToolFailed as e:
        if "Can not find version" in e.output or "Unable to find a source package" in e.output:
            raise RebuildRefused(f"source package {spec} is not available from the configured sources") from None
        raise
    upstream = re.sub(r"^[0-9]+:", "", info.source_version)
    dsc = srcdir / f"{info.source}_{upstream}.dsc"
    if not dsc.is_file():
        raise RebuildRefused(f"apt did not download {dsc.name}")
    check_dsc(dsc)
    return dsc


def check_dsc(dsc: Path) -> None:
    """Every file the .dsc lists is beside it with the listed size and sha256."""
    with open(dsc, "rb") as f:
        data = f.read(MAX_BUILDINFO + 1)
    if len(data) > MAX_BUILDINFO:
        raise RebuildRefused(f"{dsc.name}: larger than {MAX_BUILDINFO} bytes")
    text = data.decode("utf-8", errors="replace")
    if text.startswith("-----BEGIN PGP SIGNED MESSAGE-----"):
        text = _strip_clearsign(text, dsc)
    parsed = Dsc(text)
    rows = parsed.get("Checksums-Sha256") or []
    if not rows:
        raise RebuildRefused(f"{dsc.name}: no Checksums-Sha256")
    for row in rows:
        name = str(row.get("name", ""))
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+~-]{0,254}", name):
            raise RebuildRefused(f"{dsc.name}: unsafe file name {name[:100]!r}")
        path = dsc.parent / name
        if not path.is_file():
            raise RebuildRefused(f"{dsc.name}: {name} was not downloaded")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != row.get("sha256") or path.stat().st_size != int(row.get("size", -1)):
            raise RebuildRefused(f"{dsc.name}: checksum mismatch for {name}: expected {row.get('sha256')}, "
                                 f"got {digest}")


# --- the build --------------------------------------------------------------------------------------

# Runs as root in a private mount and PID namespace: unpack the root, mount /proc and /dev, create
# the user, unpack the source at the recorded path as the user, build as the user.
_BUILD_SCRIPT = r"""
set -eu
root=$1 user=$2 build_path=$3 dsc=$4 build_type=$5 envfile=$6 entryfile=$7
mount --make-rprivate /
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
chroot "$root" sh -c 'getent passwd "$1" >/dev/null || useradd --create-home --shell /bin/sh "$1"' - "$user"
parent=$(dirname "$build_path")
mkdir -p "$root$parent"
chroot "$root" chown "$user:" "$parent"
mkdir -p "$root/srv/rebuilder-source"
cp -- "$(dirname "$dsc")"/* "$root/srv/rebuilder-source/"
cp -- "$envfile" "$root/srv/rebuilder-env"
cp -- "$entryfile" "$root/srv/rebuilder-binnmu-entry"
chmod -R a+rX "$root/srv"
exec chroot --userspec="$user:$user" "$root" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/nonexistent \
    LOGNAME="$user" USER="$user" /bin/sh -c '
set -eu
set -a
. /srv/rebuilder-env
set +a
dpkg-source -x "/srv/rebuilder-source/$(basename "$1")" "$2"
cd "$2"
if [ -s /srv/rebuilder-binnmu-entry ]; then
    { cat /srv/rebuilder-binnmu-entry; echo; cat debian/changelog; } > debian/changelog.binnmu
    mv debian/changelog.binnmu debian/changelog
fi
exec dpkg-buildpackage -us -uc "$3"
' - "$dsc" "$build_path" "$build_type"
"""


def build(root_tar: Path, dsc: Path, info: DebianBuildinfo, work: Path, *, user: str, timeout: float) -> list[Path]:
    """Build in a fresh copy of the root; return the files dpkg-buildpackage wrote beside the Build-Path."""
    root = work / "root"
    root.mkdir()
    _run(["tar", "-C", str(root), "--numeric-owner", "-xpf", str(root_tar)], what="unpacking the build root",
         timeout=timeout)
    envfile = work / "build.env"
    envfile.write_text("".join(f"{k}={shlex.quote(v)}\n" for k, v in sorted(info.environment.items())))
    entryfile = work / "binnmu-entry"
    entryfile.write_text(info.binary_only_changes)
    _say(f"building {info.source} {info.source_version} at {info.build_path} as {user}: "
         f"dpkg-buildpackage {info.build_type}, environment {' '.join(sorted(info.environment)) or '(none)'}")
    if info.binary_only_changes:
        _say(f"binNMU {info.version}: its Binary-Only-Changes entry goes first in debian/changelog")
    _run(["unshare", "--mount", "--pid", "--fork", "--kill-child", "sh", "-c", _BUILD_SCRIPT, "-", str(root), user,
          info.build_path, str(dsc), info.build_type, str(envfile), str(entryfile)],
         what="dpkg-buildpackage", timeout=timeout)
    parent = root / info.build_path.lstrip("/")
    return sorted(p for p in parent.parent.iterdir() if p.is_file())


def installed_versions(root_tar: Path, *, timeout: float) -> dict[str, str]:
    """name → version of every package installed in a root tarball (from its dpkg status)."""
    done = subprocess.run(["tar", "-xOf", str(root_tar), "./var/lib/dpkg/status"], capture_output=True,
                          timeout=timeout)
    if done.returncode != 0:
        raise RebuildRefused("the build root has no dpkg status")
    found = {}
    for para in Deb822.iter_paragraphs(done.stdout.decode("utf-8", errors="replace")):
        if "installed" in para.get("Status", ""):
            found[para["Package"]] = para["Version"]
            if para.get("Architecture") not in (None, "all"):
                found[f"{para['Package']}:{para['Architecture']}"] = para["Version"]
    return found


def rebuild(buildinfo: Path, config: LocalConfig, work: Path) -> list[Path]:
    """The whole rebuild of one .buildinfo into config.outdir; returns the files written."""
    if not buildinfo.is_file():
        raise UsageError(f"input .buildinfo not found: {buildinfo}")
    info = read_buildinfo(buildinfo, keyring=config.buildinfo_keyring)
    if config.buildinfo_keyring is not None:
        _say(f"{buildinfo.name}: signature good (a key in {config.buildinfo_keyring})")
    arch = host_architecture()
    if info.build_architecture != arch:
        raise RebuildRefused(f"built on {info.build_architecture}; this host is {arch}")
    _say(f"rebuilding {info.source} {info.source_version} ({' '.join(info.architectures)}) from {buildinfo.name}")
    _say(f"recorded: Build-Path {info.build_path}, {len(info.installed)} installed build dependencies")
    sources = config.sources_for(info)
    includes = [f"{name}={version}" for name, version in info.installed]
    root_tar = make_root(sources, arch=arch, includes=includes, dest=work / "root.tar", cache=config.root_cache,
                         timeout=config.timeout)
    have = installed_versions(root_tar, timeout=config.timeout)
    wrong = [f"{name}={version} (root has {have.get(name, 'none')})" for name, version in info.installed
             if have.get(name) != version]
    if wrong:
        raise RebuildRefused("the build root does not hold the recorded build dependencies: " + ", ".join(wrong[:5]))
    dsc = fetch_source(sources, info, work, timeout=config.timeout)
    _say(f"source {dsc.name}: checksums match")
    debs = [p for p in build(root_tar, dsc, info, work, user=config.user, timeout=config.timeout)
            if p.suffix in (".deb", ".udeb")]
    if not debs:
        raise RebuildRefused("dpkg-buildpackage wrote no .deb")
    config.outdir.mkdir(parents=True, exist_ok=True)
    written = []
    for deb in debs:
        target = config.outdir / deb.name
        shutil.copyfile(deb, target)
        written.append(target)
    _say(f"rebuilt into {config.outdir}: {', '.join(p.name for p in written)}")
    return written


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Run the backend: returns the exit status; the last line says why when it is not 0."""
    args = list(sys.argv[1:] if argv is None else argv)
    stop_on_signals()

    def body() -> int:
        if len(args) != 1:
            raise UsageError(USAGE)
        config = LocalConfig.from_env(os.environ if env is None else env)
        base = Path(os.environ.get("TMPDIR") or "/var/tmp")
        with tempfile.TemporaryDirectory(prefix="rebuilder-debian-local-", dir=base) as tmp:
            rebuild(Path(args[0]), config, Path(tmp))
        return 0

    return guarded(body)


if __name__ == "__main__":
    sys.exit(main())
