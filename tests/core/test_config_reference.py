"""The generated configuration reference: complete, deterministic, and what docs/configuration.md shows."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from jobs.core.config import RebuilderConfig, SyncConfig, WorkerConfig, config_reference_markdown
from jobs.core.config.fields import settings_of, toml_key
from jobs.core.config.reference import BLOCK, END_MARKER, START_MARKER, main
from jobs.core.docblocks import block, block_problem, replace_block

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "configuration.md"
# Fields that are not TOML keys: a profile's name is the name of its table.
NOT_KEYS = {("SyncProfile", "name")}


def all_dataclasses(cls: type, seen: set[type] | None = None) -> set[type]:
    """``cls`` and every config dataclass reachable from its fields."""
    seen = set() if seen is None else seen
    seen.add(cls)
    for _, s in settings_of(cls):
        for inner in (getattr(s.kind, "cls", None), getattr(s.kind, "item_cls", None)):
            if inner is not None and inner not in seen:
                all_dataclasses(inner, seen)
    return seen


MODELS = sorted(set().union(*(all_dataclasses(m) for m in (RebuilderConfig, WorkerConfig, SyncConfig))),
                key=lambda c: c.__name__)


@pytest.mark.parametrize("cls", MODELS, ids=lambda c: c.__name__)
def test_every_field_is_a_documented_key(cls: type) -> None:
    markdown = config_reference_markdown()
    keyed = {f.name for f, _ in settings_of(cls)}
    for f in dataclasses.fields(cls):
        if (cls.__name__, f.name) in NOT_KEYS:
            continue
        assert f.name in keyed, f"{cls.__name__}.{f.name} has no setting() metadata"
    for f, s in settings_of(cls):
        key = toml_key(f, s)
        # section tables show up as the [key] prefix of their rows, plain keys as the row's last word
        assert f"{key}`" in markdown or f"[{key}" in markdown, f"{cls.__name__}.{f.name} undocumented"
        for alias in s.aliases:
            assert f" {alias.key}`" in markdown
        if s.kind.__class__.__name__ not in {"Table", "TableMap"}:
            assert s.doc, f"{cls.__name__}.{f.name} needs a meaning"


def test_reference_shape() -> None:
    markdown = config_reference_markdown()
    assert markdown == config_reference_markdown(), "deterministic"
    assert markdown.endswith("\n") and not markdown.endswith("\n\n")
    for name in ("rebuilderd.conf", "rebuilderd-worker.conf", "rebuilderd-sync.conf"):
        assert f"## `{name}`" in markdown
    assert markdown.count("| key | type | default | meaning |") == 3
    for needle in ("`$REBUILDER_CONFIG`", "`/etc/rebuilderd.conf`", "`~/.config/rebuilderd.conf`",
                   "`$REBUILDERD_COOKIE_PATH`", "`[schedule] retry_delay_base` | integer >= 0 | `24`",
                   '`[profile."<name>"] include[].binary_pkgs`', "`[lease] ttl` | integer >= 1 | `600`"):
        assert needle in markdown
    for line in markdown.splitlines():
        if line.startswith("| `"):
            assert line.count(" | ") == 3, f"a '|' leaked into a cell: {line}"


def test_block_helpers_round_trip() -> None:
    text = f"# Title\n\n{START_MARKER}\nold text\n{END_MARKER}\n\nmore\n"
    assert block(text, BLOCK) == "old text\n"
    new = replace_block(text, BLOCK, "new\n")
    assert block(new, BLOCK) == "new\n"
    assert new.startswith("# Title\n") and new.endswith(f"{END_MARKER}\n\nmore\n")
    assert block("no markers", BLOCK) is None
    with pytest.raises(ValueError):
        replace_block("no markers", BLOCK, "x")


def test_cli_check_and_write(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{START_MARKER}\nstale\n{END_MARKER}\n")
    assert main(["--check", str(readme)]) == 1
    assert "--write" in capsys.readouterr().err
    assert main(["--write", str(readme)]) == 0
    assert main(["--check", str(readme)]) == 0
    assert block_problem(readme, BLOCK, config_reference_markdown) is None
    assert readme.read_text().startswith("intro\n")
    assert main(["--check", str(tmp_path / "missing.md")]) == 1
    readme.write_text("no markers\n")
    assert main(["--write", str(readme)]) == 1


def test_module_prints_reference() -> None:
    out = subprocess.run([sys.executable, "-W", "error", "-m", "jobs.core.config.reference"],
                         cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout == config_reference_markdown()
    assert out.stderr == ""


def test_docs_show_the_generated_reference() -> None:
    assert block(PAGE.read_text(encoding="utf-8"), BLOCK) is not None, f"{PAGE} lacks the {START_MARKER} block"
    problem = block_problem(PAGE, BLOCK, config_reference_markdown)
    assert problem is None, f"{PAGE} is stale; run `python -m jobs.readme --write`\n{problem}"
