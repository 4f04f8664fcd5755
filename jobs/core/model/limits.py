"""Field limits: the longest and the characters allowed of every field that comes from outside.

Checked once, where a field enters (a distro index at sync, a worker's result at publish),
so that snapshots, queue, history, URLs, pages and feeds never carry a 10 MB version or a
terminal escape. The values are `jobs.core.bounded.LIMITS` (the documented table).

- names (package, source, architecture, distro, release, component, artifact): at most
  `name` characters, printable, no whitespace;
- versions: at most `version` characters, printable, no whitespace;
- URLs: at most `url` characters, printable ASCII, no whitespace;
- free text (a result's reason, a worker name): at most `reason` / `worker_name`
  characters, printable (no control, bidi or separator characters: `str.isprintable`).

Each distro parser checks its own stricter character set (jobs/sync); these are the rules
every record obeys whatever its distro.
"""

from __future__ import annotations

from typing import Any

from jobs.core.bounded import cap
from jobs.core.model.schemas import SchemaError

NAME_MAX = cap("name")
VERSION_MAX = cap("version")
URL_MAX = cap("url")
REASON_MAX = cap("reason")
WORKER_NAME_MAX = cap("worker_name")
DESCRIPTION_MAX = cap("description")
KEY_MAX = cap("key")


def clean_description(value: str | None) -> str | None:
    """A package's description as shown: its first line, whitespace runs as one space, characters
    that are not printable (controls, bidi, separators) as U+FFFD, cut to `DESCRIPTION_MAX`
    characters with "…"; None when nothing is left. Cosmetic: a bad one never costs the package."""
    if not isinstance(value, str):
        return None
    text = " ".join(value.split("\n", 1)[0][:DESCRIPTION_MAX * 4].split())
    if not text.isprintable():  # rare: checked character by character only then
        text = "".join(c if c.isprintable() else "\ufffd" for c in text)
    if len(text) > DESCRIPTION_MAX:
        text = text[:DESCRIPTION_MAX - 1].rstrip() + "…"
    return text or None


def _shown(value: str) -> str:
    return repr(value if len(value) <= 60 else value[:60] + "…")


def field_problem(what: str, value: Any, maximum: int, *, spaces: bool = False, ascii_only: bool = False,
                  optional: bool = False) -> str | None:
    """Why `value` is not an acceptable `what` (None: it is)."""
    if value is None:
        return None if optional else f"{what} is missing"
    if not isinstance(value, str):
        return f"{what} is not text"
    if len(value) > maximum:
        return f"{what} is longer than {maximum} characters ({len(value)})"
    if not value and not optional:
        return f"{what} is empty"
    # isprintable() is False for every whitespace character but " ", so that is the one left to find.
    if not value.isprintable() or (not spaces and " " in value):
        return f"{what} has control, bidi or space characters: {_shown(value)}"
    if ascii_only and not value.isascii():
        return f"{what} is not ASCII: {_shown(value)}"
    return None


def entry_problem(*, name: str, version: str, url: str, architecture: str, source_name: str,
                  source_version: str, component: str | None = None, filename: str | None = None,
                  maintainers: tuple[str, ...] = ()) -> str | None:
    """Why a package a distro index lists cannot be kept (None: it can); the sync skips and counts it."""
    # The usual case in one pass (a sync checks 15,000 to 70,000 entries): every field text, present,
    # short enough, printable, without spaces where none may be, the URL ASCII. Otherwise the
    # fields are checked one by one below, which says which one is wrong.
    try:
        if (0 < len(name) <= NAME_MAX and 0 < len(architecture) <= NAME_MAX and 0 < len(source_name) <= NAME_MAX
                and 0 < len(version) <= VERSION_MAX and 0 < len(source_version) <= VERSION_MAX
                and 0 < len(url) <= URL_MAX and (component is None or len(component) <= NAME_MAX)
                and (filename is None or len(filename) <= NAME_MAX)
                and all(0 < len(m) <= REASON_MAX for m in maintainers)):
            tight = "".join((name, version, architecture, source_name, source_version, url, component or ""))
            if (tight.isprintable() and " " not in tight and url.isascii()
                    and "".join((filename or "", *maintainers)).isprintable()):
                return None
    except TypeError:  # a value that is not text: the checks below name it
        pass
    checks = (("name", name, NAME_MAX), ("version", version, VERSION_MAX), ("architecture", architecture, NAME_MAX),
              ("source name", source_name, NAME_MAX), ("source version", source_version, VERSION_MAX))
    for what, value, maximum in checks:
        problem = field_problem(what, value, maximum)
        if problem:
            return problem
    return (field_problem("URL", url, URL_MAX, ascii_only=True)
            or field_problem("component", component, NAME_MAX, optional=True)
            or field_problem("file name", filename, NAME_MAX, spaces=True, optional=True)
            or next((p for m in maintainers if (p := field_problem("maintainer", m, REASON_MAX, spaces=True))), None))


def result_problem(row: Any) -> str | None:
    """Why a worker's result row carries a field no page or feed may show (None: it is fine)."""
    checks = [field_problem("distro", row.distro, NAME_MAX), field_problem("architecture", row.architecture, NAME_MAX),
              field_problem("source_name", row.source_name, NAME_MAX),
              field_problem("source_version", row.source_version, VERSION_MAX),
              field_problem("reason", row.reason, REASON_MAX, spaces=True, optional=True),
              field_problem("worker_name", row.worker_name, WORKER_NAME_MAX, spaces=True, optional=True)]
    checks += [field_problem(name, getattr(row, name), KEY_MAX, ascii_only=True, optional=True)
               for name in ("log_key", "diffoscope_key", "attestation_key")]
    checks += [field_problem("artifact name", a.name, NAME_MAX) for a in row.artifacts]
    return next((problem for problem in checks if problem), None)


def fit_text(text: str | None, maximum: int = REASON_MAX) -> str | None:
    """Free text of our own (a worker's reason) made to pass `field_problem`: unprintable
    characters become spaces, and a text too long is cut to `maximum` characters ending in "…"."""
    if text is None:
        return None
    if not text.isprintable():
        text = "".join(c if c.isprintable() else " " for c in text)
    return text if len(text) <= maximum else text[: maximum - 1] + "…"


def check_result_fields(row: Any) -> None:
    """SchemaError if a result's fields break the limits (`result_problem`); publish rejects the result."""
    problem = result_problem(row)
    if problem:
        raise SchemaError(f"result field out of bounds: {problem}")
