"""`rebuildctl verify`: package files against signed attestations, or the installed system against the feeds.

Exit codes: 0 every file verified (every installed package reproduced), 1 some not (or an
error), 2 usage.
"""

# No `from __future__ import annotations`: typer would evaluate the string annotations of this command
# on every start (9 ms of the 13 it took to build the CLI).

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from jobs.ctl import terminal
from jobs.ctl.terminal import EXIT_TERMINAL, clean, errors, note, print_json, table, tty, usage

_MARK = {"GOOD": "[+]", "BAD": "[-]", "FAIL": "[-]"}


def verify(
    ctx: typer.Context,
    files: Annotated[Optional[list[Path]], typer.Argument(
        exists=True, dir_okay=False, help="Package files (.pkg.tar.zst, .pkg.tar.xz, …, .deb).")] = None,
    rebuilder: Annotated[Optional[list[str]], typer.Option(
        "--rebuilder", "-r", help="A rebuilder's site URL; repeat for several [default: the -H endpoint].")] = None,
    threshold: Annotated[int, typer.Option(
        "--threshold", "-t", help="How many distinct rebuilders (by signing key) must confirm.")] = 1,
    installed: Annotated[bool, typer.Option(
        "--installed", help="Check the installed packages (pacman or dpkg database) instead of files.")] = False,
    dbpath: Annotated[Optional[Path], typer.Option(
        "--dbpath", "-b", help="pacman dbpath, its local/ dir, dpkg admindir or status file "
                               "[default: /var/lib/pacman, else /var/lib/dpkg].")] = None,
    distro: Annotated[Optional[str], typer.Option(
        "--distro", help="Distro whose feeds --installed matches [default: archlinux for pacman, "
                         "debian for dpkg].")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Verify package files against rebuilders' signed attestations (or --installed against their feeds).

    A file is verified when THRESHOLD rebuilders, distinct by public key, publish an in-toto
    attestation signed by one of their published keys (api/v0/public-keys) that lists the
    file's sha256 under its name. Each rebuilder's answer is printed, with why it did not
    confirm: not-listed, not-good, no-attestation, unknown-key, bad-signature,
    sha256-mismatch, ...

    --installed matches every installed (name, version, architecture) with the rebuilders'
    published status and prints "N/M packages reproduced", like arch-repro-status and
    debian-repro-status. It says on stderr which database it read (pacman local database or
    dpkg status file, and its path), and refuses one that holds no installed package.

    Exit codes: 0 every file verified (every installed package reproduced), 1 some not, or an
    error (no package database, an empty one), 2 usage.

    \b
    Example: rebuildctl verify -r https://a.example -r https://b.example -t 2 zstd-1.5.7-1-x86_64.pkg.tar.zst
    Example: rebuildctl -H https://reproducible.archlinux.org verify --installed
    """
    if installed and files:
        raise usage("give package files or --installed, not both")
    if not installed and not files:
        raise usage("give package files to verify, or --installed")
    if (dbpath is not None or distro is not None) and not installed:
        raise usage("--dbpath and --distro go with --installed")
    urls = list(dict.fromkeys(u.rstrip("/") for u in rebuilder)) if rebuilder else [terminal.endpoint(ctx)]
    if threshold < 1:
        raise usage("--threshold must be at least 1")
    if threshold > len(urls):
        raise usage(f"--threshold {threshold} needs at least {threshold} rebuilders (--rebuilder URL, repeated); "
                    f"got {len(urls)}")
    sites = [terminal.site(ctx, u) for u in urls]
    if installed:
        _installed(ctx, sites, threshold, dbpath, distro, as_json)
    else:
        _files(ctx, files or [], sites, threshold, as_json)


def _files(ctx: typer.Context, files: list[Path], sites: list[Any], threshold: int, as_json: bool) -> None:
    from jobs.ctl.verify import verify_files

    with errors():
        verdicts = verify_files(files, sites, threshold)
    if as_json:
        print_json([{"path": v.path, "verified": v.verified, "confirmations": v.confirmations,
                     "threshold": v.threshold,
                     "package": None if v.package is None else {
                         "kind": v.package.kind, "name": v.package.name, "version": v.package.version,
                         "architecture": v.package.architecture, "sha256": v.package.sha256},
                     "checks": [{"rebuilder": c.rebuilder, "confirmed": c.confirmed, "reason": c.reason.value,
                                 "detail": c.detail, "key_ids": list(c.key_ids), "attestation": c.attestation}
                                for c in v.checks]} for v in verdicts])
    elif tty(ctx):
        rows = []
        for v in verdicts:
            for i, c in enumerate(v.checks):
                detail = f"key {c.key_ids[0][:16]}" if c.confirmed and c.key_ids else c.detail
                rows.append([Path(v.path).name if i == 0 else "", _verdict(v) if i == 0 else "", c.rebuilder, c.reason.value,
                             detail])
        table(ctx, ["file", "verdict", "rebuilder", "answer", "detail"], rows)
    else:
        for v in verdicts:
            typer.echo(clean(f"{_verdict(v)} {v.path}"))
            for c in v.checks:
                detail = (f"key {c.key_ids[0]} {c.attestation}" if c.confirmed and c.key_ids else c.detail)
                typer.echo(clean(f"  {c.reason.value} {c.rebuilder}: {detail}"))
    ok = sum(v.verified for v in verdicts)
    if not as_json:
        typer.echo(f"{ok}/{len(verdicts)} files verified (threshold {threshold})")
    if ok != len(verdicts):
        raise typer.Exit(EXIT_TERMINAL)


def _verdict(v: Any) -> str:
    return f"{'OK' if v.verified else 'FAIL'} {v.confirmations}/{v.threshold}"


def _installed(ctx: typer.Context, sites: list[Any], threshold: int, dbpath: Path | None, distro: str | None,
               as_json: bool) -> None:
    from jobs.ctl.installed import check_installed, open_database

    with errors():
        database = open_database(dbpath)
        note(f"read {len(database.packages)} installed packages from {database.description}")
        report = check_installed(database, sites, threshold, distro)
    several = len(sites) > 1
    if as_json:
        print_json({"database": {"kind": report.database.kind, "path": report.database.path},
                    "distro": report.distro, "rebuilders": report.rebuilders, "threshold": report.threshold,
                    "reproduced": report.reproduced, "total": len(report.packages), "counts": report.counts(),
                    "packages": [{"name": p.name, "version": p.version, "architecture": p.architecture,
                                  "status": p.status, "listed": p.listed, "confirmations": p.confirmations,
                                  "statuses": p.statuses} for p in report.packages]})
    elif tty(ctx):
        rows = [[_MARK.get(p.status, "[?]"), p.name, p.version, p.architecture, p.status,
                 ("" if p.listed else "not listed") + (f" {p.confirmations}/{threshold}" if several else "")]
                for p in report.packages]
        table(ctx, ["", "name", "version", "arch", "status", ""], rows, status_col=4)
    else:
        for p in report.packages:
            extra = ("" if p.listed else " (not listed)") + (f" {p.confirmations}/{threshold}" if several else "")
            typer.echo(clean(f"{_MARK.get(p.status, '[?]')} {p.name} {p.version} {p.architecture} {p.status}{extra}"))
    if not as_json:
        typer.echo(clean(report.summary()))
    if report.reproduced != len(report.packages):
        raise typer.Exit(EXIT_TERMINAL)
