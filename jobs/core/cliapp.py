"""Command-line plumbing both programs share (`rebuilder` and `rebuildctl`): exit codes and `run_app`.

Exit codes: 0 done, 1 terminal error (retrying will not help), 2 usage, 75 (EX_TEMPFAIL) a
transient error, so that a scheduler can simply try again. A program may add its own above
these (rebuildctl: 3 not found or ambiguous).
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from jobs.core.errors import RebuilderError

EXIT_OK = 0
EXIT_TERMINAL = 1
EXIT_USAGE = 2
EXIT_TRANSIENT = 75
HELP_OPTIONS = {"help_option_names": ["-h", "--help"]}  # both spellings, as rebuilderd's clap programs take


def print_version(prog: str) -> Callable[[bool], None]:
    """The callback of an eager `--version`/`-V` option: prints "<prog> <version>" and exits 0."""
    def callback(value: bool) -> None:
        if value:
            from importlib.metadata import PackageNotFoundError, version

            try:
                text = version("rebuilder")
            except PackageNotFoundError:  # run from a source tree that was never installed
                text = "unknown (not installed)"
            print(f"{prog} {text}")
            raise SystemExit(EXIT_OK)
    return callback


def run_app(typer_app: Callable[..., object], prog: str) -> None:
    """Run a typer app, turning this project's errors into one clear line and an exit code.

    The process ends through `jobs.core.shutdown.exit_process`: Python's clean-up, then
    `os._exit`, so that pyarrow's native thread pools cannot abort it at exit (status 134).
    """
    from jobs.core.shutdown import exit_code, exit_process

    code = EXIT_OK
    try:
        typer_app(prog_name=prog, standalone_mode=True)
    except RebuilderError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        code = EXIT_TRANSIENT if exc.transient else EXIT_TERMINAL
    except SystemExit as exc:
        code = exit_code(exc)
    except Exception:  # a bug: the traceback as Python (or typer) prints it, then the same clean exit
        sys.excepthook(*sys.exc_info())
        code = EXIT_TERMINAL
    exit_process(code)
