"""`rebuilder import-rebuilderd` on databases with rebuilderd 0.24's schema (as its migrations make it).

The schema is tests/fixtures/rebuilderd-0.24-schema.sql, dumped from a database the real
daemon created; rows are inserted as the daemon's sync and build report write them (logs,
diffoscope and attestations zstd-compressed). test_import_real.py imports a database the
real daemon and worker made.
"""

from __future__ import annotations

import json
import sqlite3
import tomllib
from datetime import datetime, timezone
from pathlib import Path

import pytest
import zstandard

from jobs.core.config import RebuilderConfig, parse_sync_config
from jobs.core.history import read_history
from jobs.core.queue import read_queue
from jobs.core.store import open_store
from jobs.importer import builds
from jobs.importer import rebuilderd as importer
from jobs.importer.rebuilderd import ImportRefused, import_rebuilderd
from jobs.sync.run import sync_profile
from tests.sync import alpm_builders as alpm

SCHEMA = Path(__file__).parents[1] / "fixtures" / "rebuilderd-0.24-schema.sql"
MIRROR = "https://mirror.example/core/os/x86_64"
PACKAGES = [("alpha", "1-1", {}), ("beta", "2:3-1", {}), ("grp-a", "1-1", {"base": "grp"}),
            ("grp-b", "1-1", {"base": "grp", "arch": "any"}), ("gamma", "1-1", {})]
Z = zstandard.ZstdCompressor()


def synced_store(tmp_path: Path, packages: list = PACKAGES):
    repo = tmp_path / "repo" / "core" / "os" / "x86_64"
    repo.mkdir(parents=True)
    (repo / "core.db").write_bytes(alpm.db([m for n, v, kw in packages for m in alpm.package(n, v, **kw)]))
    store = open_store((tmp_path / "store").as_uri())
    profile = parse_sync_config(tomllib.loads(
        '[profile."arch"]\ndistro = "archlinux"\ncomponents = ["core"]\narchitectures = ["x86_64"]\n'
        f'source = "{(tmp_path / "repo").as_uri()}/$repo/os/$arch"\n')).profile("arch")
    sync_profile(store, RebuilderConfig(), profile)
    return store, f"{(tmp_path / 'repo').as_uri()}/core/os/x86_64"


def make_db(path: Path, base_url: str, *, builds: dict | None = None, queue: tuple = (),
            packages: list = PACKAGES) -> None:
    """pkgbases and packages as the daemon's sync writes them; `builds`: name -> (status, log, diff, att)."""
    builds = builds if builds is not None else {
        "alpha": ("GOOD", b"log of alpha\n", None, b'{"signed": {"_type": "link"}, "signatures": []}'),
        "beta": ("BAD", b"log of beta\n", b"--- a\n+++ b\n", None),
        "grp-a": ("GOOD", b"log of grp\n", None, b'{"signed": {"_type": "link", "n": 1}}'),
        "grp-b": ("BAD", b"log of grp\n", b"grp-b differs\n", None)}
    con = sqlite3.connect(path)
    con.executescript(SCHEMA.read_text())
    bases: dict[str, int] = {}
    for name, version, kw in packages:
        base = kw.get("base", name)
        arch = kw.get("arch", "x86_64")
        if base not in bases:
            retries = 1 if any(builds.get(n, ("",))[0] == "BAD" for n, _, k in packages if k.get("base", n) == base) \
                else 0
            cur = con.execute("INSERT INTO pkgbases (name, version, distro, suite, architecture, input_url, artifacts, "
                              "retries, next_retry) VALUES (?, ?, 'archlinux', 'core', ?, NULL, '[]', ?, NULL)",
                              (base, version, arch, retries))
            bases[base] = cur.lastrowid
        build_id = built_at = None
        status, diff, att = "UNKWN", None, None
        if name in builds:
            status, log, diff, att = builds[name]
            build_id = con.execute("INSERT INTO builds (diffoscope, build_log, attestation) VALUES (?, ?, ?)",
                                   (diff and Z.compress(diff), Z.compress(log), att and Z.compress(att))).lastrowid
            built_at = "2026-05-01 10:00:00.123456789"
        con.execute("INSERT INTO packages (pkgbase_id, name, version, status, distro, suite, architecture, "
                    "artifact_url, build_id, built_at, has_diffoscope, has_attestation, checksum) "
                    "VALUES (?, ?, ?, ?, 'archlinux', 'core', ?, ?, ?, ?, ?, ?, NULL)",
                    (bases[base], name, version, status, arch, f"{base_url}/{name}-{version}-{arch}.pkg.tar.zst",
                     build_id, built_at, diff is not None, att is not None))
    for name, priority in queue:
        con.execute("INSERT INTO queue (pkgbase_id, version, required_backend, priority, queued_at) "
                    "VALUES (?, '1-1', 'archlinux', ?, '2026-05-01 09:00:00')", (bases[name], priority))
    con.commit()
    con.close()


def by_source(store) -> dict:
    return {r["source_name"]: r for r in read_history(store).to_pylist()}


def test_import_keeps_verdicts_files_and_queue(tmp_path):
    store, url = synced_store(tmp_path)
    make_db(tmp_path / "rebuilderd.db", url, queue=(("gamma", 0),))
    summary = import_rebuilderd(store, RebuilderConfig(), tmp_path / "rebuilderd.db")
    assert (summary.builds, summary.packages, summary.unbuilt, summary.unmatched, summary.rejected) == (3, 4, 1, 0, 0)
    assert summary.queued == 1
    rows = by_source(store)
    assert {k: r["status"] for k, r in rows.items()} == {"alpha": "GOOD", "beta": "BAD", "grp": "BAD"}
    assert {a["name"]: a["status"] for a in rows["grp"]["artifacts"]} == {"grp-a": "GOOD", "grp-b": "BAD"}
    assert rows["alpha"]["attempt"] == 1 and rows["beta"]["attempt"] == 1
    assert rows["beta"]["built_at"] == datetime(2026, 5, 1, 10, 0, 0, 123456, tzinfo=timezone.utc)
    import gzip

    assert gzip.decompress(store.get(rows["beta"]["log_key"]).data) == b"log of beta\n"
    assert gzip.decompress(store.get(rows["beta"]["diffoscope_key"]).data) == b"--- a\n+++ b\n"
    assert json.loads(store.get(rows["alpha"]["attestation_key"]).data)["signed"] == {"_type": "link"}
    # the group: the first artifact's attestation, the second's diffoscope (the first has none), all kept
    assert {f["key"].rsplit("/", 1)[1] for f in rows["grp"]["files"]} == {"log", "attestation.json",
                                                                          "diffoscope.txt"}
    queued = {j.source_name: j for j in read_queue(store).jobs.values()}
    assert queued["gamma"].priority == 0

    again = import_rebuilderd(store, RebuilderConfig(), tmp_path / "rebuilderd.db")
    assert (again.builds, again.present, again.files) == (0, 3, 0)
    assert len(read_history(store)) == 3


def test_a_killed_import_is_finished_by_the_next(tmp_path, monkeypatch):
    store, url = synced_store(tmp_path)
    make_db(tmp_path / "rebuilderd.db", url)
    real = importer.compact
    calls = []

    def dying(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(importer, "compact", dying)
    with pytest.raises(KeyboardInterrupt):
        import_rebuilderd(store, RebuilderConfig(), tmp_path / "rebuilderd.db", batch=1)
    assert len(read_history(store)) == 1
    monkeypatch.setattr(importer, "compact", real)
    summary = import_rebuilderd(store, RebuilderConfig(), tmp_path / "rebuilderd.db", batch=1)
    assert (summary.builds, summary.present) == (2, 1)
    assert set(by_source(store)) == {"alpha", "beta", "grp"}


def test_hostile_rows_are_refused_by_name_and_the_rest_imported(tmp_path):
    store, url = synced_store(tmp_path)
    db = tmp_path / "rebuilderd.db"
    make_db(db, url)
    con = sqlite3.connect(db)
    con.execute("UPDATE packages SET version = ? WHERE name = 'alpha'", ("1-1\x1b[31m",))
    con.execute("UPDATE packages SET status = 'EVIL' WHERE name = 'beta'")
    bomb = Z.compress(b"\0" * (builds.LOG_MAX + 1))
    con.execute("UPDATE builds SET build_log = ? WHERE id = (SELECT build_id FROM packages WHERE name = 'grp-a')",
                (bomb,))
    con.execute("INSERT INTO queue (pkgbase_id, version, required_backend, priority, queued_at) "
                "VALUES (1, 'x', 'archlinux', 1, 'yesterday')")
    con.commit()
    con.close()
    summary = import_rebuilderd(store, RebuilderConfig(), db)
    assert summary.builds == 0 and summary.rejected == 5
    text = "\n".join(summary.problems)
    assert "control, bidi or space characters" in text and "\x1b" not in text
    assert "status is not GOOD, BAD or UNKWN: 'EVIL'" in text
    assert f"build_log is more than {builds.LOG_MAX} bytes" in text
    assert "queued_at out of bounds" in text
    assert len(read_history(store)) == 0


@pytest.mark.parametrize("damage, message", [
    ("not sqlite", "not an SQLite database"),
    ("DROP TABLE builds", "no table 'builds'"),
    ("DROP TABLE builds; CREATE VIEW builds AS SELECT 1 AS id", "no table 'builds' (a view)"),
    ("CREATE TABLE build_inputs (id INTEGER)", "rebuilderd 0.26 or later"),
    ("ALTER TABLE packages DROP COLUMN built_at", "lacks the columns built_at"),
])
def test_a_database_that_is_not_rebuilderds_is_refused_with_the_reason(tmp_path, damage, message):
    store, url = synced_store(tmp_path)
    db = tmp_path / "rebuilderd.db"
    if damage == "not sqlite":
        db.write_bytes(b"PK\x03\x04 not a database" * 100)
    else:
        make_db(db, url)
        con = sqlite3.connect(db)
        con.executescript(damage)
        con.close()
    with pytest.raises(ImportRefused, match=message.replace("(", r"\(").replace(")", r"\)")):
        import_rebuilderd(store, RebuilderConfig(), db)
    assert len(read_history(store)) == 0


def test_unsynced_packages_are_counted_and_an_empty_store_refused(tmp_path):
    store, url = synced_store(tmp_path)
    db = tmp_path / "rebuilderd.db"
    make_db(db, "https://elsewhere.example/core/os/x86_64")
    summary = import_rebuilderd(store, RebuilderConfig(), db)
    assert (summary.builds, summary.unmatched) == (0, 5)
    assert "no synced state row" in summary.problems[0]
    empty = open_store((tmp_path / "empty").as_uri())
    with pytest.raises(ImportRefused, match="run `rebuilder sync`"):
        import_rebuilderd(empty, RebuilderConfig(), db)
    with pytest.raises(ImportRefused, match="no such file"):
        import_rebuilderd(store, RebuilderConfig(), tmp_path / "missing.db")


@pytest.mark.full("imports 240 MiB of logs (about 5 s)")
def test_memory_holds_one_build_not_the_database(tmp_path):
    """60 builds with a 4 MiB log each (zstd-compressed in the database, as 0.24 keeps them)."""
    import tracemalloc

    packages = [(f"pkg{i:03d}", "1-1", {}) for i in range(60)]
    store, url = synced_store(tmp_path, packages)
    log = b"a line of a long build log, repeated\n" * (4 * 1024 * 1024 // 37)
    make_db(tmp_path / "rebuilderd.db", url, packages=packages,
            builds={n: ("GOOD", log + n.encode(), None, None) for n, _, _ in packages})
    tracemalloc.start()
    try:
        summary = import_rebuilderd(store, RebuilderConfig(), tmp_path / "rebuilderd.db", batch=10)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert summary.builds == 60 and summary.files == 60
    assert peak < 24 * 1024 * 1024, peak  # a few copies of one 4 MiB log, not 60 of them
