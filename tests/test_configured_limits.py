"""The limits an operator sets in rebuilderd.conf (issue #15) are enforced by the real jobs, on both
stores (`store` runs each test on the local store and on SeaweedFS, the S3 one in the full tier).

- `[sync] max_index_bytes` and `[sync] max_unpacked_bytes`: an index past them fails its
  profile naming the file and the limit, and nothing is written;
- `[publish] max_upload_bytes` and `[publish] max_report_bytes`: a worker's file past them is not
  published (never read whole), everything else is; the same files are published under the defaults.
The `[sync] deadline` is tested against a slow server in tests/test_deadlines.py.
"""

from __future__ import annotations

import random
import tomllib

import pytest

from jobs.core.bounded import LIMITS, cap
from jobs.core.config import parse_rebuilder_config, parse_sync_config
from jobs.core.model import Status
from jobs.core.signing import ensure_key
from jobs.core.store import NotFound
from jobs.publish.run import publish
from jobs.sync.fetch import FetchFailed
from jobs.sync.run import sync_profile
from jobs.sync.tar_members import CorruptIndex
from tests.publish.sitefix import DAY, NOW, Results, enrol_worker, snapshot, sync_arch
from tests.sync import alpm_builders as alpm

CONFIGURABLE = {"index_download", "index_unpacked", "mirror_deadline", "download_deadline", "upload",
                "report_decoded", "feed", "feeds_total", "request_deadline"}


def test_the_configurable_limits_say_where_they_are_set():
    assert {name for name, limit in LIMITS.items() if limit.setting} == CONFIGURABLE
    # rebuilderd.conf's keys map onto the limits they set, defaults equal.
    defaults = parse_rebuilder_config({}).limits()
    assert set(defaults) <= CONFIGURABLE and all(value == LIMITS[name].value for name, value in defaults.items())


def _profile(mirror):
    text = "\n".join(['[profile."fixture"]', 'distro = "archlinux"', 'components = ["core"]',
                      'architectures = ["x86_64"]', f'source = "{mirror.as_uri()}/$repo/os/$arch"'])
    return parse_sync_config(tomllib.loads(text)).profile("fixture")


def _mirror(tmp_path, packages: int):
    directory = tmp_path / "mirror" / "core" / "os" / "x86_64"
    directory.mkdir(parents=True)
    db = alpm.db([m for i in range(packages) for m in alpm.package(f"pkg{i}", "1.0-1")])
    (directory / "core.db").write_bytes(db)
    return tmp_path / "mirror", len(db)


@pytest.mark.parametrize("key", ["max_index_bytes", "max_unpacked_bytes"])
def test_a_configured_sync_cap_fails_the_profile_and_writes_nothing(store, tmp_path, key):
    mirror, size = _mirror(tmp_path, 200)
    limit = size - 1 if key == "max_index_bytes" else size  # unpacked, the db is several times its size
    config = parse_rebuilder_config({"sync": {key: limit}})
    error = FetchFailed if key == "max_index_bytes" else CorruptIndex
    with pytest.raises(error, match=f"{limit}|{limit:,}") as exc:
        sync_profile(store, config, _profile(mirror))
    assert "core.db" in str(exc.value)
    assert [o.key for o in store.list() if not o.key.startswith("locks/")] == []
    assert cap("index_download") == LIMITS["index_download"].value  # the run's limits ended with it
    summary = sync_profile(store, parse_rebuilder_config({"sync": {key: 64 << 20}}), _profile(mirror))
    assert summary.outcome == "updated" and summary.inputs == 200


def _noise(n: int) -> str:
    """`n` characters gzip cannot shrink much."""
    rng = random.Random(n)
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(n))


def test_configured_publish_caps_are_enforced_and_the_rest_is_published(store, tmp_path):
    sync_arch(store, tmp_path / "mirror", [alpm.package("foo", "1.0-1"), alpm.package("bar", "2.0-1")])
    rows = {r.artifact_name: r for r in snapshot(store)}
    results = Results(store)
    results.add(rows["foo"], 1, Status.FAIL, built_at=NOW - DAY, log=_noise(200_000))  # stored: ~130 kB of gzip
    results.add(rows["bar"], 1, Status.BAD, built_at=NOW - DAY, diffoscope="<p>" + "x" * 300_000 + "</p>", html=True)
    results.compact()
    enrol_worker(store)
    key = tmp_path / "rebuilder.sign.key"
    ensure_key(key)
    capped = parse_rebuilder_config({"publish": {"signing_key": str(key), "max_upload_bytes": 100_000,
                                                 "max_report_bytes": 200_000}})
    publish(store, capped, now=NOW)
    published = {o.key.removeprefix("site/api/v0/builds/") for o in store.list("site/api/v0/builds/")}
    assert "1/log" not in published  # ~130 kB stored > 100,000
    assert "2/diffoscope.html" not in published  # 300 kB decoded > 200,000
    assert {"2/log", "2/diffoscope"} <= published  # small files of the same builds are
    assert cap("upload") == LIMITS["upload"].value
    with pytest.raises(NotFound):
        store.get("site/api/v0/builds/1/log")
    # Under the defaults the next publish publishes them.
    publish(store, parse_rebuilder_config({"publish": {"signing_key": str(key)}}), now=NOW + DAY)
    published = {o.key.removeprefix("site/api/v0/builds/") for o in store.list("site/api/v0/builds/")}
    assert {"1/log", "2/diffoscope.html"} <= published
