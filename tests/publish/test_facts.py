"""Which history rows publish still has to learn facts for (`jobs.publish.site.facts.unlearned`)."""

from __future__ import annotations

import pyarrow as pa

from jobs.publish.site.facts import unlearned


def ids(table: pa.Table) -> list[str]:
    return table.column("build_id").to_pylist()


def history(*build_ids: str) -> pa.Table:
    return pa.table({"build_id": pa.array(build_ids, pa.string()), "n": pa.array(range(len(build_ids)))})


def facts(*build_ids: str) -> pa.Table:
    return pa.table({"build_id": pa.array(build_ids, pa.string())})


def test_facts_learned_in_history_order_leave_the_rows_after_them():
    assert ids(unlearned(history("a", "b", "c", "d"), facts("a", "b"))) == ["c", "d"]
    assert ids(unlearned(history("a", "b"), facts("a", "b"))) == []
    assert ids(unlearned(history("a", "b"), facts())) == ["a", "b"]
    chunked = pa.concat_tables([history("a"), history("b", "c")])  # parts of the history
    assert ids(unlearned(chunked, facts("a", "b"))) == ["c"]


def test_facts_in_another_order_or_of_other_builds_are_matched_by_id():
    assert ids(unlearned(history("a", "b", "c", "d"), facts("b", "a"))) == ["c", "d"]
    assert ids(unlearned(history("a", "b", "c", "d"), facts("c"))) == ["a", "b", "d"]
    assert ids(unlearned(history("a", "b"), facts("x", "a", "b"))) == []
    assert ids(unlearned(history("a", "b", "c"), facts("a", "x"))) == ["b", "c"]
