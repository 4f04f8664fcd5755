"""Documentation blocks generated from the code, so the docs cannot drift from it.

Each block sits between `<!-- NAME:start -->` and `<!-- NAME:end -->` in one of the pages in
`PAGES`; a test fails when a block differs from what its generator prints.
`python -m jobs.readme --check` reports stale blocks in every page, `--write` regenerates
them (`--check FILE`/`--write FILE` for some pages only); with neither it prints the blocks.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _config_reference() -> str:
    from jobs.core.config.reference import config_reference_markdown
    return config_reference_markdown()


def _schemas() -> str:
    from jobs.core.model import schema_markdown
    return schema_markdown(heading_level=3)


def _limits() -> str:
    from jobs.core.bounded import limits_markdown
    return limits_markdown()


def _cli(program: str) -> Callable[[], str]:
    def generate() -> str:
        from jobs.cli_reference import cli_reference_markdown
        return cli_reference_markdown(program)
    return generate


BLOCKS: dict[str, Callable[[], str]] = {
    "config-reference": _config_reference,
    "schemas": _schemas,
    "limits": _limits,
    "cli-rebuilder": _cli("rebuilder"),
    "cli-rebuildctl": _cli("rebuildctl"),
}

# Which page (relative to the repository root) carries which generated blocks.
PAGES: dict[str, tuple[str, ...]] = {
    "docs/configuration.md": ("config-reference",),
    "docs/design.md": ("schemas", "limits"),
    "docs/cli.md": ("cli-rebuilder", "cli-rebuildctl"),
}


def markers(name: str) -> tuple[str, str]:
    """The start and end markers of block `name`."""
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def block(text: str, name: str) -> str | None:
    """The text between the markers of block `name`, or None if they are missing."""
    start_marker, end_marker = markers(name)
    start = text.find(start_marker)
    end = text.find(end_marker, start + 1)
    if start < 0 or end < 0:
        return None
    return text[start + len(start_marker):end].removeprefix("\n")


def replace_block(text: str, name: str, markdown: str) -> str:
    """`text` with block `name` replaced by `markdown`."""
    start_marker, end_marker = markers(name)
    start = text.find(start_marker)
    end = text.find(end_marker, start + 1)
    if start < 0 or end < 0:
        raise ValueError(f"the page lacks the markers {start_marker} ... {end_marker}")
    return text[:start + len(start_marker)] + "\n" + markdown + text[end:]


def block_problem(path: str | Path, name: str) -> str | None:
    """Why block `name` of the page at `path` is stale (a diff), or None if it is current."""
    text = Path(path).read_text(encoding="utf-8")
    current = block(text, name)
    if current is None:
        start_marker, end_marker = markers(name)
        return f"{path}: no {start_marker} ... {end_marker} block"
    expected = BLOCKS[name]()
    if current == expected:
        return None
    return "".join(difflib.unified_diff(current.splitlines(keepends=True), expected.splitlines(keepends=True),
                                        f"{path} ({name})", "generated"))


def write_blocks(path: str | Path, names: Sequence[str] = tuple(BLOCKS)) -> None:
    """Regenerate the named blocks of the page at `path`."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    for name in names:
        text = replace_block(text, name, BLOCKS[name]())
    path.write_text(text, encoding="utf-8")


def blocks_of(path: str | Path) -> tuple[str, ...]:
    """The generated blocks a page carries: those `PAGES` assigns it, else those whose markers it has."""
    path = Path(path)
    resolved = path.resolve()
    for page, names in PAGES.items():
        if (ROOT / page).resolve() == resolved:
            return names
    text = path.read_text(encoding="utf-8")
    return tuple(name for name in BLOCKS if markers(name)[0] in text)


def _targets(files: Sequence[str], names: Sequence[str] | None) -> list[tuple[Path, tuple[str, ...]]]:
    if not files:
        return [(ROOT / page, tuple(names) if names is not None else blocks) for page, blocks in PAGES.items()
                if names is None or set(names) & set(blocks)]
    return [(Path(f), tuple(names) if names is not None else blocks_of(f)) for f in files]


def main(argv: Sequence[str] | None = None, *, names: Sequence[str] | None = None,
         prog: str = "python -m jobs.readme") -> int:
    """Print the blocks, or check/update them in the documentation pages."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--check", nargs="*", metavar="FILE",
                       help="exit 1 if a generated block is out of date [default: every page in docs/]")
    group.add_argument("--write", nargs="*", metavar="FILE",
                       help="regenerate the blocks [default: every page in docs/]")
    args = parser.parse_args(argv)
    if args.check is not None:
        problems = []
        for path, blocks in _targets(args.check, names):
            try:
                if not blocks:
                    problems.append(f"{path}: no generated block")
                problems += [p for name in blocks if (p := block_problem(path, name))]
            except OSError as e:
                problems.append(f"{path}: {e.strerror or e}")
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print(f"fix: {prog} --write {' '.join(args.check)}".rstrip(), file=sys.stderr)
        return 1 if problems else 0
    if args.write is not None:
        status = 0
        for path, blocks in _targets(args.write, names):
            try:
                if not blocks:
                    raise ValueError("no generated block")
                write_blocks(path, blocks)
            except (OSError, ValueError) as e:
                print(f"{path}: {e}", file=sys.stderr)
                status = 1
        return status
    for name in names if names is not None else BLOCKS:
        sys.stdout.write(BLOCKS[name]())
    return 0


if __name__ == "__main__":
    sys.exit(main())
