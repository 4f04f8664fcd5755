"""Benchmark: reading a 70,000-stanza Debian `Packages` file, ours vs. python-debian.

Not a test. Run it with `.venv/bin/python -m bench.bench_sync_debian` (add `--smoke`
for a quick run). Both readers parse the same bytes in the same process and pull out the same
fields (the ones the sync uses); each is timed best of 3. The target is a parse time of at
most 0.25x python-debian's `deb822.Packages.iter_paragraphs(use_apt_pkg=False)`. Peak memory
is measured in separate runs with tracemalloc (which slows code down, so not while timing).
A last figure times the whole `read_index` (xz, InRelease check, mapping, grouping) on a
generated mirror of the same size.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import io
import json
import logging
import lzma
import random
import tempfile
import time
import tracemalloc
from pathlib import Path

from debian import deb822

from jobs.core.config import Release, SyncProfile
from jobs.sync.deb822 import decode, iter_stanzas
from jobs.sync.debian import PACKAGES_FIELDS, read_index
from jobs.sync.fetch import Fetcher

STANZAS = 70_000
TARGET = 0.25


def _hex(rnd: random.Random, n: int) -> str:
    return f"{rnd.getrandbits(4 * n):0{n}x}"


def generate(n: int, seed: int = 1) -> tuple[bytes, bytes]:
    """A `Packages` file of `n` realistic stanzas and the `Sources` file they come from."""
    rnd = random.Random(seed)
    packages, sources = [], []
    i = 0
    while i < n:
        src = f"lib{_hex(rnd, 6)}" if rnd.random() < 0.3 else f"src{_hex(rnd, 6)}"
        version = f"{rnd.randint(0, 2)}:" * (rnd.random() < 0.1) + f"{rnd.randint(0, 40)}.{rnd.randint(0, 99)}-{rnd.randint(1, 9)}"
        binnmu = f"+b{rnd.randint(1, 3)}" if rnd.random() < 0.1 else ""
        names = [f"{src}-{k}" if k else src for k in range(min(rnd.randint(1, 4), n - i))]
        plain = version.split(":", 1)[-1]
        sources.append(
            f"Package: {src}\nBinary: {', '.join(names)}\nVersion: {version}\n"
            f"Maintainer: Maintainer {rnd.randint(0, 999)} <m{rnd.randint(0, 999)}@example.org>\n"
            f"Build-Depends: debhelper-compat (= 13), libfoo-dev\nArchitecture: any\nFormat: 3.0 (quilt)\n"
            f"Checksums-Sha256:\n {_hex(rnd, 64)} 1234 {src}_{plain}.dsc\n {_hex(rnd, 64)} 99999 {src}_{plain}.orig.tar.xz\n"
            f"Directory: pool/main/{src[:4] if src.startswith('lib') else src[0]}/{src}\nPriority: source\nSection: libs\n")
        for name in names:
            deps = ", ".join(f"lib{_hex(rnd, 4)} (>= {rnd.randint(0, 9)}.{rnd.randint(0, 9)})"
                             for _ in range(rnd.randint(1, 8)))
            source = ""
            if name != src or binnmu:
                source = f"Source: {src} ({version})\n" if binnmu else f"Source: {src}\n"
            tag = ("Tag: devel::library, implemented-in::c, role::devel-lib,\n suite::gnu\n"
                   if rnd.random() < 0.3 else "")
            pool = src[:4] if src.startswith("lib") else src[0]
            packages.append(
                f"Package: {name}\n{source}Version: {version}{binnmu}\nInstalled-Size: {rnd.randint(10, 99999)}\n"
                f"Maintainer: Maintainer {rnd.randint(0, 999)} <m{rnd.randint(0, 999)}@example.org>\n"
                f"Architecture: amd64\nDepends: {deps}\n"
                f"Description: package {name}, which does useful things for the benchmark\n"
                f"Multi-Arch: same\nHomepage: https://example.org/{src}\nDescription-md5: {_hex(rnd, 32)}\n{tag}"
                f"Section: libs\nPriority: optional\n"
                f"Filename: pool/main/{pool}/{src}/{name}_{plain}{binnmu}_amd64.deb\n"
                f"Size: {rnd.randint(1000, 9_999_999)}\nMD5sum: {_hex(rnd, 32)}\nSHA256: {_hex(rnd, 64)}\n")
            i += 1
    return "\n".join(packages).encode(), "\n".join(sources).encode()


def ours(data: bytes) -> int:
    """Our reader: every stanza's sync fields."""
    n = 0
    for stanza in iter_stanzas(decode(data), PACKAGES_FIELDS):
        f = stanza.fields
        _ = (f.get("Package"), f.get("Version"), f.get("Source"), f.get("Architecture"), f.get("Filename"))
        n += 1
    return n


def python_debian(data: bytes) -> int:
    """python-debian's pure-Python reader, reading the same fields."""
    n = 0
    for para in deb822.Packages.iter_paragraphs(io.BytesIO(data), use_apt_pkg=False):
        _ = [para.get(name) for name in PACKAGES_FIELDS]
        n += 1
    return n


def _best(fn, data: bytes, repeat: int) -> tuple[float, int]:
    best, count = float("inf"), 0
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        count = fn(data)
        best = min(best, time.perf_counter() - start)
    return best, count


def _peak(fn, data: bytes) -> float:
    """Peak traced allocation (MiB) while `fn(data)` runs."""
    gc.collect()
    tracemalloc.start()
    fn(data)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return round(peak / (1 << 20), 2)


def _read_index_seconds(packages: bytes, sources: bytes) -> tuple[float, int]:
    logging.getLogger("jobs.sync").setLevel(logging.ERROR)  # the "not signature-checked" warning
    with tempfile.TemporaryDirectory(prefix="bench-debian-") as tmp:
        dist = Path(tmp) / "dists" / "sid"
        files = {"main/binary-amd64/Packages.xz": lzma.compress(packages),
                 "main/source/Sources.xz": lzma.compress(sources)}
        listing = ""
        for rel, data in files.items():
            (dist / rel).parent.mkdir(parents=True, exist_ok=True)
            (dist / rel).write_bytes(data)
            listing += f" {hashlib.sha256(data).hexdigest()} {len(data)} {rel}\n"
        (dist / "InRelease").write_text(f"Suite: unstable\nCodename: sid\nComponents: main\n"
                                        f"Architectures: amd64\nSHA256:\n{listing}")
        profile = SyncProfile(name="bench", distro="debian", source=Path(tmp).as_uri(), components=("main",),
                              architectures=("amd64",), releases=(Release("sid"),))
        start = time.perf_counter()
        result = read_index(profile, Fetcher())
        return time.perf_counter() - start, sum(len(bi.artifacts) for bi in result.inputs)


def run(smoke: bool = False) -> dict:
    """Time both readers on one generated file; the figures as a dict."""
    n, repeat = (2_000, 1) if smoke else (STANZAS, 3)
    packages, sources = generate(n)
    ours_s, ours_n = _best(ours, packages, repeat)
    theirs_s, theirs_n = _best(python_debian, packages, repeat)
    assert ours_n == theirs_n == n, (ours_n, theirs_n, n)
    index_s, artifacts = _read_index_seconds(packages, sources)
    assert artifacts == n, (artifacts, n)
    ratio = ours_s / theirs_s
    return {
        "stanzas": n, "packages_mib": round(len(packages) / (1 << 20), 1), "repeat": repeat,
        "ours_s": round(ours_s, 3), "python_debian_s": round(theirs_s, 3), "ratio": round(ratio, 3),
        "target_ratio": TARGET, "meets_target": ratio <= TARGET,
        # beyond the input bytes themselves, which both hold
        "ours_peak_mib": _peak(ours, packages),
        "python_debian_peak_mib": _peak(python_debian, packages),
        "read_index_s": round(index_s, 3),
        "read_index_peak_mib": _peak(lambda data: _read_index_seconds(data, sources), packages),
    }


def main() -> None:
    """Print the figures (JSON) and a one-line verdict."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="2,000 stanzas, one run each")
    figures = run(smoke=parser.parse_args().smoke)
    print(json.dumps(figures, indent=2))
    print(f"parse time ours/python-debian = {figures['ratio']:.3f}x (target <= {TARGET}x): "
          f"{'OK' if figures['meets_target'] else 'MISSED'}")


if __name__ == "__main__":
    main()
