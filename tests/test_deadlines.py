"""A total deadline on every request from outside (issue #15): sync's mirror fetches, a worker's
downloads and rebuildctl, against a real slow-loris server (tests/slowloris.py).

A per-read timeout never fires on a server that sends one byte every 0.3 s; the deadline
(`jobs.core.bounded`, held on every socket read by `jobs.core.bounded_http`) ends the request
with one line naming the URL and the deadline, transient, nothing half-written. The deadlines
are set as an operator would: `[sync] deadline` in rebuilderd.conf, `[build] download_deadline`
in the worker's config, `$REBUILDCTL_DEADLINE`.
"""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from jobs.core.bounded import configured
from jobs.core.config import parse_rebuilder_config, parse_worker_config
from jobs.core.model import Artifact, JobRow, Status, job_id
from jobs.core.signing import generate_key
from jobs.sync.fetch import Fetcher, FetchUnavailable
from jobs.sync.run import sync_profile
from jobs.work.build import rebuild
from jobs.work.download import TransientDownloadError, default_session, fetch
from tests.ctl.support import ctl
from tests.slowloris import slow_server
from tests.sync.test_sync_job import profile_for

MODES = ["headers", "body", "retry-after"]
FAST = 3.0  # seconds: a 1-second deadline, with room for a loaded machine


def _sync_config(deadline: int):
    return parse_rebuilder_config({"sync": {"deadline": deadline}})


@pytest.mark.parametrize("mode", MODES)
def test_a_sync_fetch_ends_at_its_total_deadline(mode):
    with slow_server(mode) as (base, slow), configured(_sync_config(1).limits()):
        started = time.monotonic()
        with pytest.raises(FetchUnavailable) as exc:
            Fetcher(retries=5, timeout=60).fetch(f"{base}/core.db")
        took = time.monotonic() - started
    assert exc.value.transient
    assert "not complete within the 1-second deadline" in exc.value.message and exc.value.url == f"{base}/core.db"
    assert took < FAST, took
    assert slow.connections == 1  # a deadline is not retried


def test_the_deadline_is_the_operators_and_defaults_to_the_limit():
    assert Fetcher().deadline == 600
    with configured(_sync_config(7).limits()):
        assert Fetcher().deadline == 7
    assert Fetcher(deadline=3).deadline == 3
    with pytest.raises(Exception, match="sync.deadline"):
        parse_rebuilder_config({"sync": {"deadline": 0}})


def test_a_slow_mirror_fails_its_profile_and_changes_nothing(store):
    config = _sync_config(1)
    with slow_server("body") as (base, _):
        profile = profile_for(base + "/$repo/os/$arch", "core", "x86_64")
        started = time.monotonic()
        with pytest.raises(FetchUnavailable, match="1-second deadline"):
            sync_profile(store, config, profile, fetcher=Fetcher(retries=3))
        assert time.monotonic() - started < FAST + 2
    assert [o.key for o in store.list() if not o.key.startswith("locks/")] == []


@pytest.mark.full("a rebuilder process (interpreter start) against a slow mirror")
def test_rebuilder_sync_against_a_slow_mirror_exits_75_with_one_line(tmp_path):
    conf = tmp_path / "rebuilderd.conf"
    conf.write_text("[sync]\ndeadline = 1\n")
    with slow_server("headers") as (base, _):
        sync_conf = tmp_path / "sync.conf"
        sync_conf.write_text(f'[profile."slow"]\ndistro = "archlinux"\ncomponents = ["core"]\n'
                             f'architectures = ["x86_64"]\nsource = "{base}/$repo/os/$arch"\n')
        exe = Path(sys.executable).with_name("rebuilder")
        res = subprocess.run([str(exe), "--config", str(conf), "--store", (tmp_path / "store").as_uri(),
                              "sync", "--profiles", str(sync_conf)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 75, res
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("sync slow: failed, nothing changed: not complete within the 1-second deadline")
    assert f"{base}/core/os/x86_64/core.db" in lines[0] and "Traceback" not in res.stderr


@pytest.mark.parametrize("mode", MODES)
def test_a_worker_download_ends_at_its_deadline_and_leaves_no_file(tmp_path, mode):
    dest = tmp_path / "foo.pkg.tar.zst"
    with slow_server(mode) as (base, _):
        started = time.monotonic()
        with pytest.raises(TransientDownloadError) as exc:
            fetch(f"{base}/foo.pkg.tar.zst", dest, session=default_session(), deadline=1)
        took = time.monotonic() - started
    assert "not complete within the 1-second deadline" in exc.value.message
    assert exc.value.url == f"{base}/foo.pkg.tar.zst"
    assert took < FAST, took
    assert not dest.exists()


def test_a_rebuild_whose_mirror_trickles_fails_at_the_configured_deadline(tmp_path):
    config = parse_worker_config({"build": {"download_deadline": 1, "silent": True}})
    with slow_server("body") as (base, _):
        url = f"{base}/foo-1-1-x86_64.pkg.tar.zst"
        job = JobRow(job_id=job_id("archlinux", "x86_64", url), backend="archlinux", architecture="x86_64",
                     input_url=url, distro="archlinux", releases=(None,), source_name="foo", source_version="1-1",
                     artifacts=(Artifact(name="foo", version="1-1", architecture="x86_64", url=url),),
                     priority=1, queued_at=datetime(2026, 1, 1, tzinfo=timezone.utc), not_before=None, attempt=1,
                     retries=0)
        backend = tmp_path / "backend"
        backend.write_text("#!/bin/sh\nexit 0\n")
        backend.chmod(0o755)
        started = time.monotonic()
        outcome = rebuild(job, backend=backend, config=config, key=generate_key(), workdir=tmp_path / "w")
        assert time.monotonic() - started < FAST + 2
    assert outcome.status == Status.FAIL
    assert outcome.reason == f"download failed: {url}: not complete within the 1-second deadline " \
                             "([build] download_deadline) (transient)"
    assert not list((tmp_path / "w").rglob("*.pkg.tar.zst"))  # nothing half-written is left


def test_rebuildctl_against_a_site_trickling_its_headers_ends_at_the_deadline():
    with slow_server("headers") as (base, _):
        started = time.monotonic()
        res = ctl("-H", base, "workers", "ls", env={"REBUILDCTL_DEADLINE": "1"})
        took = time.monotonic() - started
    assert res.exit_code == 1 and res.stdout == "", res
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "1-second deadline" in lines[0] and base in lines[0], res.stderr
    assert took < FAST, took
