"""`rebuilder demo --distro debian`: the Debian fixture synced, rebuilt with debian-local, published —
offline (no network namespace) once the build roots are cached — and what Debian hosts' consumers
read from it: `rebuildctl verify --installed` and debian-repro-status' matching, both on the dpkg
status of a root where real dpkg installed the fixture's packages.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import tarfile
import urllib.request
from pathlib import Path

import pytest

from jobs.demo.debrepo import UNBUILDABLE, DebianRepo, fixture_root
from jobs.work.backends.debian_buildinfo import read_buildinfo
from jobs.work.backends.debian_config import parse_sources
from jobs.work.backends.debian_root import cached_root, make_root
from tests.fixtures_debian import BINNMU_VERSION, cache_dir

pytestmark = pytest.mark.full("real mmdebstrap roots and dpkg-buildpackage builds")
BIN = Path(sys.executable).parent


def pinned_roots(repo: DebianRepo) -> list[Path]:
    """The rebuild roots of the fixture's buildable packages, made now if missing (so the demo can run offline)."""
    sources = parse_sources(repo.sources_text)
    roots = []
    for includes in sorted({tuple(f"{n}={v}" for n, v in read_buildinfo(p).installed) for p in repo.buildinfos()
                            if p.parent.name not in UNBUILDABLE}):
        root = cached_root(cache_dir(), sources, arch=repo.arch, includes=includes)
        if not root.is_file():
            make_root(sources, arch=repo.arch, includes=includes, dest=root, cache=cache_dir(), timeout=1800)
        roots.append(root)
    return roots


@pytest.fixture(scope="module")
def demo(debian_fixture: DebianRepo, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """The demo directory and its output, run with no network after its roots are in the cache."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is needed to run the demo without a network")
    roots = pinned_roots(debian_fixture)
    directory = tmp_path_factory.mktemp("demo-debian") / "demo"
    # The repository the session built (by the same builder the demo calls): the demo reuses it.
    shutil.copytree(debian_fixture.base, directory / "debian", symlinks=True,
                    ignore=shutil.ignore_patterns("S.gpg-agent*"))
    env = {"PATH": f"{BIN}:/usr/bin:/bin:/usr/sbin:/sbin", "HOME": str(directory.parent),
           "REBUILDER_DEBIAN_ROOT_CACHE": str(cache_dir())}
    res = subprocess.run(["unshare", "--net", str(BIN / "rebuilder"), "demo", str(directory), "--distro", "debian",
                          "--no-serve"], capture_output=True, text=True, timeout=1800, env=env, cwd=directory.parent)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert roots and all(f"cached ({root}), nothing to download" in res.stderr for root in roots), res.stderr
    return directory, res.stdout, res.stderr


def test_the_debian_demo_rebuilds_its_fixture_offline(demo, debian_fixture):
    directory, out, err = demo
    assert "sync demo-debian: updated" in out
    assert "run: GOOD 3, BAD 1, FAIL 1, UNKWN 0" in out.splitlines()
    assert "debian demo: repository from" in err
    # The output of `rebuildctl status`: the suite rows of the demo's Debian suites.
    status = out[out.index("rebuildctl -H"):]
    rows = {line.split()[3]: line.split()[4:8] for line in status.splitlines() if line.startswith("debian")}
    assert rows == {debian_fixture.arch: ["2", "1", "1", "0"], "all": ["1", "0", "0", "0"]}, status
    conf = (directory / "rebuilderd-worker.conf").read_text()
    assert '[backend."debian"]' in conf and "rebuilder-backend-debian-local" in conf
    assert 'distro = "debian"' in (directory / "rebuilderd-sync.conf").read_text()
    # The backend's environment, for running the cycle again by hand: a shell reads it back.
    shown = subprocess.run(["sh", "-c", '. "$1" && printf "%s\\n" "$REBUILDER_DEBIAN_SOURCES" '
                            '"$REBUILDER_DEBIAN_BUILDINFO_KEYRING"', "-", str(directory / "rebuilderd-worker.env")],
                           capture_output=True, text=True, check=True).stdout.splitlines()
    assert shown == [str(directory / "debian-sources.list"), str(directory / "debian/gnupg/fixture-archive.gpg")]
    assert f"file://{directory}/debian/repo fixture main" in (directory / "debian-sources.list").read_text()
    site = directory / "store" / "site"
    index = json.loads((site / "api/v1/index.json").read_text())
    assert sum(s["counts"]["good"] for s in index["suites"]) == 3


def test_a_fresh_demo_says_what_it_downloads(tmp_path, debian_fixture):
    """With an empty root cache, it says before building what mmdebstrap downloads and from where
    (stopped there: with no network, mmdebstrap fails, and says so)."""
    env = {"PATH": f"{BIN}:/usr/bin:/bin:/usr/sbin:/sbin", "HOME": str(tmp_path),
           "REBUILDER_DEBIAN_ROOT_CACHE": str(tmp_path / "roots")}
    res = subprocess.run(["unshare", "--net", str(BIN / "rebuilder"), "demo", str(tmp_path / "demo"), "--distro",
                          "debian", "--no-serve"], capture_output=True, text=True, timeout=600, env=env)
    archive = debian_fixture.archive
    root = fixture_root(archive, debian_fixture.arch, tmp_path / "roots")
    assert (f"debian demo: the build root of the fixture packages: not cached; mmdebstrap downloads it from "
            f"{archive.uri} {archive.suite} (~100 packages, ~450 MB unpacked) into {root.parent}") in res.stderr
    log = tmp_path / "demo" / "debian-build.log"
    last = res.stderr.splitlines()[-1]
    assert res.returncode == 1 and last.startswith(
        "rebuilder: error: building the Debian fixture failed: mmdebstrap failed (status ") \
        and last.endswith(f") (its log: {log})"), res.stderr[-2000:]
    assert "making the build root: mmdebstrap" in log.read_text()  # the tools' output is there, not on stdout
    assert "mmdebstrap" not in res.stdout
    assert not (tmp_path / "demo" / "debian" / "fixture-repo.json").exists()
    assert not list((tmp_path / "roots").glob("*.tar"))  # no half-made root left in the cache


def dpkg_root(debian_fixture: DebianRepo, base: Path) -> Path:
    """A Debian root (the fixture's build root) where real dpkg installed every fixture .deb."""
    root = base / "root"
    root.mkdir()
    tar = fixture_root(debian_fixture.archive, debian_fixture.arch, cache_dir())
    with tarfile.open(tar) as tf:
        members = [m for m in tf.getmembers() if m.name.lstrip("./").startswith("var/lib/dpkg")]
        tf.extractall(root, members=members, filter="fully_trusted")
    debs = [str(p) for p in debian_fixture.debs.values()]
    subprocess.run(["dpkg", "--root", str(root), "--force-not-root", "--force-script-chrootless", "--unpack", *debs],
                   check=True, capture_output=True, timeout=300)
    subprocess.run(["dpkg", "--root", str(root), "--force-not-root", "--force-script-chrootless", "--configure",
                    "--pending"], check=True, capture_output=True, timeout=300)
    return root


def walk(value):
    """Every JSON object in ``value``, nested ones included."""
    if isinstance(value, dict):
        yield value
        value = list(value.values())
    if isinstance(value, list):
        for item in value:
            yield from walk(item)


def test_installed_packages_of_a_debian_root_are_checked_against_the_demo(demo, debian_fixture, tmp_path):
    from tests.httpd import serve

    directory, _, _ = demo
    root = dpkg_root(debian_fixture, tmp_path)
    admindir = root / "var/lib/dpkg"
    query = subprocess.run(["dpkg-query", "--admindir", str(admindir), "-W", "-f",
                            "${binary:Package} ${Architecture} ${Version} ${Source}\n"],
                           check=True, capture_output=True, text=True, timeout=60).stdout
    installed = [line.split(" ", 3) for line in query.splitlines()]
    nmu = next(row for row in installed if row[0] == "hello-nmu")
    assert nmu == ["hello-nmu", debian_fixture.arch, BINNMU_VERSION, "hello-nmu (1.0)"]  # what dpkg recorded
    assert len(installed) > 50  # the whole root, not only the fixture
    with serve(directory / "store" / "site") as base:
        res = subprocess.run([str(BIN / "rebuildctl"), "-H", base, "verify", "--installed", "--dbpath", str(admindir),
                              "--json"], capture_output=True, text=True, timeout=120,
                             env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)})
        assert res.returncode == 1, res.stderr  # not every installed package is reproduced
        report = json.loads(res.stdout)
        assert f"dpkg status file {admindir / 'status'}" in res.stderr
        status = {p["name"]: (p["version"], p["architecture"], p["status"]) for p in report["packages"]}
        arch = debian_fixture.arch
        assert {name: status[name] for name in ("hello-repro", "hello-doc", "hello-nmu", "unrepro", "gone-dep")} == {
            "hello-repro": ("1.0", arch, "GOOD"), "hello-doc": ("1.0", "all", "GOOD"),
            "hello-nmu": (BINNMU_VERSION, arch, "GOOD"), "unrepro": ("1.0", arch, "BAD"),
            "gone-dep": ("1.0", arch, "FAIL")}
        assert report["reproduced"] == 3 and report["total"] == len(installed)
        assert report["counts"]["not listed"] == len(installed) - 5  # Debian's own packages: not rebuilt here

        # The per-package feed: the binary's version and architecture and its source (name, and the
        # version of the build input: the source's with the binNMU suffix, as the .buildinfo is named).
        data = urllib.request.urlopen(f"{base}/api/v1/packages/debian/hello-nmu.json").read()
        feed = json.loads(gzip.decompress(data) if data.startswith(b"\x1f\x8b") else data)
        rows = [row for row in walk(feed) if row.get("artifact_architecture") and row.get("name") == "hello-nmu"]
        assert rows and all((r["version"], r["artifact_architecture"], r["source_name"], r["source_version"],
                             r["status"]) == (BINNMU_VERSION, arch, "hello-nmu", BINNMU_VERSION, "GOOD")
                            for r in rows), rows

        # debian-repro-status' own matching: the v0 list (one request per architecture endpoint,
        # here one site) against dpkg-query's "${binary:Package} ${Architecture} ${Version}".
        records = json.load(urllib.request.urlopen(f"{base}/api/v0/pkgs/list"))
        by_name: dict[str, list[dict]] = {}
        for record in records:
            by_name.setdefault(record["name"], []).append(record)
        verdicts = {}
        for name, pkg_arch, version, _ in installed:
            name = name.rsplit(":", 1)[0]
            found = [r["status"] for r in by_name.get(name, [])
                     if r["architecture"] == pkg_arch and r["version"] == version]
            verdicts[name] = found[0] if found else "UNKWN"
        assert {n: v for n, v in verdicts.items() if v != "UNKWN"} == {
            "hello-repro": "GOOD", "hello-doc": "GOOD", "hello-nmu": "GOOD", "unrepro": "BAD", "gone-dep": "BAD"}


def test_both_distros_in_one_run(debian_fixture, tmp_path):
    """`--distro debian --distro archlinux`: one store, one cycle, both fixture repositories."""
    from tests.fixtures_arch import require_makepkg_host

    require_makepkg_host()
    pinned_roots(debian_fixture)
    directory = tmp_path / "demo"
    shutil.copytree(debian_fixture.base, directory / "debian", symlinks=True,
                    ignore=shutil.ignore_patterns("S.gpg-agent*"))
    env = {"PATH": f"{BIN}:/usr/bin:/bin:/usr/sbin:/sbin", "HOME": str(tmp_path),
           "REBUILDER_DEBIAN_ROOT_CACHE": str(cache_dir())}
    res = subprocess.run([str(BIN / "rebuilder"), "demo", str(directory), "--distro", "debian", "--distro",
                          "archlinux", "--no-serve"], capture_output=True, text=True, timeout=1800, env=env,
                         cwd=tmp_path)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    lines = res.stdout.splitlines()
    assert any(line.startswith("sync demo: updated") for line in lines), lines
    assert any(line.startswith("sync demo-debian: updated") for line in lines), lines
    # Arch: 3 builds GOOD (one a split package), unrepro BAD, ftbfs FAIL; Debian: 3 GOOD, 1 BAD, 1 FAIL.
    assert "run: GOOD 6, BAD 2, FAIL 2, UNKWN 0" in lines
    index = json.loads((directory / "store/site/api/v1/index.json").read_text())
    assert {s["distro"] for s in index["suites"]} == {"archlinux", "debian"}
