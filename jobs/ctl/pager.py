"""Long text (build logs, diffoscope reports) through a pager when a person is reading.

As rebuilderd's `tools/src/pager.rs`: page only when stdout is a terminal and `$NOPAGER`
is unset; we also honour `--no-pager` and `$PAGER` (default `less -R`, as rebuilderd and
arch-repro-status). `$PAGER` set to "" or "cat" means no pager, as git reads it. Like git,
`LESS=FRX` is set when the user has no `$LESS`, so text shorter than a screen is simply
printed. A pager that cannot be started is not an error: the text goes to stdout.

This is the one external command that is not run through `jobs.core.proc`: the pager
belongs to the person at the terminal (it reads keys from it, runs as long as they like,
and is ended by them), so it inherits the terminal and has no timeout or output log.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Mapping
from typing import TextIO

DEFAULT_PAGER = "less -R"


def pager_command(env: Mapping[str, str]) -> list[str] | None:
    """The pager's argv from `$PAGER` (default `less -R`), or None for "do not page"."""
    if "NOPAGER" in env:
        return None
    text = env.get("PAGER", DEFAULT_PAGER)
    try:
        argv = shlex.split(text)
    except ValueError:
        return None
    if not argv or argv == ["cat"]:
        return None
    return argv


def page(text: str, *, enabled: bool = True, out: TextIO | None = None,
         env: Mapping[str, str] | None = None) -> None:
    """Write `text` to `out` (stdout), through the pager if `enabled` and `out` is a terminal."""
    out = out or sys.stdout
    env = os.environ if env is None else env
    argv = pager_command(env) if enabled and out.isatty() else None
    if argv is None or not _through(argv, text, env, out):
        out.write(text)
        out.flush()


def _through(argv: list[str], text: str, env: Mapping[str, str], out: TextIO) -> bool:
    """Run the pager on `text`; False if it could not be started (the caller prints instead)."""
    child_env = dict(env)
    child_env.setdefault("LESS", "FRX")
    out.flush()
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=out.fileno(), env=child_env)
    except (OSError, ValueError):
        return False
    try:
        assert proc.stdin is not None
        proc.stdin.write(text.encode("utf-8", "replace"))
        proc.stdin.close()
    except BrokenPipeError:
        pass  # the reader quit before the end: that is how a pager is used
    while True:
        try:
            proc.wait()
            return True
        except KeyboardInterrupt:
            # Ctrl-C reaches the pager too, which handles it (less stops a search);
            # we wait for the person to quit the pager, as git does.
            continue
