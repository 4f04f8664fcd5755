"""DuckDB over the store's Arrow tables → the frozen rows of `jobs.publish.site.rows`.

Only packages of current snapshots are listed; their status is that of the latest build
of their job (latest `built_at`, then highest attempt) — the artifact's own status when
the build lists it, FAIL for a FAIL build — and UNKWN when the job was never built.

v0 build ids: rebuilderd's v0 API numbers builds with an i32 and consumers build URLs
from it (`/api/v0/builds/{id}/log`, docs/design.md#feeds-that-existing-tools-read). A build's v0 id is its 1-based
position in the history (parts in manifest order, rows in part order); the history is
append-only, so the number never changes once given.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from jobs.core.feeds import QueuedJob, Running, Worker
from jobs.core.model import Status
from jobs.publish.site.classify import FailureClass
from jobs.publish.site.inputs import Inputs
from jobs.publish.site.rows import (
    ActiveBuild,
    BuildFiles,
    BuildLinks,
    DailyCount,
    PackageRow,
    Regression,
    SuiteKey,
    SuiteSummary,
)

CHART_DAYS = 3 * 366 + 1  # about three years of days in the charts
MAX_REGRESSIONS = 200

_SETUP = """
CREATE TEMP TABLE hist AS
WITH numbered AS ({numbered}),
f AS (SELECT build_id, failure_class, diffoscope_html_key AS html, countersigned, attestation_problem
      FROM facts)  -- one row per build (jobs.publish.site.facts)
SELECT n.* EXCLUDE (_row), f.failure_class, f.html AS diffoscope_html_key,
       coalesce(f.countersigned, false) OR n.build_id IN (SELECT build_id FROM signed) AS countersigned,
       (n.attestation_key IS NOT NULL AND f.attestation_problem IS NULL) OR coalesce(f.countersigned, false)
           OR n.build_id IN (SELECT build_id FROM signed) AS has_attestation
FROM numbered n LEFT JOIN f USING (build_id);

CREATE TEMP TABLE art AS
SELECT build_id, name, min(status) AS artifact_status  -- a name listed twice: BAD sorts first
FROM (SELECT build_id, unnest(artifacts, recursive := true) FROM hist) GROUP BY build_id, name;

-- Maintainers as the index names them (every snapshot listing the package), sorted: part of
-- each package row, so a page showing them changes when they do.
CREATE TEMP TABLE cur AS
SELECT distro, release, component, architecture, artifact_name AS name, artifact_version AS version,
       artifact_architecture, artifact_url, source_name, source_version, job_id, artifact_sha256,
       list_sort(list_distinct(flatten(list(coalesce(maintainers, []))))) AS maintainers,
       max(description) AS description
FROM state GROUP BY ALL;

-- The latest build of each current job (an aggregate, not a window over the whole history).
CREATE TEMP TABLE latest AS
SELECT * FROM hist WHERE build_id IN (
    SELECT max_by(build_id, (built_at, attempt)) FROM hist WHERE job_id IN (SELECT job_id FROM cur) GROUP BY job_id);

CREATE TEMP TABLE pkgs AS
WITH j AS (
    SELECT c.*, CASE WHEN l.build_id IS NULL THEN 'UNKWN' WHEN l.status = 'FAIL' THEN 'FAIL'
                     ELSE coalesce(a.artifact_status, l.status) END AS status,
           l.build_id, l.v0_id, l.built_at, l.worker_name, l.reason, l.failure_class, l.log_key, l.diffoscope_key,
           l.diffoscope_html_key, l.has_attestation
    FROM cur c LEFT JOIN latest l ON l.job_id = c.job_id LEFT JOIN art a ON a.build_id = l.build_id AND a.name = c.name)
SELECT * EXCLUDE (reason, failure_class, log_key, diffoscope_key, diffoscope_html_key, has_attestation),
       log_key IS NOT NULL AS has_log, diffoscope_key IS NOT NULL AS has_diffoscope,
       diffoscope_html_key IS NOT NULL AS has_diffoscope_html, coalesce(has_attestation, false) AS has_attestation,
       CASE WHEN status IN ('BAD', 'FAIL') THEN reason END AS reason,
       CASE WHEN status IN ('BAD', 'FAIL') THEN failure_class END AS failure_class
FROM j;

CREATE TEMP TABLE names AS
SELECT DISTINCT distro, name FROM cur UNION SELECT DISTINCT distro, source_name FROM cur;
"""

# v0 ids: a build's position in the history, its first row counting when a build id repeats
# (which compaction never writes, so the cheap form is the usual one).
_NUMBERED = """SELECT *, CAST(row_number() OVER (ORDER BY _row) AS INTEGER) AS v0_id FROM history
    QUALIFY row_number() OVER (PARTITION BY build_id ORDER BY _row) = 1"""
_NUMBERED_UNIQUE = "SELECT *, CAST(_row + 1 AS INTEGER) AS v0_id FROM history"

_KEY = "distro, release, component, architecture"
_ORDER = "distro, release NULLS FIRST, component NULLS FIRST, architecture"
_LINKS = "v0_id, has_log, has_diffoscope, has_diffoscope_html, has_attestation"
_HIST_LINKS = """v0_id, log_key IS NOT NULL AS has_log, diffoscope_key IS NOT NULL AS has_diffoscope,
                 diffoscope_html_key IS NOT NULL AS has_diffoscope_html, has_attestation"""

_PACKAGE_COLUMNS = f"""{_KEY}, name, version, artifact_architecture, artifact_url, source_name, source_version,
    job_id, status, build_id, built_at, reason, failure_class, worker_name, {_LINKS}, artifact_sha256, maintainers,
    description"""

_PACKAGES = f"""SELECT {_PACKAGE_COLUMNS}
FROM pkgs ORDER BY {_ORDER}, name, version, artifact_architecture, artifact_url"""

_V0_COLUMNS = ("name, version, status, distro, suite, architecture, artifact_url, build_id, built_at, has_diffoscope, "
               "has_attestation")
# rebuilderd's PkgRelease fields in its order; built_at as its NaiveDateTime (feeds.naive).
# The same binary in two releases is one v0 record (v0 has no release): the first is kept.
# rebuilderd gives every artifact of a build group (pkgbase) the group's architecture, which its
# sync takes from the group's first package: the input package here (jobs.sync.archlinux.group).
# A build whose input is no artifact (Debian's source) keeps each artifact's own.
_GROUP_ARCHITECTURES = """SELECT job_id, any_value(artifact_architecture) AS group_architecture FROM state
    WHERE artifact_url = input_url GROUP BY job_id"""
_PKGS_LIST_V0 = f"""WITH grp AS ({_GROUP_ARCHITECTURES})
SELECT {_V0_COLUMNS} FROM (
    SELECT name, version, CASE WHEN status = 'FAIL' THEN 'BAD' ELSE status END AS status, distro,
        coalesce(component, '') AS suite, coalesce(group_architecture, artifact_architecture) AS architecture,
        replace(artifact_url, '%3A', ':') AS artifact_url, v0_id AS build_id,  -- feeds.v0_artifact_url
        strftime(built_at, '%Y-%m-%dT%H:%M:%S.%f') AS built_at, has_diffoscope, has_attestation,
        row_number() OVER (ORDER BY {_ORDER}, name, version, artifact_architecture, artifact_url) AS pos
    FROM pkgs LEFT JOIN grp USING (job_id))
QUALIFY row_number() OVER (PARTITION BY {_V0_COLUMNS} ORDER BY pos) = 1 ORDER BY pos"""

_SAME_SUITE = """a.distro = b.distro AND a.release IS NOT DISTINCT FROM b.release
    AND a.component IS NOT DISTINCT FROM b.component AND a.architecture = b.architecture"""

_SUITES = f"""WITH a AS (
    SELECT {_KEY}, count(*) FILTER (WHERE status = 'GOOD') AS good, count(*) FILTER (WHERE status = 'BAD') AS bad,
           count(*) FILTER (WHERE status = 'FAIL') AS fail, count(*) FILTER (WHERE status = 'UNKWN') AS unknown
    FROM pkgs GROUP BY ALL),
b AS (SELECT {_KEY}, count(DISTINCT job_id) AS queued FROM cur WHERE job_id IN (SELECT job_id FROM queue) GROUP BY ALL)
SELECT * FROM (SELECT a.*, coalesce(b.queued, 0) AS queued FROM a LEFT JOIN b ON {_SAME_SUITE}) ORDER BY {_ORDER}"""

_SUITE_CLASSES = f"""SELECT {_KEY}, failure_class, count(*) AS n FROM pkgs WHERE failure_class IS NOT NULL
GROUP BY ALL ORDER BY failure_class"""

# The builds linked to each page: by source name, by artifact name, or through the job of a
# current package with that name. Each link starts from the pages asked for, so a publish
# that renders a hundred pages does not join the whole history three times.
_BUILDS = f"""WITH links AS (
    SELECT n.distro, n.name, h.build_id FROM {{names}} n JOIN hist h ON h.distro = n.distro AND h.source_name = n.name
    UNION SELECT n.distro, n.name, a.build_id FROM {{names}} n JOIN art a ON a.name = n.name
        JOIN hist h ON h.build_id = a.build_id AND h.distro = n.distro
    UNION SELECT n.distro, n.name, h.build_id FROM {{names}} n JOIN (SELECT DISTINCT job_id, name FROM cur) c
        ON c.name = n.name JOIN hist h ON h.job_id = c.job_id AND h.distro = n.distro)
SELECT l.distro AS page_distro, l.name AS page_name, h.build_id, h.job_id, h.attempt, h.distro, h.architecture,
    h.source_name, h.source_version, h.status, h.reason, h.failure_class, h.artifacts, h.worker_name,
    h.worker_key_id, h.started_at, h.built_at, {_HIST_LINKS}
FROM links l JOIN hist h USING (build_id)
ORDER BY page_distro, page_name, h.built_at DESC, h.attempt DESC, h.build_id"""

_ACTIVE = """WITH q AS (SELECT *, row_number() OVER (ORDER BY priority, queued_at, job_id) AS queue_id FROM queue)
SELECT q.queue_id, c.worker, c.holder AS worker_key_id, w.worker_id, q.job_id, q.attempt, q.distro, q.architecture,
    (SELECT min(component) FROM cur WHERE cur.job_id = q.job_id) AS component, q.source_name, q.source_version,
    q.input_url, q.artifacts, q.queued_at, c.acquired_at, c.renewed_at,
    greatest(0, date_diff('second', c.acquired_at, $now)) AS age_seconds
FROM claims c JOIN q ON q.job_id = c.job_id AND q.attempt = c.attempt LEFT JOIN workers w ON w.key_id = c.holder
ORDER BY c.acquired_at, q.job_id"""

_QUEUE = """SELECT q.job_id, q.attempt, q.priority, q.not_before, q.queued_at, q.distro, q.releases,
    (SELECT min(component) FROM cur WHERE cur.job_id = q.job_id) AS component, q.architecture, q.source_name,
    q.source_version, q.backend, q.input_url, q.artifacts, c.worker AS worker_name, c.holder AS worker_key_id,
    c.acquired_at AS started_at, c.renewed_at, c.expires_at
FROM queue q LEFT JOIN claims c ON c.job_id = q.job_id AND c.attempt = q.attempt
ORDER BY q.priority, coalesce(q.not_before, q.queued_at), q.queued_at, q.job_id"""

_WORKERS = """WITH keys AS (
    SELECT key_id FROM workers UNION SELECT key_id FROM trust UNION SELECT DISTINCT worker_key_id FROM hist
    UNION SELECT holder FROM claims),
hb AS (SELECT worker_key_id AS key_id, count(*) AS builds, max(built_at) AS last_built,
              arg_max(worker_name, built_at) AS hname FROM hist GROUP BY 1),
cl AS (SELECT holder AS key_id, max(renewed_at) AS last_claim, arg_max(worker, renewed_at) AS cname
       FROM claims GROUP BY 1)
SELECT k.key_id, coalesce(w.name, cl.cname, hb.hname, k.key_id) AS name, w.worker_id,
    coalesce(t.trust, 'untrusted') AS trust, greatest(hb.last_built, cl.last_claim) AS last_seen,
    coalesce(hb.builds, 0) AS builds
FROM keys k LEFT JOIN workers w USING (key_id) LEFT JOIN trust t USING (key_id) LEFT JOIN hb USING (key_id)
    LEFT JOIN cl USING (key_id)
WHERE k.key_id IS NOT NULL ORDER BY name, key_id"""

_DAILY = """WITH ev AS (
    SELECT p.distro, coalesce(p.release, chr(0)) AS release, coalesce(p.component, chr(0)) AS component,
           p.architecture, p.name, p.version, p.artifact_url, p.job_id, h.built_at, h.attempt,
           CASE WHEN h.status = 'FAIL' THEN 'FAIL' ELSE coalesce(a.artifact_status, h.status) END AS st
    FROM pkgs p JOIN hist h USING (job_id) LEFT JOIN art a ON a.build_id = h.build_id AND a.name = p.name),
ch AS (SELECT *, lag(st) OVER (PARTITION BY distro, release, component, architecture, name, version, artifact_url,
                               job_id ORDER BY built_at, attempt) AS prev FROM ev),
deltas AS (SELECT distro, release, component, architecture, CAST(built_at AS DATE) AS day, st, 1 AS d FROM ch
           UNION ALL SELECT distro, release, component, architecture, CAST(built_at AS DATE), prev, -1
           FROM ch WHERE prev IS NOT NULL),
bounds AS (SELECT distro, release, component, architecture, min(day) AS lo FROM deltas GROUP BY ALL),
days AS (SELECT distro, release, component, architecture,
                CAST(unnest(generate_series(CAST(least(lo, $today) AS TIMESTAMP), CAST($today AS TIMESTAMP),
                                            INTERVAL 1 DAY)) AS DATE) AS day
         FROM bounds),
grid AS (SELECT days.*, s.st FROM days, (VALUES ('GOOD'), ('BAD'), ('FAIL')) s(st)),
daily AS (SELECT distro, release, component, architecture, day, st, sum(d) AS d FROM deltas GROUP BY ALL),
cum AS (SELECT g.distro, g.release, g.component, g.architecture, g.day, g.st,
               sum(coalesce(daily.d, 0)) OVER (PARTITION BY g.distro, g.release, g.component, g.architecture, g.st
                                               ORDER BY g.day) AS n
        FROM grid g LEFT JOIN daily USING (distro, release, component, architecture, day, st)),
totals AS (SELECT distro, coalesce(release, chr(0)) AS release, coalesce(component, chr(0)) AS component,
                  architecture, count(*) AS total FROM pkgs GROUP BY ALL)
SELECT distro, nullif(release, chr(0)) AS release, nullif(component, chr(0)) AS component, architecture, day,
       CAST(sum(n) FILTER (WHERE st = 'GOOD') AS BIGINT) AS good,
       CAST(sum(n) FILTER (WHERE st = 'BAD') AS BIGINT) AS bad,
       CAST(sum(n) FILTER (WHERE st = 'FAIL') AS BIGINT) AS fail,
       CAST(any_value(total) - sum(n) AS BIGINT) AS unknown
FROM cum JOIN totals USING (distro, release, component, architecture) WHERE day >= $since
GROUP BY distro, release, component, architecture, day
ORDER BY distro, release NULLS FIRST, component NULLS FIRST, architecture, day"""

_REGRESSIONS = f"""WITH b AS (
    SELECT distro, architecture, source_name, source_version, build_id, status, built_at, reason, failure_class,
        v0_id, log_key, diffoscope_key, diffoscope_html_key, has_attestation,
        lag(status) OVER (PARTITION BY distro, architecture, source_name ORDER BY built_at, attempt) AS previous
    FROM hist)
SELECT distro, architecture, source_name, source_version, build_id, status, previous, built_at, reason, failure_class,
    EXISTS (SELECT 1 FROM names n WHERE n.distro = b.distro AND n.name = b.source_name) AS has_page, {_HIST_LINKS}
FROM b WHERE (previous = 'GOOD' AND status IN ('BAD', 'FAIL')) OR (previous IS NULL AND status = 'BAD')
ORDER BY built_at DESC, build_id LIMIT {MAX_REGRESSIONS}"""

_FILES = """SELECT v0_id, build_id, log_key, diffoscope_key, diffoscope_html_key, files,
    CASE WHEN countersigned THEN 'history/attestations/' || build_id || '.json'
         WHEN has_attestation THEN coalesce(attestation_key, '') END AS attestation_key
FROM hist WHERE v0_id > $after OR list_contains($also, v0_id) ORDER BY v0_id"""


TRUST_SCHEMA = pa.schema([("key_id", pa.string()), ("trust", pa.string())])


def connect(inputs: Inputs, countersigned: set[str], trust: dict[str, str] | None = None
            ) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the input tables registered and the shared temp tables built."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    for name in ("state", "history", "queue", "claims", "workers", "facts"):
        con.register(name, getattr(inputs, name))
    con.register("signed", pa.table({"build_id": pa.array(sorted(countersigned), pa.string())}))
    con.register("trust", pa.Table.from_pylist([{"key_id": k, "trust": v} for k, v in sorted((trust or {}).items())],
                                               schema=TRUST_SCHEMA))
    ids = inputs.history.column("build_id")
    unique = pc.count_distinct(ids).as_py() == len(ids)
    con.execute(_SETUP.replace("{numbered}", _NUMBERED_UNIQUE if unique else _NUMBERED))
    return con


def _dicts(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    result = con.execute(sql, params or {})
    columns = [d[0] for d in result.description]
    return [dict(zip(columns, row)) for row in result.fetchall()]


def _suite(d: dict[str, Any]) -> SuiteKey:
    return SuiteKey(d.pop("distro"), d.pop("release"), d.pop("component"), d.pop("architecture"))


def _links(d: dict[str, Any]) -> BuildLinks:
    return BuildLinks(d.pop("v0_id"), bool(d.pop("has_log")), bool(d.pop("has_diffoscope")),
                      bool(d.pop("has_diffoscope_html")), bool(d.pop("has_attestation")))


def _class(value: str | None) -> FailureClass | None:
    return FailureClass(value) if value else None


def package_row(d: dict[str, Any]) -> PackageRow:
    """A PackageRow from the columns of `_PACKAGE_COLUMNS`."""
    suite, links = _suite(d), _links(d)
    return PackageRow(suite=suite, links=links, **{**d, "status": Status(d["status"]),
                                                   "failure_class": _class(d["failure_class"]),
                                                   "maintainers": tuple(d.get("maintainers") or ())})


def packages(con: duckdb.DuckDBPyConnection) -> list[PackageRow]:
    """Every current package with its latest outcome, in suite then name order."""
    return [package_row(d) for d in _dicts(con, _PACKAGES)]


def group_architectures(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """The v0 architecture of each build group whose input package is one of its artifacts, by job id."""
    return {d["job_id"]: d["group_architecture"] for d in _dicts(con, _GROUP_ARCHITECTURES)}


def pkgs_list_v0(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """`api/v0/pkgs/list` records straight from the query (see `feeds.pkgs_list`), duplicates dropped."""
    return con.sql(_PKGS_LIST_V0).to_arrow_table().to_pylist()


def suites(con: duckdb.DuckDBPyConnection) -> list[SuiteSummary]:
    """Per-suite counts by status, queue length and failure classes."""
    classes: dict[SuiteKey, list[tuple[FailureClass, int]]] = defaultdict(list)
    for d in _dicts(con, _SUITE_CLASSES):
        classes[_suite(d)].append((FailureClass(d["failure_class"]), int(d["n"])))
    out = []
    for d in _dicts(con, _SUITES):
        suite = _suite(d)
        counts = {k: int(v) for k, v in d.items()}
        out.append(SuiteSummary(suite=suite, classes=tuple(classes.get(suite, ())), **counts))
    return out


def active_builds(con: duckdb.DuckDBPyConnection, now: datetime) -> list[ActiveBuild]:
    """Builds running now, oldest claim first."""
    out = []
    for d in _dicts(con, _ACTIVE, {"now": now}):
        d["artifacts"] = tuple((a["name"], a["version"], a["url"]) for a in d["artifacts"])
        out.append(ActiveBuild(**{**d, "age_seconds": int(d["age_seconds"])}))
    return out


def queue_entries(con: duckdb.DuckDBPyConnection) -> list[QueuedJob]:
    """Every queued job in claim order (priority, then due time), with its live claim."""
    out = []
    for d in _dicts(con, _QUEUE):
        d["releases"] = tuple(d["releases"])
        d["artifacts"] = tuple((a["name"], a["version"], a["url"], a["architecture"]) for a in d["artifacts"])
        claim = {k: d.pop(k) for k in ("worker_name", "worker_key_id", "started_at", "renewed_at", "expires_at")}
        d["running"] = None if claim["worker_key_id"] is None else Running(**claim)
        out.append(QueuedJob(**d))
    return out


def worker_rows(con: duckdb.DuckDBPyConnection) -> list[Worker]:
    """Every worker key seen: enrolled, authorized, in the history or holding a claim."""
    return [Worker(**{**d, "builds": int(d["builds"])}) for d in _dicts(con, _WORKERS)]


def suite_daily_counts(con: duckdb.DuckDBPyConnection, now: datetime, days: int = CHART_DAYS
                       ) -> dict[SuiteKey, list[DailyCount]]:
    """Per suite and day (UTC), how many of its current packages were GOOD, BAD, FAIL or unknown."""
    today = now.date()
    out: dict[SuiteKey, list[DailyCount]] = defaultdict(list)
    for d in _dicts(con, _DAILY, {"today": today, "since": today - timedelta(days=days - 1)}):
        suite = SuiteKey(d["distro"], d.pop("release"), d.pop("component"), d.pop("architecture"))
        out[suite].append(DailyCount(**d))
    return dict(out)


def daily_counts(con: duckdb.DuckDBPyConnection, now: datetime, days: int = CHART_DAYS) -> list[DailyCount]:
    """Per distro and day (UTC), how many current packages were GOOD, BAD, FAIL or unknown."""
    return distro_daily_counts(suite_daily_counts(con, now, days))


def distro_daily_counts(by_suite: dict[SuiteKey, list[DailyCount]]) -> list[DailyCount]:
    """`daily_counts` from the counts of `suite_daily_counts` (summed over each distro's suites)."""
    sums: dict[tuple[str, Any], list[int]] = {}
    for rows in by_suite.values():
        for r in rows:
            total = sums.setdefault((r.distro, r.day), [0, 0, 0, 0])
            for i, n in enumerate((r.good, r.bad, r.fail, r.unknown)):
                total[i] += n
    return [DailyCount(distro, day, *v) for (distro, day), v in sorted(sums.items())]


def regressions(con: duckdb.DuckDBPyConnection) -> list[Regression]:
    """Newest first: GOOD → BAD/FAIL transitions of a source, and sources whose first build is BAD."""
    out = []
    for d in _dicts(con, _REGRESSIONS):
        links = _links(d)
        previous = Status(d["previous"]) if d["previous"] else None
        out.append(Regression(links=links, **{**d, "status": Status(d["status"]), "previous": previous,
                                               "failure_class": _class(d["failure_class"])}))
    return out


def build_files(con: duckdb.DuckDBPyConnection, *, after: int = 0, also: set[int] = frozenset()
                ) -> list[BuildFiles]:
    """The stored files of the builds after v0 id `after` and of those in `also`, by v0 id.

    The attestation is publish's countersigned one where it keeps one, else the worker's
    ("": only a countersigned one exists, being made in this run).
    """
    out = []
    for d in _dicts(con, _FILES, {"after": after, "also": sorted(also)}):
        d["digests"] = {f["key"]: f["sha256"] for f in d.pop("files") or ()}
        out.append(BuildFiles(**d))
    return out


def newest_result(con: duckdb.DuckDBPyConnection) -> datetime | None:
    """When the newest build of the history finished (None when it is empty)."""
    return con.execute("SELECT max(built_at) FROM hist").fetchone()[0]


def last_build(con: duckdb.DuckDBPyConnection) -> int:
    """The highest v0 id of the history (0 when it is empty)."""
    return int(con.execute("SELECT coalesce(max(v0_id), 0) FROM hist").fetchone()[0])
