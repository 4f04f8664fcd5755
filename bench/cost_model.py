"""A monthly S3 request bill from the measured request counts, at AWS list prices.

Prices: AWS S3 Standard, us-east-1 — PUT, COPY, POST and LIST $0.005 per 1,000 requests;
GET and HEAD $0.0004 per 1,000; DELETE free. Storage and data transfer are not included.

Assumptions (each printed with the figures):

- **Arch-sized**: 15,000 builds a month; 4 profiles (repositories) synced hourly (2,880 syncs);
  publish hourly (720). **Debian-sized**: 60,000 builds a month; 2 suites synced 4 times a
  day (240 syncs); publish hourly (720). **Debian amd64 (hourly)**: 20,000 builds a month, one
  suite of 65,000 packages synced hourly (720 syncs), publish hourly (720); target < $1.
- Every sync is priced as a *changed* index (snapshot, queue and pointer rewritten), the
  dearer case; an unchanged one costs the figure measured for it.
- Builds: 70 % GOOD, 15 % BAD (diffoscope reports uploaded), 15 % FAIL, as measured with the
  real worker (which stores its signed result as its done receipt: one object, one PUT);
  a build takes 10 minutes. The worker looks at its claim every third of the
  default 600 s lease, with a GET, and renews it (a write) only when less than 350 s of it
  would be left, so every other look: once in a 10-minute build (counted by simulating
  that rule, `renewals`); the looks are GETs, priced with the renewals.
- Publish, at each deployment's own results per run, k = builds / publishes (Arch-sized 21,
  Debian-sized 83, Debian amd64 28), measured on SeaweedFS (HTTP requests counted) with the
  site's writes told apart by kind. Every run costs the measured publish with nothing new
  (extrapolated linearly in packages between the two stores). A result costs the objects
  it changes on its own — its build files, the page and feed of each package name it
  touches, the list parts its rows leave and join, its maintainers' JSON and Atom feeds —
  counted as written by a run of one new result (the mean of five such runs), since at a
  deployment's size a run's results rarely share one of them (a 65,000-package suite has
  about 3,100 list files; team maintainers' feeds are the exception, so this overstates
  them); plus its share, 1/k, of what a run of 30 results wrote besides those once for the
  run (whole lists, list indexes, suite pages, the dashboard and v0 list, the run's history
  part, queue and attestation batch; a run of 21 results touches a few fewer of those, one
  of 83 a few more, bounded by the suites' lists). GETs per result and per run: a line
  through runs of 10 and 30 results. These are the larger store's (4,000 packages) figures,
  not extrapolated: a result changes as many objects at any size. The stores' packages are
  shaped like Arch's (85 % of sources build one package named as the source), so a result
  touches 1.3 to 1.6 package names; a Debian result touches 2.3 (trixie main amd64: 68,824
  packages from 37,478 sources, and a source's own page when no package bears its name),
  which these figures do not scale to; and they have four suites, each touched by a run,
  where Debian amd64 has one, which overstates its shared part.
  On top come the extra listing pages of the prefixes publish lists whose objects come and
  go with the builds: publish deletes the results it compacted
  in the previous run and the claims of builds compacted before the run once a lease TTL
  has passed, so `results/` holds about one publish interval of builds and `claims/` about
  two, priced at one LIST request per 1,000 keys (a single page at both sizes). Nothing
  publish lists grows with the history: it lists only the parts and manifests of
  `history/`, never the countersigned attestations under `history/attestations/`.
- Workers: as many as keep them 80 % busy with 10-minute builds (Arch 5, Debian 18). An idle
  worker polls every 180 s (`idle_delay`); a poll reads the queue pointer (one GET; the
  queue itself only when the pointer moved, hourly). It lists `claims/` (one LIST request
  per 1,000 claims: those of the builds running and of the builds finished since publish
  last pruned, under a page at both sizes) and reads the claims of the builds running (one
  GET each; the finished ones are known from their done receipts in the listing) only
  when the queue changed or one of those claims could have expired since its last poll:
  the soonest of the running claims' expiries, each lease between a third of the TTL and
  the whole of it from expiry, is priced at its expected value, plus the skew allowance.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from bench.counting import LIST_PAGE, PRICE_PER_1000

LEASE_TTL_S = 600
CLOCK_SKEW_S = 30
HOURS = 720  # a 30-day month
MIX = {"GOOD": 0.70, "BAD": 0.15, "FAIL": 0.15}
# Publish intervals of builds whose objects stay under each prefix publish lists (it prunes
# them: results compacted in the previous run, claims of builds compacted before the run).
STEADY = {"claims/": 2.0, "results/": 1.0}


@dataclass(frozen=True)
class Deployment:
    """One deployment's schedule and size."""

    name: str
    builds: int  # per month
    syncs: int  # profile syncs per month
    sync_kind: str  # which measured sync: "arch" or "debian"
    packages: int  # binary packages on the site
    publishes: int = HOURS
    build_minutes: float = 10
    utilisation: float = 0.8
    idle_delay_s: float = 180
    target_usd: float | None = None  # the month's target, if it has one (the publish budget is derived from it)

    @property
    def workers(self) -> int:
        """Workers needed to build `builds` a month at `utilisation`."""
        return math.ceil(self.builds * self.build_minutes / 60 / (HOURS * self.utilisation))


DEPLOYMENTS = (
    Deployment("Arch-sized", builds=15_000, syncs=4 * HOURS, sync_kind="arch", packages=15_000),
    Deployment("Debian-sized", builds=60_000, syncs=4 * 30 * 2, sync_kind="debian", packages=130_000),
    # issue #18's yardstick: one Debian release's main amd64, synced and published hourly
    Deployment("Debian amd64 (hourly)", builds=20_000, syncs=HOURS, sync_kind="debian", packages=65_000,
               target_usd=1.0),
)


def renewals(build_minutes: float, ttl: float = LEASE_TTL_S, skew: float = CLOCK_SKEW_S) -> int:
    """Claim renewals (writes) in a build, by `jobs.core.lease.LeaseKeeper`'s and the report's rules.

    A look every third of the TTL; a renewal when less than a look plus max(TTL/4, 2 x skew)
    would be left; before the result, a renewal only if less than TTL/2 + skew is left.
    """
    build, interval = build_minutes * 60, ttl / 3
    below = interval + max(ttl / 4, 2 * skew)
    expires, count, t = ttl, 0, interval
    while t < build:
        if expires - t < below:
            expires, count = t + ttl, count + 1
        t += interval
    return count + (expires - build < ttl / 2 + skew)


def looks(build_minutes: float, ttl: float = LEASE_TTL_S) -> int:
    """Looks at the claim in a build (each a GET, or the renewal that replaces it)."""
    return int(build_minutes * 60 // (ttl / 3))


def polls_per_listing(d: Deployment, ttl: float = LEASE_TTL_S, skew: float = CLOCK_SKEW_S) -> int:
    """How many idle polls share one listing of claims/ (see the assumptions)."""
    running = max(1.0, d.workers * d.utilisation)
    soonest = ttl / 3 + (2 * ttl / 3) / (running + 1) + skew
    return max(1, math.ceil(soonest / d.idle_delay_s))


# The site objects a result changes on its own (its build files, the pages and feeds of the names
# it touches, the list parts its rows leave and join, its maintainers' feeds); every other write
# (whole lists, list indexes, suite pages, the dashboard, the run's history, queue and locks) is
# made once per run however many results it carries.
PER_RESULT_KINDS = ("build files", "package pages", "package feeds", "names list parts", "status and class list parts",
                    "maintainer feeds", "maintainer Atom feeds")


def at_scale(world: dict) -> dict[str, Any]:
    """One store's publish figures as the model prices a result: each result's own objects as written
    when no other result of its run shares them (the mean of the one-result runs), and what the
    largest batch run wrote besides those, once for the run; GETs from the batch fit."""
    k = max(int(key.removeprefix("results_")) for key in world if key.startswith("results_"))
    run, noop, alone = world[f"results_{k}"], world["nothing_new"], world["unshared"]
    each = {kind: alone["site_writes_by_kind"].get(kind, 0.0) for kind in PER_RESULT_KINDS}
    kinds = set(run["site_writes_by_kind"]) | set(noop["site_writes_by_kind"])
    in_run = {kind: run["site_writes_by_kind"].get(kind, 0) - noop["site_writes_by_kind"].get(kind, 0)
              for kind in sorted(kinds)}
    per_run = {kind: n for kind, n in in_run.items() if kind not in PER_RESULT_KINDS}
    run_put = run["by_class"]["put"] - noop["by_class"]["put"] - sum(in_run.get(kind, 0) for kind in PER_RESULT_KINDS)
    get = world["batch_fit"]["get"]
    return {"batch": k, "put_per_result_by_kind": each, "put_per_run": max(0.0, run_put),
            "put_per_run_by_kind": per_run, "get_per_result": get["per_result"],
            "get_per_run": max(0.0, get["shared"])}


def fit_publish(worlds: list[dict]) -> dict[str, Any]:
    """The figures the model prices publish by, from the stores measured.

    The run with nothing new: a line through the two stores' figures, requests = a + b ×
    packages. A result and a run with results (`at_scale`): the larger store's, not extrapolated:
    each result's own objects are counted unshared and are as many at any size, and a run's
    other writes are bounded by the suites' lists, not their packages. Also the marginal result
    of the first batch (10 vs none), for comparison.
    """
    (x1, w1), (x2, w2) = [(w["size"]["packages"], w) for w in (worlds[0], worlds[-1])]
    out: dict[str, Any] = {}
    for figure in ("nothing_new", "marginal_per_result"):
        out[figure] = {}
        for cls in ("put", "get"):
            v1, v2 = ((w[figure]["by_class"] if figure == "nothing_new" else w[figure])[cls] for w in (w1, w2))
            slope = max(0.0, (v2 - v1) / (x2 - x1)) if x2 != x1 else 0.0
            out[figure][cls] = {"at_packages": x1, "requests": v1, "per_package": round(slope, 8)}
    out["scale"] = at_scale(w2) | {"packages": x2}
    out["scale_by_store"] = {str(w["size"]["packages"]): at_scale(w) for w in worlds}
    return out


def per_result(publish: dict, d: Deployment, dropped: tuple[str, ...] = (), per_run_objects: int = 0
               ) -> dict[str, float]:
    """Publish's requests per new result of deployment `d`, by price class, at its results per run:
    each result's own objects, and a run's other writes shared by its results. `dropped`: site kinds
    left out (written neither per result nor per run), `per_run_objects` written per run instead."""
    k = max(1.0, d.builds / d.publishes)
    f = publish["fit"]["scale"]
    own = sum(n for kind, n in f["put_per_result_by_kind"].items() if kind not in dropped)
    run = f["put_per_run"] - sum(max(0.0, f["put_per_run_by_kind"].get(kind, 0)) for kind in dropped)
    put = own + (max(0.0, run) + per_run_objects) / k
    return {"put": put, "get": f["get_per_result"] + f["get_per_run"] / k}


# What the contracts would have to give up for publish to write less per result, cumulatively:
# (what, the site kinds no longer written per result or per run, objects written per run instead).
_FOLDED = ("names list parts", "status and class list parts", "whole-list feeds",
           "list feeds (unsplit) and list indexes", "maintainer feeds", "maintainer Atom feeds")
SCENARIOS = (
    ("as measured", (), 0),
    ("build files served from their stored keys, not copied (needs `rebuilder serve` or a redirect that sets "
     "their content types)", ("build files",), 0),
    ("and every list, whole list, list index and maintainer feed (JSON and Atom) folded into per-run deltas "
     "(one object a run; the folds not counted)", ("build files", *_FOLDED), 1),
    ("and the package feeds too: per result only the package page of each name it touches",
     ("build files", *_FOLDED, "package feeds"), 1),
)


def floor_scenarios(d: Deployment, lines: list[dict[str, Any]], publish: dict) -> list[dict[str, Any]]:
    """The month of deployment `d` if publish stopped writing the site kinds of each `SCENARIOS` row
    (per result and per run), every other line as measured; GETs as measured."""
    others = sum(line["usd"] for line in lines if line["what"] != PUBLISH_NEW)
    out = []
    for what, dropped, per_run_objects in SCENARIOS:
        each = per_result(publish, d, dropped, per_run_objects)
        usd = others + _usd(d.builds * each["put"], d.builds * each["get"])
        out.append({"what": what, "put_per_result": round(each["put"], 2), "get_per_result": round(each["get"], 2),
                    "month_usd": round(usd, 2)})
    return out


def _at(fit: dict[str, dict[str, float]], packages: int) -> dict[str, float]:
    return {cls: f["requests"] + f["per_package"] * max(0, packages - f["at_packages"]) for cls, f in fit.items()}


def _usd(put: float, get: float) -> float:
    return put * PRICE_PER_1000["put"] / 1000 + get * PRICE_PER_1000["get"] / 1000


def _line(what: str, put: float, get: float, note: str) -> dict[str, Any]:
    return {"what": what, "put_requests": round(put), "get_requests": round(get), "usd": round(_usd(put, get), 2),
            "note": note}


def deployment_cost(d: Deployment, build: dict, sync: dict, publish: dict) -> dict[str, Any]:
    """The month's request bill of deployment `d` from the measured figures."""
    per_build = {cls: sum(share * build[o]["by_class_per_build"][cls] for o, share in MIX.items())
                 for cls in ("put", "get")}
    renew = renewals(d.build_minutes)
    changed = sync[d.sync_kind]["changed"]["by_class"]
    noop = _at(publish["fit"]["nothing_new"], d.packages)
    marginal = per_result(publish, d)
    scale = publish["fit"]["scale"]
    own = sum(scale["put_per_result_by_kind"].values())
    per_run = d.builds / d.publishes
    listed = publish["nothing_new"]["list_requests_by_prefix"]
    growth = sum(calls * (max(1, math.ceil(per_run * STEADY[p] / LIST_PAGE)) - 1)
                 for p, calls in listed.items() if p in STEADY)
    w = d.workers
    polls = w * (1 - d.utilisation) * HOURS * 3600 / d.idle_delay_s
    probes = w * d.utilisation  # the running builds' claims; finished ones are known by their receipts
    every = polls_per_listing(d)
    listings = polls / every
    # claims/ holds the running builds' claims and those publish has not pruned yet (about an
    # hour's), each with its start marker and, once reported, its result stored as its done receipt
    pages = max(1, math.ceil(3 * (w * d.utilisation + d.builds / HOURS) / LIST_PAGE))
    look = looks(d.build_minutes) - renew
    lines = [
        _line("builds (claim, uploads, result as its receipt)", d.builds * per_build["put"], d.builds * per_build["get"],
              f"{d.builds:,} builds, {sum(per_build.values()):.1f} requests each"),
        _line("claim renewals", d.builds * renew, d.builds * look,
              f"{renew} per {d.build_minutes:g}-minute build, and {look} looks (GETs)"),
        _line("syncs", d.syncs * changed["put"], d.syncs * changed["get"], f"{d.syncs:,} changed syncs"),
        _line("publish: new results", d.builds * marginal["put"], d.builds * marginal["get"],
              f"{sum(marginal.values()):.1f} requests per result at {per_run:.0f} results a run: PUT-class "
              f"{own:.1f} its own objects + {scale['put_per_run']:.0f} a run's / {per_run:.0f}, GET "
              f"{marginal['get']:.1f}"),
        _line("publish: runs", d.publishes * (noop["put"] + growth), d.publishes * noop["get"],
              f"{d.publishes} runs of {sum(noop.values()):.0f} requests; listing "
              f"{', '.join(p for p in listed if p in STEADY) or 'nothing that grows'} "
              f"(pruned every run) adds {growth} LIST pages a run"),
        _line("idle workers polling", listings * pages, polls + listings * probes,
              f"{w} workers, {1 - d.utilisation:.0%} idle, a poll every {d.idle_delay_s:g} s reading the "
              f"queue pointer; one in {every} lists claims/ and reads the claims of {probes:.0f} running builds"),
    ]
    out = {"deployment": asdict(d) | {"workers": w, "results_per_run": round(per_run, 1)}, "lines": lines,
           "publish_per_result": {cls: round(v, 2) for cls, v in marginal.items()},
           "total_usd": round(sum(line["usd"] for line in lines), 2)}
    if d.target_usd is not None:
        out["publish_budget"] = publish_budget(d, lines, marginal)
        out["floors"] = floor_scenarios(d, lines, publish)
    return out


PUBLISH_NEW = "publish: new results"


def publish_budget(d: Deployment, lines: list[dict[str, Any]], marginal: dict[str, float]) -> dict[str, Any]:
    """What publish may spend per new result for the month to stay under `d.target_usd`, given
    every other line as measured: the dollars left, and that as requests per result in the
    measured mix of PUT- and GET-class requests (and as PUT-class requests alone)."""
    assert d.target_usd is not None
    others = sum(line["usd"] for line in lines if line["what"] != PUBLISH_NEW)
    left = d.target_usd - others
    per_result = left / d.builds if d.builds else 0.0
    put_usd, get_usd = PRICE_PER_1000["put"] / 1000, PRICE_PER_1000["get"] / 1000
    total = sum(marginal.values()) or 1.0
    share_put = marginal.get("put", 0.0) / total
    mixed_usd = share_put * put_usd + (1 - share_put) * get_usd
    return {"target_usd": d.target_usd, "other_lines_usd": round(others, 2), "left_usd": round(left, 2),
            "requests_per_result_max": round(max(0.0, per_result / mixed_usd), 2),
            "put_share": round(share_put, 2), "put_requests_per_result_max": round(max(0.0, per_result / put_usd), 2),
            "requests_per_result_now": round(total, 2)}


def monthly(build: dict, sync: dict, publish: dict) -> dict[str, Any]:
    """The bill of every deployment in `DEPLOYMENTS`, with the assumptions."""
    return {"assumptions": __doc__.split("Assumptions (each printed with the figures):")[1].strip(),
            "deployments": [deployment_cost(d, build, sync, publish) for d in DEPLOYMENTS]}


def markdown(costs: dict[str, Any]) -> str:
    """The bills as a Markdown table (one row per line item, a total per deployment)."""
    rows = ["| deployment | item | PUT-class requests | GET-class requests | USD / month | how |",
            "|---|---|---:|---:|---:|---|"]
    for dep in costs["deployments"]:
        name = dep["deployment"]["name"]
        for line in dep["lines"]:
            rows.append(f"| {name} | {line['what']} | {line['put_requests']:,} | {line['get_requests']:,} "
                        f"| {line['usd']:.2f} | {line['note']} |")
        rows.append(f"| {name} | **total** | | | **{dep['total_usd']:.2f}** | |")
    notes = [budget_note(dep) for dep in costs["deployments"] if "publish_budget" in dep]
    for dep in costs["deployments"]:
        if dep.get("floors"):
            notes.append(f"**{dep['deployment']['name']}, what the month would be** if publish wrote less "
                         "(cumulative; every other line as measured):\n\n"
                         "| publish writes | PUT-class a result | GET-class a result | USD / month |\n"
                         "|---|---:|---:|---:|\n"
                         + "\n".join(f"| {f['what']} | {f['put_per_result']:.1f} | {f['get_per_result']:.1f} "
                                     f"| {f['month_usd']:.2f} |" for f in dep["floors"]))
    return "\n".join(rows) + "\n" + "".join(f"\n{n}\n" for n in notes)


def budget_note(dep: dict[str, Any]) -> str:
    """One sentence: what publish must reach per new result for the deployment's target."""
    b, name = dep["publish_budget"], dep["deployment"]["name"]
    if b["left_usd"] <= 0:
        return (f"**{name}, publish's budget**: the other lines already cost ${b['other_lines_usd']:.2f}, over the "
                f"${b['target_usd']:.2f} target before publish spends anything on a new result (it spends "
                f"{b['requests_per_result_now']:.1f} requests a result now).")
    return (f"**{name}, publish's budget**: the other lines cost ${b['other_lines_usd']:.2f}, leaving "
            f"${b['left_usd']:.2f} of the ${b['target_usd']:.2f} target for new results: at most "
            f"{b['requests_per_result_max']:.1f} requests a result in the measured mix ({b['put_share']:.0%} PUT-class), "
            f"or {b['put_requests_per_result_max']:.1f} PUT-class alone; it spends "
            f"{b['requests_per_result_now']:.1f} now.")
