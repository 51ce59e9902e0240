"""The field types a component's config class may declare: those a YAML recipe can write, the recipe checker
can read, and a run's hash and its saved recipe can hold. A plugin declaring another type (a set, bytes, a
union of two kinds of value) is refused when it registers, rather than failing with a traceback in every run
that names it."""
from __future__ import annotations

import collections.abc
import enum
import pathlib
import typing

import attrs
import cattrs.disambiguators

from segbench.config import UNION_ORIGINS, make_converter

_SCALARS = (bool, int, float, str, type(None))
_SEQUENCES = (tuple, list, collections.abc.Sequence, collections.abc.MutableSequence)
_MAPPINGS = (dict, collections.abc.Mapping, collections.abc.MutableMapping)
SUPPORTED = ("bool, int, float, str, a path, a Literal of these, tuples, lists, sequences or str-keyed mappings"
             " of supported types, an Enum, another attrs class, or `X | None`")


def _problem(type_, seen: set) -> object | None:
    """The part of ``type_`` a recipe cannot hold (``None`` when all of it can)."""
    if type_ is None or type_ is typing.Any or type_ in _SCALARS or type_ in (*_SEQUENCES, *_MAPPINGS):
        return None  # None: a field without annotation, passed on as the recipe wrote it
    if isinstance(type_, type) and issubclass(type_, (enum.Enum, pathlib.PurePath)):
        return None
    if hasattr(type_, "__supertype__"):  # typing.NewType
        return _problem(type_.__supertype__, seen)
    if attrs.has(type_):
        if type_ in seen:
            return None
        seen.add(type_)
        attrs.resolve_types(type_)
        return next((problem for field in attrs.fields(type_) if (problem := _problem(field.type, seen)) is not None),
                    None)
    origin, args = typing.get_origin(type_), typing.get_args(type_)
    if origin is typing.Annotated:
        return _problem(args[0], seen)
    if origin is typing.Literal:
        return None if all(isinstance(arg, (*_SCALARS, enum.Enum)) for arg in args) else type_
    if origin in UNION_ORIGINS:
        return _union_problem(type_, [arg for arg in args if arg is not type(None)], seen)
    if origin in _SEQUENCES:
        return next((problem for arg in args if arg is not Ellipsis and (problem := _problem(arg, seen)) is not None),
                    None)
    if origin in _MAPPINGS:
        key, value = args or (str, typing.Any)
        if _problem(key, seen) is not None or attrs.has(key):
            return type_
        return _problem(value, seen)
    return type_


def _union_problem(type_, values: list, seen: set) -> object | None:
    if len(values) > 1:
        if not all(attrs.has(value) for value in values):
            return type_  # the checker cannot tell which kind a recipe's value is meant as
        try:  # attrs classes are told apart by their fields: cattrs must find a field only one of them has
            cattrs.disambiguators.create_default_dis_func(make_converter(), *values)
        except Exception:
            return type_
    return next((problem for value in values if (problem := _problem(value, seen)) is not None), None)


def _shown(type_) -> str:
    # set[int] is an instance of type on Python 3.10: only a bare class is shown by its name
    return type_.__name__ if isinstance(type_, type) and typing.get_origin(type_) is None else str(type_)


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
            return f"field {field.name!r} has type {_shown(problem)}, which a recipe cannot hold; use {SUPPORTED}"
    return None
