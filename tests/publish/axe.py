"""axe-core, the accessibility checker, run in the browser tests' Chromium on each page type.

A pinned release (`VERSION`, tarball SHA-256 `SHA256`) is fetched once with `npm pack` into
``$REBUILDER_TEST_CACHE/axe-core`` (default ``/var/cache/rebuilder-tests``): infra/test.sh does
it at setup (`python -m tests.publish.axe`), so the tests themselves run offline. Without the
file a test skips on a laptop and fails under CI (tests/tools.py).

`serious(browser)` injects axe into the current page and returns its violations of impact
"serious" or "critical" (WCAG 2.0/2.1 A and AA rules and axe's best practices), each as
"rule: help (selectors)".
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

VERSION = "4.10.3"
SHA256 = "0f2b4d7dcdf7d1219df8d1959ad68e565f51d14c3f0d88bb71cd59abeb956292"
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]

RUN = """
const done = arguments[arguments.length - 1];
axe.run(document, {runOnly: {type: "tag", values: arguments[0]}, resultTypes: ["violations"]})
  .then(r => done(r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                          nodes: v.nodes.slice(0, 5).map(n => n.target.join(" "))}))))
  .catch(e => done([{id: "axe-error", impact: "critical", help: String(e), nodes: []}]));
"""


def cache_dir() -> Path:
    return Path(os.environ.get("REBUILDER_TEST_CACHE", "/var/cache/rebuilder-tests")) / "axe-core"


def tarball() -> Path:
    return cache_dir() / f"axe-core-{VERSION}.tgz"


def fetch() -> Path:
    """The pinned tarball in the cache, fetched with `npm pack` if absent; ValueError if it is not the pinned one."""
    path = tarball()
    if not path.exists():
        npm = shutil.which("npm")
        if npm is None:
            raise FileNotFoundError("npm is not installed (apt-get install npm)")
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([npm, "pack", f"axe-core@{VERSION}", "--pack-destination", str(path.parent)], check=True,
                       timeout=600, stdout=subprocess.DEVNULL)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != SHA256:
        raise ValueError(f"{path}: SHA-256 {digest}, not the pinned axe-core {VERSION} ({SHA256})")
    return path


@functools.cache
def script() -> str:
    """axe.min.js of the pinned release, from the cached tarball (skip or fail if it is not there)."""
    from tests.tools import missing

    path = tarball()
    if not path.exists():
        missing(f"axe-core {VERSION} in {path}", "python -m tests.publish.axe fetches it; infra/test.sh does")
    if hashlib.sha256(path.read_bytes()).hexdigest() != SHA256:
        raise AssertionError(f"{path} is not the pinned axe-core {VERSION}")
    with tarfile.open(path) as tar:
        member = tar.extractfile("package/axe.min.js")
        assert member is not None
        return member.read().decode("utf-8")


def serious(browser) -> list[str]:
    """The current page's serious and critical accessibility violations, as axe reports them."""
    browser.execute_script(script())
    browser.set_script_timeout(60)
    found = browser.execute_async_script(RUN, TAGS)
    return [f"{v['id']} ({v['impact']}): {v['help']} at {v['nodes']}" for v in found
            if v["impact"] in ("serious", "critical")]


if __name__ == "__main__":
    try:
        print(fetch())
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        print(f"axe-core {VERSION}: {exc}", file=sys.stderr)
        sys.exit(1)
