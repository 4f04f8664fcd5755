"""A small Debian mirror for the tests: the committed text fixtures plus the InRelease files that list them.

`tests/fixtures/sync/debian/` holds real-format `Sources` and `Packages` of two suites (`sid`,
`forky`) and their unsigned `InRelease`. Tests copy the tree, compress, tamper and re-sign
in a temporary directory. After editing a fixture, regenerate the committed InRelease files:

    .venv/bin/python -m tests.sync.debian_mirror
"""

from __future__ import annotations

import gzip
import hashlib
import lzma
import os
import shutil
import subprocess
from pathlib import Path

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "sync" / "debian"
# suite directory → (Suite, Codename)
SUITES = {"sid": ("unstable", "sid"), "forky": ("testing", "forky")}
# Listed in InRelease but absent from the mirror: an empty index apt does not download either.
EMPTY_LISTED = {"sid": ("main/debian-installer/binary-all/Packages",)}
DATE = "Sat, 01 Mar 2025 08:12:34 UTC"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def index_files(dist: Path) -> list[str]:
    """Paths (relative to `dist`) of the index files a mirror serves, sorted."""
    out = []
    for path in sorted(dist.rglob("*")):
        rel = path.relative_to(dist).as_posix()
        if path.is_file() and "by-hash" not in rel.split("/") and rel not in ("InRelease", "Release"):
            out.append(rel)
    return out


def release_text(dist: Path, *, suite: str | None = None, codename: str | None = None,
                 extra: dict[str, str] | None = None, omit: tuple[str, ...] = (),
                 listed: dict[str, bytes] | None = None) -> str:
    """A Release file for `dist`: its fields and the SHA256 of every index file (minus `omit`)."""
    name = dist.name
    suite, codename = suite or SUITES.get(name, (name, name))[0], codename or SUITES.get(name, (name, name))[1]
    fields = {"Origin": "Debian", "Label": "Debian", "Suite": suite, "Codename": codename, "Date": DATE,
              "Architectures": "all amd64", "Components": "main",
              "Description": f"Debian test fixture ({codename})", "No-Support-for-Architecture-all": "Packages"}
    fields.update(extra or {})
    rows = {rel: (dist / rel).read_bytes() for rel in index_files(dist) if rel not in omit}
    for rel in EMPTY_LISTED.get(name, ()):
        rows.setdefault(rel, b"")
    rows.update(listed or {})
    text = "".join(f"{k}: {v}\n" for k, v in fields.items() if v is not None)
    text += "SHA256:\n" + "".join(f" {hashlib.sha256(data).hexdigest()} {len(data):>8} {rel}\n"
                                  for rel, data in sorted(rows.items()))
    return text


def write_inrelease(dist: Path, **kw) -> Path:
    """Write an unsigned InRelease for `dist` (keywords as for `release_text`)."""
    path = dist / "InRelease"
    path.write_text(release_text(dist, **kw))
    return path


def copy_mirror(dest: Path) -> Path:
    """A writable copy of the fixture mirror at `dest`."""
    shutil.copytree(FIXTURE, dest)
    return dest


def compress(dist: Path, kinds: tuple[str, ...] = ("xz", "gz"), *, keep_plain: bool = True) -> None:
    """Add compressed copies of every index file under `dist` (and drop the plain ones unless told)."""
    for rel in index_files(dist):
        plain = dist / rel
        data = plain.read_bytes()
        for kind in kinds:
            packed = lzma.compress(data, format=lzma.FORMAT_XZ) if kind == "xz" else gzip.compress(data, mtime=0)
            plain.with_name(f"{plain.name}.{kind}").write_bytes(packed)
        if not keep_plain:
            plain.unlink()


def clearsign(dist: Path, gnupghome: Path, *, users: tuple[str, ...] = (), text: str | None = None) -> Path:
    """Sign `dist`'s Release text (or `text`) into `dist/InRelease` with the keys in `gnupghome`."""
    release = dist / "Release"
    release.write_text(text if text is not None else release_text(dist))
    argv = ["gpg", "--batch", "--yes", "--quiet", "--pinentry-mode", "loopback", "--passphrase", "", "--digest-algo",
            "SHA256"]
    for user in users:
        argv += ["--local-user", user]
    argv += ["--clearsign", "--output", str(dist / "InRelease"), str(release)]
    subprocess.run(argv, check=True, env=dict(os.environ, GNUPGHOME=str(gnupghome)), capture_output=True,
                   timeout=60)
    release.unlink()
    return dist / "InRelease"


def main() -> None:
    """Regenerate the committed InRelease files from the fixture indexes."""
    for name in SUITES:
        path = write_inrelease(FIXTURE / "dists" / name)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
