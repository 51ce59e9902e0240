"""What a user can set: a component's config keys (type, default, allowed range) for ``segbench list -v``.
Read from the attrs config classes themselves, so it cannot drift from validation."""
from __future__ import annotations

import functools
import inspect
import typing

import attrs


@attrs.frozen
class ConfigKey:
    name: str
    type: str
    default: str  # as YAML would show it; "(required)" when there is none
    allowed: str  # "" when any value of the type is allowed


def _type_text(annotation) -> str:
    if isinstance(annotation, str):
        return annotation
    if typing.get_origin(annotation) is typing.Literal:
        return " | ".join(repr(a) for a in typing.get_args(annotation))
    text = getattr(annotation, "__name__", None) if not typing.get_args(annotation) else None
    return text or str(annotation).replace("typing.", "")


def _validator_text(validator) -> list[str]:
    """``>= 0``, ``< 1`` ... from attrs' built-in validators (and_, optional, in_, comparisons)."""
    if validator is None:
        return []
    if isinstance(getattr(validator, "bounds", None), str):  # segbench.config.in_range
        return [validator.bounds]
    if hasattr(validator, "compare_op"):
        return [f"{validator.compare_op} {validator.bound}"]
    if hasattr(validator, "_validators"):
        return [text for inner in validator._validators for text in _validator_text(inner)]
    if hasattr(validator, "validator"):  # optional(...)
        return _validator_text(validator.validator)
    if hasattr(validator, "options"):
        return ["one of " + ", ".join(repr(o) for o in validator.options)]
    return []


def _default_text(field) -> str:
    default = field.default
    if default is attrs.NOTHING:
        return "(required)"
    if isinstance(default, attrs.Factory):
        default = default.factory() if not default.takes_self else "(computed)"
    if default is None:
        return "null"
    if isinstance(default, bool):
        return str(default).lower()
    if isinstance(default, tuple):
        return str(list(default))
    return str(default)


def config_keys(config_class: type) -> list[ConfigKey]:
    try:
        hints = typing.get_type_hints(config_class)
    except Exception:  # an annotation that does not resolve here: show it as written
        hints = {}
    keys = []
    for field in attrs.fields(config_class):
        annotation = hints.get(field.name, field.type)
        allowed = " and ".join(_validator_text(field.validator))
        if typing.get_origin(annotation) is typing.Literal:
            allowed = "one of " + ", ".join(repr(a) for a in typing.get_args(annotation))
        keys.append(ConfigKey(field.name, _type_text(annotation), _default_text(field), allowed))
    return keys


def first_doc_line(entry) -> str:
    """The first paragraph of the factory's documentation, else of its config class's, as one line."""
    factory = entry.factory.func if isinstance(entry.factory, functools.partial) else entry.factory
    for source in (factory, entry.config):
        doc = source.__doc__  # its own, never one inherited from a base class
        if doc and doc.strip():
            return " ".join(inspect.cleandoc(doc).split("\n\n")[0].split())  # its first paragraph, one line
    return ""


def describe_settings(entry) -> list[str]:
    """Lines for ``segbench list KIND -v``: the doc line, then one line per config key."""
    lines = []
    doc = first_doc_line(entry)
    if doc:
        lines.append(f"      {doc}")
    keys = config_keys(entry.config)
    if not keys:
        lines.append("      (no settings)")
    width = max((len(k.name) for k in keys), default=0)
    for key in keys:
        allowed = f"  [{key.allowed}]" if key.allowed else ""
        lines.append(f"      {key.name:<{width}}  {key.type} = {key.default}{allowed}")
    return lines
