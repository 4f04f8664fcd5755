"""`run_diffoscope`: the real diffoscope on small files; stand-ins only where diffoscope cannot be made to misbehave."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest

from jobs.core.config import DiffoscopeConfig
from jobs.core.errors import MissingToolError
from jobs.work.diffoscope import (
    HTML_NAME,
    PACKAGE,
    TEXT_NAME,
    Pair,
    diffoscope_argv,
    html_marker,
    run_diffoscope,
)
from tests.tools import require_tool


@pytest.fixture
def diffoscope() -> str:
    return require_tool("diffoscope", PACKAGE)


def pair(tmp_path: Path, name: str, original: str, rebuilt: str) -> Pair:
    for side, text in (("a", original), ("b", rebuilt)):
        (tmp_path / side).mkdir(exist_ok=True)
        (tmp_path / side / name).write_text(text)
    return Pair(name, tmp_path / "a" / name, tmp_path / "b" / name)


def reports_dir(tmp_path: Path) -> Path:
    path = tmp_path / "reports"
    path.mkdir()
    return path


def test_a_difference_is_reported_in_text_and_html(diffoscope, tmp_path):
    pairs = [pair(tmp_path, "one.txt", "same\nold line\n", "same\nnew line\n"),
             pair(tmp_path, "two.txt", "2\n", "two\n")]
    report = run_diffoscope(pairs, scratch=tmp_path / "s", reports=reports_dir(tmp_path),
                            config=DiffoscopeConfig(enabled=True))
    assert (report.problems, report.truncated, report.cancelled) == ([], False, False)
    assert report.text == tmp_path / "reports" / TEXT_NAME and report.html == tmp_path / "reports" / HTML_NAME
    text = report.text.read_text()
    for line in ("--- original/one.txt", "+++ rebuilt/one.txt", "-old line", "+new line", "+++ rebuilt/two.txt"):
        assert line in text
    html = report.html.read_text()
    assert "rebuilt/one.txt" in html and "rebuilt/two.txt" in html
    assert "Modify:" not in text  # no metadata noise from the two directories


def test_identical_files_are_noted(diffoscope, tmp_path):
    report = run_diffoscope([pair(tmp_path, "x", "same\n", "same\n")], scratch=tmp_path / "s",
                            reports=reports_dir(tmp_path), config=DiffoscopeConfig(enabled=True))
    assert report.problems == ["diffoscope found no differences"]


def test_text_over_the_cap_is_truncated_and_diffoscope_killed(diffoscope, tmp_path):
    long = "".join(f"line {i}\n" for i in range(5000))
    report = run_diffoscope([pair(tmp_path, "x", long, long.replace("line", "LINE"))], scratch=tmp_path / "s",
                            reports=reports_dir(tmp_path), config=DiffoscopeConfig(enabled=True, max_bytes=500),
                            kill_grace=0.5)
    assert report.truncated
    assert report.problems[0] == "diffoscope output truncated at 500 bytes (diffoscope killed)"
    data = report.text.read_bytes()
    assert data.endswith(b"\n\nTRUNCATED DUE TO SIZE LIMIT: 500 bytes\n\n")
    assert len(data) == 500 + len(b"\n\nTRUNCATED DUE TO SIZE LIMIT: 500 bytes\n\n")


def test_html_over_the_cap_is_cut_with_a_marker(diffoscope, tmp_path):
    # The text of this diff fits in 3000 bytes; diffoscope's HTML page alone is bigger.
    report = run_diffoscope([pair(tmp_path, "x", "a\n", "b\n")], scratch=tmp_path / "s",
                            reports=reports_dir(tmp_path), config=DiffoscopeConfig(enabled=True, max_bytes=3000))
    assert report.truncated
    assert report.problems == ["diffoscope HTML report truncated at 3000 bytes"]
    assert report.html.read_bytes().endswith(html_marker(3000))
    assert report.html.stat().st_size == 3000 + len(html_marker(3000))
    assert b"TRUNCATED" not in report.text.read_bytes()


def test_a_diffoscope_error_keeps_its_output(diffoscope, tmp_path):
    config = DiffoscopeConfig(enabled=True, args=("--max-container-depth", "not-a-number"))
    report = run_diffoscope([pair(tmp_path, "x", "a\n", "b\n")], scratch=tmp_path / "s",
                            reports=reports_dir(tmp_path), config=config)
    assert report.problems == ["diffoscope failed with status 2; its report may be incomplete"]
    assert "not-a-number" in report.text.read_text()  # diffoscope's own error message
    assert report.html is None


def stand_in(tmp_path: Path, body: str) -> Path:
    """A PATH directory whose ``diffoscope`` is a shell script."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "sh").symlink_to(shutil.which("sh"))
    (bindir / "sleep").symlink_to(shutil.which("sleep"))
    (bindir / "diffoscope").write_text(f"#!/bin/sh\n{body}\n")
    (bindir / "diffoscope").chmod(0o755)
    return bindir


def test_a_hanging_diffoscope_is_killed_after_its_timeout_and_grace(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(stand_in(tmp_path, "echo started; sleep 60")))
    report = run_diffoscope([pair(tmp_path, "x", "a\n", "b\n")], scratch=tmp_path / "s",
                            reports=reports_dir(tmp_path), config=DiffoscopeConfig(enabled=True, timeout=1),
                            kill_grace=0.2, process_grace=0.5)
    assert report.problems == ["diffoscope timed out after 1.5 s"]
    assert report.text.read_text().startswith("started\n\n\nTRUNCATED DUE TO TIMEOUT: 1.5 seconds")


def test_a_cancelled_run_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(stand_in(tmp_path, "sleep 60")))
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    report = run_diffoscope([pair(tmp_path, "x", "a\n", "b\n")], scratch=tmp_path / "s",
                            reports=reports_dir(tmp_path), config=DiffoscopeConfig(enabled=True),
                            cancel=cancel, kill_grace=0.2)
    assert report.cancelled


def test_a_missing_diffoscope_names_its_debian_package(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MissingToolError) as caught:
        run_diffoscope([pair(tmp_path, "x", "a\n", "b\n")], scratch=tmp_path / "s",
                       reports=reports_dir(tmp_path), config=DiffoscopeConfig(enabled=True))
    assert caught.value.package == "diffoscope-minimal"


def test_configured_args_override_the_defaults_and_precede_the_inputs(tmp_path):
    config = DiffoscopeConfig(enabled=True, args=("--max-container-depth", "2"), timeout=60, max_bytes=1000)
    assert diffoscope_argv(config, tmp_path / "r.html", "original", "rebuilt") == [
        "diffoscope", "--exclude-directory-metadata", "yes", "--max-report-size", "1000", "--max-page-size", "1000",
        "--max-container-depth", "2",
        "--timeout", "60", "--text", "-", "--html", str(tmp_path / "r.html"), "--", "original", "rebuilt",
    ]


def test_nothing_to_compare_is_a_caller_error(tmp_path):
    with pytest.raises(ValueError):
        run_diffoscope([], scratch=tmp_path / "s", reports=tmp_path, config=DiffoscopeConfig(enabled=True))
