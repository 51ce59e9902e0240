"""Strict structuring of recipe sections into frozen attrs config classes.

Unknown keys, wrong types, strings where numbers belong and out-of-range values are all errors;
every problem in a section is collected and reported at once with its key path.
"""
from __future__ import annotations

import math
import re
import types
import typing
from typing import Any

import attrs
import cattrs
import cattrs.gen
import yaml
from cattrs.errors import ForbiddenExtraKeysError

from segbench.errors import ConfigError
from segbench.limits import IMAGE_SIDE_MAX, SEED_MAX  # noqa: F401 - shared with config classes

# No recipe value needs more: larger integers overflow torch, numpy and C on the way.
INT_LIMIT = 2**63 - 1

_NUMBER_LIKE = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def _describe(value: Any) -> str:
    if isinstance(value, str):
        return f"the string {value!r}"
    return f"{type(value).__name__} {value!r}"


def _yaml_float_text(text: str) -> str:
    """``text`` (a number YAML 1.1 reads as a string, like ``6e-5``) in the form it reads as a float: a dot in
    the mantissa and a sign in the exponent (``6.0e-5``, ``1.0e+2``)."""
    mantissa, _, exponent = text.lower().partition("e")
    if "." not in mantissa:
        mantissa += ".0"
    elif mantissa.endswith("."):
        mantissa += "0"
    if exponent and exponent[0] not in "+-":
        exponent = "+" + exponent
    return f"{mantissa}e{exponent}" if exponent else mantissa


def _number_hint(value: Any, *, integer: bool = False) -> str:
    if not (isinstance(value, str) and _NUMBER_LIKE.match(value.strip())):
        return ""
    text = value.strip()
    if integer:
        number = float(text)
        if number.is_integer() and abs(number) <= INT_LIMIT:
            return f" (write {int(number)})"
        return ""
    if isinstance(yaml.safe_load(text), (int, float)):
        return f" (remove the quotes around {text})"
    return f" (YAML reads {text} as text: write {_yaml_float_text(text)})"


def _structure_float(value, _type):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected a number, got {_describe(value)}{_number_hint(value)}")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise ValueError(f"expected a finite number, got {value!r}")
    return number


def _structure_int(value, _type):
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {_describe(value)}{_number_hint(value, integer=True)}")
    if abs(value) > INT_LIMIT:
        raise ValueError(f"{value} is out of range (an integer this large is never a sensible setting)")
    return value


def _structure_bool(value, _type):
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {_describe(value)}")
    return value


def _structure_str(value, _type):
    if not isinstance(value, str):
        raise TypeError(f"expected text, got {_describe(value)} (quote it if it is meant as text)")
    return value


def _is_sequence_type(type_) -> bool:
    return typing.get_origin(type_) in (tuple, list) or type_ in (tuple, list)


def _refuse_text_for_sequences(converter: cattrs.Converter, plain: cattrs.Converter) -> None:
    """A string where a list goes is an error, not a list of its letters (``cities: aachen``)."""
    def factory(type_):
        default = plain.get_structure_hook(type_)

        def structure(value, _type):
            if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
                raise TypeError(f"expected a list, got {_describe(value)}"
                                + (f" (write [{value}])" if isinstance(value, str) else ""))
            return default(value, _type)
        return structure
    converter.register_structure_hook_factory(_is_sequence_type, factory)


def _is_mapping_type(type_) -> bool:
    return typing.get_origin(type_) is dict or type_ is dict


def _refuse_non_mappings(converter: cattrs.Converter) -> None:
    """A list or a text where a mapping or a config class goes (``groups: [backbone]``) is reported as such,
    not as the ``AttributeError`` structuring it would raise."""
    def guarded(make):
        def factory(type_):
            default = make(type_, converter)

            def structure(value, _type):
                if not isinstance(value, dict):
                    raise TypeError(f"expected a mapping of keys to values, got {_describe(value)}")
                return default(value, _type)
            return structure
        return factory
    converter.register_structure_hook_factory(_is_mapping_type, guarded(cattrs.gen.make_mapping_structure_fn))
    converter.register_structure_hook_factory(attrs.has, guarded(cattrs.gen.make_dict_structure_fn))


def make_converter(*, sequences_refuse_text: bool = True) -> cattrs.Converter:
    converter = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
    converter.register_structure_hook(float, _structure_float)
    converter.register_structure_hook(int, _structure_int)
    converter.register_structure_hook(bool, _structure_bool)
    converter.register_structure_hook(str, _structure_str)
    if sequences_refuse_text:
        _refuse_text_for_sequences(converter, make_converter(sequences_refuse_text=False))
        _refuse_non_mappings(converter)
    return converter


def _bound_text(low, high, low_open: bool, high_open: bool) -> str:
    parts = []
    if low is not None:
        parts.append(f"{'greater than' if low_open else 'at least'} {low}")
    if high is not None:
        parts.append(f"{'less than' if high_open else 'at most'} {high}")
    return " and ".join(parts)


def in_range(low=None, high=None, *, low_open: bool = False, high_open: bool = False):
    """An attrs validator: a finite number within the bounds (``low_open``: ``> low`` instead of ``>=``).

    ``None`` passes (optional fields); a tuple or list is checked element by element. Every numeric
    config field declares its sane range with this, so nothing absurd reaches torch or the disk.
    """
    bounds = _bound_text(low, high, low_open, high_open)

    def check(instance, attribute, value):
        if value is None:
            return
        for number in (value if isinstance(value, (tuple, list)) else (value,)):
            if isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number):
                raise ValueError(f"{attribute.name} must be a finite number {bounds}, got {value!r}")
            too_low = low is not None and (number <= low if low_open else number < low)
            too_high = high is not None and (number >= high if high_open else number > high)
            if too_low or too_high:
                shown = list(value) if isinstance(value, tuple) else value
                raise ValueError(f"{attribute.name} must be {bounds}, got {shown}")
    check.bounds = bounds  # what `segbench list -v` shows as the allowed values
    return check


_CONVERTER = make_converter()
# What typing.get_origin gives for `Union[X, Y]` and for `X | Y`.
UNION_ORIGINS = (typing.Union, types.UnionType)


_WRONG_COUNT = re.compile(r"(?:Too many|Not enough) values in (.*) to structure as tuple\[(.*)\]")
# attrs' min_len/max_len wording, "Length of 'channels' must be >= 2: 0", as the recipe's key path reads it
_LENGTH = re.compile(r"Length of '[^']*' must be ([<>])= (\d+): (\d+)")


def _length_text(bound: str, limit: str, count: str, *, text: bool) -> str:
    if text and (bound, limit) == (">", "1"):
        return "must not be empty"
    unit = ("character" if text else "value") + ("" if limit == "1" else "s")
    return f"must hold {'at least' if bound == '>' else 'at most'} {limit} {unit}, got {count}"


def _format_exception(exc: BaseException, type_) -> str:
    if isinstance(exc, ForbiddenExtraKeysError):
        valid = [f.name for f in attrs.fields(exc.cl)] if attrs.has(exc.cl) else []
        # YAML reads `on:`, `yes:` or `1:` as a non-text key: show those as written by Python, sorted as text
        unknown = sorted(key if isinstance(key, str) else repr(key) for key in exc.extra_fields)
        return f"unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(valid) or '(none: it has no settings)'}"
    if isinstance(exc, KeyError):
        return "required key is missing"
    text = str(exc)
    if " not in literal " in text:
        value = text.split(" not in literal ")[0]
        return f"{value!r} is not allowed; must be one of {', '.join(repr(a) for a in type_.__args__)}"
    if wrong_count := _WRONG_COUNT.fullmatch(text):
        value, inside = wrong_count.groups()
        count = inside.count(",") + 1
        expected = f"{count} value{'s' * (count > 1)}" if "[" not in inside else f"the values of {inside}"
        return f"expected {expected}, got {value if len(value) <= 100 else value[:100] + ' ...'}"
    if isinstance(exc, (TypeError, ValueError)) and text:
        if text.startswith("Expected ") or "object is not iterable" in text or "unpack" in text:
            return f"expected {getattr(type_, '__name__', type_)}, not this value ({text})"
        return text
    return f"invalid value for {getattr(type_, '__name__', type_)} ({type(exc).__name__}: {exc})"


_MAPPING_KEY = re.compile(r"\['([A-Za-z_][A-Za-z0-9_-]*)'\]")


def _clean_path(path: str) -> str:
    """cattrs' ``$.optimizer.groups['backbone'].lr`` as a user writes it: ``optimizer.groups.backbone.lr``."""
    path = _MAPPING_KEY.sub(r".\1", path)
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
                # The key path already names the field: "trainer.epochs: must be ...", not "epochs must be".
                text = str(exc).removeprefix(f"{field.name} ")
                if length := _LENGTH.fullmatch(text):
                    text = _length_text(*length.groups(), text=isinstance(value, str))
                problems.append((key, text))
        if attrs.has(type(value)):
            problems += _validation_problems(value, key)
        elif isinstance(value, (tuple, list)):
            for index, item in enumerate(value):
                if attrs.has(type(item)):
                    problems += _validation_problems(item, f"{key}[{index}]")
        elif isinstance(value, dict):
            for name, item in value.items():
                if attrs.has(type(item)):
                    problems += _validation_problems(item, f"{key}.{name}")
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
    if attrs.has(cls):
        data = _with_float_defaults(cls, data)
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
            return None, problems + _problems_beside(cls, data, path=path, failed=[key for key, _ in problems])
    return instance, _validation_problems(instance, path)


def _as_declared_float(value, type_):
    """``value`` with the ints that ``type_`` declares floats made floats, as structuring a recipe's value makes
    them (``dropout: float = 0``); anything else unchanged."""
    if type(value) is int and (type_ is float or (typing.get_origin(type_) in UNION_ORIGINS
                                                   and set(typing.get_args(type_)) == {float, type(None)})):
        return float(value)
    if isinstance(value, tuple) and typing.get_origin(type_) is tuple:
        items = typing.get_args(type_)
        item_types = [items[0]] * len(value) if len(items) == 2 and items[1] is Ellipsis else items
        if len(item_types) == len(value):
            return tuple(_as_declared_float(item, item_type) for item, item_type in zip(value, item_types))
    return value


def _with_float_defaults(cls: type, data: dict) -> dict:
    """``data`` with each float default written as an int given as the float a recipe spelling it out gives, so
    that spelling a default out changes nothing, the run's hash included."""
    try:
        fields = attrs.fields(attrs.resolve_types(cls))
    except Exception:  # annotations that do not resolve: structuring says so
        return data
    filled = dict(data)
    for field in fields:
        if field.name not in data and field.init and field.converter is None and \
                not isinstance(field.default, attrs.Factory) and field.default is not attrs.NOTHING:
            as_float = _as_declared_float(field.default, field.type)
            if as_float is not field.default:
                filled[field.name] = as_float
    return filled


def _problems_beside(cls: type, data: dict, *, path: str, failed: list[str]) -> list[tuple[str, str]]:
    """The validators' problems with the keys that did structure, so that one error lists every mistake in
    the section (a wrong choice in one key and a number out of range in another), not only the first kind.
    The keys that failed are left to their defaults; nothing is added when the rest cannot structure either."""
    prefix = f"{path}." if path else ""

    def section_key(key: str) -> str:  # "optimizer.groups.backbone.lr" -> "groups"
        return key.removeprefix(prefix).split(".")[0].split("[")[0]

    failed_keys = {section_key(key) for key in failed}
    rest = {key: value for key, value in data.items() if key not in failed_keys}
    if len(rest) == len(data):
        return []
    with attrs.validators.disabled():
        try:
            instance = _CONVERTER.structure(rest, cls)
        except (cattrs.BaseValidationError, TypeError, ValueError, KeyError):
            return []
    return [(key, text) for key, text in _validation_problems(instance, path) if section_key(key) in rest]


def structure_config(cls: type, data: Any, *, path: str, files=()):
    """Structure a recipe section into ``cls`` or raise ``ConfigError`` listing every problem."""
    instance, problems = structure_problems(cls, data, path=path)
    if problems:
        raise ConfigError(problems, files=files)
    return instance


def unstructure(instance) -> Any:
    return _CONVERTER.unstructure(instance)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def unstructure_plain(instance) -> Any:
    """A config (or any value) as YAML/JSON data: tuples become lists, recursively."""
    return _plain(unstructure(instance))
