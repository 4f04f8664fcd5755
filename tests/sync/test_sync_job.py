"""`rebuilder sync` end to end: a real makepkg-built repository over loopback HTTP → snapshot → queue.

Runs on both stores. Also: a second sync of an updated repository, an unchanged index,
two syncs at once, a corrupt index, and kills at every write (fault-injecting store).
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from jobs.core.config import RebuilderConfig, parse_sync_config
from jobs.core.lease import Leases
from jobs.core.model import PackageStateRow, read_parquet
from jobs.core.pointer import Pointer
from jobs.core.queue import read_queue
from jobs.core.store import open_store
from jobs.demo.archrepo import build_fixture_repo
from jobs.sync.decompress import CorruptIndex
from jobs.sync.run import sync_profile
from tests.faults import FaultyStore, Killed
from tests.httpd import serve
from tests.sync import alpm_builders as alpm

CONFIG = RebuilderConfig()


def profile_for(source: str, repo: str, arch: str, name: str = "fixture", **extra):
    lines = [f'[profile."{name}"]', 'distro = "archlinux"', f'components = ["{repo}"]',
             f'architectures = ["{arch}"]', f'source = "{source}"']
    lines += [f"{k} = {v!r}".replace("'", '"') for k, v in extra.items()]
    import tomllib
    return parse_sync_config(tomllib.loads("\n".join(lines))).profile(name)


def snapshot_rows(store, profile="fixture") -> list[PackageStateRow]:
    value, _ = Pointer(store, f"state/{profile}").read()
    return read_parquet(store.get(value.target).data)


def queued(store) -> dict[str, str]:
    return {j.source_name: j.source_version for j in read_queue(store).jobs.values()}


@pytest.fixture(scope="module")
def updated_repo(tmp_path_factory, fixture_repo):
    """The fixture repository one release later: hello-script bumped, unrepro and hello-c removed."""
    return build_fixture_repo(tmp_path_factory.mktemp("updated"), packages=["hello-script", "splitpkg", "ftbfs"],
                              versions={"hello-script": "1.0.0-2"})


@pytest.fixture
def mirror_site(tmp_path, fixture_repo):
    """A loopback mirror whose content can be switched to a newer release: (base URL, switch)."""
    www = tmp_path / "www"
    www.mkdir()
    (www / "mirror").symlink_to(fixture_repo.root)

    def switch(root: Path) -> None:
        (www / "next").symlink_to(root)
        (www / "next").replace(www / "mirror")

    with serve(www) as url:
        yield f"{url}/mirror", switch


def test_real_repository_over_http_then_an_update(store, fixture_repo, mirror_site, updated_repo):
    base, switch = mirror_site
    profile = profile_for(fixture_repo.source_url(base), fixture_repo.repo, fixture_repo.arch)
    summary = sync_profile(store, CONFIG, profile)
    assert summary.outcome == "updated" and summary.skipped == 0
    rows = snapshot_rows(store)
    assert sorted(r.artifact_name for r in rows) == sorted(p.pkgname for p in fixture_repo.packages)
    by_name = {r.artifact_name: r for r in rows}
    for pkg in fixture_repo.packages:
        assert by_name[pkg.pkgname].artifact_sha256 == pkg.sha256
        assert by_name[pkg.pkgname].artifact_filename == pkg.filename
    assert by_name["hello-c"].artifact_version == "1:2.1-3"
    assert by_name["split-a"].job_id == by_name["split-b"].job_id  # a split package is one build
    jobs = read_queue(store).jobs
    assert len(jobs) == len(fixture_repo.by_pkgbase()) and len(summary.plan.added) == len(jobs)
    split = next(j for j in jobs.values() if j.source_name == "splitpkg")
    assert sorted(a.name for a in split.artifacts) == ["split-a", "split-b"]
    assert split.priority == 1 and split.attempt == 1

    # The same index again: nothing is rewritten.
    counting = FaultyStore(store)
    again = sync_profile(counting, CONFIG, profile)
    assert again.outcome == "unchanged"
    assert [op for op in counting.log if not op[1].startswith("locks/")] == []

    # One release later: exactly the new version is queued, the vanished ones are dropped.
    switch(updated_repo.root)
    summary2 = sync_profile(store, CONFIG, profile)
    assert summary2.outcome == "updated"
    added = {jobs_now.source_name: jobs_now.source_version
             for jid, jobs_now in read_queue(store).jobs.items() if jid in summary2.plan.added}
    assert added == {"hello-script": "1.0.0-2"}
    assert queued(store) == {"hello-script": "1.0.0-2", "splitpkg": "0.5-1", "ftbfs": "1.0-1"}
    assert len(summary2.plan.dropped) == 3  # hello-script 1.0.0-1, hello-c, unrepro


def test_a_running_job_survives_its_version_vanishing(tmp_path):
    store = open_store(tmp_path.as_uri())
    mirror = tmp_path / "mirror" / "core" / "os" / "x86_64"
    mirror.mkdir(parents=True)
    (mirror / "core.db").write_bytes(alpm.db(alpm.package("foo", "1.0-1") + alpm.package("bar", "2.0-1")))
    profile = profile_for((tmp_path / "mirror").as_uri() + "/$repo/os/$arch", "core", "x86_64")
    sync_profile(store, CONFIG, profile)
    foo = next(j for j in read_queue(store).jobs.values() if j.source_name == "foo")
    Leases(store).acquire(f"claims/{foo.job_id}/1.json", "worker-1")
    (mirror / "core.db").write_bytes(alpm.db(alpm.package("bar", "2.0-1")))
    summary = sync_profile(store, CONFIG, profile)
    assert summary.plan.kept_running == [foo.job_id] and summary.plan.dropped == []
    assert "foo" in queued(store)


def test_a_corrupt_index_changes_nothing(tmp_path):
    store = open_store((tmp_path / "store").as_uri())
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    good = alpm.db(alpm.package("foo", "1.0-1"))
    (mirror / "core.db").write_bytes(good)
    profile = profile_for(mirror.as_uri(), "core", "x86_64")
    sync_profile(store, CONFIG, profile)
    before = {o.key: store.head(o.key).etag for o in store.list() if not o.key.startswith("locks/")}
    for bad in (good[: len(good) // 2], b"<html>maintenance</html>", b"\x1f\x8b" + b"garbage" * 10):
        (mirror / "core.db").write_bytes(bad)
        with pytest.raises(CorruptIndex):
            sync_profile(store, CONFIG, profile)
        after = {o.key: store.head(o.key).etag for o in store.list() if not o.key.startswith("locks/")}
        assert after == before
    assert Leases(store).acquire("locks/sync/fixture.json", "next-run")  # the lock was released


def test_two_syncs_of_one_profile_at_once(tmp_path):
    store = open_store((tmp_path / "store").as_uri())
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "core.db").write_bytes(alpm.db(alpm.package("foo", "1.0-1")))
    profile = profile_for(mirror.as_uri(), "core", "x86_64")
    held = Leases(store).acquire("locks/sync/fixture.json", "sync@other-host:1")
    summary = sync_profile(store, CONFIG, profile)
    assert summary.outcome == "busy" and "sync@other-host:1" in summary.line()
    assert read_queue(store).jobs == {}
    Leases(store).release(held)
    assert sync_profile(store, CONFIG, profile).outcome == "updated"


def _state(store) -> tuple[dict[str, tuple], list[tuple]]:
    jobs = {j.job_id: (j.source_name, j.source_version, j.attempt, j.releases) for j in read_queue(store).jobs.values()}
    value, _ = Pointer(store, "state/fixture").read()
    table = pq.read_table(io.BytesIO(store.get(value.target).data))
    rows = sorted(zip(table.column("job_id").to_pylist(), table.column("artifact_name").to_pylist(),
                      table.column("artifact_version").to_pylist()))
    return jobs, rows


def test_killed_at_every_write_the_rerun_converges(store_factory, tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    first = alpm.db(alpm.package("foo", "1.0-1") + alpm.package("bar", "2.0-1") + alpm.package("baz", "1-1"))
    second = alpm.db(alpm.package("foo", "1.0-2") + alpm.package("bar", "2.0-1") + alpm.package("qux", "1-1"))
    profile = profile_for(mirror.as_uri(), "core", "x86_64")

    def run(store, data):
        (mirror / "core.db").write_bytes(data)
        return sync_profile(store, CONFIG, profile)

    reference = store_factory.make()
    run(reference, first)
    expected_first = _state(reference)
    counting = FaultyStore(reference)
    run(counting, second)
    expected = _state(reference)
    assert expected != expected_first
    writes = counting.writes
    assert writes >= 5

    for kill_at in range(1, writes + 1):
        for after in (False, True):
            store = store_factory.make()
            run(store, first)
            with pytest.raises(Killed):
                run(FaultyStore(store, kill_at=kill_at, after=after), second)
            # Whatever the pointer names is complete and readable.
            value, _ = Pointer(store, "state/fixture").read()
            read_parquet(store.get(value.target).data)
            read_queue(store)
            store.delete("locks/sync/fixture.json")  # stands for the killed holder's lease expiring
            run(store, second)
            assert _state(store) == expected, (kill_at, after)


def test_cli_sync_prints_one_line_per_profile(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "core.db").write_bytes(alpm.db(alpm.package("foo", "1.0-1")))
    conf = tmp_path / "sync.conf"
    conf.write_text(f'[profile."core"]\ndistro = "archlinux"\ncomponents = ["core"]\narchitectures = ["x86_64"]\n'
                    f'source = "{mirror.as_uri()}"\n'
                    f'[profile."broken"]\ndistro = "archlinux"\ncomponents = ["core"]\narchitectures = ["x86_64"]\n'
                    f'source = "{(tmp_path / "nowhere").as_uri()}"\n')
    exe = Path(sys.executable).with_name("rebuilder")
    res = subprocess.run([str(exe), "--store", (tmp_path / "store").as_uri(), "sync", "--profiles", str(conf)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 1, res
    assert res.stdout.count("\n") == 1 and res.stdout.startswith("sync core: updated, 1 packages in 1 build inputs")
    assert "sync broken: failed, nothing changed" in res.stderr and "Traceback" not in res.stderr


def test_debian_profile_end_to_end_friends_are_one_job(tmp_path):
    from jobs.core.config import Release
    from tests.sync.debian_mirror import copy_mirror
    from tests.sync.test_debian import profile as debian_profile

    mirror = copy_mirror(tmp_path / "mirror")
    store = open_store((tmp_path / "store").as_uri())
    profile = debian_profile(mirror, releases=(Release("sid"), Release("forky")))
    summary = sync_profile(store, CONFIG, profile)
    assert summary.outcome == "updated" and summary.skipped >= 1  # the fixture has a binary without source
    jobs = read_queue(store).jobs.values()
    both = [j for j in jobs if set(j.releases) == {"sid", "forky"}]
    assert both, "a source version present in both releases must be one job listing both"
    assert all(j.input_url.endswith(".buildinfo") and j.backend == "debian" for j in jobs)
    rows = snapshot_rows(store, "debian-test")
    assert {r.release for r in rows} == {"sid", "forky"}


class _Unavailable:
    """A mirror that answers 503 to everything, counting the requests."""

    def __init__(self):
        import http.server

        outer = self
        self.requests = 0

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self):
                outer.requests += 1
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.handler = Handler


def test_an_unreachable_mirror_is_retried_then_transient_and_changes_nothing(tmp_path):
    from jobs.sync.fetch import Fetcher, FetchUnavailable

    mirror = _Unavailable()
    store = open_store((tmp_path / "store").as_uri())
    with serve(tmp_path, mirror.handler) as url:
        profile = profile_for(url + "/$repo/os/$arch", "core", "x86_64")
        with pytest.raises(FetchUnavailable) as exc:
            sync_profile(store, CONFIG, profile, fetcher=Fetcher(retries=3, backoff=0.01))
    assert exc.value.transient and "503" in str(exc.value)
    assert mirror.requests == 4  # the first try and three retries with backoff
    assert [o.key for o in store.list() if not o.key.startswith("locks/")] == []
