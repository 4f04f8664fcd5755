"""Sync benchmarks (issue #3), each figure a ratio against a baseline measured in the same run.

- Arch: `read_index` of a generated 15,000-package gzip db ÷ `gzip -dc` of the same file
  (target ≤ 3×);
- Debian: our parse of a generated 70,000-stanza Packages file ÷ python-debian's deb822
  parse of the same file (target ≤ 0.25×).

`python -m bench.bench_sync [--smoke]`. Not a test: run it by hand (or through
the benchmark runner) and copy the figures into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json

from bench import bench_sync_arch, bench_sync_debian


def run(smoke: bool = False) -> dict:
    """Both benchmarks' figures."""
    return {"arch": bench_sync_arch.run(smoke=smoke), "debian": bench_sync_debian.run(smoke=smoke)}


def main(argv: list[str] | None = None) -> int:
    """Print the figures as JSON, then one verdict line per benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="small sizes, one repetition (CI)")
    args = parser.parse_args(argv)
    figures = run(smoke=args.smoke)
    print(json.dumps(figures, indent=2))
    for name, f in figures.items():
        print(f"{name}: ratio {f['ratio']} (target {f.get('target_ratio', f.get('target'))})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
