"""Typer parameters converted without pydantic where typer's result is certain: `FastGroup`.

typer (0.29) converts every parameter of the command it runs with a pydantic `TypeAdapter`
built on first use: importing pydantic and building the adapters was the largest part of a
`rebuildctl pkgs ls` run through typer, and about 0.08 s of CPU of every `rebuilder sync` (a
fifth of the whole sync of a 15,000-package Arch db). The parameters of `rebuilder` and
`rebuildctl` are text, flags, integers and decimals with a range, paths and lists of text,
whose conversion by typer's adapters is `str(value)`, `bool`, `int(value)` or `float(value)`
checked against the range, `Path(value)` (a path that exists must be readable) and a list of
the texts. `FastGroup` (the `cls` of both typer apps and of rebuildctl's sub-apps) gives each
parameter of the command being run a converter that does just that for the values whose result
is certain — a `str`, a plain decimal written in ASCII digits within the range, a path without
NUL — and hands every other value (and every other kind of parameter or option: a `parser`, a
`click_type`, clamping, `exists=`, choices) to typer's own converter, so help, errors and
results are typer's (tests/test_cli_params.py and tests/ctl/test_params.py compare them). It
uses typer's internals (`_runtime_param`, `type_descriptor`, `typer._coercion`); a typer
without them is left alone: the commands then run as typer runs them, only slower (the tests
that no pydantic is loaded would say so).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from typer.core import TyperGroup

_PLAIN_INT = re.compile(r"-?[0-9]{1,18}")  # what int() and pydantic's lax int read the same way
_PLAIN_FLOAT = re.compile(r"-?[0-9]{1,15}(?:\.[0-9]{1,15})?")  # and float() and pydantic's lax float


class _Converter:
    """What typer asks a parameter's runtime converter for: `coerce(value, param=, ctx=)`."""

    __slots__ = ("kind", "low", "high", "readable", "multi", "slow")

    def __init__(self, kind: type, *, low: Any = None, high: Any = None, readable: bool = True,
                 multi: bool = False) -> None:
        self.kind, self.low, self.high, self.readable, self.multi = kind, low, high, readable, multi
        self.slow: Any = None

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        if value is None:
            return () if self.multi else None  # typer's RuntimeParam.coerce
        if self.multi:
            if type(value) in (list, tuple) and all(type(item) is str for item in value):
                return list(value)
        else:
            converted = self._one(value)
            if converted is not None:
                return converted
        if self.slow is None:
            from typer._coercion import build_runtime_param

            self.slow = build_runtime_param(param.type_descriptor)
        return self.slow.coerce(value, param=param, ctx=ctx)

    def _one(self, value: Any) -> Any:
        """The converted value if it is certain, else None."""
        kind, got = self.kind, None
        if kind is str or kind is bool:
            return value if type(value) is kind else None
        if kind is int:
            if type(value) is int:
                got = value
            elif type(value) is str and _PLAIN_INT.fullmatch(value):
                got = int(value)
        elif kind is float:
            if type(value) is float:
                got = value
            elif type(value) is str and _PLAIN_FLOAT.fullmatch(value):
                got = float(value)
        elif kind is Path:
            if type(value) is str and value and "\0" not in value:
                return self._path(Path(value))
            return self._path(value) if isinstance(value, Path) else None  # a default: typer keeps it
        if got is None or (self.low is not None and got < self.low) or (self.high is not None and got > self.high):
            return None  # out of range: typer says so
        return got

    def _path(self, path: Path) -> Path | None:
        try:
            os.stat(path)
        except OSError:
            return path  # need not exist
        return None if self.readable and not os.access(path, os.R_OK) else path


def _converter(param: Any) -> _Converter | None:
    """The converter for a typer parameter whose conversion is one of the above, else None."""
    descriptor = param.type_descriptor
    info = descriptor.parameter_info
    annotation = descriptor.annotation
    if (descriptor.file_annotation is not None or getattr(info, "parser", None) is not None
            or getattr(info, "click_type", None) is not None or getattr(info, "clamp", False)):
        return None
    if param.multiple or param.nargs != 1:
        if param.nargs == -1 and not param.multiple and annotation == list[str]:
            return _Converter(str, multi=True)
        return None
    if annotation in (str, bool):
        return _Converter(annotation)
    if annotation in (int, float):
        return _Converter(annotation, low=info.min, high=info.max)
    if annotation is Path and not (info.exists or info.resolve_path or info.writable or not info.file_okay
                                   or not info.dir_okay or getattr(info, "path_type", None) is not None):
        return _Converter(Path, readable=info.readable)
    return None


def _fast(command: Any, ctx: Any) -> Any:
    """Give `command`'s parameters (its --help too) the converters above where they apply (once).

    `ctx` is the command's context or its parent's: the help option, made on first use and kept
    by the command, is named by the context's `help_option_names`, which a subcommand's context
    inherits unless the subcommand's own settings name others (then it is left to typer).
    """
    if "help_option_names" in (getattr(command, "context_settings", None) or {}) and ctx.command is not command:
        params = command.params
    else:
        params = command.get_params(ctx)
    for param in params:
        if getattr(param, "type_descriptor", None) is None or getattr(param, "_runtime_param", False) is not None:
            continue  # not a typer parameter of this typer version, or already converted once
        converter = _converter(param)
        if converter is not None:
            param._runtime_param = converter
    return command


class FastGroup(TyperGroup):
    """A typer group whose own parameters and whose subcommands' are converted by `_Converter`."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        _fast(self, ctx)
        return super().parse_args(ctx, args)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        return command if command is None or isinstance(command, TyperGroup) else _fast(command, ctx)
