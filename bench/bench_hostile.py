"""Peak memory of publish and rebuildctl on hostile inputs (issue #15): each must stay under 512 MiB RSS.

    python -m bench.bench_hostile [--smoke] [--limit-as MIB]

Each case runs in a child process (a fresh interpreter) under RLIMIT_AS (default 1 GiB, so a
regression fails fast instead of eating the machine), and its peak RSS is read from the
kernel's accounting of that child (`os.wait4`'s ru_maxrss, what `/usr/bin/time -v` prints).
The cases, from the issue:

- publish copies a worker's diffoscope HTML that is a 3 MB gzip of 3 GiB (sitewriter's
  copy-and-sanitize of a build file, the code path publish runs for every report);
- publish copies a worker's diffoscope HTML of 11 MiB (under the cap: sanitized and published);
- publish copies a worker's diffoscope HTML of 999,000 nested tags (under the tag cap: published);
- publish copies a worker's log of 96 MiB (over the upload cap: refused before reading);
- rebuildctl reads a 500 MB JSON workers feed, streamed by a loopback server;
- rebuildctl reads a 1 MB gzip bomb (1 GiB decoded), with and without Content-Encoding;
- rebuildctl reads 30 MB of `[],` (under the size cap; 600 MB as Python objects: over the budget);
- rebuildctl reads a feed sent one byte every 0.5 s ($REBUILDCTL_DEADLINE=3).

Prints one JSON object: per case the exit status, seconds, peak RSS in MiB and whether it is
under the 512 MiB budget; `all_under_budget` sums it up. `baselines` are the same children on
harmless input, measured in the same run (publish copying a 1 kB report, rebuildctl reading a
one-worker feed): what the interpreter and the imports cost before any hostile byte. `--smoke`
makes the inputs small. `python -m bench` runs it as `hostile` (one headline row per case).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

from tests.hostile.site import MB, WORKERS, Answer, gzip_bomb, hostile_site, json_stream, trickle, workers_feed

BUDGET_MIB = 512
ROOT = Path(__file__).resolve().parents[2]

_PUBLISH_CHILD = """
import sys
from jobs.core.store.local import LocalStore
from jobs.publish.site.sitewriter import HTML, SiteFile, Tier, _put_one
store = LocalStore(sys.argv[1])
file = SiteFile.copy("api/v0/builds/1/" + sys.argv[3], sys.argv[2], HTML if sys.argv[3].endswith(".html") else
                     "text/plain; charset=utf-8", Tier.LEAF, sanitize=sys.argv[3].endswith(".html"))
published = _put_one(store, store, "site/", file)
print("published" if published else "refused")
sys.exit(0 if published else 1)
"""


def _gzip_of_zeros(decoded: int) -> bytes:
    comp = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b"\0" * (4 * MB)
    return b"".join(comp.compress(block) for _ in range(decoded // (4 * MB))) + comp.flush()


_SPAWN = """
import json, os, resource, subprocess, sys, time
report, limit, timeout, argv = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4:]
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
proc = subprocess.Popen(argv)
deadline = time.monotonic() + timeout
while True:
    pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
    if pid:
        break
    if time.monotonic() > deadline:
        proc.kill()
    time.sleep(0.05)
with open(report, "w") as f:
    json.dump({"exit": os.waitstatus_to_exitcode(status), "maxrss_kib": usage.ru_maxrss}, f)
"""


def measured(argv: list[str], *, limit_as: int, env: dict[str, str] | None = None,
             timeout: float = 300) -> dict[str, object]:
    """Run `argv` under RLIMIT_AS = `limit_as` bytes: its exit status, seconds, output, and its own
    peak RSS from wait4 (as `/usr/bin/time -v` reports it).

    The child is started by a small interpreter (`_SPAWN`) that sets the limit, runs `argv`
    and reports its wait4 figures: Linux counts the pages of the process that forked a child
    in the child's peak RSS, so a child forked straight from this runner, which may have just
    run a benchmark of gigabytes, would report the runner's size rather than its own.
    """
    started = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile(suffix=".json") as report:
        proc = subprocess.Popen([sys.executable, "-c", _SPAWN, report.name, str(limit_as), str(timeout), *argv],
                                stdout=out, stderr=err, env={**os.environ, **(env or {})}, cwd=ROOT)
        proc.wait(timeout + 30)
        figures = json.loads(Path(report.name).read_text())
        proc.returncode = figures["exit"]
        out.seek(0)
        err.seek(0)
        text_err = err.read().decode(errors="replace").strip()
        text_out = out.read().decode(errors="replace")
    rss_mib = figures["maxrss_kib"] / 1024  # KiB on Linux
    return {"exit": proc.returncode, "seconds": round(time.monotonic() - started, 2),
            "peak_rss_mib": round(rss_mib, 1), "under_budget": rss_mib < BUDGET_MIB,
            "stderr": text_err[-300:], "stdout": text_out[-200:]}


def _ctl(base: str) -> list[str]:
    return [sys.executable, "-c", "from jobs.ctl.cli import main; main()", "-H", base, "workers", "ls"]


def run(smoke: bool = False, limit_as_mib: int = 1024) -> dict[str, object]:
    limit_as = limit_as_mib * MB
    scale = 1 if not smoke else 64
    cases: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-hostile-") as tmp:
        store = Path(tmp) / "store"
        build = store / "builds" / "x"
        build.mkdir(parents=True)
        (build / "diffoscope.html").write_bytes(_gzip_of_zeros((3 << 30) // scale))
        (build / "build.log").write_bytes(os.urandom(96 * MB // scale))
        row = b'<tr class="diffchanged"><td class="diffline">1</td><td class="diffpresent">built on <span>a</span></td></tr>\n'
        html = b'<table class="diff">' + row * ((11 * MB // scale) // len(row)) + b"</table>"
        (build / "report.html").write_bytes(zlib.compress(html, 6, wbits=16 + zlib.MAX_WBITS))
        nested = b"<i>" * (999_000 // scale)  # the most elements the tag cap lets through, all nested
        (build / "nested.html").write_bytes(zlib.compress(nested, 6, wbits=16 + zlib.MAX_WBITS))
        (build / "small.html").write_bytes(zlib.compress(b"<p>" + b"x" * 1000 + b"</p>", 6, wbits=16 + zlib.MAX_WBITS))
        publish = [sys.executable, "-c", _PUBLISH_CHILD, str(store)]
        baselines = {"publish_small_report": measured([*publish, "builds/x/small.html", "diffoscope.html"],
                                                      limit_as=limit_as)}
        worker = {"key_id": "a" * 64, "name": "w1", "worker_id": 1, "trust": "enrolled", "last_seen": None,
                  "builds": 3, "current_job": None}
        with hostile_site({WORKERS: Answer(body=workers_feed(worker))}) as base:
            baselines["ctl_small_feed"] = measured(_ctl(base), limit_as=limit_as)
        cases["publish_diffoscope_gzip_bomb_3gib"] = measured(
            [*publish, "builds/x/diffoscope.html", "diffoscope.html"], limit_as=limit_as)
        cases["publish_diffoscope_11mib_report_published"] = measured(
            [*publish, "builds/x/report.html", "diffoscope.html"], limit_as=limit_as)
        cases["publish_diffoscope_999k_nested_tags_published"] = measured(
            [*publish, "builds/x/nested.html", "diffoscope.html"], limit_as=limit_as)
        cases["publish_log_96mib"] = measured([*publish, "builds/x/build.log", "log"], limit_as=limit_as)
        bomb = gzip_bomb((1 << 30) // scale)
        answers = {WORKERS: Answer(body=json_stream((500 * MB) // scale))}
        with hostile_site(answers) as base:
            cases["ctl_json_stream_500mb"] = measured(_ctl(base), limit_as=limit_as)
        for name, headers in (("ctl_gzip_bomb_content_encoding", {"Content-Encoding": "gzip"}),
                              ("ctl_gzip_bomb_raw", {})):
            with hostile_site({WORKERS: Answer(body=bomb, headers=headers)}) as base:
                cases[name] = measured(_ctl(base), limit_as=limit_as)
        objects = b'{"kind": "workers", "workers": [' + b"[]," * ((30 * MB // scale) // 3) + b"[]]}"
        with hostile_site({WORKERS: Answer(body=objects)}) as base:
            cases["ctl_json_30mb_of_empty_arrays"] = measured(_ctl(base), limit_as=limit_as)
        with hostile_site({WORKERS: trickle(0.5)}) as base:
            cases["ctl_trickle_one_byte_per_half_second"] = measured(
                _ctl(base), limit_as=limit_as, env={"REBUILDCTL_DEADLINE": "3"})
    return {"budget_mib": BUDGET_MIB, "rlimit_as_mib": limit_as_mib, "smoke": smoke, "cases": cases,
            "baselines": baselines,
            "all_under_budget": all(c["under_budget"] for c in cases.values()),
            "max_peak_rss_mib": max(c["peak_rss_mib"] for c in cases.values())}


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="small inputs (seconds, for CI)")
    parser.add_argument("--limit-as", type=int, default=1024, help="RLIMIT_AS of each child, MiB (default 1024)")
    args = parser.parse_args(argv)
    figures = run(args.smoke, args.limit_as)
    print(json.dumps(figures, indent=2))
    return figures


if __name__ == "__main__":
    main()
