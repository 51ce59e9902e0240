"""Recipe merging rules, as pure functions on plain data (dicts, lists, scalars).

- Mappings deep-merge; lists and scalars replace; ``None`` is a value like any other.
- A child mapping whose ``name`` differs from the base's replaces it (switching ``adam`` to
  ``sgd`` must not leak ``betas``).
- A child mapping with ``_replace_: true`` replaces the base mapping instead of merging.
"""
from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

REPLACE_KEY = "_replace_"


class MergeMarkerError(ValueError):
    """A ``_replace_`` marker that is not ``true`` or ``false``."""


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def _check_marker(value: dict, path: str) -> bool:
    marker = value.get(REPLACE_KEY, False)
    if not isinstance(marker, bool):
        raise MergeMarkerError(f"{_join(path, REPLACE_KEY)} is {marker!r}; it takes true (replace the base's"
                               " mapping) or false (merge into it, the default)")
    return marker


def strip_markers(value: Any, path: str = "") -> Any:
    """``value`` without its ``_replace_`` markers (each checked to be true or false); ``path`` names it."""
    if isinstance(value, dict):
        _check_marker(value, path)
        return {k: strip_markers(v, _join(path, k)) for k, v in value.items() if k != REPLACE_KEY}
    if isinstance(value, list):
        return [strip_markers(v, f"{path}[{index}]") for index, v in enumerate(value)]
    return value


def deep_merge(base: Any, child: Any, *, path: str = "") -> Any:
    """Return ``child`` merged over ``base`` (neither input is modified); ``path`` names ``child`` in messages."""
    if not (isinstance(base, dict) and isinstance(child, dict)):
        return strip_markers(copy.deepcopy(child), path)
    if _check_marker(child, path) or ("name" in child and "name" in base and child["name"] != base["name"]):
        return strip_markers(copy.deepcopy(child), path)
    merged = strip_markers(copy.deepcopy(base), path)
    for key, value in child.items():
        if key == REPLACE_KEY:
            continue
        key_path = _join(path, key)
        merged[key] = deep_merge(merged[key], value, path=key_path) if key in merged \
            else strip_markers(copy.deepcopy(value), key_path)
    return merged


class OverridePathError(ValueError):
    """An override names a path whose parent does not exist or is not a mapping."""


def set_path(tree: dict, dotted_key: str, value: Any) -> dict:
    """Return a copy of ``tree`` with ``value`` merged at ``dotted_key`` (``a.b.c``).

    Every parent on the path must already be a mapping (or null, which becomes one); the last key may be new
    (its validity is checked when the section is structured against its config class). Setting a different ``name``
    replaces the whole mapping, as in a recipe (``loss.name=ohem_cross_entropy`` drops the old loss's keys).
    """
    keys = dotted_key.split(".")
    if any(not k for k in keys):
        raise OverridePathError(f"{dotted_key!r} has an empty key; write dotted keys like trainer.epochs")
    if REPLACE_KEY in keys:
        section = ".".join(keys[:keys.index(REPLACE_KEY)]) or "section"
        raise OverridePathError(f"{dotted_key!r}: {REPLACE_KEY} marks a mapping that replaces the base's instead of"
                                f" merging, so it goes inside the new mapping: {section}={{{REPLACE_KEY}: true, ...}}")
    result = copy.deepcopy(tree)
    node = result
    for depth, key in enumerate(keys[:-1]):
        if isinstance(node, dict) and key in node and node[key] is None:  # `class_weighting: null`: none set yet
            node[key] = {}
        child = node.get(key) if isinstance(node, dict) else None
        if not isinstance(child, dict):
            where = ".".join(keys[: depth + 1])
            existing = ", ".join(sorted(map(str, node))) if isinstance(node, dict) else "(not a mapping)"
            if child is None:
                raise OverridePathError(f"{where!r} is not a section of the recipe (keys there: {existing}); to"
                                        f" add it, give it whole, e.g. {where}={{name: ...}}")
            if isinstance(child, list):
                raise OverridePathError(f"{where!r} is a list, whose items have no keys: give the whole list,"
                                        f" e.g. {where}=[...]")
            raise OverridePathError(f"{where!r} is a value, not a section, so {dotted_key!r} cannot be set")
        node = child
    last = keys[-1]
    if last == "name" and "name" in node and node["name"] != value:
        # Another component: its options replace the old one's, as a differing `name:` in a recipe does.
        node.clear()
    node[last] = deep_merge(node[last], value, path=dotted_key) if last in node \
        else strip_markers(copy.deepcopy(value), dotted_key)
    return result


def content_hash(data: Any, *, exclude: tuple[str, ...] = ()) -> str:
    """A stable SHA-256 of plain data: key order and formatting do not change it."""
    if isinstance(data, dict):
        data = {k: v for k, v in data.items() if k not in exclude}
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
