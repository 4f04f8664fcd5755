"""rebuildctl's parameters converted without pydantic where typer's result is certain.

typer (0.29) converts every parameter of the command it runs with a pydantic `TypeAdapter`
built on first use: importing pydantic and building the adapters was the largest part of a
`rebuildctl pkgs ls` that takes a fifth of a second. Nearly all of rebuildctl's parameters are
text, an integer or a flag, whose conversion typer's adapters do as `str(value)`, `int(value)`
and nothing (a flag's `bool`).
`FastGroup` (the `cls` of rebuildctl's typer apps) gives each parameter of the command being run
a converter that does just that for the values whose result is certain — a `str`, an `int`, a
`bool`, a plain decimal integer written in ASCII digits — and hands every other value (and every other
kind of parameter: paths, lists, choices, ranges, custom parsers) to typer's own converter, so
help, errors and results are typer's. A typer without these internals (`_runtime_param`,
`type_descriptor`) is left alone: the commands then run exactly as typer runs them.
"""

from __future__ import annotations

import re
from typing import Any

from typer.core import TyperGroup

_PLAIN_INT = re.compile(r"-?[0-9]{1,18}")  # what int() and pydantic's lax int read the same way


class _Converter:
    """What typer asks a parameter's runtime converter for: `coerce(value, param=, ctx=)`."""

    __slots__ = ("kind", "slow")

    def __init__(self, kind: type) -> None:
        self.kind = kind
        self.slow: Any = None

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        if value is None:
            return None  # typer's RuntimeParam.coerce: None stays None (none of these takes several values)
        if self.kind is str or self.kind is bool:
            if type(value) is self.kind:
                return value
        elif type(value) is int:
            return value
        elif type(value) is str and _PLAIN_INT.fullmatch(value):
            return int(value)
        if self.slow is None:
            from typer._coercion import build_runtime_param

            self.slow = build_runtime_param(param.type_descriptor)
        return self.slow.coerce(value, param=param, ctx=ctx)


def _fast(command: Any, ctx: Any) -> Any:
    """Give `command`'s text, integer and flag parameters (its --help too) the converter above (once).

    `ctx` is the command's context or its parent's: the help option, made on first use and kept
    by the command, is named by the context's `help_option_names`, which a subcommand's context
    inherits unless the subcommand's own settings name others (then it is left to typer).
    """
    if "help_option_names" in (getattr(command, "context_settings", None) or {}) and ctx.command is not command:
        params = command.params
    else:
        params = command.get_params(ctx)
    for param in params:
        descriptor = getattr(param, "type_descriptor", None)
        if descriptor is None or getattr(param, "_runtime_param", False) is not None:
            continue  # not a typer parameter of this typer version, or already converted once
        info = descriptor.parameter_info
        if (descriptor.annotation in (str, int, bool) and descriptor.file_annotation is None and not param.multiple
                and param.nargs == 1 and getattr(info, "parser", None) is None
                and getattr(info, "click_type", None) is None
                and getattr(info, "min", None) is None and getattr(info, "max", None) is None):
            param._runtime_param = _Converter(descriptor.annotation)
    return command


class FastGroup(TyperGroup):
    """A typer group whose own parameters and whose subcommands' are converted by `_Converter`."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        _fast(self, ctx)
        return super().parse_args(ctx, args)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        return command if command is None or isinstance(command, TyperGroup) else _fast(command, ctx)
