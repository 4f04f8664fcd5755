"""Helpers for the rebuildctl tests: run the CLI in-process, record HTTP requests, copy a site."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from jobs.ctl.cli import app
from tests.httpd import _QuietHandler

COOKIE = "Cq4Tz8Mv2Lx7Rn3Kp9Wd5Hs6Jb1Yf0Ge"


class Recording(_QuietHandler):
    """Records (path, status) of every request, to prove which feeds a command read."""

    seen: list[tuple[str, int]] = []

    def send_response(self, code: int, message: str | None = None) -> None:
        type(self).seen.append((self.path, code))
        super().send_response(code, message)


def ctl(*args: str, env: dict[str, str] | None = None):
    """Run rebuildctl in-process (stdout is not a terminal: the piped forms)."""
    return CliRunner().invoke(app, list(args), catch_exceptions=False, env=env)


def copy_site(site: Path, to: Path) -> Path:
    """A private copy of a published site, for a test that edits it."""
    shutil.copytree(site, to)
    return to


def without_whole_lists(site: Path, to: Path) -> Path:
    """A copy of a site as a publish before the whole-list feeds left it: no `*.all.json`, nothing naming them."""
    shutil.copytree(site, to)
    for path in (to / "api/v1").rglob("*.json"):
        if path.name.endswith(".all.json"):
            path.unlink()
            continue
        feed = json.loads(path.read_text())
        if not isinstance(feed, dict):
            continue
        changed = feed.pop("lists_all", None) is not None or feed.pop("all", None) is not None
        for suite in feed.get("suites", []):
            changed = suite.pop("lists_all", None) is not None or changed
        if changed:
            path.write_text(json.dumps(feed))
    assert "all.json" not in "".join(p.read_text() for p in (to / "api/v1").rglob("*.json"))
    return to
