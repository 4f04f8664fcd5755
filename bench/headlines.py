"""The headline figures of each benchmark: value, same-run baseline, target, met or missed.

Each benchmark script returns a dict of figures; `extract` picks the few that docs/benchmarks.md
states, with the baseline they were measured against. A figure the script no longer
produces comes out as None (the smoke test fails on it, so a renamed key is noticed).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench import cost_model
from bench.counting import PRICE_NOTE


@dataclass(frozen=True)
class Figure:
    """One headline figure."""

    benchmark: str
    figure: str
    value: float | None
    unit: str
    detail: str  # the raw numbers behind it, with the baseline
    target: str | None  # e.g. "≤ 3×"; None: reported, no target
    met: bool | None


def _get(figures: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(figures, dict) or part not in figures:
            return None
        figures = figures[part]
    return figures


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value) else None


_OPS: dict[str, Callable[[float, float], bool]] = {"≤": operator.le, "≥": operator.ge}


def _fig(benchmark: str, figure: str, value: Any, unit: str, detail: str, target: tuple[str, float] | None = None,
         target_unit: str = "") -> Figure:
    number = _num(value)
    met = None if target is None or number is None else _OPS[target[0]](number, target[1])
    text = None if target is None else f"{target[0]} {target[1]:g}{target_unit}"
    return Figure(benchmark, figure, number, unit, detail, text, met)


def _sync_arch(f: dict) -> list[Figure]:
    g = lambda p: _get(f, p)  # noqa: E731
    return [
        _fig("sync-arch", "`read_index` of an Arch db ÷ `gzip -dc` of it", g("ratio"), "×",
             f"{g('read_index_s')} s vs {g('gzip_dc_s')} s; {_n(g('packages'))} packages; "
             f"{g('peak_rss_growth_mib')} MiB peak RSS growth", ("≤", 3), "×"),
        _fig("sync-arch", "whole sync job (parse, snapshot, queue, pointer) ÷ `gzip -dc`", g("full_sync_ratio"), "×",
             f"{g('full_sync_s')} s", ("≤", 3), "×"),
        *_upstream(f, "sync-arch", "rebuilderd_sync", [
            ("whole sync job, in process ÷ the real rebuilderd 0.24's sync of the same db (wall)",
             "full_sync_over_rebuilderd",
             f"{g('full_sync_s')} s vs {g('rebuilderd_sync.seconds')} s (upstream rebuildctl's `pkgs sync-profile` into an "
             "empty daemon, chroot and process start included)"),
            ("same, CPU seconds (ours ÷ rebuildctl + daemon)", "full_sync_cpu_over_rebuilderd",
             f"{g('full_sync_cpu_s')} s vs {g('rebuilderd_sync.cpu_seconds')} s "
             f"({g('rebuilderd_sync.rebuildctl_cpu_seconds')} rebuildctl + {g('rebuilderd_sync.daemon_cpu_seconds')} "
             "daemon)"),
            ("`rebuilder sync` as a process ÷ rebuilderd's sync (wall)", "full_sync_process_over_rebuilderd",
             f"{g('full_sync_process_s')} s ({g('full_sync_process_cpu_s')} s CPU) vs {g('rebuilderd_sync.seconds')} s"),
            ("same, CPU seconds (the `rebuilder sync` process ÷ rebuildctl + daemon)",
             "full_sync_process_cpu_over_rebuilderd",
             f"{g('full_sync_process_cpu_s')} s vs {g('rebuilderd_sync.cpu_seconds')} s"),
        ], 1),
    ]


def _upstream(f: dict, benchmark: str, key: str, rows: list[tuple[str, str, str]], target: float) -> list[Figure]:
    """Figures against upstream's rebuilderd/rebuildctl; when they could not run here, the reason as the detail."""
    reason = _get(f, f"{key}.unavailable")
    return [_fig(benchmark, figure, None if reason else _get(f, value), "×",
                 f"unavailable: {reason}" if reason else detail, ("≤", target), "×")
            for figure, value, detail in rows]


def _sync_debian(f: dict) -> list[Figure]:
    g = lambda p: _get(f, p)  # noqa: E731
    w = "whole_job"
    return [_fig("sync-debian", "parse of a Debian `Packages` file ÷ python-debian's deb822", g("ratio"), "×",
                 f"{g('ours_s')} s vs {g('python_debian_s')} s; {_n(g('stanzas'))} stanzas; "
                 f"{g('ours_peak_mib')} MiB peak", ("≤", 0.25), "×"),
            _fig("sync-debian", "whole Debian sync job ÷ python-debian's parse of the same files (CPU)",
                 g(w + ".cpu_ratio"), "×",
                 f"{g(w + '.ours.cpu_seconds')} s vs {g(w + '.python_debian.cpu_seconds')} s CPU, each in a fresh "
                 f"process; a generated bookworm-sized main amd64 ({_n(g(w + '.binary_stanzas'))} binary stanzas, "
                 "binary-all, Sources; xz)", ("≤", 0.25), "×"),
            _fig("sync-debian", "same, the sync job's peak RSS", g(w + ".peak_rss_mib"), "MiB",
                 f"python-debian's parse: {g(w + '.python_debian.peak_rss_mib')} MiB; the job's interpreter and "
                 f"imports before it starts: {g(w + '.ours.rss_before_mib')} MiB", ("≤", 300), " MiB")]


def _publish(f: dict, name: str = "publish") -> list[Figure]:
    g = lambda p: _get(f, p)  # noqa: E731
    size = f"{_n(g('size.packages'))} packages, {_n(g('size.builds'))} builds"
    plain = (f"{g('plain_renderer.package_pages')} package pages and feeds, "
             f"{_n(g('plain_renderer.files'))} files in all")
    out = [
        _fig(name, "full publish ÷ a plain renderer (DuckDB GROUP BY, Jinja2, orjson, no fsync)",
             g("ratios.full_publish_over_plain"), "×",
             f"{g('full_publish.seconds')} s vs {g('plain_renderer.seconds')} s (CPU "
             f"{g('ratios.full_publish_over_plain_cpu')}×); {size}; plain: {plain}; peak RSS "
             f"{g('full_publish.peak_rss_mib')} vs {g('plain_renderer.peak_rss_mib')} MiB", ("≤", 3), "×"),
        _fig(name, "incremental publish (new results) ÷ full publish", g("ratios.incremental_over_full"), "×",
             f"{g('incremental_publish.seconds')} s for {g('size.new_results')} new results", ("≤", 0.05), "×"),
        _fig(name, "full publish ÷ rendering the same site in memory (our own code)",
             g("ratios.full_publish_over_render"), "×",
             f"{g('full_publish.seconds')} s vs {g('render_in_memory.seconds')} s; in memory ÷ plain renderer: "
             f"{g('ratios.render_in_memory_over_plain')}×"),
        _fig(name, "site objects written per changed package", g("ratios.site_objects_written_per_changed_package"),
             "objects", f"{g('ratios.site_objects_written_incremental')} for {g('size.changed_packages')} "
             "changed packages (target: proportional to them)"),
    ]
    if g("one_result_publish.seconds") is not None:
        one = (("≤", 2), " s") if name == "publish" else (None, "")
        out.append(_fig(name, "incremental publish of one new result", g("one_result_publish.seconds"), "s",
                        f"{size}; {g('one_result_publish.site_written')} site objects written", one[0], one[1]))
    return out


def _ctl(f: dict) -> list[Figure]:
    g = lambda p: _get(f, p)  # noqa: E731
    suite, worst = g("details.suite"), g("details.worst_suite")
    size = f"a {_n(g('details.packages'))}-package site over loopback HTTP, cold cache"
    by = lambda s, k: _get(f, f"details.by_suite.{s}.{k}")  # noqa: E731
    return [
        _fig("ctl", f"`rebuildctl pkgs ls --status BAD --suite {suite}`, in process", g("pkgs_ls_seconds"), "s",
             f"{size}; {by(suite, 'share_of_packages')} of the packages", ("≤", 1), " s"),
        _fig("ctl", "same: downloading the whole v0 list ÷ `pkgs ls` (speedup)", g("speedup_over_v0_list"), "×",
             f"{g('v0_list_seconds')} s vs {g('pkgs_ls_seconds')} s", ("≥", 5), "×"),
        _fig("ctl", "same, `rebuildctl` as a process", g("pkgs_ls_process_seconds"), "s",
             "the console script, interpreter start included", ("≤", 1), " s"),
        _fig("ctl", f"worst case `--suite {worst}`, in process", g("pkgs_ls_seconds_worst_case"), "s",
             f"{by(worst, 'share_of_packages')} of the packages", ("≤", 1), " s"),
        _fig("ctl", "worst case: downloading the whole v0 list ÷ `pkgs ls`", g("speedup_over_v0_list_worst_case"),
             "×", f"{by(worst, 'v0_list_seconds')} s vs {g('pkgs_ls_seconds_worst_case')} s", ("≥", 5), "×"),
        *_upstream(f, "ctl", "vs_upstream", [
            (f"`rebuildctl pkgs ls --suite {g('vs_upstream.suite')}` as a process ÷ upstream rebuildctl 0.23.1 "
             "asking rebuilderd 0.24", "vs_upstream.ratio",
             f"{g('vs_upstream.ours_seconds')} s vs {g('vs_upstream.upstream_seconds')} s, "
             f"{_n(_get(f, 'vs_upstream.lines.ours'))} lines each, cold cache"),
            ("same, `pkgs ls --name N`", "vs_upstream.name_ratio",
             f"{g('vs_upstream.ours_name_seconds')} s vs {g('vs_upstream.upstream_name_seconds')} s"),
        ], 1.5),
    ]


def _claims(f: dict) -> list[Figure]:
    g = lambda p: _get(f, p)  # noqa: E731
    many, sim = "workers_8", "simulated_no_publish"
    return [
        _fig("claims", f"claims/s, {g(many + '.workers')} worker processes ÷ 1 (SeaweedFS, trivial jobs)",
             g("throughput_ratio"), "×", f"{g(many + '.claims_per_s')} vs {g('worker_1.claims_per_s')} claims/s on "
             f"{_n(g(many + '.jobs'))} jobs"),
        _fig("claims", f"S3 requests per claim, {g(many + '.workers')} workers", g(many + ".requests_per_claim"),
             "requests", f"1 worker: {g('worker_1.requests_per_claim')}; {g(many + '.kib_read_per_claim')} KiB "
             "read per claim (the queue)" + ("; the same count as the HTTP requests boto3 sent"
                                             if g(many + ".http_matches_counted") else "")),
        _fig("claims", f"claim conflicts per job, {g(many + '.workers')} workers × {_n(g(many + '.jobs'))} jobs",
             g(many + ".conflicts_per_job"), "per job", f"{g(many + '.finished_conflicts_per_job')} on finished jobs "
             f"the queue still lists, {g(many + '.held_conflicts_per_job')} on held ones; 1 worker: "
             f"{g('worker_1.conflicts_per_job')}"),
        _fig("claims", f"claim conflicts per job, {g(sim + '.workers')} simulated workers × {_n(g(sim + '.jobs'))} jobs, "
             "no publish during the run", g(sim + ".conflicts_per_job"), "per job",
             f"{g(sim + '.finished_conflicts_per_job')} finished, {g(sim + '.held_conflicts_per_job')} held "
             "(threads, local store)", ("≤", 0.1)),
        _fig("claims", f"same, a publish every {g('simulated_with_publish.publish_every_claims')} claims",
             g("simulated_with_publish.conflicts_per_job"), "per job",
             f"{g('simulated_with_publish.finished_conflicts_per_job')} finished, "
             f"{g('simulated_with_publish.held_conflicts_per_job')} held", ("≤", 0.1)),
        _fig("claims", "requests per finished job in an idle worker's poll, before publish drops it",
             g("idle_poll.requests_per_finished_job"), "requests",
             f"{g('idle_poll.requests')} requests for {g('idle_poll.queued_finished_jobs')} finished jobs (their done "
             f"receipts are in the listing); the worker's next poll: {g('idle_poll.next_poll_requests')} requests"),
    ]


def _requests(f: dict) -> list[Figure]:
    g = lambda p: _get(f, p)  # noqa: E731
    deb = "per_sync.debian"
    out = [
        _fig("requests", "S3 requests per completed build (claim, renewals, uploads, result)",
             g("per_build.mix.requests_per_build"), "requests",
             f"GOOD {g('per_build.GOOD.requests_per_build')}, BAD {g('per_build.BAD.requests_per_build')}, "
             f"FAIL {g('per_build.FAIL.requests_per_build')} + {g('per_build.mix.renewals_for_build_minutes.renewals')}"
             f" renewals (a {g('per_build.mix.renewals_for_build_minutes.minutes')}-minute build); "
             f"{g('per_build.mix.put_class_per_build')} of them PUT-class", ("≤", 12)),
        _fig("requests", "S3 requests per sync of an unchanged Debian-sized profile", g(deb + ".unchanged.requests"),
             "requests", f"{_n(g(deb + '.size'))} stanzas; changed: {g(deb + '.changed.requests')}; mirror: "
             f"{g(deb + '.unchanged.mirror.requests')} GETs, {_mib(g(deb + '.unchanged.mirror.bytes'))} MiB, "
             f"{g(deb + '.unchanged.mirror.conditional')} conditional", ("≤", 10)),
        _fig("requests", "S3 requests per sync of an unchanged Arch-sized profile",
             g("per_sync.arch.unchanged.requests"), "requests",
             f"{_n(g('per_sync.arch.size'))} packages; changed: {g('per_sync.arch.changed.requests')}; mirror: "
             f"{_mib(g('per_sync.arch.unchanged.mirror.bytes'))} MiB"),
        _fig("requests", "S3 requests per incremental publish (one new result)", g("per_publish.one_result.requests"),
             "requests", f"nothing new: {g('per_publish.nothing_new.requests')}; each further result: "
             f"{_sum(g('per_publish.marginal_per_result'))}; a store of {_n(g('per_publish.packages'))} packages"),
    ]
    hourly = [dep for dep in g("monthly_cost.deployments") or [] if "publish_per_result" in dep
              and dep["deployment"]["name"].startswith("Debian amd64")]
    if hourly:  # priced at the deployment's results per run (bench/cost_model.py)
        each = hourly[0]["publish_per_result"]
        out.append(_fig("requests", "publish's S3 requests per new result (Debian amd64, "
                        f"{hourly[0]['deployment']['results_per_run']:g} results a run)", _total(each), "requests",
                        f"by class: {each}; {(g('per_publish.batches') or [10])[0]} results vs none on "
                        f"{_n(g('per_publish.packages'))} packages: "
                        f"{_sum(g('per_publish.marginal_per_result'))}", ("≤", 5)))
    else:
        out.append(_fig("requests", "publish's S3 requests per new result (marginal: ten new results vs none)",
                        _total(g("per_publish.marginal_per_result")), "requests",
                        f"by class: {g('per_publish.marginal_per_result')}", ("≤", 5)))
    for dep in g("monthly_cost.deployments") or []:
        d = dep["deployment"]
        out.append(_fig("requests", f"monthly S3 request cost, {d['name']} deployment", dep["total_usd"], "USD",
                        f"{d['builds']:,} builds, {d['syncs']:,} syncs, {d['publishes']} publishes a month",
                        ("≤", 1) if d["name"].startswith("Debian amd64") else None))
    return out


# The hostile inputs of bench/bench_hostile.py, as the table names them (its case names are the keys).
HOSTILE = {
    "publish_diffoscope_gzip_bomb_3gib": ("publish", "a diffoscope HTML of 3 MB gzip, 3 GiB decoded"),
    "publish_diffoscope_11mib_report_published": ("publish", "an 11 MiB diffoscope HTML report (under the cap)"),
    "publish_diffoscope_999k_nested_tags_published": ("publish", "a diffoscope HTML of 999,000 nested tags"),
    "publish_log_96mib": ("publish", "a 96 MiB build log"),
    "ctl_json_stream_500mb": ("ctl", "a 500 MB JSON workers feed"),
    "ctl_gzip_bomb_content_encoding": ("ctl", "a 1 MB gzip bomb (1 GiB), Content-Encoding: gzip"),
    "ctl_gzip_bomb_raw": ("ctl", "the same bomb without Content-Encoding"),
    "ctl_json_30mb_of_empty_arrays": ("ctl", "30 MB of `[],` (600 MB as Python objects)"),
    "ctl_trickle_one_byte_per_half_second": ("ctl", "a feed trickling one byte every 0.5 s (3-second deadline)"),
}


def _hostile(f: dict) -> list[Figure]:
    budget = _get(f, "budget_mib") or 512
    base = {"publish": _get(f, "baselines.publish_small_report.peak_rss_mib"),
            "ctl": _get(f, "baselines.ctl_small_feed.peak_rss_mib")}
    harmless = {"publish": "a 1 kB report", "ctl": "a one-worker feed"}
    out = []
    for case, (who, what) in HOSTILE.items():
        c = _get(f, f"cases.{case}") or {}
        who_text = "publish" if who == "publish" else "rebuildctl"
        ended = ("published" if who == "publish" else "read") if c.get("exit") == 0 else \
            f"refused, exit {c.get('exit')}"
        out.append(_fig("hostile", f"{who_text} peak RSS: {what}", c.get("peak_rss_mib"), "MiB",
                        f"{ended} in {c.get('seconds')} s; the same on {harmless[who]}: {base[who]} MiB",
                        ("≤", budget), " MiB"))
    return out


def _n(n: Any) -> str:
    return f"{n:,}" if isinstance(n, int) else str(n)


def _mib(n: Any) -> str:
    return f"{n / 2**20:.1f}" if _num(n) is not None else "?"


def _total(d: Any) -> float | None:
    return round(sum(d.values()), 2) if isinstance(d, dict) else None


def _sum(d: Any) -> str:
    return f"{sum(d.values()):.1f}" if isinstance(d, dict) else "?"


EXTRACTORS: dict[str, Callable[[dict], list[Figure]]] = {
    "sync-arch": _sync_arch, "sync-debian": _sync_debian, "publish": _publish, "publish-1m": lambda f: _publish(f, "publish-1m"), "ctl": _ctl,
    "claims": _claims, "requests": _requests, "hostile": _hostile,
}


def extract(name: str, figures: dict) -> list[Figure]:
    """The headline figures of benchmark `name`."""
    return EXTRACTORS[name](figures)


def _verdict(row: dict) -> str:
    return "—" if row["met"] is None else "met" if row["met"] else "MISSED"


def _value(row: dict) -> str:
    v = row["value"]
    return "?" if v is None else f"{v:g}{row['unit'] if row['unit'] == '×' else ' ' + row['unit']}".strip()


def text_table(rows: list[dict]) -> str:
    """The headline rows for a terminal."""
    lines = []
    for r in rows:
        lines.append(f"{r['benchmark']:<12} {r['figure']}\n{'':<12} = {_value(r)}  (target {r['target'] or '—'}: "
                     f"{_verdict(r)})  {r['detail']}")
    return "\n".join(lines)


def _load(result: dict, benchmark: str) -> str:
    """The 1-minute load average as the benchmark started → as it ended ("?" if not recorded)."""
    load = _get(result, f"benchmarks.{benchmark}.load")
    return f"{load[0]:g} → {load[1]:g}" if isinstance(load, list) and len(load) == 2 else "?"


def markdown(result: dict) -> str:
    """The docs/benchmarks.md block: the headline table, then the monthly request cost with its assumptions."""
    m = result["machine"]
    out = [f"Measured by `python -m bench --write-docs docs/benchmarks.md` on {result['date']} "
           f"({m['cpus']} CPUs shared with other work, load average up to {m['loadavg'][0]}; each row's "
           "load column is the 1-minute load average as its benchmark started → ended). Every ratio is against a "
           "baseline measured in the same run.", "",
           "| benchmark | figure | result | target | | load |", "|---|---|---|---|---|---|"]
    for r in result["headline"]:
        load = _load(result, r["benchmark"])
        out.append(f"| {r['benchmark']} | {r['figure']} | **{_value(r)}** — {r['detail']} | {r['target'] or '—'} "
                   f"| {_verdict(r)} | {load} |")
    costs = _get(result, "benchmarks.requests.figures.monthly_cost")
    if costs:
        out += ["", "### Monthly S3 request cost", "", PRICE_NOTE + ".", "", cost_model.markdown(costs).rstrip(),
                "", "Assumptions:", "", costs["assumptions"]]
    return "\n".join(out) + "\n"
