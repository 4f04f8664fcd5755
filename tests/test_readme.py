"""The generated blocks of the docs match the code (config reference, CLI reference, schemas)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from jobs import readme

FIX = "python -m jobs.readme --write"


@pytest.mark.parametrize(("page", "name"), [(page, name) for page, names in readme.PAGES.items() for name in names])
def test_generated_block_is_current(page, name):
    problem = readme.block_problem(readme.ROOT / page, name)
    assert problem is None, f"{problem}\nfix: {FIX}"


def test_every_block_is_on_a_page():
    placed = [name for names in readme.PAGES.values() for name in names]
    assert sorted(placed) == sorted(readme.BLOCKS), "each generated block lives on exactly one page"


def test_stale_block_is_reported_and_rewritten(tmp_path):
    start, end = readme.markers("schemas")
    path = tmp_path / "page.md"
    path.write_text(f"intro\n{start}\nold text\n{end}\nrest\n")
    assert readme.main(["--check", str(path)], names=["schemas"]) == 1
    assert readme.main(["--write", str(path)], names=["schemas"]) == 0
    assert readme.main(["--check", str(path)], names=["schemas"]) == 0
    text = path.read_text()
    assert text.startswith("intro\n") and text.endswith(f"{end}\nrest\n") and "old text" not in text


def test_a_page_outside_docs_is_checked_by_its_markers(tmp_path, capsys):
    start, end = readme.markers("cli-rebuildctl")
    path = tmp_path / "page.md"
    path.write_text(f"{start}\nstale\n{end}\n")
    assert readme.main(["--check", str(path)]) == 1
    assert FIX in capsys.readouterr().err
    assert readme.main(["--write", str(path)]) == 0
    assert readme.main(["--check", str(path)]) == 0
    assert "### `rebuildctl pkgs ls`" in path.read_text()
    # A page with no markers at all is an error, not silently "current".
    bare = tmp_path / "bare.md"
    bare.write_text("no markers\n")
    assert readme.main(["--check", str(bare)]) == 1
    assert readme.main(["--write", str(bare)]) == 1


def test_check_of_every_page_from_the_command_line():
    out = subprocess.run([sys.executable, "-m", "jobs.readme", "--check"], cwd=readme.ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


def test_cli_reference_is_independent_of_the_terminal(monkeypatch):
    from jobs.cli_reference import cli_reference_markdown

    first = cli_reference_markdown("rebuilder")
    monkeypatch.setenv("COLUMNS", "40")
    monkeypatch.setenv("REBUILDER_STORE", "s3://somewhere/else")
    assert cli_reference_markdown("rebuilder") == first
