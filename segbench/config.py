"""Strict structuring of recipe sections into frozen attrs config classes.

Unknown keys, wrong types, strings where numbers belong and out-of-range values are all errors;
every problem in a section is collected and reported at once with its key path.
"""
from __future__ import annotations

import re
from typing import Any

import attrs
import cattrs
from cattrs.errors import ForbiddenExtraKeysError

from segbench.errors import ConfigError

_NUMBER_LIKE = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def _describe(value: Any) -> str:
    if isinstance(value, str):
        return f"the string {value!r}"
    return f"{type(value).__name__} {value!r}"


def _number_hint(value: Any) -> str:
    if isinstance(value, str) and _NUMBER_LIKE.match(value.strip()):
        mantissa, _, exponent = value.strip().lower().partition("e")
        if exponent and "." not in mantissa:
            return f" (YAML reads {value} as text: write {mantissa}.0e{exponent})"
        return f" (remove the quotes around {value})"
    return ""


def _structure_float(value, _type):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected a number, got {_describe(value)}{_number_hint(value)}")
    return float(value)


def _structure_int(value, _type):
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {_describe(value)}{_number_hint(value)}")
    return value


def _structure_bool(value, _type):
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {_describe(value)}")
    return value


def _structure_str(value, _type):
    if not isinstance(value, str):
        raise TypeError(f"expected text, got {_describe(value)} (quote it if it is meant as text)")
    return value


def make_converter() -> cattrs.Converter:
    converter = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
    converter.register_structure_hook(float, _structure_float)
    converter.register_structure_hook(int, _structure_int)
    converter.register_structure_hook(bool, _structure_bool)
    converter.register_structure_hook(str, _structure_str)
    return converter


_CONVERTER = make_converter()


def _format_exception(exc: BaseException, type_) -> str:
    if isinstance(exc, ForbiddenExtraKeysError):
        valid = [f.name for f in attrs.fields(exc.cl)] if attrs.has(exc.cl) else []
        return f"unknown key(s) {', '.join(sorted(exc.extra_fields))}; valid keys: {', '.join(valid)}"
    if isinstance(exc, KeyError):
        return "required key is missing"
    text = str(exc)
    if " not in literal " in text:
        value = text.split(" not in literal ")[0]
        return f"{value!r} is not allowed; must be one of {', '.join(repr(a) for a in type_.__args__)}"
    if isinstance(exc, (TypeError, ValueError)) and text:
        if text.startswith("Expected ") or "object is not iterable" in text or "unpack" in text:
            return f"expected {getattr(type_, '__name__', type_)}, not this value ({text})"
        return text
    return f"invalid value for {getattr(type_, '__name__', type_)} ({type(exc).__name__}: {exc})"


def _clean_path(path: str) -> str:
    return path[2:] if path.startswith("$.") else path.lstrip("$")


def _validation_problems(instance, path: str) -> list[tuple[str, str]]:
    """Run every attrs validator of ``instance`` (recursively), collecting all failures."""
    problems = []
    for field in attrs.fields(type(instance)):
        value = getattr(instance, field.name)
        key = f"{path}.{field.name}" if path else field.name
        if field.validator is not None:
            try:
                field.validator(instance, field, value)
            except (TypeError, ValueError) as exc:
                problems.append((key, str(exc)))
        if attrs.has(type(value)):
            problems += _validation_problems(value, key)
        elif isinstance(value, (tuple, list)):
            for index, item in enumerate(value):
                if attrs.has(type(item)):
                    problems += _validation_problems(item, f"{key}[{index}]")
    if not problems and hasattr(instance, "__attrs_post_init__"):
        try:
            instance.__attrs_post_init__()
        except (TypeError, ValueError) as exc:
            problems.append((path or "(recipe)", str(exc)))
    return problems


def structure_problems(cls: type, data: Any, *, path: str) -> tuple[Any, list[tuple[str, str]]]:
    """Structure ``data`` into ``cls``; return ``(instance or None, problems)``."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return None, [(path, f"expected a mapping of keys to values, got {_describe(data)}")]
    with attrs.validators.disabled():
        try:
            instance = _CONVERTER.structure(data, cls)
        except cattrs.BaseValidationError as exc:
            messages = cattrs.transform_error(exc, path=f"$.{path}" if path else "$",
                                              format_exception=_format_exception)
            problems = []
            for message in messages:
                text, _, where = message.rpartition(" @ ")
                problems.append((_clean_path(where), text))
            return None, problems
    return instance, _validation_problems(instance, path)


def structure_config(cls: type, data: Any, *, path: str, files=()):
    """Structure a recipe section into ``cls`` or raise ``ConfigError`` listing every problem."""
    instance, problems = structure_problems(cls, data, path=path)
    if problems:
        raise ConfigError(problems, files=files)
    return instance


def unstructure(instance) -> Any:
    return _CONVERTER.unstructure(instance)
