"""Documentation blocks generated from the code, so the docs cannot drift from it.

Each block sits between `<!-- NAME:start -->` and `<!-- NAME:end -->` in one of the pages in
`PAGES`; a test fails when a block differs from what its generator prints.
`python -m jobs.readme --check` reports stale blocks in every page, `--write` regenerates
them (`--check FILE`/`--write FILE` for some pages only); with neither it prints the blocks.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from jobs.core import docblocks
from jobs.core.docblocks import ROOT, block, markers, replace_block

__all__ = ["BLOCKS", "PAGES", "ROOT", "block", "block_problem", "main", "markers", "replace_block", "write_blocks"]


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


def block_problem(path: str | Path, name: str) -> str | None:
    """Why block `name` of the page at `path` is stale (a diff), or None if it is current."""
    return docblocks.block_problem(path, name, BLOCKS[name])


def write_blocks(path: str | Path, names: Sequence[str] = tuple(BLOCKS)) -> None:
    """Regenerate the named blocks of the page at `path`."""
    docblocks.write_blocks(path, BLOCKS, names)


def main(argv: Sequence[str] | None = None, *, names: Sequence[str] | None = None,
         prog: str = "python -m jobs.readme") -> int:
    """Print the blocks, or check/update them in the documentation pages."""
    return docblocks.main(argv, generators=BLOCKS, pages=PAGES, names=names, prog=prog,
                          description=__doc__.splitlines()[0])


if __name__ == "__main__":
    sys.exit(main())
