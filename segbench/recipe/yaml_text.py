"""Parsing recipe YAML with bounds: plain data only (``safe_load``), no duplicate keys, and a limit on the
size, the nesting depth and what aliases expand to, so a hostile file is refused instead of exhausting
memory or the stack.
"""
from __future__ import annotations

from typing import Any

import yaml

MAX_RECIPE_BYTES = 1 << 20  # real recipes are a few kilobytes
MAX_DEPTH = 32  # mappings and lists inside each other
MAX_VALUES = 100_000  # values after expanding aliases (``*name`` repeats its anchor's whole content)

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser when installed: faster
_MERGE_TAG = "tag:yaml.org,2002:merge"


# Plain data only: the constructor is PyYAML's safe one, never one that builds Python objects.
assert issubclass(_Loader, yaml.constructor.SafeConstructor) and \
    not issubclass(_Loader, yaml.constructor.FullConstructor)


class YAMLShapeError(ValueError):
    """The YAML parses but is too large, too deep, or repeats a key; the message says where."""


class _RecipeLoader(_Loader):
    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, _value in node.value:
                if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                    continue
                key = self.construct_object(key_node)
                try:
                    first = seen.setdefault(key, key_node)
                except TypeError:  # an unhashable key: the base constructor reports it
                    continue
                if first is not key_node:
                    raise YAMLShapeError(
                        f"line {key_node.start_mark.line + 1}: duplicate key {key!r} (first given on line"
                        f" {first.start_mark.line + 1}); YAML keeps only the last one. Remove one of them, or"
                        " merge their contents into one mapping")
        return super().construct_mapping(node, deep=deep)


def _line(node) -> str:
    return f"line {node.start_mark.line + 1}"


def _text_of_timestamp(loader, node):
    # A date is text in a recipe (`description: 2024-01-01`); as a date object it could not be saved or hashed.
    return loader.construct_scalar(node)


def _bounded_int(loader, node):
    try:
        return yaml.constructor.SafeConstructor.construct_yaml_int(loader, node)
    except ValueError:
        raise YAMLShapeError(f"{_line(node)}: the integer {str(node.value)[:20]}... has {len(str(node.value)):,}"
                             " characters; no recipe value is that large: write the number you mean") from None


def _not_plain_data(loader, node):
    short = node.tag.rpartition(":")[2]
    raise YAMLShapeError(f"{_line(node)}: `!!{short}` values are not plain data (a recipe holds mappings, lists,"
                         " text, numbers, true/false and null): remove the tag and write a list or text")


_RecipeLoader.add_constructor("tag:yaml.org,2002:timestamp", _text_of_timestamp)
_RecipeLoader.add_constructor("tag:yaml.org,2002:int", _bounded_int)
for _tag in ("binary", "omap", "pairs", "set"):
    _RecipeLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _not_plain_data)


def _check_shape(data: Any) -> None:
    """Refuse data nested deeper than ``MAX_DEPTH`` or holding more than ``MAX_VALUES`` values once aliases
    are expanded (a YAML 'billion laughs' file is a few lines that expand to billions)."""
    sizes: dict[int, int] = {}  # id(container) -> its expanded size (aliases share one object)

    def size(value: Any, depth: int) -> int:
        if not isinstance(value, (dict, list)):
            return 1
        if depth > MAX_DEPTH:
            raise YAMLShapeError(f"mappings and lists are nested more than {MAX_DEPTH} deep; a recipe needs a few"
                                 " levels (section, component, option): flatten it")
        if id(value) in sizes:
            return sizes[id(value)]
        items = list(value.keys()) + list(value.values()) if isinstance(value, dict) else value
        total = 1
        for item in items:
            total += size(item, depth + 1)
            if total > MAX_VALUES:
                raise YAMLShapeError(f"it expands to more than {MAX_VALUES:,} values (aliases `*name` repeat their"
                                     " anchor's whole content, and aliases of aliases multiply); write the values"
                                     " out, or share settings with `base:` instead")
        sizes[id(value)] = total
        return total

    size(data, 0)


def parse_yaml(text: str) -> Any:
    """Parse ``text`` as plain YAML data within the bounds above.

    Raises ``yaml.YAMLError`` for syntax errors and tags, ``YAMLShapeError`` for the bounds and duplicate keys.
    """
    if len(text) > MAX_RECIPE_BYTES:
        raise YAMLShapeError(f"it is {len(text):,} characters long, more than the {MAX_RECIPE_BYTES:,} a recipe"
                             " may have; is it really a recipe?")
    loader = _RecipeLoader(text)  # what yaml.safe_load does, with the checks above
    try:
        data = loader.get_single_data()
    except RecursionError:
        raise YAMLShapeError(f"mappings and lists are nested too deeply (a recipe needs at most {MAX_DEPTH}"
                             " levels): flatten it") from None
    finally:
        loader.dispose()
    _check_shape(data)
    return data
