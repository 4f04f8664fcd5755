"""The independent baseline for publish (issue #18): a plain static-site renderer, no tricks.

It reads the same Parquet a publish reads (the package snapshots and the build history), and
writes one HTML page and one JSON feed per package name of a distro (the site's package
pages and package feeds), plus each suite's status lists and its list of all names in pages of
100 rows with a feed each, and one page and feed per maintainer. It is written the way anyone would write it
without knowing this project:

- one DuckDB query with a `GROUP BY` gathers each package's current rows and builds;
- one Jinja2 template per package page (compiled once by the environment, autoescaped);
- orjson for each package's JSON;
- files written one by one with `open().write`, no fsync, no manifest, no incremental run.

It must not import anything of `jobs` (it is a baseline, not our code): the benchmark hands it
the Parquet file paths. Run alone: `python -m bench.plain_publish OUT STATE.parquet... --history H.parquet...`.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

import duckdb
import jinja2
import orjson

PAGE_ROWS = 100

_BASE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{% block title %}{% endblock %} · rebuilder</title>
<link rel="stylesheet" href="{{ root }}static/style.css"></head>
<body><nav><a href="{{ root }}index.html">rebuilder</a>{% block crumbs %}{% endblock %}</nav>
<main>{% block content %}{% endblock %}</main>
<footer>Generated {{ now }}.</footer></body></html>
"""

_PACKAGE = """{% extends "base.html" %}
{% block title %}{{ name }} · {{ distro }}{% endblock %}
{% block crumbs %} › {{ distro }} › {{ name }}{% endblock %}
{% block content %}
<h1>{{ name }} <small>{{ distro }}</small></h1>
<p>Maintained by {% for m in maintainers %}<a href="{{ root }}maintainers/{{ m | seg }}.html">{{ m }}</a>{% if not loop.last %}, {% endif %}{% else %}nobody{% endfor %}.</p>
<h2>Current packages</h2>
<table class="packages"><thead><tr><th>package</th><th>version</th><th>suite</th><th>status</th><th>reason</th><th>built</th></tr></thead><tbody>
{% for p in packages %}
<tr class="{{ p.status | lower }}"><td>{{ name }}{% if p.source_name != name %} <small>(source {{ p.source_name }} {{ p.source_version }})</small>{% endif %}</td>
<td>{{ p.version }}</td><td><a href="{{ root }}suites/{{ p.suite }}/index.html">{{ p.suite }}</a></td>
<td><span class="status">{{ p.status }}</span></td><td>{{ p.reason or "" }}</td><td>{{ p.built_at or "" }}</td></tr>
{% endfor %}
</tbody></table>
<h2>Builds</h2>
{% if builds %}
<table class="builds"><thead><tr><th>build</th><th>source</th><th>architecture</th><th>attempt</th><th>status</th><th>reason</th><th>artifacts</th><th>worker</th><th>started</th><th>built</th><th>files</th></tr></thead><tbody>
{% for b in builds %}
<tr class="{{ b.status | lower }}" id="build-{{ b.build_id }}"><td><code>{{ b.build_id[:8] }}</code></td>
<td>{{ b.source_name }} {{ b.source_version }}</td><td>{{ b.architecture }}</td><td>{{ b.attempt }}</td>
<td><span class="status">{{ b.status }}</span></td><td>{{ b.reason or "" }}</td>
<td>{% for a in b.artifacts %}{{ a.name }} {{ a.status }}{% if not loop.last %}, {% endif %}{% endfor %}</td>
<td>{{ b.worker_name or b.worker_key_id }}</td><td>{{ b.started_at }}</td><td>{{ b.built_at }}</td>
<td>{% if b.log_key %}<a href="{{ root }}{{ b.log_key }}">log</a>{% endif %}
{% if b.diffoscope_key %}<a href="{{ root }}{{ b.diffoscope_key }}">diffoscope</a>{% endif %}
{% if b.attestation_key %}<a href="{{ root }}{{ b.attestation_key }}">attestation</a>{% endif %}</td></tr>
{% endfor %}
</tbody></table>
{% else %}<p>Never built yet.</p>{% endif %}
{% endblock %}
"""

_LIST = """{% extends "base.html" %}
{% block title %}{{ title }}{% endblock %}
{% block content %}
<h1>{{ title }}</h1>
<table><thead><tr><th>package</th><th>version</th><th>status</th><th>reason</th><th>built</th></tr></thead><tbody>
{% for p in rows %}
<tr class="{{ p.status | lower }}"><td><a href="{{ root }}packages/{{ p.distro | seg }}/{{ p.name | seg }}.html">{{ p.name }}</a></td>
<td>{{ p.version }}</td><td>{{ p.status }}</td><td>{{ p.reason or "" }}</td><td>{{ p.built_at or "" }}</td></tr>
{% endfor %}
</tbody></table>
{% if pages > 1 %}<p>{% for n in range(1, pages + 1) %}<a href="{{ base }}{% if n > 1 %}-{{ n }}{% endif %}.html">{{ n }}</a> {% endfor %}</p>{% endif %}
{% endblock %}
"""

# Each package name's current rows (with their job's latest build) and every build of its sources.
_QUERY = """
WITH latest AS (
    SELECT job_id, arg_max(status, built_at) AS status, arg_max(reason, built_at) AS reason,
           max(built_at) AS built_at
    FROM history GROUP BY job_id
), names AS (SELECT DISTINCT distro, artifact_name AS name, source_name FROM state),
builds AS (
    SELECT n.distro, n.name,
           list(struct_pack(h.build_id, h.source_name, h.source_version, h.architecture, h.attempt, h.status,
                            h.reason, h.artifacts, h.worker_name, h.worker_key_id, h.started_at, h.built_at,
                            h.log_key, h.diffoscope_key, h.attestation_key) ORDER BY h.built_at DESC) AS builds
    FROM names n JOIN history h ON h.distro = n.distro AND h.source_name = n.source_name
    GROUP BY n.distro, n.name
), packages AS (
    SELECT s.distro, s.artifact_name AS name,
           list(struct_pack(version := s.artifact_version, source_name := s.source_name,
                            source_version := s.source_version,
                            suite := concat_ws('/', s.distro, coalesce(s.release, '-'), coalesce(s.component, '-'),
                                               s.architecture),
                            status := coalesce(l.status, 'UNKWN'), reason := l.reason, built_at := l.built_at,
                            maintainers := s.maintainers)) AS packages
    FROM state s LEFT JOIN latest l USING (job_id)
    GROUP BY s.distro, s.artifact_name
)
SELECT p.distro, p.name, p.packages, b.builds FROM packages p LEFT JOIN builds b USING (distro, name)
ORDER BY p.distro, p.name
"""


def _seg(value: str) -> str:
    return quote(value, safe="")


def _write(path: Path, data: bytes, made: set[Path]) -> None:
    if path.parent not in made:
        path.parent.mkdir(parents=True, exist_ok=True)
        made.add(path.parent)
    with open(path, "wb") as f:
        f.write(data)


def render(state: list[str], history: list[str], out: Path) -> dict[str, int]:
    """Write the package pages and feeds, suite lists and maintainer pages under `out`; the counts."""
    env = jinja2.Environment(loader=jinja2.DictLoader({"base.html": _BASE, "package.html": _PACKAGE,
                                                      "list.html": _LIST}), autoescape=True)
    env.filters["seg"] = _seg
    package_t, list_t = env.get_template("package.html"), env.get_template("list.html")
    now = datetime.now(timezone.utc).isoformat()
    con = duckdb.connect()
    con.execute(f"CREATE VIEW state AS SELECT * FROM read_parquet({state!r})")
    con.execute(f"CREATE VIEW history AS SELECT * FROM read_parquet({history!r})")
    counts = defaultdict(int)
    made: set[Path] = set()
    suites: dict[tuple[str, str], list[dict]] = defaultdict(list)
    maintainers: dict[str, list[dict]] = defaultdict(list)
    reader = con.sql(_QUERY).to_arrow_reader(10_000)
    for batch in reader:
        for row in batch.to_pylist():
            distro, name, packages, builds = row["distro"], row["name"], row["packages"], row["builds"] or []
            names = sorted({m for p in packages for m in p["maintainers"]})
            html = package_t.render(root="../../", now=now, distro=distro, name=name, packages=packages,
                                    builds=builds, maintainers=names)
            _write(out / "packages" / _seg(distro) / f"{_seg(name)}.html", html.encode(), made)
            _write(out / "api/v1/packages" / _seg(distro) / f"{_seg(name)}.json",
                   orjson.dumps({"distro": distro, "name": name, "packages": packages, "builds": builds}), made)
            counts["package_pages"] += 1
            counts["package_feeds"] += 1
            for p in packages:
                short = {"distro": distro, "name": name, "version": p["version"], "status": p["status"],
                         "reason": p["reason"], "built_at": p["built_at"]}
                suites[(p["suite"], p["status"])].append(short)
                suites[(p["suite"], "names")].append(short)
                for m in p["maintainers"]:
                    maintainers[m].append(short)
    for (suite, status), rows in sorted(suites.items()):
        pages = (len(rows) + PAGE_ROWS - 1) // PAGE_ROWS
        for n in range(1, pages + 1):
            part = rows[(n - 1) * PAGE_ROWS:n * PAGE_ROWS]
            stem = status if n == 1 else f"{status}-{n}"
            html = list_t.render(root="../" * (suite.count("/") + 2), now=now, title=f"{suite} {status}",
                                 rows=part, pages=pages, base=status)
            _write(out / "suites" / suite / f"{stem}.html", html.encode(), made)
            _write(out / "api/v1/suites" / suite / f"{stem}.json", orjson.dumps(part), made)
            counts["list_pages"] += 1
            counts["list_feeds"] += 1
    for m, rows in maintainers.items():
        html = list_t.render(root="../", now=now, title=m, rows=rows, pages=1, base="")
        _write(out / "maintainers" / f"{_seg(m)}.html", html.encode(), made)
        _write(out / "api/v1/maintainers" / f"{_seg(m)}.json", orjson.dumps(rows), made)
        counts["maintainer_pages"] += 1
        counts["maintainer_feeds"] += 1
    counts["files"] = sum(v for k, v in counts.items())
    return dict(counts)


def timed(state: list[str], history: list[str], out: Path) -> dict:
    """`render`, with its wall and CPU time."""
    started, cpu = time.perf_counter(), time.process_time()
    counts = render(state, history, out)
    return {"seconds": round(time.perf_counter() - started, 3), "cpu_seconds": round(time.process_time() - cpu, 3),
            **counts}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("state", nargs="+")
    parser.add_argument("--history", nargs="+", required=True)
    args = parser.parse_args(argv)
    print(json.dumps(timed(args.state, args.history, args.out), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
