"""Package descriptions: read by the Arch and Debian parsers, bounded and cleaned, stored in the
package state (older snapshots without the column stay readable) and shown on package pages."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pytest

from jobs.core.model import PACKAGE_STATE, PackageStateRow, parquet_bytes, read_parquet, read_table, to_table
from jobs.core.model.limits import DESCRIPTION_MAX, clean_description
from jobs.sync.alpm_desc import parse_desc
from jobs.sync.archlinux import parse_db
from jobs.sync.debian import read_index
from jobs.sync.fetch import Fetcher
from tests.sync.alpm_builders import db, desc, package
from tests.sync.debian_mirror import copy_mirror
from tests.sync.test_debian import by_source, profile

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "sync"


def test_clean_description_keeps_one_printable_bounded_line():
    assert clean_description("  A  small\ttool \n long text\n more") == "A small tool"
    assert clean_description("evil \x1b[31mred\u202e rtl") == "evil \ufffd[31mred\ufffd rtl"
    long = clean_description("x" * 10_000)
    assert long is not None and len(long) == DESCRIPTION_MAX and long.endswith("…")
    assert clean_description("") is None and clean_description(" \n x") is None and clean_description(None) is None


def test_arch_desc_gives_the_description_and_a_bad_one_never_costs_the_package():
    assert parse_desc((FIXTURES / "arch" / "acl.v2.desc").read_bytes()).desc == \
        "Access control list utilities, libraries and headers"
    assert parse_desc(desc("foo").encode()).desc == "The foo package"
    without = desc("foo").replace("%DESC%\nThe foo package\n\n", "")
    assert parse_desc(without.encode()).desc is None
    hostile = desc("foo").replace("The foo package", "<script>x</script>\x07" + "y" * 5000)
    got = parse_desc(hostile.encode()).desc
    assert got is not None and len(got) == DESCRIPTION_MAX and got.startswith("<script>x</script>\ufffd")
    two_lines = desc("foo").replace("The foo package\n", "first line\nsecond line\n")
    assert parse_desc(two_lines.encode()).desc == "first line"  # not a reason to skip the package
    entries, skipped = parse_db(db([m for p in (package("a"), package("b")) for m in p]), repo="core",
                                base_url="https://mirror.example", location="core.db")
    assert skipped == [] and [e.description for e in entries] == ["The a package", "The b package"]


def test_debian_packages_give_the_synopsis(tmp_path):
    root = copy_mirror(tmp_path / "mirror")
    result = read_index(profile(root), Fetcher(retries=0, timeout=10))
    [art] = by_source(result)[("sid", "amd64", "hello")].artifacts
    assert art.description == "example package based on GNU hello"
    rows = [r for i in result.inputs for r in i.state_rows("s", datetime(2026, 1, 1, tzinfo=timezone.utc))]
    assert {r.description for r in rows if r.artifact_name == "hello"} == {"example package based on GNU hello"}


def _row(**kw) -> PackageStateRow:
    from tests.publish.sitefix import state_row
    return dataclasses.replace(state_row("foo"), **kw)


def test_a_snapshot_written_before_the_column_reads_with_no_description():
    table = to_table([_row(description="kept")], PackageStateRow)
    old = table.drop_columns(["description"]).replace_schema_metadata(table.schema.metadata)
    assert "description" not in old.column_names
    [row] = read_parquet(parquet_bytes_unchecked(old))
    assert row.description is None and row.artifact_name == "foo"
    new = read_table(parquet_bytes([_row(description="kept")]))
    assert new.column("description").to_pylist() == ["kept"]
    assert pa.concat_tables([read_table(parquet_bytes_unchecked(old)), new]).num_rows == 2  # what publish does
    assert PACKAGE_STATE.columns[-1].name == "description" and PACKAGE_STATE.columns[-1].nullable


def parquet_bytes_unchecked(table: pa.Table) -> bytes:
    """A Parquet file exactly as an older version wrote it (no description column)."""
    import io

    import pyarrow.parquet as pq
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


@pytest.mark.parametrize("text", ["<img src=x onerror=alert(1)>", "a\u202eb & c"])
def test_package_pages_show_the_description_escaped(tmp_path, text):
    from jobs.core.store import open_store
    from jobs.publish.site.build import build_site
    from tests.publish.sitefix import NOW, write_state
    store = open_store((tmp_path / "s").as_uri())
    write_state(store, "p", [_row(description=clean_description(text))])
    site = build_site(store, now=NOW, public_keys={"current": []}, rebuilder_name="r")
    page = site.files["packages/archlinux/foo.html"].data.decode()
    assert '<p class="pkgdesc">' in page and "<img" not in page and "\u202e" not in page
    assert ("&lt;img src=x onerror=alert(1)&gt;" in page) or ("a\ufffdb &amp; c" in page)
