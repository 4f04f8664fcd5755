"""Benchmark: request accounting — what each job costs in S3 requests, and a monthly bill.

Not a test. `python -m bench.bench_requests [--smoke] [--s3-endpoint URL | --local]`.
Every store is wrapped in `CountingStore`, which counts requests as S3 bills them; on
SeaweedFS (the default: a `weed mini` started here) the HTTP requests boto3 really sent are
counted too, and must match.

1. **Per completed build** (target ≤ 12: queue pointer, claim reads, start marker, claim,
   renewals and looks, uploads, the result stored as its done receipt, enrolment check): the
   real worker loop (`jobs.work.run.Worker.run`) with a
   trivial backend script, one run per outcome — GOOD (copies the artifact back, so its
   result carries an attestation), BAD (writes other bytes; diffoscope on, so two reports are
   uploaded) and FAIL (exits 1: the log only). The queue holds ten times the jobs the worker
   builds, as between two publishes; the worker reads the claims of its first candidates
   (GETs) and lists `claims/` only when those are taken. The enrolment record (one PUT per
   worker start) is left out. A trivial build needs no renewal; one run with a 9 s lease (1 s
   skew) and a backend that sleeps 6.5 s checks the renewal count against
   `cost_model.renewals` (a look, a GET, every third of the lease; a write only every other
   look: one renewal for a 10-minute build with the default 600 s lease, which the headline
   includes).
2. **Per sync of an unchanged profile** (target ≤ 10 for Debian): a Debian-sized mirror
   (70,000 `Packages` stanzas, `bench_sync_debian.generate`) and an Arch-sized one (15,000
   packages, `bench_sync_arch.generate`) served over loopback HTTP by a server that sends and
   honours ETag and Last-Modified as nginx and Apache do (`tests.sync.mirror_http`), its files
   dated a minute back as a mirror's are; the sync runs twice and the second run is counted,
   with the mirror's requests, body bytes, conditional requests and 304 answers. A third sync
   after one package was added counts a changed index.
3. **Per incremental publish**: a small `publish_world` store (1,000 packages, 5,000 builds),
   written locally and copied into a fresh SeaweedFS store (the default; publish runs on S3,
   and the HTTP requests boto3 sent must match the counts), published once; then one new
   signed result and `publish` again (counted), a publish with nothing new, four more runs
   of one new result (`SINGLES`: what a result writes when nothing else in its run can share
   an object with it), and runs of `BATCHES` new results (10 and 30: the hourly deployments
   publish 21 to 83 results a run). The site's writes are counted by kind
   (`counting.site_kind`), so that `cost_model` prices a result at the objects it changes on
   its own plus its share of what a run writes once for all its results, at each
   deployment's own results per run; the batch runs are also fitted as `shared + per_result
   × k` per price class and kind (`fit_batches`). The same on a store four times the size.
4. **Monthly cost** at AWS list prices for an Arch-sized and a Debian-sized deployment
   (`cost_model`, whose docstring and output state every assumption).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import lzma
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench import bench_sync_arch, bench_sync_debian, cost_model
from bench.common import BACKEND, queue_jobs, seaweedfs, trivial_job
from bench.counting import PRICE_NOTE, CountingStore, Counts, http_counter
from jobs.core.config import Release, SyncProfile, parse_rebuilder_config, parse_worker_config
from jobs.core.store import Store, open_store
from jobs.sync.fetch import Fetcher
from jobs.sync.run import sync_profile
from jobs.work.identity import load_identity
from jobs.work.run import Worker
from tests.sync import mirror_http

TARGET_BUILD, TARGET_SYNC = 12, 10
BUILDS_PER_OUTCOME, QUEUE_FACTOR = 10, 10
DEBIAN_STANZAS, ARCH_PACKAGES = 70_000, 15_000
WORLDS = [(1_000, 5_000), (4_000, 20_000)]  # (packages, builds)
BATCHES = (10, 30)  # new results per measured publish run (fitted: shared + per_result x k)
SINGLES = 5  # runs of one new result each: what a result writes when no other result shares it
SMOKE = {"builds": 2, "debian": 1_000, "arch": 500, "worlds": [(100, 300)], "batches": (2, 4), "singles": 2}  # one world: nothing extrapolated
BUILD_MINUTES = 10  # the build the headline's renewals are counted for
BACKENDS = {
    "GOOD": 'cp "$1" "$REBUILDERD_OUTDIR/"',
    "BAD": 'printf "rebuilt differently\\n" > "$REBUILDERD_OUTDIR/$(basename "$1")"',
    "FAIL": 'echo "==> ERROR: A failure occurred in build()."; exit 1',
}


def _script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\nset -e\n" + body + "\n")
    path.chmod(0o755)
    return path


def _worker(store: CountingStore, root: Path, backend: Path, *, ttl: int = 600, skew: int = 30,
            diffoscope: bool = False) -> Worker:
    config = parse_rebuilder_config({"lease": {"ttl": ttl, "clock_skew": skew}})
    wconf = parse_worker_config({"backend": {BACKEND: {"path": str(backend)}}, "supported_architectures": ["x86_64"],
                                 "work_dir": str(root / "worker"), "build": {"timeout": 120, "silent": True},
                                 "diffoscope": {"enabled": diffoscope, "timeout": 120}})
    return Worker(store=store, config=config, worker_config=wconf, identity=load_identity(wconf, "bench"),
                  backends={BACKEND: backend})


def _build_run(url: str, root: Path, outcome: str, builds: int, *, queued: int, ttl: int = 600, skew: int = 30,
               body: str | None = None) -> dict[str, Any]:
    """One worker building `builds` jobs of one outcome from a queue of `queued`; the counts per build."""
    artifacts = root / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    jobs = []
    for i in range(queued):
        path = artifacts / f"pkg{i:06d}-1.0-1-x86_64.pkg.tar.zst"
        path.write_bytes(f"package {i}\n".encode() * 64)
        jobs.append(trivial_job(i, artifact=path))
    store = CountingStore(open_store(url))
    queue_jobs(store.inner, jobs)
    sent = http_counter(store)
    backend = _script(root / f"{outcome.lower()}.sh", body or BACKENDS[outcome])
    worker = _worker(store, root, backend, ttl=ttl, skew=skew, diffoscope=outcome == "BAD")
    started = time.monotonic()
    stats = worker.run(max_jobs=builds)
    seconds = time.monotonic() - started
    statuses = {line.split()[1] for line in stats.built}
    assert len(stats.built) == builds and statuses == {outcome}, stats
    counts = store.counts()
    # the enrolment record, written (create-only) once per worker start
    enrol = counts.by_prefix.get("put workers/", 0) + counts.by_prefix.get("put_if_absent workers/", 0)
    per = (counts.total - enrol) / builds
    return {"builds": builds, "queued": queued, "seconds": round(seconds, 2), "requests_per_build": round(per, 2),
            "by_operation_per_build": {op: round(n / builds, 2) for op, n in sorted(counts.requests.items())
                                       if op != "put" or n > enrol},
            "by_prefix_per_build": {k: round(n / builds, 2) for k, n in sorted(counts.by_prefix.items())
                                    if k not in ("put workers/", "put_if_absent workers/")},
            "by_class_per_build": {k: round((n - (enrol if k == "put" else 0)) / builds, 2)
                                   for k, n in counts.by_class().items()},
            "refused_claims_per_build": round(counts.refused.get("put_if_absent", 0) / builds, 2),
            "enrolment_puts": enrol, "kib_written_per_build": round(counts.bytes_written / 1024 / builds, 1),
            "http_matches_counted": None if sent is None else sum(sent.values()) == counts.total}


def per_build(new_url: Callable[[], str], root: Path, builds: int) -> dict[str, Any]:
    """Requests per completed build, by outcome, and the renewal check (see the module docstring)."""
    out: dict[str, Any] = {}
    for outcome in BACKENDS:
        out[outcome] = _build_run(new_url(), root / outcome, outcome, builds, queued=builds * QUEUE_FACTOR)
    slow = _build_run(new_url(), root / "renewals", "GOOD", 1, queued=QUEUE_FACTOR, ttl=9, skew=1,
                      body='sleep 6.5; cp "$1" "$REBUILDERD_OUTDIR/"')
    # put_if_match on the claim: the renewals only (looks are GETs; the claim is not released).
    renewals = slow["by_prefix_per_build"].get("put_if_match claims/", 0)
    out["renewal_check"] = {"lease_ttl_s": 9, "clock_skew_s": 1, "build_s": slow["seconds"], "renewals": renewals,
                            "expected": cost_model.renewals(slow["seconds"] / 60, ttl=9, skew=1),
                            "looks_get": slow["by_prefix_per_build"].get("get claims/", 0),
                            "requests_per_build": slow["requests_per_build"]}
    mix = {"GOOD": 0.70, "BAD": 0.15, "FAIL": 0.15}
    trivial = sum(share * out[o]["requests_per_build"] for o, share in mix.items())
    renew = cost_model.renewals(BUILD_MINUTES)
    put = sum(share * out[o]["by_class_per_build"].get("put", 0) for o, share in mix.items()) + renew
    out["mix"] = {"shares": mix, "requests_per_trivial_build": round(trivial, 2), "put_class_per_build": round(put, 2),
                  "renewals_for_build_minutes": {"minutes": BUILD_MINUTES, "renewals": renew},
                  "requests_per_build": round(trivial + renew, 2),
                  "good_requests_per_build": round(out["GOOD"]["requests_per_build"] + renew, 2),
                  "target": TARGET_BUILD, "meets_target": trivial + renew <= TARGET_BUILD}
    return out


def _debian_mirror(root: Path, stanzas: int, age: float) -> None:
    packages, sources = bench_sync_debian.generate(stanzas)
    dist = root / "dists" / "sid"
    files = {"main/binary-amd64/Packages.xz": lzma.compress(packages), "main/source/Sources.xz": lzma.compress(sources)}
    listing = ""
    for rel, data in files.items():
        mirror_http.write(dist / rel, data, age=age)
        listing += f" {hashlib.sha256(data).hexdigest()} {len(data)} {rel}\n"
    mirror_http.write(dist / "InRelease", ("Suite: unstable\nCodename: sid\nComponents: main\nArchitectures: amd64\n"
                                           f"SHA256:\n{listing}").encode(), age=age)


def _arch_mirror(root: Path, packages: int, age: float) -> None:
    mirror_http.write(root / "extra" / "os" / "x86_64" / "extra.db", bench_sync_arch.generate(packages), age=age)


def _sync_counts(url: str, root: Path, distro: str, size: int) -> dict[str, Any]:
    """Sync a generated mirror twice (the second run counted), then once more after one package was added."""
    write = _debian_mirror if distro == "debian" else _arch_mirror
    write(root, size, 60)
    store = CountingStore(open_store(url))
    sent = http_counter(store)
    with mirror_http.mirror(root, "both") as (base, tally):
        if distro == "debian":
            profile = SyncProfile(name="bench", distro="debian", source=base, components=("main",),
                                  architectures=("amd64",), releases=(Release("sid"),))
        else:
            profile = SyncProfile(name="bench", distro="archlinux", source=base + "/$repo/os/$arch",
                                  components=("extra",), architectures=("x86_64",))
        config = parse_rebuilder_config({})
        runs = {}
        for name in ("first", "unchanged", "changed"):
            if name == "changed":
                write(root, size + 1, 30)
            before, mirror_before, started = store.counts(), tally.snapshot(), time.perf_counter()
            http_before = sum(sent.values()) if sent is not None else 0
            summary = sync_profile(store, config, profile, fetcher=Fetcher())
            counts = store.counts() - before
            runs[name] = {"outcome": summary.outcome, "not_modified": summary.not_modified, "requests": counts.total,
                          "by_operation": dict(sorted(counts.requests.items())), "by_class": counts.by_class(),
                          "bytes_written": counts.bytes_written, "seconds": round(time.perf_counter() - started, 2),
                          "mirror": {k: v - mirror_before[k] for k, v in tally.snapshot().items()},
                          "http_matches_counted": None if sent is None
                          else sum(sent.values()) - http_before == counts.total}
    assert runs["unchanged"]["outcome"] == "unchanged" and runs["changed"]["outcome"] == "updated", runs
    assert runs["unchanged"]["not_modified"] and runs["unchanged"]["mirror"]["not_modified"] >= 1, runs
    return {"size": size, **runs}


def per_sync(new_url: Callable[[], str], root: Path, debian: int, arch: int) -> dict[str, Any]:
    """Requests per sync of an unchanged (and of a changed) Debian- and Arch-sized profile."""
    logging.getLogger("jobs.sync").setLevel(logging.ERROR)  # unsigned InRelease, generated mixed bases
    out = {"debian": _sync_counts(new_url(), root / "debian", "debian", debian),
           "arch": _sync_counts(new_url(), root / "arch", "archlinux", arch)}
    unchanged = out["debian"]["unchanged"]["requests"]
    out["target"], out["meets_target"] = TARGET_SYNC, unchanged <= TARGET_SYNC
    return out


def _mirror(local: Store, target: Store, copied: dict[str, str]) -> int:
    """Copy into `target` every object of the locally written world that is new or rewritten since the
    last copy (`copied`: key -> SHA-256 given); what publish deleted in `target` is not copied again."""
    n = 0
    for info in local.list(""):
        blob = local.get(info.key)
        digest = hashlib.sha256(blob.data).hexdigest()
        if copied.get(info.key) != digest:
            target.put(info.key, blob.data, content_type=blob.info.content_type,
                       content_encoding=blob.info.content_encoding)
            copied[info.key], n = digest, n + 1
    return n


def _publish_world(root: Path, packages: int, builds: int, batches: tuple[int, ...], singles: int,
                   url: str | None = None) -> dict[str, Any]:
    from bench.publish_world import add_results, make_world
    from jobs.publish.run import publish

    world = make_world(root, packages, builds)
    local = world.store(fsync=False)
    copied: dict[str, str] = {}
    if url is not None:  # publish on S3: the world copied in, and each step's new results after it
        target = open_store(url)
        _mirror(local, target, copied)
    else:
        target = local
    store = CountingStore(target)
    sent = http_counter(store)
    publish(store, world.config, now=world.now)
    out: dict[str, Any] = {"size": dict(world.counts), "store": url.split("://")[0] if url else "file",
                           "full": _publish_figures(store.reset())}
    used: set[str] = set()
    steps = ([("one_result", 1), ("nothing_new", 0)] + [(f"single_{i}", 1) for i in range(2, singles + 1)]
             + [(f"results_{k}", k) for k in batches])
    for step, (name, new) in enumerate(steps, start=1):
        added = 0
        if new:
            fresh = dataclasses.replace(world, queued=[j for j in world.queued if j.job_id not in used])
            rows = add_results(fresh, new, seed=step)
            used |= {r.job_id for r in rows}
            added = len(rows)
            assert added == new, f"the world has {added} queued jobs left, not {new}"
            if url is not None:
                _mirror(local, target, copied)
        store.reset()
        http_before = sum(sent.values()) if sent is not None else 0
        summary = publish(store, world.config, now=world.now + timedelta(hours=step))
        counts = store.reset()
        # a figure of results publish refused would price nothing: the run must take every new result
        assert len(summary.state.accepted) == added and not summary.state.rejected, summary.line()
        out[name] = _publish_figures(counts) | {
            "new_results": added, "summary": summary.line(),
            "http_matches_counted": None if sent is None else sum(sent.values()) - http_before == counts.total}
    noop = out["nothing_new"]
    first = out[f"results_{batches[0]}"]
    out["marginal_per_result"] = {cls: round((first["by_class"][cls] - noop["by_class"][cls])
                                             / max(first["new_results"], 1), 2) for cls in first["by_class"]}
    out["batch_fit"] = fit_batches(noop, [out[f"results_{k}"] for k in batches])
    out["unshared"] = unshared(noop, [out["one_result"]] + [out[f"single_{i}"] for i in range(2, singles + 1)])
    return out


def unshared(noop: dict[str, Any], singles: list[dict[str, Any]]) -> dict[str, Any]:
    """The mean requests (by class) and site writes (by kind) of a run of one new result above the run
    with nothing new: what a result costs when no other result of its run shares an object with it."""
    n = len(singles)
    kinds = sorted({k for r in (noop, *singles) for k in r["site_writes_by_kind"]})
    return {"runs": n,
            "by_class": {cls: round(sum(r["by_class"][cls] - noop["by_class"][cls] for r in singles) / n, 2)
                         for cls in ("put", "get")},
            "site_writes_by_kind": {k: round(sum(r["site_writes_by_kind"].get(k, 0)
                                                 - noop["site_writes_by_kind"].get(k, 0) for r in singles) / n, 2)
                                    for k in kinds}}


def fit_batches(noop: dict[str, Any], runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per price class, the least-squares line through the runs' requests above the run with nothing
    new: `shared + per_result × k` for a run of k new results; the same for the site's writes by kind."""
    xs = [r["new_results"] for r in runs]
    out: dict[str, dict[str, float]] = {}
    for cls in ("put", "get"):
        ys = [r["by_class"][cls] - noop["by_class"][cls] for r in runs]
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        var = sum((x - mx) ** 2 for x in xs)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var if var else my / max(mx, 1)
        out[cls] = {"shared": round(my - slope * mx, 2), "per_result": round(slope, 3),
                    "points": dict(zip((str(x) for x in xs), ys))}
    kinds = sorted({k for r in (noop, *runs) for k in r["site_writes_by_kind"]})
    out["site_writes_by_kind"] = {}
    for kind in kinds:
        ys = [r["site_writes_by_kind"].get(kind, 0) - noop["site_writes_by_kind"].get(kind, 0) for r in runs]
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        var = sum((x - mx) ** 2 for x in xs)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var if var else my / max(mx, 1)
        out["site_writes_by_kind"][kind] = {"shared": round(my - slope * mx, 2), "per_result": round(slope, 3)}
    return out


def per_publish(root: Path, sizes: list[tuple[int, int]], batches: tuple[int, ...] = BATCHES,
                new_url: Callable[[], str] | None = None, singles: int = SINGLES) -> dict[str, Any]:
    """Requests per incremental publish of small synthetic stores (publish_world's, copied into a fresh
    store from `new_url` when given, else published in the local directory it was written to).

    Measured at two sizes so the cost model can extrapolate whatever grows with the site.
    """
    worlds = [_publish_world(root / f"world{i}", packages, builds, batches, singles, new_url() if new_url else None)
              for i, (packages, builds) in enumerate(sizes)]
    small = worlds[0]
    return {"packages": small["size"]["packages"], "one_result": small["one_result"], "nothing_new": small["nothing_new"],
            "marginal_per_result": small["marginal_per_result"], "batch_fit": small["batch_fit"],
            "batches": list(batches), "worlds": worlds, "fit": cost_model.fit_publish(worlds)}


def _publish_figures(counts: Counts) -> dict[str, Any]:
    return {"requests": counts.total, "by_operation": dict(sorted(counts.requests.items())),
            "by_class": counts.by_class(), "list_requests_by_prefix": {
                k.removeprefix("list "): n for k, n in sorted(counts.by_prefix.items()) if k.startswith("list ")},
            "listed_keys_by_prefix": dict(sorted(counts.listed.items())),
            "site_puts": sum(n for k, n in counts.by_prefix.items() if k.startswith("put") and k.endswith(" site/")),
            "site_writes_by_kind": dict(sorted(counts.site_writes.items()))}


def run(smoke: bool = False, *, new_url: Callable[[], str] | None = None, endpoint: str | None = None,
        local: bool = False) -> dict[str, Any]:
    """Every figure (see the module docstring); `new_url` makes fresh stores (default: SeaweedFS)."""
    root = Path(tempfile.mkdtemp(prefix="bench-requests-"))
    try:
        if new_url is None and local:
            counter = iter(range(10**6))
            return run(smoke, new_url=lambda: (root / f"store{next(counter)}").as_uri())
        if new_url is None:
            with seaweedfs(endpoint) as s3:
                return run(smoke, new_url=s3.url)
        builds = SMOKE["builds"] if smoke else BUILDS_PER_OUTCOME
        _say(f"per build: {builds} builds per outcome")
        build = per_build(new_url, root / "build", builds)
        _say(f"{build['mix']['requests_per_build']} requests per build; per sync")
        sync = per_sync(new_url, root / "sync", SMOKE["debian"] if smoke else DEBIAN_STANZAS,
                        SMOKE["arch"] if smoke else ARCH_PACKAGES)
        _say(f"{sync['debian']['unchanged']['requests']} requests per unchanged Debian sync; per publish")
        publish = per_publish(root / "publish", SMOKE["worlds"] if smoke else WORLDS,
                              SMOKE["batches"] if smoke else BATCHES, new_url, SMOKE["singles"] if smoke else SINGLES)
        _say(f"{publish['one_result']['requests']} requests per incremental publish")
        costs = cost_model.monthly(build, sync, publish)
        return {"store": new_url().split("?")[0].split("://")[0], "prices": PRICE_NOTE, "per_build": build,
                "per_sync": sync, "per_publish": publish, "monthly_cost": costs}
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _say(text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} requests: {text}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Print the figures as JSON, then the headline counts and the monthly costs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--s3-endpoint", help="use this S3 server (default: start weed mini)")
    group.add_argument("--local", action="store_true", help="count on local directory stores instead of S3")
    args = parser.parse_args(argv)
    figures = run(args.smoke, endpoint=args.s3_endpoint, local=args.local)
    print(json.dumps(figures, indent=2))
    mix = figures["per_build"]["mix"]
    print(f"requests per completed build: {mix['requests_per_build']} (target <= {TARGET_BUILD})")
    print(f"requests per unchanged Debian sync: {figures['per_sync']['debian']['unchanged']['requests']} "
          f"(target <= {TARGET_SYNC})")
    print(f"requests per incremental publish (1 new result): {figures['per_publish']['one_result']['requests']}")
    print(cost_model.markdown(figures["monthly_cost"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
