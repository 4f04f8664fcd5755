"""Run every benchmark and print each headline figure against its same-run baseline and target.

`python -m bench [--smoke] [--only NAME ...] [--json FILE] [--write-docs [PAGE]]
[--s3-endpoint URL] [--from-json FILE ...]`

Benchmarks: sync-arch, sync-debian (issue #3), publish at 10k packages / 100k builds and
publish-1m at 100k / 1M (#5), ctl (#6), claims and requests (#8), hostile (#15: peak RSS of publish and rebuildctl on hostile inputs); each against its independent
baseline (#18: a plain publish renderer, the real rebuilderd, python-debian, upstream rebuildctl). Each runs its own script's `run` (or `main`), so its JSON figures are exactly what the
script prints when run alone; the runner adds the headline table. `--smoke` runs tiny sizes
(the CI test `tests/test_benchmarks_smoke.py` does, so the scripts never rot); `--json`
writes every figure; `--write-docs` replaces the block of docs/benchmarks.md (or PAGE) between
`<!-- benchmarks:start -->` and `<!-- benchmarks:end -->` (`jobs.core.docblocks`' markers) with the
headline table and the monthly request cost (of the benchmarks that ran: run the slow ones
separately with `--json` and combine the files with `--from-json`). The claim and request benchmarks need an S3
server: `--s3-endpoint` names one (credentials from the environment), else a SeaweedFS
`weed mini` is started on loopback for the run. The exit status is 1 if a benchmark failed to
run; a missed target is a result, reported, not a failure.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench import headlines

NAMES = ("sync-arch", "sync-debian", "publish", "publish-1m", "ctl", "claims", "requests", "hostile")
DOCS_PAGE = "docs/benchmarks.md"  # relative to the repository root, where `python -m bench` runs
# The smallest publish the script allows without --smoke's fixed size: the runner's smoke run.
PUBLISH_SMOKE = {"packages": 100, "builds": 300, "fsync": False, "noop": False}


@dataclass
class Outcome:
    """One benchmark's run: its figures, or why it did not finish."""

    name: str
    seconds: float
    figures: dict[str, Any] | None
    error: str | None = None
    load: list[float] | None = None  # the machine's 1-minute load average as it started and as it ended


class _S3:
    """Starts a SeaweedFS the first time a benchmark needs one, and keeps it for the run."""

    def __init__(self, endpoint: str | None, stack: contextlib.ExitStack) -> None:
        self.endpoint, self.stack, self.target = endpoint, stack, None

    def get(self):
        if self.target is None:
            from bench.common import seaweedfs
            self.target = self.stack.enter_context(seaweedfs(self.endpoint))
        return self.target


def _run_sync_arch(smoke: bool, s3: _S3) -> dict[str, Any]:
    from bench import bench_sync_arch
    return bench_sync_arch.run(smoke=smoke)


def _run_sync_debian(smoke: bool, s3: _S3) -> dict[str, Any]:
    from bench import bench_sync_debian
    return bench_sync_debian.run(smoke=smoke)


def _run_publish(smoke: bool, s3: _S3) -> dict[str, Any]:
    from bench import bench_publish
    if smoke:
        return bench_publish.run(**PUBLISH_SMOKE)
    return bench_publish.run(packages=10_000, builds=100_000)


def _run_publish_1m(smoke: bool, s3: _S3) -> dict[str, Any]:
    from bench import bench_publish
    if smoke:
        return bench_publish.run(**PUBLISH_SMOKE)
    return bench_publish.run(packages=100_000, builds=1_000_000, noop=False)


def _run_ctl(smoke: bool, s3: _S3) -> dict[str, Any]:
    from bench import bench_ctl  # type: ignore[attr-defined]
    figures = bench_ctl.main(["--smoke"] if smoke else [])
    if not isinstance(figures, dict):
        raise TypeError(f"bench_ctl.main returned {type(figures).__name__}, not a dict of figures")
    return figures


def _run_claims(smoke: bool, s3: _S3) -> dict[str, Any]:
    from bench import bench_claims
    return bench_claims.run(smoke, s3=s3.get())


def _run_requests(smoke: bool, s3: _S3) -> dict[str, Any]:
    from bench import bench_requests
    return bench_requests.run(smoke, new_url=s3.get().url)


def _run_hostile(smoke: bool, s3: _S3) -> dict[str, Any]:
    from bench import bench_hostile
    return bench_hostile.run(smoke=smoke)


RUNNERS: dict[str, Callable[[bool, _S3], dict[str, Any]]] = {
    "sync-arch": _run_sync_arch, "sync-debian": _run_sync_debian, "publish": _run_publish, "publish-1m": _run_publish_1m, "ctl": _run_ctl,
    "claims": _run_claims, "requests": _run_requests, "hostile": _run_hostile,
}


def run(names: list[str], *, smoke: bool, endpoint: str | None = None) -> list[Outcome]:
    """Run the named benchmarks in order; a failing one is recorded and the others still run."""
    outcomes = []
    with contextlib.ExitStack() as stack:
        s3 = _S3(endpoint, stack)
        for name in names:
            _say(f"{name}: start")
            gc.collect()
            load_before = round(os.getloadavg()[0], 2)
            started = time.perf_counter()
            try:
                figures, error = RUNNERS[name](smoke, s3), None
            except Exception:  # noqa: BLE001 - one broken benchmark must not hide the others
                figures, error = None, traceback.format_exc(limit=8)
            seconds = round(time.perf_counter() - started, 1)
            _say(f"{name}: {'failed' if error else 'done'} in {seconds} s")
            outcomes.append(Outcome(name, seconds, figures, error, [load_before, round(os.getloadavg()[0], 2)]))
    return outcomes


def report(outcomes: list[Outcome], *, smoke: bool, date: str | None = None,
           machine: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything as one JSON-ready dict: machine, per benchmark figures, and the headline rows."""
    rows = []
    for o in outcomes:
        if o.figures is not None:
            rows += [asdict(f) for f in headlines.extract(o.name, o.figures)]
    return {"smoke": smoke, "date": date or time.strftime("%Y-%m-%d"),
            "machine": machine or {"cpus": os.cpu_count(), "loadavg": [round(x, 2) for x in os.getloadavg()]},
            "benchmarks": {o.name: {"seconds": o.seconds, "error": o.error, "figures": o.figures, "load": o.load}
                           for o in outcomes},
            "headline": rows}


def _load(earlier: list[dict[str, Any]], names: list[str]) -> list[Outcome]:
    """The outcomes recorded in earlier --json files, in the runner's order."""
    merged: dict[str, Outcome] = {}
    for result in earlier:
        for name, b in result["benchmarks"].items():
            merged[name] = Outcome(name, b["seconds"], b["figures"], b["error"], b.get("load"))
    return [merged[n] for n in names if n in merged]


def _say(text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {text}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    # The scripts print progress; keep stdout for the table.
    with contextlib.redirect_stdout(sys.stderr):
        yield


def main(argv: list[str] | None = None) -> int:
    """Run, print the headline table (and errors), write the JSON and the docs block if asked."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks that every script still runs")
    parser.add_argument("--only", nargs="+", choices=NAMES, metavar="NAME", help=f"some of: {', '.join(NAMES)}")
    parser.add_argument("--json", metavar="FILE", help="write every figure as JSON")
    parser.add_argument("--write-docs", nargs="?", const=DOCS_PAGE, metavar="PAGE",
                        help=f"rewrite the benchmarks block of PAGE [default: {DOCS_PAGE}]")
    parser.add_argument("--s3-endpoint", metavar="URL", help="an S3 server for claims/requests (default: weed mini)")
    parser.add_argument("--from-json", nargs="+", metavar="FILE",
                        help="run nothing: merge the benchmarks of earlier --json files (later files win)")
    args = parser.parse_args(argv)
    names = [n for n in NAMES if not args.only or n in args.only]
    if args.from_json:
        earlier = [json.loads(Path(f).read_text()) for f in args.from_json]
        outcomes = _load(earlier, names)
        args.smoke = any(e["smoke"] for e in earlier)
        machine = {"cpus": earlier[-1]["machine"]["cpus"],
                   "loadavg": [max(e["machine"]["loadavg"][i] for e in earlier) for i in range(3)]}
        result = report(outcomes, smoke=args.smoke, date=earlier[-1]["date"], machine=machine)
    else:
        with _stdout_to_stderr():
            outcomes = run(names, smoke=args.smoke, endpoint=args.s3_endpoint)
        result = report(outcomes, smoke=args.smoke)
    print(headlines.text_table(result["headline"]))
    for o in outcomes:
        if o.error:
            print(f"\n{o.name} FAILED:\n{o.error}", file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=str) + "\n")
    if args.write_docs:
        if args.smoke:
            print("not writing the docs from a --smoke run", file=sys.stderr)
            return 2
        from jobs.core import docblocks
        path = Path(args.write_docs)
        path.write_text(docblocks.replace_block(path.read_text(encoding="utf-8"), "benchmarks",
                                             headlines.markdown(result)), encoding="utf-8")
    return 1 if any(o.error for o in outcomes) else 0


if __name__ == "__main__":
    raise SystemExit(main())
