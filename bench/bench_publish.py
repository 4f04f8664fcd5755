"""Benchmark (issue #5): `rebuilder publish` on a synthetic 100,000 packages + 1,000,000 builds.

Not a test. Run it with `.venv/bin/python -m bench.bench_publish` (`--smoke` for
2,000 packages / 20,000 builds; `--packages N --builds M` for any size; `--no-fsync` for a
store without fsync). The synthetic store is described in `publish_world`; it is written
without fsync and is not timed. Then, in one process, against a local store (fsync on):

1. full publish: the real `jobs.publish.run.publish` into an empty `site/` (publish_state
   with nothing new to verify, countersigning every stored attestation, build_site, which
   writes the package pages as it renders them (`stream_write`; `stream_wait`: waiting for its
   writer threads), write_site), timed as a
   whole and per step;
2. baseline: rendering the same site in memory (every package page and feed, every list
   part and feed, suite pages, dashboard: `build_site` with no previous manifest, from the
   tables step 1 read from the store, so its queries but no store access), nothing written;
3. incremental publish: 100 real signed results (claim, log, result object carrying its attestation)
   for 100 queued jobs, then `publish` again (verify, compact, queue, countersign, site);
4. a publish with nothing new (the floor of any incremental publish).

Figures: full ÷ baseline (target ≤ 3), incremental ÷ full (target ≤ 0.05), the site objects
written per changed package (target: proportional to the changed packages), store requests
by operation, and per step the peak resident set size (VmHWM, reset through
/proc/self/clear_refs before each step). Linux only.

Not in the synthetic store, so not in the figures: build files for most builds (only
`--log-fraction`, 1% by default, have a log, report or attestation, so a full publish
copies about 1% of the build files a real one would), and the result and claim objects of past
builds (never deleted, listed by every publish; the `list` figure gives this store's
listing speed to extrapolate from). The machine's load average is reported: other
processes on it skew wall-clock times, CPU times less so.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import inspect
import json
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import jobs.publish.run as run_module
import jobs.publish.site.build as site_module
import jobs.publish.site.plan as plan_module
import jobs.publish.site.queries as queries_module
from bench import plain_publish
from bench.publish_world import SUITES, World, add_results, make_world
from jobs.core.pointer import Pointer
from jobs.core.store import LocalStore, Store
from jobs.publish.run import publish
from jobs.publish.site.build import build_site
from jobs.publish.site.streaming import SiteStream

PACKAGES, BUILDS = 100_000, 1_000_000
SMOKE = (2_000, 20_000)
NEW_RESULTS = 100
TARGET_FULL = 3.0
TARGET_INCREMENTAL = 0.05


class CountingStore:
    """A store that counts requests (and bytes) by operation; everything else is the wrapped store's."""

    def __init__(self, inner: Store) -> None:
        self.inner, self.url = inner, inner.url
        self.fsync = getattr(inner, "fsync", True)  # publish suits its writer threads to it (writers_for)
        self.ops: Counter[str] = Counter()
        self.bytes: Counter[str] = Counter()
        self.site_puts: Counter[str] = Counter()

    def get(self, key: str):
        self.ops["get"] += 1
        blob = self.inner.get(key)
        self.bytes["get"] += len(blob.data)
        return blob

    def open(self, key: str):
        self.ops["open"] += 1
        return self.inner.open(key)

    def head(self, key: str):
        self.ops["head"] += 1
        return self.inner.head(key)

    def _put(self, op: str, key: str, body: Any, *args: Any, **kwargs: Any) -> str:
        self.ops[op] += 1
        self.bytes[op] += len(body) if isinstance(body, (bytes, bytearray)) else 0
        if key.startswith("site/"):
            self.site_puts[_kind(key.removeprefix("site/"))] += 1
        return getattr(self.inner, op)(key, body, *args, **kwargs)

    def put(self, key: str, body: Any, **kwargs: Any) -> str:
        return self._put("put", key, body, **kwargs)

    def put_if_absent(self, key: str, body: Any, **kwargs: Any) -> str:
        return self._put("put_if_absent", key, body, **kwargs)

    def put_if_match(self, key: str, body: Any, etag: str, **kwargs: Any) -> str:
        return self._put("put_if_match", key, body, etag, **kwargs)

    def list(self, prefix: str = "") -> Iterator:
        self.ops["list"] += 1
        for info in self.inner.list(prefix):
            self.ops["list_keys"] += 1
            yield info

    def delete(self, key: str) -> None:
        self.ops["delete"] += 1
        self.inner.delete(key)

    def figures(self) -> dict[str, Any]:
        return {"requests": dict(sorted(self.ops.items())), "bytes": dict(sorted(self.bytes.items())),
                "site_puts_by_kind": dict(sorted(self.site_puts.items()))}


def _kind(key: str) -> str:
    """What a site key is, for counting writes (see jobs.core.urls)."""
    for prefix, kind in (("api/v0/builds/", "build files"), ("packages/", "package pages"),
                         ("api/v1/packages/", "package feeds"), ("api/v1/suites/", "suite and list feeds"),
                         ("suites/", "suite and list pages"), ("api/v1/search/", "search index"),
                         ("maintainers/", "maintainer pages and feeds"),
                         ("api/v1/maintainers/", "maintainer pages and feeds")):
        if key.startswith(prefix):
            return kind
    return key if key.startswith("_manifest") else "dashboard, indexes, keys, static"


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current RSS


def _peak_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return 0.0


@contextlib.contextmanager
def _timed_steps(steps: dict[str, float], keep: dict[str, Any]) -> Iterator[None]:
    """Time the steps of the real publish by wrapping the functions `publish` and `build_site` call."""
    patched: list[tuple[Any, str, Callable]] = []

    def add(name: str, started: float) -> None:
        steps[name] = round(steps.get(name, 0.0) + time.perf_counter() - started, 3)

    def wrap(module: Any, attribute: str, name: str | None = None) -> None:
        original = getattr(module, attribute)
        name = name or attribute

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                result = original(*args, **kwargs)
            finally:
                add(name, started)
            if name == "load_inputs":
                keep["inputs"] = result
            return result

        def timed_iterator(*args: Any, **kwargs: Any) -> Iterator[Any]:
            # A generator's work is done as it is consumed: time each step of it, not its creation.
            iterator = original(*args, **kwargs)
            while True:
                started = time.perf_counter()
                try:
                    item = next(iterator)
                except StopIteration:
                    return
                finally:
                    add(name, started)
                yield item

        patched.append((module, attribute, original))
        setattr(module, attribute, timed_iterator if inspect.isgeneratorfunction(original) else timed)

    for name in ("publish_state", "countersigned_attestations", "learn_facts", "load_inputs", "build_site",
                 "write_site"):
        wrap(run_module, name)
    # inside build_site: its queries and what it renders (stream_pages: the package pages' query
    # and their rows, consumed as `_package_pages` renders them)
    for module, names in ((queries_module, ("connect",)), (plan_module, ("setup", "page_inputs", "stream_pages",
                                                                        "part_rows")),
                          (site_module, ("_build_files", "_package_pages", "_suites", "_top"))):
        for name in names:
            wrap(module, name)
    # the package pages and feeds written as they are rendered (inside _package_pages): handed
    # to the stream (written there on a local store without fsync, queued for its writer
    # threads otherwise), and the waits for what was queued to land (write_site's included)
    wrap(SiteStream, "write", "stream_write")
    wrap(SiteStream, "wait", "stream_wait")
    try:
        yield
    finally:
        for module, name, original in patched:
            setattr(module, name, original)


def _publish(store: Store, world: World, now: datetime, keep: dict[str, Any]) -> dict[str, Any]:
    """One real publish, timed as a whole and by step, with its store requests and peak memory."""
    counting = CountingStore(store)
    steps: dict[str, float] = {}
    gc.collect()
    _reset_peak()
    with _timed_steps(steps, keep):
        started, cpu = time.perf_counter(), time.process_time()
        summary = publish(counting, world.config, now=now)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    site = summary.site
    return {"seconds": round(seconds, 3), "cpu_seconds": round(cpu, 3), "steps": steps, "peak_rss_mib": _peak_mib(),
            "site_written": site.written if site else None, "site_deleted": site.deleted if site else None,
            "site_unchanged": site.unchanged if site else None, "accepted": len(summary.state.accepted),
            "history_rows_added": summary.state.history_rows_added, "summary": summary.line(),
            **counting.figures()}


def _render_only(store: Store, now: datetime, inputs: Any) -> dict[str, Any]:
    """The baseline: every file of the site rendered in memory from tables already read, no store at all."""
    gc.collect()
    _reset_peak()
    started, cpu = time.perf_counter(), time.process_time()
    site = build_site(store, now=now, public_keys={}, rebuilder_name="rebuilder", inputs=inputs, previous=None)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    rendered = [f for f in site.files.values() if f.data is not None]
    return {"seconds": round(seconds, 3), "cpu_seconds": round(cpu, 3), "peak_rss_mib": _peak_mib(),
            "files": len(site.files),
            "rendered": len(rendered), "copies": len(site.files) - len(rendered),
            "html_pages": sum(1 for f in rendered if f.key.endswith(".html")),
            "rendered_mib": round(sum(len(f.data) for f in rendered) / 2**20, 1)}


def _parquet_files(store: LocalStore) -> tuple[list[str], list[str]]:
    """The package snapshots and history parts the store's pointers name, as file paths."""
    state = []
    for profile in dict.fromkeys(s[0] for s in SUITES):
        current, _ = Pointer(store, f"state/{profile}").read()
        state.append(str(store.root / current.target))
    manifest, _ = Pointer(store, "history").read()
    parts = json.loads(store.get(manifest.target).data)["parts"]
    return state, [str(store.root / p) for p in parts]


def _plain(store: LocalStore, out: Path) -> dict[str, Any]:
    """The independent baseline (bench.plain_publish) on the same Parquet, into a fresh directory."""
    state, history = _parquet_files(store)
    gc.collect()
    _reset_peak()
    figures = plain_publish.timed(state, history, out)
    figures["peak_rss_mib"] = _peak_mib()
    shutil.rmtree(out, ignore_errors=True)
    return figures


def _put_cost(root: Path, fsync: bool, n: int = 200) -> float:
    """Milliseconds per 4 KiB put in a local store (this disk, this fsync setting)."""
    store = LocalStore(root / ("fsync" if fsync else "nofsync"), fsync=fsync)
    body = os.urandom(4096)
    started = time.perf_counter()
    for i in range(n):
        store.put(f"probe/{i % 50}/{i}.html", body, content_type="text/html")
    return round(1000 * (time.perf_counter() - started) / n, 3)


def _list_cost(store: Store, prefix: str = "site/") -> dict[str, float]:
    """Listing speed of this store (for the listings a publish makes: results/, claims/, workers/)."""
    started = time.perf_counter()
    n = sum(1 for _ in store.list(prefix))
    return {"keys": n, "ms_per_1000_keys": round(1e6 * (time.perf_counter() - started) / max(n, 1), 1)}


def run(smoke: bool = False, packages: int = PACKAGES, builds: int = BUILDS, *, fsync: bool = True,
        log_fraction: float = 0.01, noop: bool = True, workdir: str | None = None) -> dict[str, Any]:
    """Every figure of the benchmark (see the module docstring)."""
    if smoke:
        packages, builds = SMOKE
    root = Path(tempfile.mkdtemp(prefix="bench-publish-", dir=workdir))
    try:
        return _run(root, packages, builds, fsync=fsync, log_fraction=log_fraction, noop=noop)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _say(text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {text}", file=sys.stderr, flush=True)


def _run(root: Path, packages: int, builds: int, *, fsync: bool, log_fraction: float, noop: bool) -> dict[str, Any]:
    load = os.getloadavg()
    started = time.perf_counter()
    _say(f"writing {packages} packages and {builds} builds to {root}")
    world = make_world(root, packages, builds, log_fraction=log_fraction)
    setup = round(time.perf_counter() - started, 1)
    _say(f"set up in {setup} s; full publish")
    gc.collect()
    store = world.store(fsync=fsync)
    keep: dict[str, Any] = {}
    full = _publish(store, world, world.now, keep)
    _say(f"full publish: {full['seconds']} s; rendering in memory")
    baseline = _render_only(store, world.now, keep.pop("inputs"))
    _say(f"rendered in {baseline['seconds']} s; the plain renderer")
    plain = _plain(store, root / "plain")
    _say(f"plain renderer: {plain['seconds']} s; {NEW_RESULTS} new results, incremental publish")
    gc.collect()
    new = add_results(world, NEW_RESULTS)
    changed_jobs = len({r.job_id for r in new})
    changed_packages = sum(len({a.name for a in j.artifacts}) for j in world.queued
                           if j.job_id in {r.job_id for r in new})
    world.queued = [j for j in world.queued if j.job_id not in {r.job_id for r in new}]
    incremental = _publish(store, world, world.now + timedelta(hours=1), keep)
    keep.clear()
    # timing a run that refused its results would time nothing: every new result must be taken
    assert incremental["accepted"] == len(new), incremental["summary"]
    _say(f"incremental publish: {incremental['seconds']} s")
    figures: dict[str, Any] = {
        "size": {**world.counts, "new_results": len(new), "changed_jobs": changed_jobs,
                 "changed_packages": changed_packages, "log_fraction": log_fraction, "fsync": fsync},
        "machine": {"cpus": os.cpu_count(), "loadavg_at_start": [round(x, 2) for x in load],
                    "put_ms_fsync": _put_cost(root, True), "put_ms_no_fsync": _put_cost(root, False)},
        "setup_seconds": setup, "full_publish": full, "render_in_memory": baseline, "plain_renderer": plain,
        "incremental_publish": incremental,
    }
    _say("one new result, incremental publish")
    one = add_results(world, 1, seed=3)  # none when a smoke-sized world has no queued job left
    figures["one_result_publish"] = _publish(store, world, world.now + timedelta(minutes=90), keep)
    keep.clear()
    assert figures["one_result_publish"]["accepted"] == len(one), figures["one_result_publish"]["summary"]
    _say(f"one-result publish: {figures['one_result_publish']['seconds']} s")
    if noop:
        figures["noop_publish"] = _publish(store, world, world.now + timedelta(hours=2), keep)
        keep.clear()
    figures["machine"]["list"] = _list_cost(store)
    figures["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    site_full = full["steps"].get("build_site", 0) + full["steps"].get("write_site", 0)
    figures["ratios"] = {
        "full_publish_over_plain": round(full["seconds"] / plain["seconds"], 2),
        "full_publish_over_plain_cpu": round(full["cpu_seconds"] / plain["cpu_seconds"], 2),
        "render_in_memory_over_plain": round(baseline["seconds"] / plain["seconds"], 2),
        "incremental_over_plain": round(incremental["seconds"] / plain["seconds"], 3),
        "full_publish_over_render": round(full["seconds"] / baseline["seconds"], 2),
        "full_site_step_over_render": round(site_full / baseline["seconds"], 2),
        "full_publish_over_render_cpu": round(full["cpu_seconds"] / baseline["cpu_seconds"], 2),
        "target_full": TARGET_FULL,
        "incremental_over_full": round(incremental["seconds"] / full["seconds"], 3),
        "one_result_seconds": figures["one_result_publish"]["seconds"],
        "incremental_over_full_cpu": round(incremental["cpu_seconds"] / full["cpu_seconds"], 3),
        "target_incremental": TARGET_INCREMENTAL,
        "site_objects_written_per_changed_package": round(
            (incremental["site_written"] or 0) / max(changed_packages, 1), 1),
        "site_objects_written_incremental": incremental["site_written"],
        "site_objects_written_full": full["site_written"],
        "write_site_ms_per_object_full": round(1000 * (full["steps"].get("write_site", 0) + full["steps"].get(
            "stream_write", 0)) / max(full["site_written"] or 0, 1), 2),
    }
    return figures


def main(argv: list[str] | None = None) -> int:
    """Print the figures as JSON, then the ratios against their targets."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help=f"{SMOKE[0]} packages, {SMOKE[1]} builds")
    parser.add_argument("--packages", type=int, default=PACKAGES)
    parser.add_argument("--builds", type=int, default=BUILDS)
    parser.add_argument("--no-fsync", action="store_true", help="measure a local store without fsync")
    parser.add_argument("--log-fraction", type=float, default=0.01,
                        help="share of builds with stored files (log, diffoscope, attestation)")
    parser.add_argument("--no-noop", action="store_true", help="skip the publish with nothing new")
    parser.add_argument("--workdir", help="directory for the temporary store (default: the system's)")
    args = parser.parse_args(argv)
    figures = run(smoke=args.smoke, packages=args.packages, builds=args.builds, fsync=not args.no_fsync,
                  log_fraction=args.log_fraction, noop=not args.no_noop, workdir=args.workdir)
    print(json.dumps(figures, indent=2, default=str))
    r = figures["ratios"]
    print(f"full publish / render in memory: {r['full_publish_over_render']} (target <= {TARGET_FULL})")
    print(f"incremental / full publish: {r['incremental_over_full']} (target <= {TARGET_INCREMENTAL})")
    print(f"site objects written for {figures['size']['changed_packages']} changed packages: "
          f"{r['site_objects_written_incremental']} ({r['site_objects_written_per_changed_package']} each)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
