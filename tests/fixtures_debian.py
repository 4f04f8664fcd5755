"""A tiny Debian archive built for real: three source packages built with dpkg-buildpackage in an
mmdebstrap root made from Debian's archive (the mirror this host's apt uses), published as a signed
local apt repository with their .buildinfo files.

* ``hello-repro`` (Architecture: any): a small C program; rebuilds byte for byte.
* ``unrepro`` (any): embeds the build time and a random token; cannot reproduce.
* ``hello-doc`` (all): a text file; reproducible, built with ``-A``.
* ``gone-dep`` (any): reproducible, but its published .buildinfo names a build dependency version
  (``coreutils (= 8.0-1)``) that the archive does not carry any more, so its rebuild is a FAIL
  with that reason, as an old package's is for an operator without snapshot access.

The build root of the fixture and the pinned roots of the rebuilds are mmdebstrap tarballs kept
in ``REBUILDER_TEST_CACHE`` (default ``/var/cache/rebuilder-tests/debian``), so only the first run
downloads them. The fixture's own root is renewed weekly, so its recorded build dependencies stay
ones the archive carries.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from jobs.work.backends.debian_local import (
    DebianBuildinfo,
    SourceLine,
    build,
    host_architecture,
    make_root,
    parse_sources,
)
from tests.sync.debian_mirror import clearsign, release_text

SUITE = "fixture"
VERSION = "1.0"
EPOCH = "1735689600"  # 2025-01-01, the changelog's date
REPRODUCIBLE = ("hello-repro", "hello-doc")
UNREPRODUCIBLE = ("unrepro",)
UNBUILDABLE = ("gone-dep",)
GONE_VERSION = "8.0-1"
KEYRING_FILES = ("/usr/share/keyrings/debian-archive-keyring.gpg",)


def cache_dir() -> Path:
    return Path(os.environ.get("REBUILDER_TEST_CACHE", "/var/cache/rebuilder-tests")) / "debian"


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
Maintainer: Rebuilder Tests <tests@rebuilder.invalid>
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

 -- Rebuilder Tests <tests@rebuilder.invalid>  Wed, 01 Jan 2025 00:00:00 +0000
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

PACKAGES = {
    "hello-repro": ("any", "$(CC) $(CFLAGS) $(CPPFLAGS) $(LDFLAGS) -o hello hello.c",
                    "install -D -m755 hello debian/tmp/usr/bin/hello-repro",
                    {"hello.c": '#include <stdio.h>\nint main(void) { puts("hello, rebuilder"); return 0; }\n'}),
    "unrepro": ("any", "echo \"built $$(date +%s%N) token $$(od -An -N16 -tx1 /dev/urandom | tr -d ' \\n')\" > token",
                "install -m644 token debian/tmp/usr/share/unrepro/token", {}),
    "hello-doc": ("all", "true", "echo 'hello, reader' > debian/tmp/usr/share/hello-doc/README", {}),
    "gone-dep": ("any", "true", "echo 'gone' > debian/tmp/usr/share/gone-dep/README", {}),
}


@dataclass
class DebianFixture:
    """The built fixture: the repository, its keyring and the sources lines a backend uses."""

    repo: Path  # the apt repository (dists/, pool/)
    buildinfo_dir: Path  # <source>_<version>_<arch>.buildinfo
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

    def buildinfo(self, source: str) -> Path:
        (found,) = sorted(self.buildinfo_dir.glob(f"*/{source}/{source}_{VERSION}_*.buildinfo"))
        return found

    def debs_of(self, source: str) -> dict[str, bytes]:
        return {name: path.read_bytes() for name, path in self.debs.items() if name.startswith(f"{source}_")}


def write_source(base: Path, name: str) -> Path:
    """The source tree of fixture package ``name`` under ``base``; returns its directory."""
    arch, build_cmd, install, files = PACKAGES[name]
    tree = base / f"{name}-{VERSION}"
    (tree / "debian/source").mkdir(parents=True)
    (tree / "debian/control").write_text(CONTROL.format(name=name, arch=arch))
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


def build_fixture(base: Path) -> DebianFixture:
    """Build the three packages and publish the signed repository under ``base``."""
    archive = host_archive_line()
    assert archive is not None
    arch = host_architecture()
    started = time.monotonic()
    week = time.strftime("%G-W%V", time.gmtime())
    root = make_root([archive], arch=arch, includes=[], dest=base / "root.tar", cache=cache_dir(), timeout=1800,
                     key_extra=f"fixture {week}")
    print(f"debian fixture: build root ready after {time.monotonic() - started:.0f} s")
    repo = base / "repo"
    pool = repo / "pool/main"
    pool.mkdir(parents=True)
    buildinfo_dir = base / "buildinfo"
    buildinfo_dir.mkdir()
    srcbase = base / "src"
    srcbase.mkdir()
    for name in PACKAGES:
        tree = write_source(srcbase, name)
        subprocess.run(["dpkg-source", "-b", tree.name], cwd=srcbase, check=True, capture_output=True, timeout=120)
        dsc = srcbase / f"{name}_{VERSION}.dsc"
        arch_field = PACKAGES[name][0]
        info = DebianBuildinfo(source=name, source_version=VERSION, version=VERSION,
                               architectures=("all",) if arch_field == "all" else (arch,),
                               build_architecture=arch, build_path=f"/build/{name}-{VERSION}",
                               build_date=None, environment={}, installed=())  # type: ignore[arg-type]
        one = srcbase / f"dsc-{name}"
        one.mkdir()
        for path in srcbase.glob(f"{name}_{VERSION}*"):
            shutil.copy(path, one / path.name)
        work = base / f"work-{name}"
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
                    assert count == 1, text
                (folder / path.name).write_text(text)
        for path in one.iterdir():
            shutil.copy(path, pool / path.name)
        shutil.rmtree(work)
    print(f"debian fixture: packages built after {time.monotonic() - started:.0f} s")
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
    gnupghome = base / "gnupg"
    keyring = make_key(gnupghome)
    text = release_text(dist, suite=SUITE, codename=SUITE, extra={"Architectures": f"all {arch}"})
    clearsign(dist, gnupghome, text=text)
    debs = {p.name: p for p in sorted(pool.glob("*.deb"))}
    return DebianFixture(repo=repo, buildinfo_dir=buildinfo_dir, keyring=keyring, gnupghome=gnupghome,
                         archive=archive, arch=arch, debs=debs)
