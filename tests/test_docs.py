"""The documentation says only true things about the code, and the repository stands alone.

- every `rebuilder …` / `rebuildctl …` command and every flag named in README.md and docs/*.md
  (code blocks and inline code) exists in the real typer apps (the click command tree is walked);
  flags of `python -m MODULE …` commands appear in that module's `--help`;
- every relative link and every repository path named in inline code resolves;
- every `docs/<page>.md#<anchor>` the code cites exists;
- no file points outside the repository (the design notes it grew from are not part of it);
- the README stays short, and the object layout in docs/design.md names every store prefix;
- the systemd units, compose file, workflows and scripts call `rebuilder` commands that exist.
"""

from __future__ import annotations

import functools
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobs.cli_reference import apps, option_names, walk

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
README_LIMIT = 10_000
# Paths the docs name that other branches of this work add (the merge brings them); tolerated here.
NOT_YET_HERE: set[str] = set()

FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
INLINE = re.compile(r"(?<!`)`([^`]+)`(?!`)")  # a span may wrap onto the next line
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
PROGRAMS = ("rebuilder", "rebuildctl")


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def code_texts(text: str) -> Iterator[str]:
    """Each line of every fenced code block, then every inline code span outside them."""
    for block in FENCE.findall(text):
        yield from block.splitlines()
    yield from inline_spans(text)


def inline_spans(text: str) -> list[str]:
    """Inline code outside fenced blocks, a wrapped span joined onto one line."""
    return [" ".join(span.split()) for span in INLINE.findall(FENCE.sub("", text))]


# --- commands and flags -------------------------------------------------------------------------

@functools.cache
def trees() -> dict[str, dict[tuple[str, ...], object]]:
    """program → {command path (without the program): click command}."""
    return {program: {tuple(path.split()[1:]): command for path, command, _ in walk(root, program)}
            for program, root in apps().items()}


@functools.cache
def every_flag() -> frozenset[str]:
    names = {name for tree in trees().values() for command in tree.values() for name in option_names(command)}
    return frozenset(names | {"--help", "-h"})  # both programs take -h too (jobs.core.cliapp.HELP_OPTIONS)


def _takes_value(command: object, flag: str) -> bool:
    for param in command.params:  # type: ignore[attr-defined]
        if flag in getattr(param, "opts", ()) and param.param_type_name == "option":
            return not (param.is_flag or param.count)
    return False


FLAG = re.compile(r"^\[?(--?[A-Za-z][\w-]*)")
WORD = re.compile(r"^[a-z][a-z0-9-]*$")
STOP = {"|", "||", "&&", ";", ">", "2>", "2>&1", "#", "\\"}
# What may stand before a program on a line: a prompt, sudo, environment assignments, help text.
LEAD = re.compile(r"^(?:\$ |sudo |Usage: |Example: |(?:[A-Z_][A-Z0-9_]*=\S* )+)*")


def check_invocation(tokens: list[str]) -> list[str]:
    """Problems with one `rebuilder …` / `rebuildctl …` invocation (tokens[0] is the program)."""
    program, tree = tokens[0], trees()[tokens[0]]
    path: tuple[str, ...] = ()
    words_done = False
    problems = []
    i = 1
    while i < len(tokens):
        token = tokens[i]
        i += 1
        if token in STOP or token.startswith("#"):
            break
        flag = FLAG.match(token)
        if flag:
            name = flag.group(1)
            owners = [tree[path[:n]] for n in range(len(path), -1, -1)]  # the command and its ancestors
            owner = next((c for c in owners if name in option_names(c)), None)
            if owner is None:
                problems.append(f"{program} {' '.join(path)}: no option {name}".replace("  ", " "))
            elif "=" not in token and not token.endswith("]") and _takes_value(owner, name) and i < len(tokens):
                i += 1  # its value
            continue
        if words_done:
            continue
        command = tree[path]
        if not getattr(command, "commands", None):
            words_done = True  # a leaf: the rest are its arguments
            continue
        alternatives = token.split("|")
        if all(WORD.match(a) for a in alternatives):
            missing = [a for a in alternatives if path + (a,) not in tree]
            if missing:
                problems += [f"{program} {' '.join(path + (a,))}: no such command" for a in missing]
                words_done = True
            else:
                path += (alternatives[0],)
        else:
            words_done = True  # a placeholder (COMMAND, <…>, [ARGS]…)
    return problems


def invocations(text: str) -> Iterator[list[str]]:
    for code in code_texts(text):
        code = LEAD.sub("", code.strip())
        tokens = code.split()
        if tokens and tokens[0] in PROGRAMS:
            yield tokens


def standalone_flags(text: str) -> Iterator[str]:
    """Inline code that is a flag on its own (`--once`, `-t K`): it must be one of ours."""
    for span in inline_spans(text):
        tokens = span.split()
        if tokens and FLAG.match(tokens[0]) and not tokens[0].startswith("-->"):
            yield FLAG.match(tokens[0]).group(1)


PYTHON_M = re.compile(r"(?:^|\s)(?:\S*/)?python3?\s+-m\s+([\w.]+)((?:\s+\S+)*)")


@functools.cache
def module_help(module: str) -> str:
    out = subprocess.run([sys.executable, "-m", module, "--help"], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, f"python -m {module} --help failed:\n{out.stderr[-2000:]}"
    return out.stdout


def python_m_flags(text: str) -> Iterator[tuple[str, str]]:
    """(module, flag) for each flag of each `python -m MODULE …` the page names."""
    for code in code_texts(text):
        for match in PYTHON_M.finditer(code):
            for token in match.group(2).split():
                if token in STOP or token.startswith("#"):
                    break
                flag = FLAG.match(token)
                if flag:
                    yield match.group(1), flag.group(1)


@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_every_command_and_flag_named_exists(page):
    text = page.read_text(encoding="utf-8")
    problems = [p for tokens in invocations(text) for p in check_invocation(tokens)]
    problems += [f"no command has {flag}" for flag in standalone_flags(text) if flag not in every_flag()]
    for module, flag in python_m_flags(text):
        if not re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", module_help(module)):
            problems.append(f"python -m {module} has no {flag}")
    assert not problems, f"{rel(page)} names what does not exist:\n" + "\n".join(sorted(set(problems)))


def test_the_checker_catches_what_does_not_exist():
    assert check_invocation("rebuilder --store URL sync --profiles F core".split()) == []
    assert check_invocation("rebuildctl -H URL pkgs log|diffoscope NAME --no-pager".split()) == []
    assert check_invocation("rebuilder frobnicate".split()) == ["rebuilder frobnicate: no such command"]
    assert check_invocation("rebuildctl pkgs ls --frob".split()) == ["rebuildctl pkgs ls: no option --frob"]
    assert check_invocation("rebuildctl queue ls|nuke".split()) == ["rebuildctl queue nuke: no such command"]
    # the bracketed forms of usage lines
    assert check_invocation("rebuilder [--config FILE] [--store URL] sync [--profiles FILE] [PROFILE...]".split()) == []
    assert check_invocation("rebuilder [--config FILE] snyc".split()) == ["rebuilder snyc: no such command"]
    page = "Run `rebuilder work --once`, or `rebuildctl --nope status`; `--not-a-flag` too.\n"
    assert [p for t in invocations(page) for p in check_invocation(t)] == ["rebuildctl : no option --nope"]
    assert [f for f in standalone_flags(page) if f not in every_flag()] == ["--not-a-flag"]
    assert list(python_m_flags("```sh\n.venv/bin/python -m pytest -n 2 tests\n```\n")) == [("pytest", "-n")]


def test_every_command_is_documented():
    cli = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    for program, tree in trees().items():
        for path in tree:
            assert f"### `{' '.join((program, *path))}`" in cli


def test_every_example_of_the_reference_is_a_line_of_its_own():
    """Two `Example:` lines of a docstring without click's `\\b` are rewrapped into one paragraph,
    and the second example runs on from the first (`... --bind 127.0.0.1:9000 Example: rebuilder
    demo`): no longer a command to copy."""
    cli = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    joined = [line.strip() for line in cli.splitlines() if re.search(r"\S.*\bExample: ", line)]
    assert not joined, "rewrapped examples (put \\b before them in the docstring):\n" + "\n".join(joined)


# The READMEs beside the deployment files are read by operators as much as docs/ is.
OTHER_READMES = sorted([*ROOT.glob("examples/**/README.md"), *ROOT.glob("infra/**/README.md")])


@pytest.mark.parametrize("page", OTHER_READMES, ids=rel)
def test_deployment_readmes_name_real_commands_and_links(page):
    # Their inline flags may be other programs' (`--scale` is docker compose's): only the flags
    # of `rebuilder …` / `rebuildctl …` invocations are checked; relative paths are the example's own.
    text = page.read_text(encoding="utf-8")
    # Their step-by-step commands are indented code blocks: those lines count as code too.
    indented = "\n".join(f"`{line.strip()}`" for line in FENCE.sub("", text).splitlines()
                         if line.startswith("    ") and "`" not in line)
    found = [*invocations(text), *invocations(indented)]
    problems = [p for tokens in found for p in check_invocation(tokens)]
    problems += [p for target in LINK.findall(FENCE.sub("", text)) if (p := link_problem(page, target))]
    assert not problems, f"{rel(page)}:\n" + "\n".join(problems)
    if page.name == "README.md" and page.parent.parent.name == "examples":
        assert any(tokens[1:2] == ["check-config"] for tokens in found), "the step-by-step commands are read"


def test_there_are_deployment_readmes():
    assert {rel(p) for p in OTHER_READMES} >= {"examples/README.md", "examples/archlinux/README.md",
                                                 "infra/systemd/README.md", "infra/compose/README.md"}


# --- links and paths ------------------------------------------------------------------------------

def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = heading.strip().lower().replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


@functools.cache
def anchors(page: Path) -> frozenset[str]:
    seen: dict[str, int] = {}
    out = set()
    for line in FENCE.sub("", page.read_text(encoding="utf-8")).splitlines():
        if line.startswith("#"):
            base = slug(line.lstrip("#"))
            n = seen.get(base, 0)
            seen[base] = n + 1
            out.add(base if n == 0 else f"{base}-{n}")
    return frozenset(out)


def link_problem(page: Path, target: str) -> str | None:
    if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:, …
        return None
    path_part, _, anchor = target.partition("#")
    dest = (page.parent / path_part).resolve() if path_part else page
    if not dest.is_relative_to(ROOT):
        return f"{target}: outside the repository"
    if not dest.exists():
        return f"{target}: no such file"
    if anchor and (dest.suffix != ".md" or anchor not in anchors(dest)):
        return f"{target}: no heading #{anchor} in {rel(dest)}"
    return None


@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_every_relative_link_resolves(page):
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    problems = [p for target in LINK.findall(text) if (p := link_problem(page, target))]
    assert not problems, f"{rel(page)}:\n" + "\n".join(problems)


# (`site/…` is left out: in the docs it is mostly the store prefix of the published site, not the folder.)
REPO_PATH = re.compile(r"^(?:jobs|tests|infra|workflows|docs|\.ci)/[\w./@*:-]*$")


@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_every_repository_path_named_exists(page):
    problems = []
    for span in inline_spans(page.read_text(encoding="utf-8")):
        if not REPO_PATH.match(span):
            continue
        path, _, test_name = span.partition("::")
        path = path.rstrip("/")
        if path in NOT_YET_HERE:
            continue
        matches = list(ROOT.glob(path)) if "*" in path else [ROOT / path] if (ROOT / path).exists() else []
        if not matches:
            problems.append(f"{span}: no such file")
        elif test_name and f"def {test_name}(" not in matches[0].read_text(encoding="utf-8"):
            problems.append(f"{span}: no such test")
    assert not problems, f"{rel(page)}:\n" + "\n".join(problems)


def source_files() -> Iterator[Path]:
    """Every text file of the repository that could point somewhere."""
    for top in ("jobs", "tests", "infra", "site", "workflows", "docs", ".ci"):
        for path in sorted((ROOT / top).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and "corpus" not in path.parts:
                yield path
    yield from (README, ROOT / "pyproject.toml")


def read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return None


DOC_REF = re.compile(r"docs/([\w-]+\.md)(?:#([\w-]+))?")


def test_every_docs_section_the_code_cites_exists():
    problems = []
    for path in source_files():
        text = read_text(path)
        if text is None or path.parent == ROOT / "docs":
            continue
        for page, anchor in DOC_REF.findall(text):
            dest = ROOT / "docs" / page
            if not dest.exists():
                problems.append(f"{rel(path)}: docs/{page} does not exist")
            elif anchor and anchor not in anchors(dest):
                problems.append(f"{rel(path)}: no heading #{anchor} in docs/{page}")
    assert not problems, "\n".join(problems)


# Spelled in pieces so that this file does not match itself.
OUTSIDE = re.compile("|".join([r"\.\./" + "shared", r"(?<![\w.$])/work/" + "shared", "DESIGN" + r"\.md", "reference" + " §",
                               "rebuilderd-behaviour" + r"\.md", "rebuilderd behaviour" + " §", "rebuilderd" + " §",
                               "package-formats" + r"\.md", "s3-test-server" + r"\.md"]))


def test_nothing_points_outside_the_repository():
    hits = []
    for path in source_files():
        text = read_text(path)
        if text is None:
            continue
        for n, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line):
                hits.append(f"{rel(path)}:{n}: {line.strip()}")
    assert not hits, "point at docs/ instead (bring what the code relies on into the repository):\n" + "\n".join(hits)


def test_the_outside_pattern_matches_what_it_must():
    bad = ["see " + "DESIGN" + ".md", "(" + "reference" + " §4.4)", "../" + "shared/x", "/work/" + "shared/y",
           "rebuilderd" + " §6.3", "package-formats" + ".md §1.2"]
    good = ["RFC 9110 §13", "Debian policy §5.6.1", "docs/design.md#invariants", "$RUNNER_TEMP/work/shared"]
    assert all(OUTSIDE.search(t) for t in bad) and not any(OUTSIDE.search(t) for t in good)


# --- shape ------------------------------------------------------------------------------------------

def test_readme_is_short():
    size = len(README.read_text(encoding="utf-8"))
    assert size <= README_LIMIT, f"README.md has {size} characters (at most {README_LIMIT}): move detail to docs/"


def test_the_object_layout_names_every_store_prefix():
    from jobs.core.layout import PREFIXES

    design = (ROOT / "docs" / "design.md").read_text(encoding="utf-8")
    layout = design.split("## Object layout", 1)[1].split("\n## ", 1)[0]
    lines = FENCE.findall(layout)[0].splitlines()
    for prefix in PREFIXES:
        assert any(line.startswith(prefix) for line in lines), f"docs/design.md's object layout lacks {prefix}"


@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_inline_code_is_balanced(page):
    # An unpaired backtick would shift every later span and hide what the other tests check.
    spans = INLINE.findall(FENCE.sub("", page.read_text(encoding="utf-8")))
    assert not [s for s in spans if "\n\n" in s], f"{rel(page)}: a backtick is unpaired"


def test_testing_page_names_every_package_test_sh_installs():
    """docs/testing.md lists what `infra/test.sh` installs beyond infra/apt-packages.txt."""
    script = (ROOT / "infra" / "test.sh").read_text(encoding="utf-8")
    line = next(line for line in script.splitlines() if line.startswith("ensure_packages infra/test.sh"))
    extra = [word for word in line.split()[2:] if not word.startswith(("@", "$"))]
    assert {"chromium", "debootstrap"} <= set(extra), line
    testing = " ".join((ROOT / "docs" / "testing.md").read_text(encoding="utf-8").split())
    section = testing.split("## Running the tests", 1)[1].split("##", 1)[0]
    missing = [name for name in [*extra, "npm"] if not re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", section)]
    assert not missing, f"docs/testing.md does not say infra/test.sh installs {missing}"


# Invocations in what deploys and runs the jobs: systemd units, compose, workflows, scripts.
DEPLOY_FILES = ("infra/systemd/*.service", "infra/compose/*.yaml", "workflows/*.yml", "infra/*.sh", ".ci/run")
RUN = re.compile(r"(?:^|(?<=[\s;\"'(])|(?<=bin/))(rebuilder|rebuildctl)((?:[ \t]+[^\s;|&)]+)*)")
NOT_A_COMMAND_LINE = re.compile(r"^\s*(?:#|- name:|name:|description:|Description=|Documentation=)")


def deploy_invocations() -> Iterator[tuple[str, list[str]]]:
    for pattern in DEPLOY_FILES:
        for path in sorted(ROOT.glob(pattern)):
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if NOT_A_COMMAND_LINE.match(line):
                    continue
                for match in RUN.finditer(line):
                    tokens = [match.group(1), *match.group(2).split()]
                    if len(tokens) > 1 and (WORD.match(tokens[1]) or tokens[1].startswith("-")):
                        yield f"{rel(path)}:{n}", tokens


def test_units_workflows_and_scripts_call_commands_that_exist():
    found = list(deploy_invocations())
    assert len(found) >= 5, found  # the units, the compose services and the workflows do call the jobs
    problems = [f"{where}: {p}" for where, tokens in found for p in check_invocation(tokens)]
    assert not problems, "\n".join(problems)
