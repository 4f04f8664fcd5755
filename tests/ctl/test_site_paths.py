"""A file:// site's feeds name files only inside the site: a key that climbs out of it is refused, not read."""

from __future__ import annotations

import json

import pytest

from jobs.ctl.feeds import FeedInvalid, Site
from tests.ctl.support import ctl

SUITE = {"distro": "debian", "release": "trixie", "component": "main", "architecture": "amd64"}


def _site(root, log: str):
    pkg = {**SUITE, "status": "BAD", "name": "hello", "version": "1", "artifact_architecture": "amd64",
           "artifact_url": None, "build_id": "b", "files": {"log": log}, "source_name": "hello"}
    (root / "api/v1/packages/debian").mkdir(parents=True)
    (root / "api/v1/packages/debian/hello.json").write_text(json.dumps({"packages": [pkg]}))
    (root / "api/v1/index.json").write_text(json.dumps({"suites": [{
        **SUITE, "counts": {"good": 0, "bad": 1, "fail": 0, "unknown": 0}, "total": 1, "percent_reproducible": 0.0,
        "queued": 0, "feeds": {}}]}))
    return root.as_uri()


@pytest.mark.parametrize("climb", ["../secret.txt", "api/../../secret.txt", "%2e%2e/secret.txt"])
def test_a_log_outside_a_file_site_is_not_read(tmp_path, climb):
    # A list feed's `files` named "../../../etc/passwd" and `pkgs log` printed the reader's own file.
    (tmp_path / "secret.txt").write_text("the reader's own file\n")
    url = _site(tmp_path / "site", climb)
    res = ctl("-H", url, "pkgs", "log", "hello")
    assert res.exit_code == 1 and "own file" not in res.output
    assert res.stderr.startswith("rebuildctl: error: a file outside the site (url: ") and res.stderr.count("\n") == 1
    with pytest.raises(FeedInvalid, match="outside the site"):
        Site(url).text(climb)


def test_a_file_inside_the_site_is_read_whatever_its_path(tmp_path):
    url = _site(tmp_path / "site", "api/v0/builds/../builds/7/log")
    (tmp_path / "site/api/v0/builds/7").mkdir(parents=True)
    (tmp_path / "site/api/v0/builds/7/log").write_text("the build log\n")
    res = ctl("-H", url, "pkgs", "log", "hello")
    assert res.exit_code == 0 and res.stdout == "the build log\n"
