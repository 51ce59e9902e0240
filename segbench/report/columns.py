"""Extra columns for ``segbench compare --columns``: any value of a run's ``results.json`` by its key path.

``provenance.torch`` or just ``torch`` (keys not at the top level are looked up under ``provenance``),
``evaluation.flip``, ``per_class_iou.road`` ...
"""
from __future__ import annotations

import json

from segbench.errors import SegbenchError

PROVENANCE = "provenance"


def parse_columns(values) -> list[str]:
    """``--columns a,b --columns c`` -> ``["a", "b", "c"]``."""
    columns = [part.strip() for value in values or () for part in value.split(",") if part.strip()]
    for column in columns:
        if any(not part for part in column.split(".")):
            raise SegbenchError(f"--columns {column!r}: write key paths like provenance.git_commit or torch")
    return columns


def _find(results: dict, column: str) -> tuple[bool, object]:
    """(found, value) at ``column`` (dotted) in ``results``, trying ``provenance.<column>`` second."""
    for path in (column, f"{PROVENANCE}.{column}"):
        value, found = results, True
        for part in path.split("."):
            if isinstance(value, dict) and part in value:
                value = value[part]
            else:
                found = False
                break
        if found:
            return True, value
    return False, None


def lookup(results: dict, column: str):
    """The value at ``column`` (dotted) in ``results``, trying ``provenance.<column>`` second; None if absent."""
    return _find(results, column)[1]


def has_key(results: dict, column: str) -> bool:
    """Whether ``results`` has ``column`` at all (a ``null`` value counts: the run recorded that it has none)."""
    return _find(results, column)[0]


def cell_text(value) -> str | None:
    """Scalars as they are; plugin lists as ``name (distribution version)``; anything else as JSON."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, list) and all(isinstance(v, dict) and "distribution" in v for v in value):
        return "; ".join(f"{v.get('name')} ({v.get('distribution')} {v.get('version')})" for v in value)
    return json.dumps(value, sort_keys=True)


def known_columns(results: dict) -> list[str]:
    """Every key path of ``results`` with a scalar or list value, for the error message of an unknown column."""
    paths = []

    def walk(value, prefix):
        if isinstance(value, dict) and prefix.count(".") < 2:
            for key, inner in value.items():
                walk(inner, f"{prefix}.{key}" if prefix else key)
        else:
            paths.append(prefix)

    walk({k: v for k, v in results.items() if k not in ("confusion_matrix", "per_class_iou")}, "")
    return paths
