"""The field types a component's config class may declare: those a YAML recipe can write, the recipe checker
can read, and a run's hash and its saved recipe can hold. A plugin declaring another type (a set, bytes, a
union of two kinds of value) is refused when it registers, rather than failing with a traceback in every run
that names it."""
from __future__ import annotations

import enum
import types
import typing

import attrs

_SCALARS = (bool, int, float, str, type(None))
_UNION_ORIGINS = (typing.Union, types.UnionType)
SUPPORTED = ("bool, int, float, str, a Literal of these, tuple[...], list[...] or dict[str, ...] of supported"
             " types, an Enum, another attrs class, or `X | None`")


def _problem(type_, seen: set) -> object | None:
    """The part of ``type_`` a recipe cannot hold (``None`` when all of it can)."""
    if type_ is None or type_ is typing.Any or type_ in _SCALARS or type_ in (tuple, list, dict):
        return None  # None: a field without annotation, passed on as the recipe wrote it
    if isinstance(type_, type) and issubclass(type_, enum.Enum):
        return None
    if attrs.has(type_):
        if type_ in seen:
            return None
        seen.add(type_)
        attrs.resolve_types(type_)
        for field in attrs.fields(type_):
            problem = _problem(field.type, seen)
            if problem is not None:
                return problem
        return None
    origin, args = typing.get_origin(type_), typing.get_args(type_)
    if origin is typing.Literal:
        return None if all(isinstance(arg, _SCALARS) for arg in args) else type_
    if origin in _UNION_ORIGINS:
        values = [arg for arg in args if arg is not type(None)]
        if len(values) > 1 and not all(attrs.has(arg) for arg in values):
            return type_  # the checker cannot tell which kind a recipe value was meant as
        return next((problem for arg in values if (problem := _problem(arg, seen)) is not None), None)
    if origin in (tuple, list):
        return next((problem for arg in args if arg is not Ellipsis and (problem := _problem(arg, seen)) is not None),
                    None)
    if origin is dict:
        key, value = args or (str, typing.Any)
        if key not in (str, int):
            return type_
        return _problem(value, seen)
    return type_


def unsupported_field(config: type) -> str | None:
    """Why ``config`` (an attrs class) cannot be a component's config class, naming the field; ``None`` if it can."""
    try:
        attrs.resolve_types(config)
    except Exception as exc:  # a NameError in a string annotation, typically
        return f"its field types cannot be resolved ({type(exc).__name__}: {exc}); import the names they use"
    for field in attrs.fields(config):
        try:
            problem = _problem(field.type, {config})
        except Exception as exc:  # a nested class whose annotations do not resolve
            return f"field {field.name!r}'s type cannot be resolved ({type(exc).__name__}: {exc})"
        if problem is not None:
            shown = getattr(problem, "__name__", None) if isinstance(problem, type) else None
            return (f"field {field.name!r} has type {shown or problem}, which a recipe cannot hold; use {SUPPORTED}")
    return None
