"""Stores built from many corpus cases at once, published with the real publish job, and read back.

One publish per world (not per case) keeps the corpus fast; a case that might bring publish
down is marked `isolated` in the manifest and gets a world of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from jobs.core.config import RebuilderConfig
from jobs.core.history import read_history
from jobs.core.model import PackageStateRow, Status, read_parquet
from jobs.core.pointer import Pointer
from jobs.core.store import LocalStore
from jobs.publish.run import PublishSummary, publish
from jobs.sync.run import sync_profile
from tests.hostile import forge
from tests.hostile.manifest import Case
from tests.hostile.sitecheck import PublishedSite
from tests.hostile.syncrun import arch_profile, debian_profile
from tests.publish.sitefix import NOW, Results, state_row, write_state
from tests.publish.test_verify import config_for
from tests.sync import alpm_builders as alpm

ALLOWED_PREFIXES = ("site/", "history/", "queue/", "locks/")


@dataclass
class World:
    """A store, what publish said about it, and the site it wrote."""

    store: LocalStore
    root: Path
    before: set[str]
    summary: PublishSummary | None = None
    site: PublishedSite | None = None
    planted: dict[str, forge.Planted] = field(default_factory=dict)
    rows: dict[str, PackageStateRow] = field(default_factory=dict)  # case id -> its package-state row

    def publish(self, config: RebuilderConfig) -> None:
        """Run the real publish job and read back what it wrote."""
        self.before = {info.key for info in self.store.list()}
        self.summary = publish(self.store, config, now=NOW, rebuilder_name="hostile <corpus>")
        self.site = PublishedSite.read(self.store)

    def new_keys_outside(self) -> list[str]:
        """Keys publish wrote outside the prefixes it owns."""
        return sorted(info.key for info in self.store.list()
                      if info.key not in self.before and not info.key.startswith(ALLOWED_PREFIXES))

    def state_rows(self) -> list[PackageStateRow]:
        """The rows of every profile's current snapshot."""
        rows = []
        for info in self.store.list("state/"):
            if info.key.endswith("/HEAD.json"):
                value, _ = Pointer(self.store, info.key.removesuffix("/HEAD.json")).read()
                rows += read_parquet(self.store.get(value.target).data)
        return rows

    def history_build_ids(self) -> set[str]:
        return set(read_history(self.store).column("build_id").to_pylist())


def _store(root: Path) -> LocalStore:
    return LocalStore(root, fsync=False)


def synced_world(tmp: Path, cases: list[Case]) -> World:
    """The arch-desc and debian-mirror cases that are kept, synced into one store (one profile each), published."""
    root = tmp / "store"
    store = _store(root)
    descs = [c for c in cases if c.kind == "arch-desc"]
    if descs:
        index = tmp / "arch-index"
        index.mkdir(parents=True)
        members = [alpm.M(f"site{i}-1-1/desc", c.path().read_bytes()) for i, c in enumerate(descs)]
        (index / "core.db").write_bytes(alpm.db([*alpm.package("good", "1.0-1"), *members]))
        sync_profile(store, RebuilderConfig(), arch_profile(index, "site-arch"))
    for case in (c for c in cases if c.kind == "debian-mirror"):
        sync_profile(store, RebuilderConfig(), debian_profile(case.path(), f"site-{case.id}"))
    world = World(store, root, set())
    world.publish(config_for(tmp))
    return world


def state_world(tmp: Path, cases: list[Case]) -> World:
    """A snapshot written by hand with one row per state-row case, a BAD build of each, published.

    The rows are what no index parser accepts but a sync credential could write: the site must
    cope with any name. Each build's reason and diffoscope report carry the same payload.
    """
    root = tmp / "store"
    store = _store(root)
    world = World(store, root, set())
    for case in cases:
        spec = case.load_json()
        world.rows[case.id] = state_row(spec["name"], spec.get("version", "1-1"), source=spec.get("source"),
                                        distro=spec.get("distro", "archlinux"), release=spec.get("release"),
                                        component=spec.get("component", "core"),
                                        arch=spec.get("architecture", "x86_64"))
    write_state(store, "hostile", list(world.rows.values()))
    results = Results(store)
    for case in cases:
        spec = case.load_json()
        payload = spec.get("reason", spec["name"])
        results.add(world.rows[case.id], 1, Status.BAD, built_at=NOW, reason=f"not reproducible: {payload}",
                    diffoscope=f"--- {payload}\n+++ {payload}\n", worker=f"worker {payload}")
    results.compact()
    world.publish(config_for(tmp))
    return world


def result_world(tmp: Path, cases: list[Case], generated: Path) -> World:
    """Every result case planted in one store (each for a package of its own), then one publish."""
    root = tmp / "store"
    store = _store(root)
    world = World(store, root, set())
    keys = forge.Keys()
    world.rows = {c.id: forge.row_for(c.id) for c in cases}
    write_state(store, "results", list(world.rows.values()))
    forge.queue_rows(store, list(world.rows.values()))
    for case in cases:
        world.planted[case.id] = forge.plant(store, keys, case.id, case.path(generated), world.planted)
    world.publish(config_for(tmp, authorized=keys.trusted()))
    return world
