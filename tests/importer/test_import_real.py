"""A database made by the real rebuilderd 0.24 and rebuilderd-worker 0.23.1, imported and published.

The daemon syncs a repository and the worker builds every package (tests/importer/daemon.py);
`rebuildctl queue push` leaves one job queued. We sync the same repository, run the real
`rebuilder import-rebuilderd` entry point on the daemon's rebuilderd.db and publish: our v0
list has the daemon's verdicts, and our build files its logs, diffoscope output and
attestations.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import requests

from jobs.core.config import RebuilderConfig, parse_sync_config
from jobs.core.queue import read_queue
from jobs.core.store import NotFound, open_store
from jobs.publish.run import publish
from jobs.sync.run import sync_profile
from tests.importer.daemon import COOKIE, run_daemon, serve_mirror
from tests.publish.test_verify import config_for
from tests.serve.test_upstream import trixie  # noqa: F401 - the fixture

pytestmark = pytest.mark.full("rebuilderd 0.24 and rebuilderd-worker 0.23.1 in a trixie chroot (as root)")
BIN = Path(sys.executable).parent
# the artifacts of a split package in the order the daemon lists them
FIRST = {n: ("a-bin", "b-any") for n in ("a-bin", "b-any")} | {n: ("grp-any", "grp-bin") for n in ("grp-any", "grp-bin")}


@pytest.fixture
def daemon_db(trixie, tmp_path):  # noqa: F811
    """(the daemon's v0 list, its build files by (name, what), a copy of its database, the mirror URL)."""
    mirror, server = serve_mirror(tmp_path / "mirror")
    try:
        runner = run_daemon(trixie, tmp_path / "mirror", mirror)
        daemon = next(runner)
        try:
            inside = "/" + str(daemon.state.relative_to(trixie))
            pushed = subprocess.run(["chroot", str(trixie), "env", f"REBUILDERD_COOKIE_PATH={inside}/cookie",
                                     "rebuildctl", "-H", daemon.url, "queue", "push", "archlinux", "core", "plain",
                                     "--priority", "0"], capture_output=True, timeout=60)
            assert pushed.returncode == 0, pushed.stderr.decode()
            listed = requests.get(daemon.url + "/api/v0/pkgs/list", timeout=10).json()
            files = {}
            for record in listed:
                for what in ("log", "diffoscope", "attestation"):
                    res = requests.get(f"{daemon.url}/api/v0/builds/{record['build_id']}/{what}", timeout=10,
                                       headers={"Accept-Encoding": "identity"})
                    if res.status_code == 200:
                        files[(record["name"], what)] = res.content
            source = sqlite3.connect(daemon.state / "rebuilderd.db")
            copy = sqlite3.connect(tmp_path / "rebuilderd.db")
            source.backup(copy)  # a consistent copy while the daemon runs (its WAL included)
            source.close()
            copy.close()
        finally:
            runner.close()
        yield listed, files, tmp_path / "rebuilderd.db", mirror
    finally:
        server.shutdown()
        server.server_close()


def test_an_imported_daemon_database_shows_the_same_verdicts(daemon_db, tmp_path):
    listed, files, db, mirror = daemon_db
    assert {r["status"] for r in listed} == {"GOOD", "BAD"}  # the worker built every package
    store = open_store((tmp_path / "store").as_uri())
    profile = parse_sync_config(tomllib.loads(
        '[profile."arch"]\ndistro = "archlinux"\ncomponents = ["core"]\narchitectures = ["x86_64"]\n'
        f'source = "{mirror}/$repo/os/$arch"\n')).profile("arch")
    sync_profile(store, RebuilderConfig(), profile)
    (tmp_path / "rebuilderd.conf").write_text(f'[auth]\ncookie = "{COOKIE}"\n')

    def cli_import() -> str:
        res = subprocess.run([str(BIN / "rebuilder"), "--config", str(tmp_path / "rebuilderd.conf"), "--store",
                              store.url, "import-rebuilderd", str(db)], capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        return res.stdout

    out = cli_import()
    assert "7 builds imported (9 packages" in out and "0 packages not in the synced state, 0 rejected" in out, out
    assert "1 jobs queued" in out
    assert "0 builds imported" in cli_import()  # idempotent
    publish(store, config_for(tmp_path))

    ours = {r["name"]: r for r in json.loads(store.get("site/api/v0/pkgs/list").data)}
    theirs = {r["name"]: r for r in listed}
    assert set(ours) == set(theirs)
    for name, record in theirs.items():
        mine = ours[name]
        assert (mine["version"], mine["status"], mine["architecture"]) == \
            (record["version"], record["status"], record["architecture"]), name
        assert mine["artifact_url"].replace("%2B", "+") == record["artifact_url"]
        assert mine["built_at"][:26] == record["built_at"][:26] or name.startswith(("grp-", "a-", "b-")), name
        if name not in ("grp-any", "grp-bin"):  # a group's diffoscope and attestation are the build's (docs/api.md)
            assert (mine["has_diffoscope"], mine["has_attestation"]) == \
                (record["has_diffoscope"], record["has_attestation"]), name
        for what in ("log", "diffoscope", "attestation"):
            # a group's build files are its first artifact's with one (rebuilderd >= 0.26's v0 serves those too)
            owner = next((n for n in FIRST.get(name, (name,)) if (n, what) in files), name)
            theirs_file = files.get((owner, what))
            if theirs_file is None:
                with pytest.raises(NotFound):
                    store.head(f"site/api/v0/builds/{mine['build_id']}/{what}")
                continue
            blob = store.get(f"site/api/v0/builds/{mine['build_id']}/{what}")
            data = blob.data
            if blob.info.content_encoding == "gzip":
                import gzip

                data = gzip.decompress(data)
            if what == "attestation":
                assert json.loads(data) == json.loads(theirs_file), name
            else:
                assert data == theirs_file, (name, what)
    # a split package's artifacts share one build (rebuilderd >= 0.26's v0 does the same)
    assert ours["grp-any"]["build_id"] == ours["grp-bin"]["build_id"]
    assert theirs["grp-any"]["build_id"] != theirs["grp-bin"]["build_id"]

    queued = {j.source_name: j for j in read_queue(store).jobs.values()}
    assert queued["plain"].priority == 0 and queued["plain"].attempt == 2
