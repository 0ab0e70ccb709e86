"""Frozen value classes without dataclasses' import-time cost.

`@dataclass(frozen=True)` writes each class's __init__, __repr__, __eq__, __hash__,
__setattr__ and __delattr__ as source and execs it, and importing dataclasses imports
inspect (ast, dis, tokenize): in the i386 bench guest that was most of a payload
load's start-up. `@value` makes the same frozen classes from one set of shared methods
that read the class's field table, so defining a class costs one loop over its
annotations. mypy checks them as dataclasses (dataclass_transform).
"""

from __future__ import annotations

TYPE_CHECKING = False  # annotations only: typing is itself a tenth of a payload load's start-up
if TYPE_CHECKING:
    from typing import Any, Callable, TypeVar, overload

    from typing_extensions import dataclass_transform  # typing has it from 3.11; mypy targets 3.10

    T = TypeVar("T")
else:
    def dataclass_transform(**_kwargs):
        return lambda decorator: decorator

_MISSING = object()


class FrozenInstanceError(AttributeError):
    """Assignment to (or deletion of) a field of a value."""


class Field:
    """One field: its name, default (or _MISSING) and whether repr and == see it."""

    __slots__ = ("name", "default", "repr", "compare", "metadata")

    def __init__(self, default: Any, repr: bool, compare: bool, metadata: dict[str, Any]) -> None:
        self.name, self.default, self.repr, self.compare, self.metadata = "", default, repr, compare, metadata


def field(*, default: Any = _MISSING, repr: bool = True, compare: bool = True,
          metadata: dict[str, Any] | None = None) -> Any:
    """As dataclasses.field: a default, and whether repr and ==/hash/order see the field."""
    return Field(default, repr, compare, metadata or {})


def fields(cls_or_value: object) -> tuple[Field, ...]:
    """The fields in declaration order (a base class's first)."""
    found: tuple[Field, ...] = getattr(cls_or_value, "__value_fields__")
    return found


def replace(obj: T, **changes: Any) -> T:
    """A copy of obj with changes; __post_init__ checks it as it checked obj."""
    for f in fields(obj):
        changes.setdefault(f.name, getattr(obj, f.name))
    return type(obj)(**changes)


def _init(self: Any, *args: Any, **kwargs: Any) -> None:
    cls = type(self)
    table = cls.__value_fields__
    if len(args) > len(table):
        raise TypeError(f"{cls.__name__}() takes {len(table)} arguments, {len(args)} given")
    for f, given in zip(table, args):
        if f.name in kwargs:
            raise TypeError(f"{cls.__name__}() got {f.name!r} twice")
        object.__setattr__(self, f.name, given)
    for f in table[len(args):]:
        given = kwargs.pop(f.name, f.default)
        if given is _MISSING:
            raise TypeError(f"{cls.__name__}() missing argument {f.name!r}")
        object.__setattr__(self, f.name, given)
    if kwargs:
        raise TypeError(f"{cls.__name__}() got unexpected arguments {', '.join(map(repr, kwargs))}")
    post_init = getattr(self, "__post_init__", None)
    if post_init is not None:
        post_init()


def _key(self: Any) -> tuple[Any, ...]:
    return tuple(getattr(self, f.name) for f in self.__value_fields__ if f.compare)


def _repr(self: Any) -> str:
    shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in self.__value_fields__ if f.repr)
    return f"{type(self).__qualname__}({shown})"


def _eq(self: Any, other: object) -> bool:
    if other.__class__ is not self.__class__:
        return NotImplemented
    return _key(self) == _key(other)


def _hash(self: Any) -> int:
    return hash(_key(self))


def _frozen(self: Any, name: str, *_value: Any) -> None:
    raise FrozenInstanceError(f"cannot assign to field {name!r} of a {type(self).__name__}")


def _ordering(compare: Callable[[tuple[Any, ...], tuple[Any, ...]], bool]) -> Callable[[Any, object], bool]:
    def method(self: Any, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return compare(_key(self), _key(other))
    return method


_ORDER = {
    "__lt__": _ordering(lambda a, b: a < b),
    "__le__": _ordering(lambda a, b: a <= b),
    "__gt__": _ordering(lambda a, b: a > b),
    "__ge__": _ordering(lambda a, b: a >= b),
}


def _is_class_var(annotation: object) -> bool:
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    return isinstance(text, str) and (text.startswith("ClassVar") or text.startswith("typing.ClassVar"))


def _make(cls: type[T], order: bool) -> type[T]:
    table = {f.name: f for base in reversed(cls.__mro__[1:]) for f in getattr(base, "__value_fields__", ())}
    for name, annotation in cls.__dict__.get("__annotations__", {}).items():
        if _is_class_var(annotation):
            continue
        declared = cls.__dict__.get(name, _MISSING)
        f = declared if isinstance(declared, Field) else Field(declared, True, True, {})
        f.name = name
        if isinstance(declared, Field):  # the class attribute is the default, as dataclasses leaves it
            if f.default is _MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, f.default)
        table[name] = f
    attributes: dict[str, Any] = {
        "__value_fields__": tuple(table.values()), "__init__": _init, "__repr__": _repr, "__eq__": _eq,
        "__hash__": _hash, "__setattr__": _frozen, "__delattr__": _frozen, **(_ORDER if order else {}),
    }
    for name, method in attributes.items():
        if name == "__value_fields__" or name not in cls.__dict__:
            setattr(cls, name, method)
    return cls


if TYPE_CHECKING:
    @overload
    def frozen(cls: type[T], /) -> type[T]: ...

    @overload
    def frozen(*, order: bool = False) -> Callable[[type[T]], type[T]]: ...


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
def frozen(cls: type[T] | None = None, /, *, order: bool = False) -> type[T] | Callable[[type[T]], type[T]]:
    """Make cls a frozen value class: __init__ from its annotated fields (defaults as
    written, then __post_init__ if it has one), __repr__, field-wise == and hash, and
    with order=True <, <=, >, >= on the fields as a tuple."""
    if cls is None:
        return lambda later: _make(later, order)
    return _make(cls, order)
