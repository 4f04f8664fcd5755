"""A tiny Debian archive built for real: source packages built with dpkg-buildpackage in an
mmdebstrap root made from Debian's archive (the mirror this host's apt uses), published as a signed
local apt repository with their .buildinfo files. ``rebuilder demo --distro debian`` and the
Debian tests use it.

* ``hello-repro`` (Architecture: any): a small C program; rebuilds byte for byte.
* ``unrepro`` (any): embeds the build time and a random token; cannot reproduce.
* ``hello-doc`` (all): a text file; reproducible, built with ``-A``.
* ``hello-nmu`` (any): a binNMU, source 1.0 built as binary ``1.0+b1`` with a binary-only
  changelog entry (as sbuild's ``--make-binNMU``), so its .buildinfo has
  ``Source: hello-nmu (1.0)`` and Binary-Only-Changes; reproducible.
* ``gone-dep`` (any): reproducible, but its published .buildinfo names a build dependency version
  (``coreutils (= 8.0-1)``) that the archive does not carry any more, so its rebuild is a FAIL
  with that reason, as an old package's is for an operator without snapshot access.

Layout under the base directory (``fixture-repo.json`` records it; paths relative)::

    repo/dists/fixture/{InRelease,main/binary-<arch>/Packages,main/source/Sources}, repo/pool/main/…
    buildinfo/<p>/<source>/<source>_<version>_<arch>.buildinfo   as buildinfos.debian.net lays them out,
                               clearsigned (REBUILDER_DEBIAN_BUILDINFO_KEYRING = the keyring below)
    gnupg/                     the signing key of both; gnupg/fixture-archive.gpg its public keyring

The build root is an mmdebstrap tarball in the given cache directory (renewed weekly, so the
recorded build dependencies stay ones the archive carries); only its first use downloads it.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from jobs.work.backends.debian_build import build
from jobs.work.backends.debian_buildinfo import DebianBuildinfo
from jobs.work.backends.debian_config import SourceLine, parse_sources
from jobs.work.backends.debian_root import cached_root, host_architecture, make_root

SUITE = "fixture"
VERSION = "1.0"
EPOCH = "1735689600"  # 2025-01-01, the changelog's date
BINNMU_VERSION = "1.0+b1"
REPRODUCIBLE = ("hello-repro", "hello-doc", "hello-nmu")
UNREPRODUCIBLE = ("unrepro",)
UNBUILDABLE = ("gone-dep",)
BINNMU = ("hello-nmu",)
GONE_VERSION = "8.0-1"
KEYRING_FILES = ("/usr/share/keyrings/debian-archive-keyring.gpg",)
MANIFEST = "fixture-repo.json"
MAINTAINER = "Rebuilder Tests <tests@rebuilder.invalid>"


def require_debian_host() -> str | None:
    """Why this host cannot build the fixture, or None."""
    if os.geteuid() != 0:
        return "needs root (mmdebstrap root mode, chroot)"
    for tool, package in (("mmdebstrap", "mmdebstrap"), ("dpkg-buildpackage", "dpkg-dev"), ("apt-get", "apt"),
                          ("gpg", "gpg"), ("unshare", "util-linux"), ("dpkg-scanpackages", "dpkg-dev")):
        if shutil.which(tool) is None:
            return f"{tool} missing (apt-get install {package})"
    if host_archive_line() is None:
        return "no Debian archive in this host's apt sources"
    return None


def host_archive_line() -> SourceLine | None:
    """The first Debian archive source of this host's apt (deb822 .sources or sources.list), as a deb line."""
    for path in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for para in re.split(r"\n\s*\n", path.read_text()):
            fields = dict(re.findall(r"^([A-Za-z-]+):[ \t]*(.*)$", para, re.MULTILINE))
            if "deb" not in fields.get("Types", "").split() or fields.get("Enabled", "yes") == "no":
                continue
            for uri in fields.get("URIs", "").split():
                for suite in fields.get("Suites", "").split():
                    if "-" in suite or not uri.rstrip("/").endswith("/debian"):
                        continue  # the main suite only, not -security/-updates
                    keyring = fields.get("Signed-By", "").strip() or KEYRING_FILES[0]
                    line = f"deb [signed-by={keyring}] {uri} {suite} main"
                    return parse_sources(line)[0]
    listing = Path("/etc/apt/sources.list")
    if listing.is_file():
        for line in listing.read_text().splitlines():
            words = line.split("#")[0].split()
            if len(words) >= 3 and words[0] == "deb" and "-" not in words[-2] and "security" not in line:
                return parse_sources(line.split("#")[0])[0]
    return None


CONTROL = """\
Source: {name}
Section: misc
Priority: optional
Maintainer: {maintainer}
Standards-Version: 4.6.2
Rules-Requires-Root: no

Package: {name}
Architecture: {arch}
Description: rebuilder test fixture {name}
 A package of the Debian fixture of rebuilder's tests.
"""

CHANGELOG = f"""\
{{name}} ({VERSION}) unstable; urgency=medium

  * Fixture package.

 -- {MAINTAINER}  Wed, 01 Jan 2025 00:00:00 +0000
"""

# A binNMU's entry, as sbuild writes it; dpkg-genbuildinfo records it as Binary-Only-Changes.
BINNMU_ENTRY = f"""\
{{name}} ({BINNMU_VERSION}) unstable; urgency=low, binary-only=yes

  * Binary-only non-maintainer upload for {{arch}}; no source changes.
  * Rebuild for the fixture.

 -- {MAINTAINER}  Thu, 02 Jan 2025 00:00:00 +0000
"""

RULES = """\
#!/usr/bin/make -f
build build-arch build-indep:
\t{build}

binary binary-arch binary-indep: build
\trm -rf debian/tmp
\tinstall -d debian/tmp/DEBIAN debian/tmp/usr/share/{name}
\t{install}
\tdpkg-gencontrol -p{name} -Pdebian/tmp
\tfind debian/tmp -exec touch -h -d @$(SOURCE_DATE_EPOCH) {{}} +
\tdpkg-deb --root-owner-group --build debian/tmp ..

clean:
\trm -rf debian/tmp debian/files hello token
"""

HELLO_C = '#include <stdio.h>\nint main(void) {{ puts("{text}"); return 0; }}\n'
PACKAGES = {
    "hello-repro": ("any", "$(CC) $(CFLAGS) $(CPPFLAGS) $(LDFLAGS) -o hello hello.c",
                    "install -D -m755 hello debian/tmp/usr/bin/hello-repro",
                    {"hello.c": HELLO_C.format(text="hello, rebuilder")}),
    "unrepro": ("any", "echo \"built $$(date +%s%N) token $$(od -An -N16 -tx1 /dev/urandom | tr -d ' \\n')\" > token",
                "install -m644 token debian/tmp/usr/share/unrepro/token", {}),
    "hello-doc": ("all", "true", "echo 'hello, reader' > debian/tmp/usr/share/hello-doc/README", {}),
    "hello-nmu": ("any", "$(CC) $(CFLAGS) $(CPPFLAGS) $(LDFLAGS) -o hello hello.c",
                  "install -D -m755 hello debian/tmp/usr/bin/hello-nmu",
                  {"hello.c": HELLO_C.format(text="hello, binNMU")}),
    "gone-dep": ("any", "true", "echo 'gone' > debian/tmp/usr/share/gone-dep/README", {}),
}


@dataclass
class DebianRepo:
    """The built fixture: the repository, its keyring and the sources lines a backend uses."""

    base: Path
    repo: Path  # the apt repository (dists/, pool/)
    buildinfo_dir: Path  # <p>/<source>/<source>_<version>_<arch>.buildinfo
    keyring: Path  # the repository's public key (binary keyring)
    gnupghome: Path
    archive: SourceLine  # Debian's archive (for build roots)
    arch: str
    debs: dict[str, Path]  # file name → the published .deb

    @property
    def sources_text(self) -> str:
        """REBUILDER_DEBIAN_SOURCES: the archive for roots, the fixture repository for sources."""
        return (f"{self.archive.text()}\n"
                f"deb-src [signed-by={self.keyring}] file://{self.repo} {SUITE} main\n")

    @property
    def architectures(self) -> tuple[str, str]:
        return ("all", self.arch)

    def buildinfo(self, source: str) -> Path:
        (found,) = sorted(self.buildinfo_dir.glob(f"*/{source}/{source}_*.buildinfo"))
        return found

    def buildinfos(self) -> list[Path]:
        return sorted(self.buildinfo_dir.glob("*/*/*.buildinfo"))

    def debs_of(self, source: str) -> dict[str, bytes]:
        return {name: path.read_bytes() for name, path in self.debs.items() if name.startswith(f"{source}_")}


def write_source(base: Path, name: str) -> Path:
    """The source tree of fixture package ``name`` under ``base``; returns its directory."""
    arch, build_cmd, install, files = PACKAGES[name]
    tree = base / f"{name}-{VERSION}"
    (tree / "debian/source").mkdir(parents=True)
    (tree / "debian/control").write_text(CONTROL.format(name=name, arch=arch, maintainer=MAINTAINER))
    (tree / "debian/changelog").write_text(CHANGELOG.format(name=name))
    (tree / "debian/source/format").write_text("3.0 (native)\n")
    (tree / "debian/rules").write_text(RULES.format(name=name, build=build_cmd, install=install))
    (tree / "debian/rules").chmod(0o755)
    for rel, text in files.items():
        (tree / rel).write_text(text)
    return tree


def make_key(gnupghome: Path) -> Path:
    """A fresh signing key in ``gnupghome``; returns its public keyring file."""
    gnupghome.mkdir(mode=0o700, parents=True, exist_ok=True)
    env = dict(os.environ, GNUPGHOME=str(gnupghome))
    subprocess.run(["gpg", "--batch", "--quiet", "--pinentry-mode", "loopback", "--passphrase", "",
                    "--quick-gen-key", "Rebuilder Debian Fixture <fixture@rebuilder.invalid>", "ed25519", "sign",
                    "never"], check=True, env=env, capture_output=True, timeout=120)
    keyring = gnupghome / "fixture-archive.gpg"
    keyring.write_bytes(subprocess.run(["gpg", "--batch", "--export"], check=True, env=env,
                                       capture_output=True, timeout=60).stdout)
    return keyring


def stop_agent(gnupghome: Path) -> None:
    """Stop the gpg-agent that gpg started for ``gnupghome`` (it would outlive the build)."""
    if gnupghome.is_dir() and shutil.which("gpgconf"):
        subprocess.run(["gpgconf", "--homedir", str(gnupghome), "--kill", "gpg-agent"], capture_output=True,
                       timeout=60, check=False)


def clearsign(text: str, gnupghome: Path) -> str:
    """``text`` clearsigned with the key in ``gnupghome``."""
    done = subprocess.run(["gpg", "--batch", "--quiet", "--pinentry-mode", "loopback", "--passphrase", "",
                           "--digest-algo", "SHA256", "--clearsign"], input=text.encode(), check=True,
                          env=dict(os.environ, GNUPGHOME=str(gnupghome)), capture_output=True, timeout=60)
    return done.stdout.decode()


def release_text(dist: Path, arch: str) -> str:
    """The Release of the fixture suite: its fields and the SHA256 of every index file under ``dist``."""
    date = datetime.now(timezone.utc).strftime("%a, %d %b %Y %H:%M:%S UTC")
    text = (f"Origin: Rebuilder\nLabel: Rebuilder fixture\nSuite: {SUITE}\nCodename: {SUITE}\nDate: {date}\n"
            f"Architectures: all {arch}\nComponents: main\nDescription: rebuilder's Debian fixture\nSHA256:\n")
    for path in sorted(p for p in dist.rglob("*") if p.is_file() and p.name not in ("Release", "InRelease")):
        data = path.read_bytes()
        text += f" {hashlib.sha256(data).hexdigest()} {len(data):>8} {path.relative_to(dist).as_posix()}\n"
    return text


def fixture_root(archive: SourceLine, arch: str, cache: Path) -> Path:
    """Where the fixture's build root of this week is kept in ``cache`` (made if missing)."""
    return cached_root(cache, [archive], arch=arch, includes=[], key_extra=_week_key())


def _week_key() -> str:
    return f"fixture {time.strftime('%G-W%V', time.gmtime())}"


def build_debian_repo(base: Path, *, cache: Path, say: Callable[[str], None] = print) -> DebianRepo:
    """Build the packages and publish the signed repository under ``base`` (which must not hold one)."""
    archive = host_archive_line()
    if archive is None:
        raise RuntimeError("no Debian archive in this host's apt sources (/etc/apt/sources.list.d/*.sources "
                           "or /etc/apt/sources.list) to make the build root from")
    arch = host_architecture()
    started = time.monotonic()
    base.mkdir(parents=True, exist_ok=True)
    for stale in ("repo", "buildinfo", "src", "gnupg"):  # a build stopped before the manifest was written
        if (base / stale).exists():
            shutil.rmtree(base / stale)
    root = make_root([archive], arch=arch, includes=[], dest=base / "root.tar", cache=cache, timeout=1800,
                     key_extra=_week_key())
    say(f"debian fixture: build root ready after {time.monotonic() - started:.0f} s")
    repo = base / "repo"
    pool = repo / "pool/main"
    pool.mkdir(parents=True)
    buildinfo_dir = base / "buildinfo"
    buildinfo_dir.mkdir()
    srcbase = base / "src"
    srcbase.mkdir()
    gnupghome = base / "gnupg"
    try:
        keyring = make_key(gnupghome)
        made = _build_and_publish(base, root, arch, archive, keyring, gnupghome, started, say)
    finally:
        stop_agent(gnupghome)
    manifest = {"arch": arch, "archive": archive.text(), "debs": sorted(made.debs)}
    tmp = base / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    os.replace(tmp, base / MANIFEST)  # last: a build stopped before this is built again
    return made


def _build_and_publish(base: Path, root: Path, arch: str, archive: SourceLine, keyring: Path, gnupghome: Path,
                       started: float, say: Callable[[str], None]) -> DebianRepo:
    repo, pool, buildinfo_dir, srcbase = base / "repo", base / "repo/pool/main", base / "buildinfo", base / "src"
    for name in PACKAGES:
        tree = write_source(srcbase, name)
        subprocess.run(["dpkg-source", "-b", tree.name], cwd=srcbase, check=True, capture_output=True, timeout=120)
        dsc = srcbase / f"{name}_{VERSION}.dsc"
        arch_field = PACKAGES[name][0]
        binnmu = name in BINNMU
        info = DebianBuildinfo(source=name, source_version=VERSION, version=BINNMU_VERSION if binnmu else VERSION,
                               architectures=("all",) if arch_field == "all" else (arch,),
                               build_architecture=arch, build_path=f"/build/{name}-{VERSION}",
                               build_date=datetime.now(timezone.utc), environment={}, installed=(), binnmu=binnmu,
                               binary_only_changes=BINNMU_ENTRY.format(name=name, arch=arch) if binnmu else "")
        one = srcbase / f"dsc-{name}"
        one.mkdir()
        for path in srcbase.glob(f"{name}_{VERSION}*"):
            shutil.copy(path, one / path.name)
        work = base / f"work-{name}"
        if work.exists():
            shutil.rmtree(work)
        work.mkdir()
        produced = build(root, one / dsc.name, info, work, user="builder", timeout=600)
        for path in produced:
            if path.suffix == ".deb":
                shutil.copy(path, pool / path.name)
            elif path.suffix == ".buildinfo":  # laid out as buildinfos.debian.net does (jobs.sync.debian)
                folder = buildinfo_dir / (name[:4] if name.startswith("lib") else name[0]) / name
                folder.mkdir(parents=True, exist_ok=True)
                text = path.read_text()
                if name in UNBUILDABLE:
                    text, count = re.subn(r"^ coreutils \(= [^)]+\)", f" coreutils (= {GONE_VERSION})", text,
                                          flags=re.MULTILINE)
                    if count != 1:
                        raise RuntimeError(f"{path.name}: no coreutils in Installed-Build-Depends")
                # clearsigned, as Debian's are (by the fixture's one key, as its InRelease)
                (folder / path.name).write_text(clearsign(text, gnupghome))
        for path in one.iterdir():
            shutil.copy(path, pool / path.name)
        shutil.rmtree(work)
    say(f"debian fixture: {len(PACKAGES)} packages built after {time.monotonic() - started:.0f} s")
    dist = repo / "dists" / SUITE
    source = dist / "main" / "source"
    source.mkdir(parents=True)
    for listed in (arch, "all"):  # binary-<arch> lists the arch:all packages too, as Debian's does
        binary = dist / "main" / f"binary-{listed}"
        binary.mkdir(parents=True)
        packages = subprocess.run(["dpkg-scanpackages", "--multiversion", "--arch", listed, "pool"], cwd=repo,
                                  check=True, capture_output=True, timeout=120).stdout
        (binary / "Packages").write_bytes(packages)
        (binary / "Packages.gz").write_bytes(gzip.compress(packages, mtime=0))
    sources = subprocess.run(["dpkg-scansources", "pool"], cwd=repo, check=True, capture_output=True,
                             timeout=120).stdout
    (source / "Sources").write_bytes(sources)
    (source / "Sources.gz").write_bytes(gzip.compress(sources, mtime=0))
    (dist / "InRelease").write_text(clearsign(release_text(dist, arch), gnupghome))
    return DebianRepo(base=base, repo=repo, buildinfo_dir=buildinfo_dir, keyring=keyring, gnupghome=gnupghome,
                      archive=archive, arch=arch, debs={p.name: p for p in sorted(pool.glob("*.deb"))})


def load_debian_repo(base: Path) -> DebianRepo:
    """The repository that build_debian_repo saved in ``base`` (FileNotFoundError if none)."""
    data = json.loads((base / MANIFEST).read_text())
    repo = base / "repo"
    debs = {name: repo / "pool/main" / name for name in data["debs"]}
    missing = [name for name, path in debs.items() if not path.is_file()]
    if missing:
        raise FileNotFoundError(f"{base}: the fixture repository lacks {', '.join(missing)}")
    (archive,) = parse_sources(data["archive"])
    return DebianRepo(base=base, repo=repo, buildinfo_dir=base / "buildinfo",
                      keyring=base / "gnupg/fixture-archive.gpg", gnupghome=base / "gnupg", archive=archive,
                      arch=data["arch"], debs=debs)
