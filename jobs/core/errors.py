"""Domain exceptions shared by every job.

Retry decisions look at the class (``transient``), never at the message: a transient
error means "the same call may succeed later" (network, throttling, a busy server);
a terminal one means "retrying changes nothing" (bad input, bad config, denied).
"""

from __future__ import annotations


class RebuilderError(Exception):
    """Base of every error this project raises on purpose."""

    transient: bool = False

    def __init__(self, message: str, **fields: object) -> None:
        super().__init__(message)
        self.message = message
        self.fields = {k: v for k, v in fields.items() if v is not None}

    def __str__(self) -> str:
        if not self.fields:
            return self.message
        detail = ", ".join(f"{k}={v!r}" for k, v in self.fields.items())
        return f"{self.message} ({detail})"


class TransientError(RebuilderError):
    """The operation may succeed if tried again later."""

    transient = True


class TerminalError(RebuilderError):
    """Retrying the same operation will not help."""


class ConfigError(TerminalError):
    """A configuration file or value is invalid: names the file, the key and what was expected."""

    def __init__(self, message: str, *, path: str | None = None, key: str | None = None,
                 expected: str | None = None) -> None:
        where = ":".join(x for x in (path, key) if x)
        text = f"{where}: {message}" if where else message
        if expected:
            text = f"{text} (expected {expected})"
        super().__init__(text)
        self.path, self.key, self.expected = path, key, expected

    def __str__(self) -> str:
        return self.message


class MissingToolError(TerminalError):
    """An external program is not installed; says which package provides it."""

    def __init__(self, tool: str, package: str | None = None) -> None:
        hint = f" (install the Debian package '{package}')" if package else ""
        super().__init__(f"required tool {tool!r} not found on PATH{hint}")
        self.tool, self.package = tool, package
