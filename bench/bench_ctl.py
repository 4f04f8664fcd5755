"""Benchmark (issue #6): `rebuildctl pkgs ls --status BAD --suite X` vs the whole v0 list, 100,000 packages.

Not a test. Run it with `.venv/bin/python -m bench.bench_ctl` (`--smoke` for 2,000
packages and one repetition; `--packages N`, `--suite X`, `--repeat R` for other runs).
`main(argv)` returns the figures as a dict (the benchmark runner calls it).

The site is synthesized, not published from a store: the real publish takes minutes at this
size (its own benchmark is bench_publish). Rows are built in memory (`PackageRow`,
`SuiteSummary`), put in a DuckDB table shaped like publish's `pkgs`, and the files are made by
publish's own code, so they have the real site's shape and bytes: `jobs.publish.site.plan` cuts
every status list into parts (by name prefix, at most `urls.PAGE_SIZE` rows each), the
site builder (`jobs.publish.site.build._suites`, HTML left out) writes each long list as a parts
index `api/v1/suites/<suite>/<STATUS>.json` plus one feed per part, and each status list
whole in one columnar feed `<STATUS>.all.json` (`jobs.publish.site.allfeeds`); the v0 list comes
from publish's query, `api/v1/index.json` (which advertises the whole lists) from
`jobs.publish.site.feeds`, and each name's package feed (`pkgs ls --name N` reads it; no build
history) by `jobs.publish.site.feeds.package_feed`. Only what the clients read is written (the
status lists and package feeds, not the name and failure-class lists, nor any page). Shape: Arch core (300) and extra (15% of packages), Debian
bookworm and trixie main amd64 (the rest, split evenly), so component `main` spans two
suites; statuses 85% GOOD, 8% BAD, 4% FAIL, 3% UNKWN; every BAD and FAIL has a reason and a
failure class. The files and bytes `pkgs ls` read are counted by the server
(`files_read_by_pkgs_ls`, `bytes`): the index and one whole list per suite.

The site is served by tests/httpd.py (Python's ThreadingHTTPServer) on loopback. In one run,
each measurement `--repeat` times (the median is reported), each with a cold cache:
1. rebuildctl, in process: the real CLI (`pkgs ls --status BAD --suite X`, piped output) with a
   fresh, empty `$XDG_CACHE_HOME`, so every feed is downloaded;
2. rebuildctl as a process: the `rebuildctl` console script, interpreter start included;
3. the old way, in process: GET `api/v0/pkgs/list` with requests, parse it and keep status
   "BAD" and suite X — what arch-repro-status and the Arch website do (a static host
   ignores the `?status=` query, and v0 has no release, so this is the best they can do).
   It parses with orjson, as rebuildctl does, so the ratio measures the data, not the
   parser; the time with the standard library's json (requests' `.json()`) is reported too.
v0 reads FAIL as BAD, so the old way finds BAD and FAIL packages; both counts are reported.
4. rebuildctl in process against the same site as published before the whole lists (the index
   without `lists_all`, so the client reads each list's parts index and its parts): what this
   change gained, measured in the same run (`pkgs_ls_parts_seconds`).
5. against upstream (issue #18): `rebuildctl -H <site> pkgs ls --suite extra` and `--name N` as a
   process beside upstream's rebuildctl 0.23.1 asking a real rebuilderd 0.24 that synced an Arch
   db of the same packages (bench.upstream; skipped, and said so, without the trixie chroot).
   Each client runs once untimed first; ours runs from compiled bytecode, as an installed
   rebuildctl does (`process_env`).
The speedup compares 1 with 3 (both in process, no interpreter start), run by run interleaved.
Two suites are measured: `--suite` (default extra: one suite, 15% of the packages, the
headline) and `--worst-suite` (default main: a component of two releases holding 85% of the
packages, so `pkgs ls` reads two big BAD lists). Wall-clock times are skewed by other load on
the machine (its load average is reported), so CPU seconds (server threads and child
processes included) are reported beside them.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import duckdb
import pyarrow as pa

from jobs.core import urls
from jobs.core.model import Status
from jobs.publish.site import build as site
from jobs.publish.site import feeds, plan, queries
from jobs.publish.site.classify import FailureClass
from jobs.publish.site.rows import BuildLinks, PackagePage, PackageRow, SuiteKey, SuiteSummary
from jobs.publish.site.sitewriter import JSON, Manifest, Site, json_bytes
from tests.httpd import _QuietHandler, serve

PACKAGES = 100_000
SMOKE = 2_000
SUITE = "extra"  # one suite: Arch extra, 15% of the packages
WORST_SUITE = "main"  # two Debian releases' main: 85% of the packages
TARGET_SECONDS = 1.0
TARGET_SPEEDUP = 5.0
TARGET_VS_UPSTREAM = 1.5  # issue #18: within 1.5x of upstream's client on the same listing
NOW = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)
_WORDS = ("lib", "python", "perl", "rust", "node", "gnome", "kde", "qt", "xorg", "font", "tex", "golang", "ruby",
          "haskell", "java", "php", "ocaml", "r-cran", "texlive", "gst", "mesa", "vim", "emacs", "ghc")
_REASONS = {Status.BAD: (FailureClass.NOT_REPRODUCIBLE, "not reproducible: {file} differs"),
            Status.FAIL: (FailureClass.FTBFS, "build failed: the backend exited with status 2")}


def _suites(packages: int) -> list[tuple[SuiteKey, int, str]]:
    """(suite, packages in it, artifact URL template) for the synthetic rebuilder."""
    core = min(300, packages // 10)
    extra = packages * 15 // 100
    debian = packages - core - extra
    arch_url = "https://mirror.example/archlinux/{repo}/os/x86_64/{name}-{version}-x86_64.pkg.tar.zst"
    deb_url = "https://deb.example/debian/pool/main/{letter}/{name}/{name}_{version}_amd64.deb"
    return [(SuiteKey("archlinux", None, "core", "x86_64"), core, arch_url.replace("{repo}", "core")),
            (SuiteKey("archlinux", None, "extra", "x86_64"), extra, arch_url.replace("{repo}", "extra")),
            (SuiteKey("debian", "bookworm", "main", "amd64"), debian // 2, deb_url),
            (SuiteKey("debian", "trixie", "main", "amd64"), debian - debian // 2, deb_url)]


def _status(rng: random.Random) -> Status:
    x = rng.random()
    return Status.GOOD if x < 0.85 else Status.BAD if x < 0.93 else Status.FAIL if x < 0.97 else Status.UNKWN


def synthesize(packages: int, seed: int = 6) -> tuple[list[SuiteSummary], dict[SuiteKey, list[PackageRow]]]:
    """Every suite's summary and rows, deterministic for a seed."""
    rng = random.Random(seed)
    summaries, by_suite = [], {}
    v0_id = 0
    for suite, count, url in _suites(packages):
        rows = []
        for i in range(count):
            name = f"{rng.choice(_WORDS)}-{rng.choice(_WORDS)}{i}"
            version = f"{rng.randint(0, 30)}.{rng.randint(0, 99)}.{rng.randint(0, 9)}-{rng.randint(1, 5)}"
            status = _status(rng)
            built = status is not Status.UNKWN
            v0_id += built
            artifact_url = url.format(name=name, version=version, letter=name[0])
            failure, reason = _REASONS.get(status, (None, None))
            links = BuildLinks(v0_id if built else None, has_log=built, has_diffoscope=status is Status.BAD,
                               has_diffoscope_html=status is Status.BAD, has_attestation=status is Status.GOOD)
            rows.append(PackageRow(
                suite=suite, name=name, version=version, artifact_architecture=suite.architecture,
                artifact_url=artifact_url, source_name=name, source_version=version, job_id=f"{v0_id:032x}",
                status=status, build_id=f"{v0_id:032x}-1" if built else None,
                built_at=NOW - timedelta(minutes=i) if built else None,
                reason=reason.format(file=artifact_url.rsplit("/", 1)[1]) if reason else None,
                failure_class=failure, worker_name="worker-1" if built else None, links=links))
        counts = {s: sum(r.status is s for r in rows) for s in feeds.STATUSES}
        classes = Counter(r.failure_class for r in rows if r.failure_class is not None)
        summaries.append(SuiteSummary(suite, counts[Status.GOOD], counts[Status.BAD], counts[Status.FAIL],
                                      counts[Status.UNKWN], queued=counts[Status.BAD] + counts[Status.FAIL],
                                      classes=tuple(sorted(classes.items(), key=lambda c: c[0].value))))
        by_suite[suite] = rows
    return summaries, by_suite


class _NoPages:
    """No HTML: neither client reads a page, and rendering 100,000 rows would only slow the set-up."""

    def render(self, template: str, key: str, **context: Any) -> bytes:
        return b""


def _pkgs_table(rows: list[PackageRow]) -> pa.Table:
    """The columns of publish's `pkgs` table (jobs.publish.site.queries) that the list queries read."""
    built_at = pa.array([r.built_at for r in rows], pa.timestamp("us", tz="UTC"))
    return pa.table({
        "distro": [r.suite.distro for r in rows], "release": [r.suite.release for r in rows],
        "component": [r.suite.component for r in rows], "architecture": [r.suite.architecture for r in rows],
        "name": [r.name for r in rows], "version": [r.version for r in rows],
        "artifact_architecture": [r.artifact_architecture for r in rows],
        "artifact_url": [r.artifact_url for r in rows], "source_name": [r.source_name for r in rows],
        "source_version": [r.source_version for r in rows], "job_id": [r.job_id for r in rows],
        "artifact_sha256": pa.array([r.artifact_sha256 for r in rows], pa.string()),
        "status": [r.status.value for r in rows], "build_id": [r.build_id for r in rows], "built_at": built_at,
        "worker_name": [r.worker_name for r in rows], "v0_id": pa.array([r.links.v0_id for r in rows], pa.int32()),
        "has_log": [r.links.has_log for r in rows], "has_diffoscope": [r.links.has_diffoscope for r in rows],
        "has_diffoscope_html": [r.links.has_diffoscope_html for r in rows],
        "has_attestation": [r.links.has_attestation for r in rows], "reason": [r.reason for r in rows],
        "failure_class": [r.failure_class.value if r.failure_class else None for r in rows],
        "maintainers": pa.array([list(getattr(r, "maintainers", ()) or ()) for r in rows], pa.list_(pa.string())),
        "description": pa.array([getattr(r, "description", None) for r in rows], pa.string())})


def write_site(root: Path, summaries: list[SuiteSummary], by_suite: dict[SuiteKey, list[PackageRow]]) -> dict[str, int]:
    """The feeds both clients read, made by publish's own code; returns their sizes by key.

    The rows go into a DuckDB table shaped like publish's `pkgs`; `jobs.publish.site.plan` cuts each
    status list into parts (by name prefix, at most `urls.PAGE_SIZE` rows each) and the site
    builder's `_suites` writes the list feeds: a parts index where a list is long, each part
    as its own feed. The v0 list comes from publish's own query.
    """
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET enable_progress_bar = false")  # the figures go to stdout, nothing else
        con.register("bench_pkgs", _pkgs_table([r for s in summaries for r in by_suite[s.suite]]))
        con.execute("CREATE TEMP TABLE pkgs AS SELECT * FROM bench_pkgs")
        # The v0 list reads each build group's architecture from the state: one input per job here.
        con.execute("CREATE TEMP TABLE state AS SELECT job_id, artifact_architecture, artifact_url, "
                    "artifact_url AS input_url FROM bench_pkgs")
        # An empty build history: only package pages read it, and no page is made here.
        con.execute("CREATE TEMP TABLE hist AS SELECT * FROM pkgs LIMIT 0")
        plan.setup(con)
        lists = {ref: parts for ref, parts in plan.list_parts(con, [s.suite for s in summaries]).items()
                 if ref.name.startswith("status/")}  # the names and failure-class lists: read by neither client
        built = Site(source=None)  # type: ignore[arg-type]  # nothing is copied from a store
        site._suites(site._Builder(built, con, Manifest(), _NoPages(), NOW), summaries, lists, {})
        files = {f.key: f.data for f in built.files.values() if f.content_type == JSON and f.data is not None}
        files[urls.INDEX_FEED] = json_bytes(feeds.index_feed(summaries, [], queue_length=0, rebuilder="bench",
                                                             generated_at=NOW))
        files[urls.PKGS_LIST] = json_bytes(queries.pkgs_list_v0(con))
    finally:
        con.close()
    # Each name's package feed (what `pkgs ls --name N` reads): its current packages; no history here.
    by_name: dict[tuple[str, str], list[PackageRow]] = {}
    for summary in summaries:
        for r in by_suite[summary.suite]:
            by_name.setdefault((r.suite.distro, r.name), []).append(r)
    for (distro, name), rows in by_name.items():
        page = PackagePage(distro, name, tuple(rows), ())
        files[page.feed_url] = json_bytes(feeds.package_feed(page, NOW))
    for key, data in files.items():
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return {k: len(v) for k, v in files.items()}


def parts_site(root: Path, to: Path) -> Path:
    """The same site as a publish before the whole lists left it: an index without `lists_all`.

    Every other file is the site's own (its `api/v0` and `api/v1/suites` directories linked).
    """
    index = json.loads((root / urls.INDEX_FEED).read_bytes())
    for suite in index["suites"]:
        del suite["lists_all"]
    (to / "api/v1").mkdir(parents=True)
    (to / urls.INDEX_FEED).write_bytes(json_bytes(index))
    (to / "api/v1/suites").symlink_to(root / "api/v1/suites", target_is_directory=True)
    (to / "api/v0").symlink_to(root / "api/v0", target_is_directory=True)
    return to


class _Counting(_QuietHandler):
    """Counts the files served (path, bytes): what a client really read."""

    seen: list[tuple[str, int]] = []

    def copyfile(self, source: Any, outputfile: Any) -> None:
        type(self).seen.append((unquote(self.path), os.fstat(source.fileno()).st_size))
        super().copyfile(source, outputfile)


def files_read(base: str, suite: str, cache: Path) -> list[tuple[str, int]]:
    """(key, bytes) of every file one cold `pkgs ls --status BAD --suite <suite>` reads, in order."""
    _Counting.seen.clear()
    rebuildctl_in_process(base, suite, cache)
    return [(path.lstrip("/"), size) for path, size in _Counting.seen]


def old_client(base: str, suite: str, parser: str = "orjson") -> int:
    """What v0 consumers do: download the whole list, parse it, filter; the number of matches.

    `parser` "orjson" is the parser rebuildctl uses (the fair baseline); "json" is what
    requests' `.json()` does.
    """
    import orjson
    import requests

    resp = requests.get(f"{base}/{urls.PKGS_LIST}", params={"status": "BAD", "suite": suite}, timeout=300)
    resp.raise_for_status()
    records = orjson.loads(resp.content) if parser == "orjson" else resp.json()
    return sum(1 for r in records if r["status"] == "BAD" and r["suite"] == suite)


def rebuildctl_in_process(base: str, suite: str, cache: Path) -> str:
    """The real CLI in this process with an empty cache; what it printed."""
    from typer.testing import CliRunner

    from jobs.ctl.cli import app

    res = CliRunner().invoke(app, ["-H", base, "pkgs", "ls", "--status", "BAD", "--suite", suite],
                             env={"XDG_CACHE_HOME": str(cache)}, catch_exceptions=False)
    if res.exit_code != 0:
        raise RuntimeError(f"rebuildctl failed: {res.output}")
    return res.stdout


def process_env(cache: Path) -> dict[str, str]:
    """The environment of a timed `rebuildctl` process: an empty feed cache, and Python's bytecode.

    An installed rebuildctl runs from its compiled modules (pip compiles them); this tree's
    editable install has none, and with $PYTHONDONTWRITEBYTECODE set (as on the development
    machine) every run would compile each of its modules again. So the bytecode goes to one
    directory of this run ($PYTHONPYCACHEPREFIX), written by the first, untimed run.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "PYTHONPYCACHEPREFIX": str(_PYCACHE), "XDG_CACHE_HOME": str(cache), "HOME": str(cache)}


_PYCACHE = Path(tempfile.gettempdir()) / f"bench-ctl-pycache-{os.getuid()}"


def rebuildctl_process(base: str, suite: str, cache: Path) -> str:
    """The `rebuildctl` console script as a user runs it (interpreter start included)."""
    exe = Path(sys.executable).parent / "rebuildctl"
    argv = [str(exe)] if exe.exists() else [sys.executable, "-c", "from jobs.ctl.cli import main; main()"]
    out = subprocess.run([*argv, "-H", base, "pkgs", "ls", "--status", "BAD", "--suite", suite],
                         env=process_env(cache), capture_output=True, text=True, check=True, timeout=300)
    return out.stdout


def arch_db(rows: list[PackageRow]) -> bytes:
    """A gzip Arch repository db listing `rows` (name and version): what upstream's daemon syncs."""
    from tests.sync import alpm_builders as alpm

    return alpm.db([m for r in sorted(rows, key=lambda r: (r.name, r.version))
                    for m in alpm.package(r.name, r.version)])


def _process_run(argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True, timeout=300)
    return time.perf_counter() - started, out.stdout


def against_upstream(base: str, rows: list[PackageRow], suite: str, repeat: int, tmp: Path) -> dict[str, Any]:
    """Our `rebuildctl pkgs ls --suite X` (and `--name N`) as a process against upstream's rebuildctl 0.23.1
    asking a rebuilderd 0.24 that synced the same packages (bench.upstream); medians, run by run interleaved."""
    from bench import upstream

    reason = upstream.unavailable()
    if reason:
        return {"unavailable": reason}
    mirror = tmp / "upstream-mirror"
    (mirror / suite / "os" / "x86_64").mkdir(parents=True)
    (mirror / suite / "os" / "x86_64" / f"{suite}.db").write_bytes(arch_db(rows))
    name = rows[len(rows) // 2].name
    exe = Path(sys.executable).parent / "rebuildctl"
    caches = (tmp / f"upstream-cache-{i}" for i in itertools.count())
    times: dict[str, list[float]] = {"ours": [], "theirs": [], "ours_name": [], "theirs_name": []}
    cpu: dict[str, list[float]] = {k: [] for k in times}
    lines: dict[str, int] = {}
    with upstream.http_directory(mirror) as url, upstream.daemon() as d:
        synced = upstream.sync_profile(d, url, suite=suite)
        for args in (("--suite", suite), ("--name", name)):  # once each, untimed: bytecode, the page cache
            _process_run([str(exe), "-H", base, "pkgs", "ls", *args], process_env(next(caches)))
            d.rebuildctl("pkgs", "ls", *args)
        for _ in range(repeat):
            for what, args in (("", ("--suite", suite)), ("_name", ("--name", name))):
                cpu_before = _cpu()  # rebuildctl's process and the loopback server's threads (this process)
                seconds, out = _process_run([str(exe), "-H", base, "pkgs", "ls", *args], process_env(next(caches)))
                cpu["ours" + what].append(_cpu() - cpu_before)
                times["ours" + what].append(seconds)
                lines["ours" + what] = len(out.splitlines())
                run = d.rebuildctl("pkgs", "ls", *args)
                times["theirs" + what].append(run.seconds)
                cpu["theirs" + what].append(run.cpu_seconds + run.daemon_cpu_seconds)
                lines["theirs" + what] = len(run.stdout.splitlines())
    m = {k: statistics.median(v) for k, v in times.items()}
    c = {k: statistics.median(v) for k, v in cpu.items()}
    return {"version": upstream.version(), "suite": suite, "name": name, "lines": lines,
            "upstream_sync_seconds": round(synced.seconds, 3),
            "ours_seconds": round(m["ours"], 3), "upstream_seconds": round(m["theirs"], 3),
            "ratio": round(m["ours"] / m["theirs"], 2),
            "ours_name_seconds": round(m["ours_name"], 3), "upstream_name_seconds": round(m["theirs_name"], 3),
            "name_ratio": round(m["ours_name"] / m["theirs_name"], 2),
            "runs": {k: [round(x, 3) for x in v] for k, v in times.items()},
            # CPU seconds, which a loaded machine distorts least: ours is rebuildctl and the loopback server's
            # threads, theirs rebuildctl (chroot(1) included) and the daemon
            "cpu_seconds": {k: round(v, 3) for k, v in c.items()},
            "cpu_ratio": round(c["ours"] / c["theirs"], 2) if c["theirs"] else None,
            "name_cpu_ratio": round(c["ours_name"] / c["theirs_name"], 2) if c["theirs_name"] else None,
            "how": "process wall time, cold cache; upstream's rebuildctl runs in its trixie chroot (chroot(1) "
                   "start included) against its daemon, ours against the synthesized site over loopback HTTP"}


def _cpu() -> float:
    """CPU seconds of this process (the loopback server's threads included) and of its waited-for children."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def _clock(fn, *args) -> tuple[float, float, Any]:
    """(wall seconds, CPU seconds, result) of one call."""
    wall, cpu = time.perf_counter(), _cpu()
    result = fn(*args)
    return time.perf_counter() - wall, _cpu() - cpu, result


def measure(base: str, parts_base: str, suite: str, repeat: int, caches: Iterator[Path]) -> dict[str, Any]:
    """The clients for one --suite, interleaved run by run (so load on the machine hits them alike)."""
    times: dict[str, list[float]] = {"ctl": [], "process": [], "v0": [], "v0_json": [], "parts": []}
    cpu: dict[str, list[float]] = {k: [] for k in times}
    out: dict[str, Any] = {}
    for _ in range(repeat):
        for what, fn, args in (("ctl", rebuildctl_in_process, (base, suite, next(caches))),
                               ("v0", old_client, (base, suite)),
                               ("process", rebuildctl_process, (base, suite, next(caches))),
                               ("v0_json", old_client, (base, suite, "json")),
                               ("parts", rebuildctl_in_process, (parts_base, suite, next(caches)))):
            seconds, cpu_seconds, out[what] = _clock(fn, *args)
            times[what].append(seconds)
            cpu[what].append(cpu_seconds)
    # The same lines whichever way the lists were read, as a user runs it or in process.
    assert out["ctl"] == out["process"] == out["parts"], suite
    m = {k: statistics.median(v) for k, v in times.items()}
    c = {k: statistics.median(v) for k, v in cpu.items()}
    return {"pkgs_ls_seconds": round(m["ctl"], 3), "pkgs_ls_process_seconds": round(m["process"], 3),
            "v0_list_seconds": round(m["v0"], 3), "v0_list_stdlib_json_seconds": round(m["v0_json"], 3),
            "pkgs_ls_parts_seconds": round(m["parts"], 3),
            "speedup_over_v0_list": round(m["v0"] / m["ctl"], 1),
            "speedup_over_parts": round(m["parts"] / m["ctl"], 1),
            # CPU time (server threads included) is what a loaded machine distorts least
            "cpu_seconds": {k: round(v, 3) for k, v in c.items()}, "cpu_speedup": round(c["v0"] / c["ctl"], 1),
            "rows": {"pkgs_ls_BAD": len(out["ctl"].splitlines()), "v0_BAD_and_FAIL": out["v0"]},
            "runs": {k: [round(x, 3) for x in v] for k, v in times.items()}}


def run(*, packages: int = PACKAGES, suite: str = SUITE, worst_suite: str = WORST_SUITE, repeat: int = 3,
        workdir: str | None = None) -> dict[str, Any]:
    """Synthesize, serve and time the clients for `suite` (the headline) and `worst_suite`; the figures."""
    with tempfile.TemporaryDirectory(prefix="bench-ctl-", dir=workdir) as tmp:
        root = Path(tmp) / "site"
        started = time.perf_counter()
        summaries, by_suite = synthesize(packages)
        sizes = write_site(root, summaries, by_suite)
        setup = time.perf_counter() - started
        share = {x: sum(s.total for s in summaries if s.suite.component == x) / packages for x in (suite, worst_suite)}
        listing = [r for key, rows in by_suite.items() if key.component == suite and key.distro == "archlinux"
                   for r in rows]
        del summaries, by_suite  # 100,000 live rows would slow every garbage collection in the timed part
        gc.collect()
        caches = (Path(tmp) / f"cache-{i}" for i in itertools.count())
        with serve(root, _Counting) as base, serve(parts_site(root, Path(tmp) / "parts"), _Counting) as parts_base:
            rebuildctl_in_process(base, suite, next(caches))  # the imports, once; every timed run has a new cache
            rebuildctl_process(base, suite, next(caches))  # the bytecode (`process_env`), once
            reads = {x: files_read(base, x, next(caches)) for x in (suite, worst_suite)}
            parts_reads = {x: files_read(parts_base, x, next(caches)) for x in (suite, worst_suite)}
            figures = {x: measure(base, parts_base, x, repeat, caches) for x in dict.fromkeys((suite, worst_suite))}
            vs_upstream = against_upstream(base, listing, suite, repeat, Path(tmp))
            del listing
            warm_cache = next(caches)
            rebuildctl_in_process(base, suite, warm_cache)
            warm_s = statistics.median(_clock(rebuildctl_in_process, base, suite, warm_cache)[0]
                                       for _ in range(repeat))
    head, worst = figures[suite], figures[worst_suite]
    for x, f in figures.items():
        f["share_of_packages"] = round(share[x], 3)
        f["bytes"] = {"pkgs_ls": sum(n for _, n in reads[x]), "v0_list": sizes[urls.PKGS_LIST],
                      "pkgs_ls_parts": sum(n for _, n in parts_reads[x])}
        f["files_read_by_pkgs_ls"] = {"count": len(reads[x]), "files": [k for k, _ in reads[x]],
                                      "count_parts": len(parts_reads[x])}
    return {
        "pkgs_ls_seconds": head["pkgs_ls_seconds"], "target_pkgs_ls_seconds": TARGET_SECONDS,
        "pkgs_ls_process_seconds": head["pkgs_ls_process_seconds"], "target_pkgs_ls_process_seconds": TARGET_SECONDS,
        "v0_list_seconds": head["v0_list_seconds"],
        "speedup_over_v0_list": head["speedup_over_v0_list"], "target_speedup_over_v0_list": TARGET_SPEEDUP,
        "pkgs_ls_seconds_worst_case": worst["pkgs_ls_seconds"], "target_pkgs_ls_seconds_worst_case": TARGET_SECONDS,
        "speedup_over_v0_list_worst_case": worst["speedup_over_v0_list"],
        "vs_upstream": vs_upstream, "target_vs_upstream": TARGET_VS_UPSTREAM,
        "target_speedup_over_v0_list_worst_case": TARGET_SPEEDUP,
        "details": {"packages": packages, "repeat": repeat, "suite": suite, "worst_suite": worst_suite,
                    "synthesize_and_write_seconds": round(setup, 1), "pkgs_ls_warm_cache_seconds": round(warm_s, 3),
                    "by_suite": figures, "load_average": os.getloadavg()[0]},
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run, print the figures as JSON and the verdicts; return the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help=f"{SMOKE} packages, one repetition")
    parser.add_argument("--packages", type=int, default=PACKAGES)
    parser.add_argument("--suite", default=SUITE, help=f"the headline --suite of `pkgs ls` [default: {SUITE}]")
    parser.add_argument("--worst-suite", default=WORST_SUITE,
                        help=f"the worst case: a component spanning most packages [default: {WORST_SUITE}]")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (median reported)")
    parser.add_argument("--workdir", help="directory for the temporary site (default: the system's)")
    args = parser.parse_args(argv)
    figures = run(packages=SMOKE if args.smoke else args.packages, suite=args.suite, worst_suite=args.worst_suite,
                  repeat=1 if args.smoke else args.repeat, workdir=args.workdir)
    print(json.dumps(figures, indent=2))
    for label, suite, key in (("", args.suite, ""), ("worst case, ", args.worst_suite, "_worst_case")):
        f = figures["details"]["by_suite"][suite]
        print(f"{label}pkgs ls --status BAD --suite {suite} ({f['share_of_packages']:.0%} of the packages): "
              f"{f['pkgs_ls_seconds']} s in process, {f['pkgs_ls_process_seconds']} s as a process "
              f"(target <= {TARGET_SECONDS} s); whole v0 list {f['v0_list_seconds']} s; "
              f"speedup {figures['speedup_over_v0_list' + key]}x (target >= {TARGET_SPEEDUP}x); "
              f"read {f['files_read_by_pkgs_ls']['count']} files, {f['bytes']['pkgs_ls']:,} bytes "
              f"(in parts: {f['files_read_by_pkgs_ls']['count_parts']} files, {f['bytes']['pkgs_ls_parts']:,} "
              f"bytes, {f['pkgs_ls_parts_seconds']} s)")
    return figures


if __name__ == "__main__":
    main()
