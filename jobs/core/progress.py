"""What a running job shows its operator: bars on a terminal, plain lines elsewhere.

A job reports through the module functions (`step`, `advance`, `grow`, `line`); they go to
the reporter the command installed with `use()`, and to a silent one otherwise (library
calls and tests print nothing). `for_terminal()` picks the kind:

- `Bars`: stderr is a terminal (and TERM is not `dumb`, and the process is not a systemd
  service): rich progress bars on stderr, one per step, lines printed above them;
- `Plain`: piped, redirected, under cron or systemd (`JOURNAL_STREAM` / `INVOCATION_ID`
  set): no escape sequence and no carriage return, one line per finished step
  (`sync core: parse: 1,234 packages in 0.2 s`) and the jobs' lines as they come.

Lines are for people and may carry names from a distro index or a build: `printable`
escapes control characters, and rich markup is never interpreted.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TextIO

log = logging.getLogger(__name__)

_CONTROL = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F]}
_CONTROL.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"})
_CONTROL.update({c: f"\\x{c:02x}" for c in range(0x80, 0xA0)})  # C1 controls (CSI is 0x9b)


def printable(text: object) -> str:
    """`text` safe for a terminal: control characters escaped, one line."""
    return str(text).translate(_CONTROL)


class _OneLine(logging.Formatter):
    """A log record's message on one line, its control characters escaped: a hostile object key or worker
    detail in a warning ("rejected results/…\nERROR …") cannot forge lines in the operator's log. A traceback
    (a bug's) follows as Python prints it."""

    def format(self, record: logging.LogRecord) -> str:
        text = printable(record.getMessage())
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stderr` is at the time, as logging's last-resort handler does."""

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        pass


def one_line_logs() -> None:
    """A `rebuilder` process's warnings and errors (this project's loggers, `jobs.*`): on stderr as before (the
    message alone, as logging's last resort printed them), one line each. Other libraries' loggers are left as
    they were (urllib3's, for one, has its own handler and says nothing)."""
    ours = logging.getLogger("jobs")
    if not any(isinstance(h, _Stderr) for h in ours.handlers):
        handler = _Stderr()
        handler.setLevel(logging.WARNING)
        handler.setFormatter(_OneLine())
        ours.addHandler(handler)


def is_interactive(stream: TextIO | None = None, env: Mapping[str, str] | None = None) -> bool:
    """Whether `stream` (stderr) is a person's terminal: a TTY, TERM not dumb, not a systemd service."""
    env = os.environ if env is None else env
    stream = sys.stderr if stream is None else stream
    if env.get("JOURNAL_STREAM") or env.get("INVOCATION_ID") or env.get("TERM", "") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or not a real file
        return False


@dataclass
class Step:
    """One step of a job: how far it is (`done` of `total`, in `unit`)."""

    label: str
    unit: str = ""
    total: float | None = None
    done: float = 0
    started: float = field(default_factory=time.monotonic)
    quiet: bool = False  # no line when it ends (a build's spinner: the job lines say it all)

    def text(self) -> str:
        """`1,234 packages`, `3 of 5 files`, `12.3 KiB`."""
        if self.unit == "B":
            return _size(self.done)
        of = f" of {self.total:,.0f}" if self.total is not None else ""
        return f"{self.done:,.0f}{of} {self.unit}".rstrip()


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


class Reporter:
    """Silent: steps are counted and forgotten, lines go to the log (INFO)."""

    def __init__(self) -> None:
        self._steps: dict[str, Step] = {}
        self._lock = threading.Lock()

    def open(self, key: str, step: Step) -> None:
        with self._lock:
            self._steps[key] = step

    def close(self, key: str) -> Step | None:
        with self._lock:
            return self._steps.pop(key, None)

    def get(self, key: str) -> Step | None:
        return self._steps.get(key)

    def bump(self, key: str, *, done: float = 0, total: float = 0) -> None:
        """The open step `key` advanced by `done` and its total grew by `total`."""
        s = self._steps.get(key)
        if s is None:
            return
        with self._lock:
            s.done += done
            if total:
                s.total = (s.total or 0) + total
        self.changed(key, s)

    def changed(self, key: str, step: Step) -> None:
        """`step` advanced or grew."""

    def line(self, text: str) -> None:
        log.info("%s", printable(text))

    def start(self) -> None:
        """Before the first step (a terminal display starts here)."""

    def stop(self) -> None:
        """After the last step."""


class Plain(Reporter):
    """One line per finished step and every job line, on a plain stream (no escapes, no `\\r`)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__()
        self.stream = stream
        self._write = threading.Lock()

    def close(self, key: str) -> Step | None:
        step = super().close(key)
        if step is not None and not step.quiet:
            self.line(f"{step.label}: {step.text()} in {time.monotonic() - step.started:.1f} s")
        return step

    def line(self, text: str) -> None:
        stream = self.stream or sys.stderr
        with self._write:
            stream.write(printable(text) + "\n")
            stream.flush()


class Bars(Reporter):
    """rich progress bars on a terminal; lines are printed above them."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__()
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            Progress,
            SpinnerColumn,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
        )
        self.console = Console(file=stream or sys.stderr, stderr=stream is None, highlight=False)
        self.progress = Progress(SpinnerColumn(finished_text="[green]✓"),
                                 TextColumn("{task.description}", markup=False), BarColumn(),
                                 TaskProgressColumn(), TextColumn("{task.fields[done]}", markup=False),
                                 TimeElapsedColumn(), console=self.console,
                                 # stdout lines go above the bars when stdout is this terminal too;
                                 # piped elsewhere they stay on stdout.
                                 redirect_stdout=_isatty(sys.stdout), redirect_stderr=stream is None,
                                 refresh_per_second=8)
        self._tasks: dict[str, int] = {}
        self._shown: dict[str, float] = {}  # when each task was last redrawn

    def start(self) -> None:
        self.progress.start()

    def stop(self) -> None:
        self.progress.stop()

    def open(self, key: str, step: Step) -> None:
        super().open(key, step)
        self._tasks[key] = self.progress.add_task(printable(step.label), total=step.total, done=step.text())

    def changed(self, key: str, step: Step) -> None:
        task = self._tasks.get(key)
        now = time.monotonic()
        if task is not None and now - self._shown.get(key, 0.0) >= 0.05:  # 300,000 page renders: not each
            self._shown[key] = now
            self.progress.update(task, completed=step.done, total=step.total, done=step.text())

    def close(self, key: str) -> Step | None:
        step = super().close(key)
        task = self._tasks.pop(key, None)
        self._shown.pop(key, None)
        if task is not None and step is not None:
            if step.quiet:
                self.progress.remove_task(task)
            else:
                total = step.total if step.total is not None else max(step.done, 1)
                self.progress.update(task, completed=total, total=total, done=step.text())
                self.progress.stop_task(task)
        return step

    def line(self, text: str) -> None:
        self.console.print(printable(text), markup=False, highlight=False, soft_wrap=True)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


_active: Reporter = Reporter()


def for_terminal(stream: TextIO | None = None, env: Mapping[str, str] | None = None) -> Reporter:
    """Bars when `stream` (stderr) is a person's terminal, plain lines otherwise."""
    return Bars(stream) if is_interactive(stream, env) else Plain(stream)


@contextmanager
def use(reporter: Reporter) -> Iterator[Reporter]:
    """Within the block, jobs report to `reporter`."""
    global _active
    previous, _active = _active, reporter
    reporter.start()
    try:
        yield reporter
    finally:
        reporter.stop()
        _active = previous


def current() -> Reporter:
    """The reporter jobs report to now."""
    return _active


def begin(key: str, label: str, *, total: float | None = None, unit: str = "", quiet: bool = False) -> Step:
    """Open the step `key`: `advance(key, ...)` moves its bar; `end(key)` closes it."""
    s = Step(label, unit=unit, total=total, quiet=quiet)
    _active.open(key, s)
    return s


def end(key: str, *, ok: bool = True) -> None:
    """Close the step `key` (nothing if it is not open); a failed step prints no line."""
    reporter = _active
    s = reporter.get(key)
    if s is not None and not ok:
        s.quiet = True
    reporter.close(key)


@contextmanager
def step(key: str, label: str, *, total: float | None = None, unit: str = "", quiet: bool = False) -> Iterator[Step]:
    """`begin` … `end` around a block (no line if the block raises)."""
    s = begin(key, label, total=total, unit=unit, quiet=quiet)
    ok = False
    try:
        yield s
        ok = True
    finally:
        end(key, ok=ok)


def advance(key: str, n: float = 1) -> None:
    """`n` more done in the open step `key` (nothing if it is not open); any thread may call it."""
    _active.bump(key, done=n)


def grow(key: str, n: float) -> None:
    """`n` more to do in the open step `key` (its total was unknown or grew)."""
    _active.bump(key, total=n)


def line(text: str) -> None:
    """One line for the operator (stderr), above any bars."""
    _active.line(text)
