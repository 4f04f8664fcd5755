"""README blocks generated from the code, so the documentation cannot drift from it.

Each block sits between `<!-- NAME:start -->` and `<!-- NAME:end -->`; a test fails when a
block differs from what its generator prints. `python -m jobs.core.readme --check README.md`
reports stale blocks, `--write README.md` regenerates them.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path


def _config_reference() -> str:
    from jobs.core.config.reference import config_reference_markdown
    return config_reference_markdown()


def _schemas() -> str:
    from jobs.core.model import schema_markdown
    return schema_markdown(heading_level=4)


BLOCKS: dict[str, Callable[[], str]] = {
    "config-reference": _config_reference,
    "schemas": _schemas,
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
        raise ValueError(f"the README lacks the markers {start_marker} ... {end_marker}")
    return text[:start + len(start_marker)] + "\n" + markdown + text[end:]


def block_problem(path: str | Path, name: str) -> str | None:
    """Why block `name` of the README at `path` is stale (a diff), or None if it is current."""
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
    """Regenerate the named blocks of the README at `path`."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    for name in names:
        text = replace_block(text, name, BLOCKS[name]())
    path.write_text(text, encoding="utf-8")


def main(argv: Sequence[str] | None = None, *, names: Sequence[str] = tuple(BLOCKS),
         prog: str = "python -m jobs.core.readme") -> int:
    """Print the blocks, or check/update them in a README."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--check", metavar="README", help="exit 1 if a generated block is out of date")
    group.add_argument("--write", metavar="README", help="regenerate the blocks in README")
    args = parser.parse_args(argv)
    if args.check:
        try:
            problems = [p for name in names if (p := block_problem(args.check, name))]
        except OSError as e:
            problems = [f"{args.check}: {e.strerror or e}"]
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print(f"fix: {prog} --write {args.check}", file=sys.stderr)
        return 1 if problems else 0
    if args.write:
        try:
            write_blocks(args.write, names)
        except (OSError, ValueError) as e:
            print(f"{args.write}: {e}", file=sys.stderr)
            return 1
        return 0
    for name in names:
        sys.stdout.write(BLOCKS[name]())
    return 0


if __name__ == "__main__":
    sys.exit(main())
