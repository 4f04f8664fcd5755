"""rebuildctl's commands when -H names a real rebuilderd (`jobs.ctl.daemon`): status, queue, workers, admin.

`pkgs ls` and `pkgs log/diffoscope/attestation` print the daemon's packages with the same
code as a site's (`jobs.ctl.daemon` makes our rows); what the v0 API answers in its own
shape (the dashboard, the queue, the workers) is printed here, in the same forms (a table
on a terminal, a header line and tab-separated rows when piped, `--json` as the daemon
answered). Admin verbs POST to the daemon with the cookie instead of writing a request.
"""

from __future__ import annotations

from typing import Any

import typer

from jobs.ctl import terminal
from jobs.ctl.daemon import Daemon, parse_naive
from jobs.ctl.terminal import clean, note, print_json, table


def _dash(value: Any) -> str:
    return "-" if value is None or value == "" else str(value)


def _when(value: Any) -> str:
    at = parse_naive(value)
    return at.strftime("%Y-%m-%d %H:%M:%S") if at else "-"


def _int(value: Any) -> str:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else "-"


def cookie_for(ctx: typer.Context) -> str | None:
    """The admin cookie for -H (as for admin requests), None if there is none."""
    from jobs.core.config import find_auth_cookie, load_ctl_config

    opts = terminal.options(ctx)
    return find_auth_cookie(opts.endpoint, load_ctl_config(opts.config))


def admin_cookie(ctx: typer.Context) -> str:
    from jobs.ctl.admin import AdminSetupMissing

    cookie = cookie_for(ctx)
    if not cookie:
        endpoint = terminal.options(ctx).endpoint
        raise AdminSetupMissing(f'no admin cookie for -H {endpoint}: set [endpoints."{endpoint}"] cookie in '
                                "~/.config/rebuilderd.conf, or $REBUILDERD_COOKIE_PATH to a file holding the "
                                "daemon's cookie; nothing was sent")
    return cookie


def status(ctx: typer.Context, daemon: Daemon, as_json: bool) -> None:
    """`status` of a daemon: its dashboard's suites and active builds, and its workers if the cookie is known."""
    doc = daemon.dashboard()
    cookie = cookie_for(ctx)
    workers = daemon.workers(cookie) if cookie else None
    if workers is None:
        note("the daemon lists its workers only with the admin cookie (REBUILDERD_COOKIE_PATH, or "
             "[endpoints.\"URL\"] cookie): no workers listed")
    if as_json:
        print_json({"dashboard": doc, "workers": workers})
        return
    rows = []
    for suite, counts in sorted(doc["suites"].items()):
        counts = counts if isinstance(counts, dict) else {}
        good, bad, unknown = (counts.get(k) if isinstance(counts.get(k), int) else 0 for k in ("good", "bad", "unknown"))
        total = good + bad + unknown
        rows.append([suite, str(good), str(bad), str(unknown), f"{100 * good / total if total else 0:.1f}%"])
    table(ctx, ["suite", "good", "bad", "unknown", "reproducible"], rows)
    typer.echo(f"queue length: {_int(doc.get('queue_length'))}")
    active = [b for b in doc.get("active_builds") or [] if isinstance(b, dict)]
    typer.echo(f"active builds: {len(active)}")
    for b in active:
        base = b.get("pkgbase") if isinstance(b.get("pkgbase"), dict) else {}
        typer.echo(clean(f"  {base.get('name')} {b.get('version')} ({base.get('distro')}, {base.get('suite')}, "
                         f"{base.get('architecture')}) worker {_dash(b.get('worker_id'))} "
                         f"since {_when(b.get('started_at'))}"))
    if workers is not None:
        typer.echo(f"workers: {len(workers)}")
        if workers:
            _workers(ctx, workers)


def _workers(ctx: typer.Context, workers: list[dict[str, Any]]) -> None:
    rows = [[_dash(w.get("name") or w.get("key")), _dash(w.get("address") or w.get("addr")),
             "yes" if w.get("online") is True else "no", _when(w.get("last_ping")), _dash(w.get("status"))]
            for w in workers]
    table(ctx, ["name", "address", "online", "last ping", "status"], rows)


def workers_ls(ctx: typer.Context, daemon: Daemon, as_json: bool) -> None:
    found = daemon.workers(admin_cookie(ctx))
    if not found:
        note("no worker is connected to the daemon")
    if as_json:
        print_json(found)
        return
    _workers(ctx, found)


def queue_ls(ctx: typer.Context, daemon: Daemon, *, head: bool, filters: Any, as_json: bool) -> None:
    """`queue ls` of a daemon: `POST /api/v0/queue/list` (it lists only due jobs: --planned changes nothing)."""
    from fnmatch import fnmatchcase

    from jobs.ctl.queue import HEAD, secs_to_human

    doc = daemon.queue(None)
    now = parse_naive(doc.get("now"))
    items = []
    for item in doc["queue"]:
        base = item.get("pkgbase") if isinstance(item, dict) else None
        if not isinstance(base, dict):
            continue
        names = [base.get("name"), *(a.get("name") for a in base.get("artifacts") or () if isinstance(a, dict))]
        if ((filters.distro is None or base.get("distro") == filters.distro)
                and (filters.component is None or base.get("suite") == filters.component)
                and (filters.architecture is None or base.get("architecture") == filters.architecture)
                and filters.release is None
                and (filters.name is None or any(isinstance(n, str) and fnmatchcase(n, filters.name) for n in names))):
            items.append(item)
    shown = items[:HEAD] if head else items
    if not shown:
        note("the queue is empty" if not doc["queue"] else "no queued job matches")
    if as_json:
        print_json(shown)
        return
    rows = []
    for item in shown:
        base = item["pkgbase"]
        started = parse_naive(item.get("started_at"))
        running = secs_to_human(max(0, int((now - started).total_seconds()))).strip() if started and now else "-"
        rows.append([_when(item.get("queued_at")), _dash(base.get("name")), _dash(item.get("version")), running,
                     _dash(item.get("worker_id")), "-", _dash(base.get("distro")), "-", _dash(base.get("suite")),
                     _dash(base.get("architecture")), _int(item.get("priority"))])
    table(ctx, ["queued at", "name", "version", "running for", "worker", "not before", "distro", "release",
                "component", "arch", "priority"], rows)


def submit(ctx: typer.Context, daemon: Daemon, verb: str, **fields: Any) -> None:
    """An admin verb sent to the daemon (it applies it at once)."""
    cookie = admin_cookie(ctx)
    if verb == "requeue":
        daemon.requeue(cookie, name=fields["name"], status=fields["status"], priority=fields["priority"],
                       distro=fields["distro"], component=fields["component"], architecture=fields["architecture"],
                       reset=fields["reset"])
    elif verb == "push":
        daemon.push(cookie, name=fields["name"], version=fields["version"], priority=fields["priority"],
                    distro=fields["distro"], component=fields["component"], architecture=fields["architecture"])
    else:
        daemon.drop(cookie, name=fields["name"], version=fields["version"], distro=fields["distro"],
                    component=fields["component"], architecture=fields["architecture"])
    typer.echo(f"{verb}: sent to the rebuilderd at {daemon.site.base}")
