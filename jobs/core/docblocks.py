"""Generated blocks in documentation pages: find, replace, check and rewrite them.

A block sits between `<!-- NAME:start -->` and `<!-- NAME:end -->` in a page; its text comes from a
generator (a function returning markdown). `jobs.readme` holds the registry of every block and
page; a module that owns one block (e.g. `jobs.core.config.reference`) can run `main` on that
block alone. Nothing here knows what the blocks say.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

Generators = Mapping[str, Callable[[], str]]
Pages = Mapping[str, tuple[str, ...]]


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


def block_problem(path: str | Path, name: str, generate: Callable[[], str]) -> str | None:
    """Why block `name` of the page at `path` differs from `generate()` (a diff), or None if it is current."""
    text = Path(path).read_text(encoding="utf-8")
    current = block(text, name)
    if current is None:
        start_marker, end_marker = markers(name)
        return f"{path}: no {start_marker} ... {end_marker} block"
    expected = generate()
    if current == expected:
        return None
    return "".join(difflib.unified_diff(current.splitlines(keepends=True), expected.splitlines(keepends=True),
                                        f"{path} ({name})", "generated"))


def write_blocks(path: str | Path, generators: Generators, names: Sequence[str] | None = None) -> None:
    """Regenerate the named blocks (default: every one of `generators`) of the page at `path`."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    for name in names if names is not None else tuple(generators):
        text = replace_block(text, name, generators[name]())
    path.write_text(text, encoding="utf-8")


def blocks_of(path: str | Path, generators: Generators, pages: Pages) -> tuple[str, ...]:
    """The generated blocks a page carries: those `pages` assigns it, else those whose markers it has."""
    path = Path(path)
    resolved = path.resolve()
    for page, names in pages.items():
        if (ROOT / page).resolve() == resolved:
            return names
    text = path.read_text(encoding="utf-8")
    return tuple(name for name in generators if markers(name)[0] in text)


def _targets(files: Sequence[str], names: Sequence[str] | None, generators: Generators,
             pages: Pages) -> list[tuple[Path, tuple[str, ...]]]:
    if not files:
        return [(ROOT / page, tuple(names) if names is not None else blocks) for page, blocks in pages.items()
                if names is None or set(names) & set(blocks)]
    return [(Path(f), tuple(names) if names is not None else blocks_of(f, generators, pages)) for f in files]


def main(argv: Sequence[str] | None, *, generators: Generators, pages: Pages, names: Sequence[str] | None = None,
         prog: str, description: str) -> int:
    """Print the blocks, or check/update them in the documentation pages."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--check", nargs="*", metavar="FILE",
                       help="exit 1 if a generated block is out of date [default: every page in docs/]")
    group.add_argument("--write", nargs="*", metavar="FILE",
                       help="regenerate the blocks [default: every page in docs/]")
    args = parser.parse_args(argv)
    if args.check is not None:
        problems = []
        for path, blocks in _targets(args.check, names, generators, pages):
            try:
                if not blocks:
                    problems.append(f"{path}: no generated block")
                problems += [p for name in blocks if (p := block_problem(path, name, generators[name]))]
            except OSError as e:
                problems.append(f"{path}: {e.strerror or e}")
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print(f"fix: {prog} --write {' '.join(args.check)}".rstrip(), file=sys.stderr)
        return 1 if problems else 0
    if args.write is not None:
        status = 0
        for path, blocks in _targets(args.write, names, generators, pages):
            try:
                if not blocks:
                    raise ValueError("no generated block")
                write_blocks(path, generators, blocks)
            except (OSError, ValueError) as e:
                print(f"{path}: {e}", file=sys.stderr)
                status = 1
        return status
    for name in names if names is not None else generators:
        sys.stdout.write(generators[name]())
    return 0
