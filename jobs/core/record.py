"""`record`: the small typed records of rebuildctl's path, as `@dataclass(slots=True)` makes them, without `dataclasses`.

Importing `dataclasses` imports `inspect`, and with it `ast`, `dis` and `tokenize`: about 40
million instructions, an eighth of a whole `rebuildctl pkgs ls --name N` process. The records
rebuildctl reads and shows (`jobs.core.feeds`, `jobs.ctl.commands`, the limits of
`jobs.core.bounded`) need little of it, so `record` gives a class what the dataclass decorator
gave those: `__slots__` of its annotated fields, in order; `__init__` by position or keyword, the
class's values as defaults; `==` over the fields (`uncompared` ones left out, and out of the
repr); with `frozen`, no attribute set after `__init__` (AttributeError) and a hash; a repr. Its
generated methods are as fast as the dataclass's (plain code, made once with `exec`).

`fields(cls)` names a record's fields, `replace(obj, **changes)` is a copy with some changed,
and `asdict(obj)` the fields as a dict (records inside records as dicts too), as `dataclasses`'
functions of those names do. Standard library only (`typing`).
"""

from __future__ import annotations

from typing import Any, TypeVar

T = TypeVar("T")
_FIELDS = "__record_fields__"


def record(cls: type[T] | None = None, *, frozen: bool = False, uncompared: tuple[str, ...] = ()) -> Any:
    """The class decorator (`@record` or `@record(frozen=True, uncompared=("raw",))`)."""
    def wrap(cls: type[T]) -> type[T]:
        return _make(cls, frozen, uncompared)

    return wrap if cls is None else wrap(cls)


def _make(cls: type[T], frozen: bool, uncompared: tuple[str, ...]) -> type[T]:
    names = tuple(name for name in cls.__dict__.get("__annotations__", {}))
    body = {k: v for k, v in cls.__dict__.items() if k not in names and k not in ("__dict__", "__weakref__")}
    defaults = {name: cls.__dict__[name] for name in names if name in cls.__dict__}
    body["__slots__"] = names
    body["__qualname__"] = cls.__qualname__
    body[_FIELDS] = names
    compared = tuple(name for name in names if name not in uncompared)
    shown = compared
    env: dict[str, Any] = {"_set": object.__setattr__, **{f"_d_{n}": v for n, v in defaults.items()}}
    params = ", ".join(f"{n}=_d_{n}" if n in defaults else n for n in names)
    if frozen:
        sets = "".join(f"\n    _set(self, {n!r}, {n})" for n in names)
    else:
        sets = "".join(f"\n    self.{n} = {n}" for n in names)
    mine = tuple(f"self.{n}" for n in compared)
    theirs = tuple(f"other.{n}" for n in compared)
    source = [
        f"def __init__(self, {params}):{sets or chr(10) + '    pass'}",
        "def __repr__(self):\n    return f\"{type(self).__qualname__}(" + ", ".join(f"{n}={{self.{n}!r}}" for n in shown)
        + ")\"",
        f"def __eq__(self, other):\n    if other.__class__ is self.__class__:\n"
        f"        return ({', '.join(mine)},) == ({', '.join(theirs)},)\n    return NotImplemented",
    ]
    if frozen:
        source.append(f"def __hash__(self):\n    return hash(({', '.join(mine)},))")
    exec("\n".join(source), env)  # noqa: S102 (code made here from the class's own field names)
    for method in ("__init__", "__repr__", "__eq__") + (("__hash__",) if frozen else ()):
        env[method].__qualname__ = f"{cls.__qualname__}.{method}"
        body[method] = env[method]
    if not frozen:
        body["__hash__"] = None  # mutable and compared by value, as a dataclass: not hashable
    else:
        body["__setattr__"] = _frozen_setattr
        body["__delattr__"] = _frozen_delattr
        body["__getstate__"] = _getstate  # copy and pickle set the fields as __init__ does
        body["__setstate__"] = _setstate
    return type(cls)(cls.__name__, cls.__bases__, body)  # type: ignore[no-any-return]


def _frozen_setattr(self: Any, name: str, value: Any) -> None:
    raise AttributeError(f"cannot assign to field {name!r} of a frozen {type(self).__name__}")


def _frozen_delattr(self: Any, name: str) -> None:
    raise AttributeError(f"cannot delete field {name!r} of a frozen {type(self).__name__}")


def _getstate(self: Any) -> tuple[Any, ...]:
    return tuple(getattr(self, name) for name in getattr(self, _FIELDS))


def _setstate(self: Any, state: tuple[Any, ...]) -> None:
    for name, value in zip(getattr(self, _FIELDS), state):
        object.__setattr__(self, name, value)


def is_record(value: Any) -> bool:
    """Whether `value` is an instance of a `record` class."""
    return hasattr(type(value), _FIELDS) and not isinstance(value, type)


def fields(value: Any) -> tuple[str, ...]:
    """The field names of a record (or record class), in order."""
    return getattr(value, _FIELDS)  # type: ignore[no-any-return]


def replace(value: T, **changes: Any) -> T:
    """A copy of the record `value` with `changes` (TypeError for a name that is no field)."""
    names = fields(value)
    unknown = set(changes) - set(names)
    if unknown:
        raise TypeError(f"{type(value).__name__} has no field {sorted(unknown)[0]!r}")
    return type(value)(**{name: changes[name] if name in changes else getattr(value, name) for name in names})


def asdict(value: Any) -> dict[str, Any]:
    """The record's fields as a dict; records, lists, tuples and dicts in it copied the same way."""
    return {name: _plain(getattr(value, name)) for name in fields(value)}


def _plain(value: Any) -> Any:
    if is_record(value):
        return asdict(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
