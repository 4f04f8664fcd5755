"""The snapshot written a slice at a time (`snapshot_parquet`) reads back as the whole `state_table`."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pyarrow.parquet as pq
import pytest

from jobs.core.config import Release
from jobs.core.model import PACKAGE_STATE, parquet_bytes, read_table
from jobs.sync import debian
from jobs.sync.fetch import Fetcher
from jobs.sync.records import state_table
from jobs.sync.snapshot import snapshot_parquet
from tests.sync.debian_mirror import copy_mirror
from tests.sync.test_debian import profile as debian_profile

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    mirror = copy_mirror(tmp_path_factory.mktemp("snapshot") / "mirror")
    return debian.read_index(debian_profile(mirror, architectures=("amd64", "all"),
                                            releases=(Release("sid"), Release("forky"))), Fetcher(retries=0)).inputs


@pytest.mark.parametrize("rows_per_group", [1, 3, 1000])
def test_sliced_snapshot_reads_as_the_whole_table(inputs, rows_per_group):
    whole = state_table(inputs, "sync-1", NOW)
    data = snapshot_parquet(inputs, "sync-1", NOW, rows_per_group=rows_per_group)
    groups = pq.ParquetFile(io.BytesIO(data)).num_row_groups
    assert whole.num_rows > 3 and groups == -(-whole.num_rows // rows_per_group)
    back = read_table(data)  # the project's reader: checks the schema tag and every column
    assert back.equals(read_table(parquet_bytes(whole)), check_metadata=True)
    assert back.schema.metadata == whole.schema.metadata and back.schema.equals(PACKAGE_STATE.arrow)


def test_empty_snapshot_and_naive_time():
    assert read_table(snapshot_parquet([], "sync-1", NOW)).num_rows == 0
    with pytest.raises(ValueError, match="timezone-aware"):
        snapshot_parquet([], "sync-1", datetime(2026, 1, 1))


_POOL = ("import os, jobs.sync.run, pyarrow as pa; "
         "print(pa.default_memory_pool().backend_name, os.environ.get('ARROW_DEFAULT_MEMORY_POOL'))")


@pytest.mark.skipif(sys.platform != "linux", reason="the allocator is chosen on Linux only")
def test_a_sync_process_uses_jemalloc_unless_told_otherwise():
    """jobs.sync picks Arrow's allocator before pyarrow loads and does not leave the choice in the environment;
    an operator's ARROW_DEFAULT_MEMORY_POOL wins."""
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    out = subprocess.run([sys.executable, "-c", _POOL], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.split() == ["jemalloc", "None"], out.stderr
    out = subprocess.run([sys.executable, "-c", _POOL], capture_output=True, text=True, check=True,
                         env={**env, "ARROW_DEFAULT_MEMORY_POOL": "system"})
    assert out.stdout.split() == ["system", "system"], out.stderr
