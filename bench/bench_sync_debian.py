"""Benchmark: reading a 70,000-stanza Debian `Packages` file, ours vs. python-debian.

Not a test. Run it with `.venv/bin/python -m bench.bench_sync_debian` (add `--smoke`
for a quick run). Both readers parse the same bytes in the same process and pull out the same
fields (the ones the sync uses); each is timed best of 3. The target is a parse time of at
most 0.25x python-debian's `deb822.Packages.iter_paragraphs(use_apt_pkg=False)`. Peak memory
is measured in separate runs with tracemalloc (which slows code down, so not while timing).
Another figure times the whole `read_index` (xz, InRelease check, mapping, grouping) on a
generated mirror of the same size. The last (issue #18) compares the whole sync job, in a fresh
process, on a generated mirror the size of bookworm main amd64 (63,000 binary stanzas, 30%
arch:all and also in binary-all, their Sources; xz) with python-debian's deb822 parse of the
same three files streamed from xz, also in a fresh process: CPU seconds (target ≤ 0.25×) and
the job's peak RSS (target ≤ 300 MiB). The real archive is not downloaded: benchmarks run
offline.
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
from jobs.sync.debian import PACKAGES_FIELDS, SOURCES_FIELDS, read_index
from jobs.sync.fetch import Fetcher

STANZAS = 70_000
TARGET = 0.25
TARGET_RSS_MIB = 300  # issue #18: the whole job on bookworm main amd64


def _hex(rnd: random.Random, n: int) -> str:
    return f"{rnd.getrandbits(4 * n):0{n}x}"


def generate(n: int, seed: int = 1, all_share: float = 0.0) -> tuple[bytes, bytes]:
    """A `Packages` file of `n` realistic stanzas and the `Sources` file they come from; with
    `all_share`, that share of the binaries is `Architecture: all`."""
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
            arch = "all" if all_share and rnd.random() < all_share else "amd64"
            packages.append(
                f"Package: {name}\n{source}Version: {version}{binnmu}\nInstalled-Size: {rnd.randint(10, 99999)}\n"
                f"Maintainer: Maintainer {rnd.randint(0, 999)} <m{rnd.randint(0, 999)}@example.org>\n"
                f"Architecture: {arch}\nDepends: {deps}\n"
                f"Description: package {name}, which does useful things for the benchmark\n"
                f"Multi-Arch: same\nHomepage: https://example.org/{src}\nDescription-md5: {_hex(rnd, 32)}\n{tag}"
                f"Section: libs\nPriority: optional\n"
                f"Filename: pool/main/{pool}/{src}/{name}_{plain}{binnmu}_{arch}.deb\n"
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


BOOKWORM = 63_000  # binary stanzas of bookworm main binary-amd64 (arch:all included), about
BOOKWORM_ALL = 0.3  # the share of them that is arch:all (also listed in binary-all)


def bookworm_mirror(root: Path, n: int) -> tuple[str, dict[str, int]]:
    """A generated mirror the size of bookworm main amd64 (binary-amd64, binary-all, Sources; xz, an
    unsigned InRelease listing them); its file:// URL and the uncompressed sizes."""
    packages, sources = generate(n, seed=7, all_share=BOOKWORM_ALL)
    arch_all = b"\n\n".join(st for st in packages.split(b"\n\n") if b"\nArchitecture: all\n" in st) + b"\n"
    dist = root / "dists" / "bookworm"
    raw = {"main/binary-amd64/Packages": packages, "main/binary-all/Packages": arch_all,
           "main/source/Sources": sources}
    listing = ""
    for rel, data in raw.items():
        packed = lzma.compress(data, preset=6)
        (dist / (rel + ".xz")).parent.mkdir(parents=True, exist_ok=True)
        (dist / (rel + ".xz")).write_bytes(packed)
        listing += f" {hashlib.sha256(packed).hexdigest()} {len(packed)} {rel}.xz\n"
    (dist / "InRelease").write_text("Suite: stable\nCodename: bookworm\nComponents: main\n"
                                    f"Architectures: all amd64\nSHA256:\n{listing}")
    return root.as_uri(), {rel: len(data) for rel, data in raw.items()}


# Each side in a fresh child process: CPU seconds (process_time) and the peak resident set (VmHWM).
_HWM = """
import json, re, sys, time
from pathlib import Path
def hwm():
    return int(re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text()).group(1)) / 1024
"""
_OURS = _HWM + """
import logging
logging.disable(logging.WARNING)  # the "not signature-checked" warning
from jobs.core.config import RebuilderConfig, Release, SyncProfile
from jobs.core.store import LocalStore
from jobs.sync.run import sync_profile
profile = SyncProfile(name="bookworm", distro="debian", source=sys.argv[1], components=("main",),
                      architectures=("amd64", "all"), releases=(Release("bookworm"),))
before = hwm()
started, cpu = time.perf_counter(), time.process_time()
summary = sync_profile(LocalStore(sys.argv[2], fsync=True), RebuilderConfig(), profile)
print(json.dumps({"seconds": time.perf_counter() - started, "cpu_seconds": time.process_time() - cpu,
                  "peak_rss_mib": hwm(), "rss_before_mib": before, "line": summary.line()}))
"""
_PYTHON_DEBIAN = _HWM + """
import lzma
from debian import deb822
before = hwm()
started, cpu = time.perf_counter(), time.process_time()
counts = {}
for rel, kind, fields in (("main/binary-amd64/Packages", deb822.Packages, sys.argv[2].split(",")),
                          ("main/binary-all/Packages", deb822.Packages, sys.argv[2].split(",")),
                          ("main/source/Sources", deb822.Sources, sys.argv[3].split(","))):
    n = 0
    with lzma.open(Path(sys.argv[1]) / "dists/bookworm" / (rel + ".xz")) as f:
        for para in kind.iter_paragraphs(f, use_apt_pkg=False):
            _ = [para.get(name) for name in fields]
            n += 1
    counts[rel] = n
print(json.dumps({"seconds": time.perf_counter() - started, "cpu_seconds": time.process_time() - cpu,
                  "peak_rss_mib": hwm(), "rss_before_mib": before, "stanzas": counts}))
"""


def _child(script: str, *args: str) -> dict:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def whole_job(n: int, repeat: int) -> dict:
    """Our whole Debian sync job (fetch, xz, InRelease check, parse, snapshot, queue, pointer) against
    python-debian's deb822 parse of the same three files (streamed from xz), each in a fresh process,
    best CPU of `repeat` (the peak RSS of that run)."""
    from debian.debian_support import __file__ as _  # noqa: F401 - python-debian is installed
    with tempfile.TemporaryDirectory(prefix="bench-bookworm-") as tmp:
        url, sizes = bookworm_mirror(Path(tmp) / "mirror", n)
        ours = min((_child(_OURS, url, str(Path(tmp) / f"store{i}")) for i in range(repeat)),
                   key=lambda r: r["cpu_seconds"])
        theirs = min((_child(_PYTHON_DEBIAN, str(Path(tmp) / "mirror"), ",".join(PACKAGES_FIELDS),
                             ",".join(SOURCES_FIELDS)) for _ in range(repeat)), key=lambda r: r["cpu_seconds"])
    return {"binary_stanzas": n, "uncompressed_mib": {k: round(v / 2**20, 1) for k, v in sizes.items()},
            "ours": {k: round(v, 3) if isinstance(v, float) else v for k, v in ours.items()},
            "python_debian": {k: round(v, 3) if isinstance(v, float) else v for k, v in theirs.items()},
            "cpu_ratio": round(ours["cpu_seconds"] / theirs["cpu_seconds"], 3), "target_cpu_ratio": TARGET,
            "peak_rss_mib": round(ours["peak_rss_mib"], 1), "target_peak_rss_mib": TARGET_RSS_MIB}


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
        "whole_job": whole_job(3_000 if smoke else BOOKWORM, repeat),
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
