"""What a checkpoint needs of a plugin's ``state_dict()``: values that ``torch.load(weights_only=True)`` reads
back. Found when the checkpoint is written, the plugin is named; found when a run resumes, the checkpoint would be
blamed and the run could not continue."""
from __future__ import annotations

import collections
import io
import pickle

import torch

from segbench.errors import FIX_PLUGIN, PluginError

KEPT = "tensors, numbers, strings, bytes, None, and lists, tuples, sets and dicts of them"


def check_checkpointable(state, component, method: str = "state_dict()") -> None:
    """Raise a ``PluginError`` naming ``component`` when ``state`` (what its ``method`` returned) cannot be saved
    in a checkpoint and read back. Tensors are checked by type only, so the cost does not grow with their size."""
    if _round_trip_problem(_skeleton(state)) is None:
        return
    where, problem = _first_failure(state)
    entry = component.entry
    raise PluginError(f"{component.path}: {entry.noun} {entry.name!r} ({entry.origin}) returned from {method} a"
                      f" state that a checkpoint cannot keep: {where} ({problem}). A resumable run saves it and"
                      f" reads it back with torch.load(weights_only=True), which accepts {KEPT}. {FIX_PLUGIN}.")


def _skeleton(value):
    """``value`` with each tensor replaced by an empty one of its dtype."""
    if isinstance(value, torch.Tensor):
        return torch.empty(0, dtype=value.dtype)
    if type(value) in (dict, collections.OrderedDict):
        return type(value)((key, _skeleton(item)) for key, item in value.items())
    if type(value) in (list, tuple):
        return type(value)(_skeleton(item) for item in value)
    return value


def _round_trip_problem(value) -> str | None:
    buffer = io.BytesIO()
    try:
        torch.save(value, buffer)
    except (pickle.PicklingError, TypeError, AttributeError, RuntimeError) as exc:
        return f"it cannot be saved: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
    buffer.seek(0)
    try:
        torch.load(buffer, weights_only=True)
    except pickle.UnpicklingError:
        return f"a {type(value).__module__}.{type(value).__qualname__} is not read back"
    return None


def _first_failure(value, path: str = "state") -> tuple[str, str]:
    """The path of the first value that fails the round trip on its own, descending into containers, and why."""
    if type(value) in (dict, collections.OrderedDict):
        items = [(f"{path}[{key!r}]", item) for key, item in value.items()]
    elif type(value) in (list, tuple):
        items = [(f"{path}[{index}]", item) for index, item in enumerate(value)]
    else:
        items = []
    for item_path, item in items:
        if _round_trip_problem(_skeleton(item)) is not None:
            return _first_failure(item, item_path)
    # a leaf, or a container whose items pass alone (a key that is not read back)
    return path, _round_trip_problem(_skeleton(value)) or "it is not read back"
