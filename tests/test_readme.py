"""The README's generated blocks match the code (config reference, data layout)."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs.core import readme

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.parametrize("name", sorted(readme.BLOCKS))
def test_readme_block_is_current(name):
    problem = readme.block_problem(README, name)
    assert problem is None, f"{problem}\nfix: python -m jobs.core.readme --write README.md"


def test_stale_block_is_reported_and_rewritten(tmp_path):
    start, end = readme.markers("schemas")
    path = tmp_path / "README.md"
    path.write_text(f"intro\n{start}\nold text\n{end}\nrest\n")
    assert readme.main(["--check", str(path)], names=["schemas"]) == 1
    assert readme.main(["--write", str(path)], names=["schemas"]) == 0
    assert readme.main(["--check", str(path)], names=["schemas"]) == 0
    text = path.read_text()
    assert text.startswith("intro\n") and text.endswith(f"{end}\nrest\n") and "old text" not in text
