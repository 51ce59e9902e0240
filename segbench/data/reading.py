"""Reading one item from a dataset plugin: an exception it raises, or an item that is not the ``(image, mask)``
pair, becomes an error naming the item's file and the dataset's class, not a traceback from deep inside
training, evaluation or a DataLoader worker."""
from __future__ import annotations

import errno

from segbench.errors import FIX_PLUGIN, DataError, LabelValueError, PluginError, SegbenchError


def item_path(dataset, index: int, *, label: bool = False) -> str:
    """How a message names item ``index``: its image file (its label file with ``label``) when the dataset knows
    it."""
    method = "label_path" if label else "image_path"
    try:
        return str(getattr(dataset, method)(index)) if hasattr(dataset, method) else f"item {index}"
    except Exception:  # the message is about another failure: do not replace it with this one
        return f"item {index}"


def failing_file(dataset, index: int, exc: Exception) -> str:
    """The file a ``DataError`` from item ``index``'s transforms is about: its label for a label value."""
    return item_path(dataset, index, label=isinstance(exc, LabelValueError))


def _dataset_name(dataset) -> str:
    kind = type(dataset)
    return f"{kind.__module__}.{kind.__qualname__}"


def _failed(dataset, index: int, what: str, exc: Exception) -> DataError:
    return DataError(f"{item_path(dataset, index)}: the dataset ({_dataset_name(dataset)}) failed in {what}:"
                     f" {type(exc).__name__}: {exc}. If that item's files are missing or damaged, replace them;"
                     f" otherwise the dataset plugin is at fault: {FIX_PLUGIN} (--debug shows where).")


# Passed on as they are: segbench's own errors (already a message naming the file) and the machine's trouble,
# not the item's (memory, a full disk, too many open files).
_MACHINE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EMFILE, errno.ENFILE, errno.ENOMEM}


def _passed_on(exc: Exception) -> bool:
    return isinstance(exc, (SegbenchError, MemoryError)) or (isinstance(exc, OSError) and exc.errno in _MACHINE_ERRNOS)


def read_item(dataset, index: int):
    """``dataset[index]``, checked to be a pair (what is in the pair, the transform pipeline checks)."""
    try:
        item = dataset[index]
    except Exception as exc:
        if _passed_on(exc):
            raise
        raise _failed(dataset, index, f"__getitem__({index})", exc) from exc
    if not (isinstance(item, (tuple, list)) and len(item) == 2):
        shown = f"a {type(item).__name__} of {len(item)}" if isinstance(item, (tuple, list)) else \
            f"a {type(item).__module__}.{type(item).__qualname__}"
        raise PluginError(f"{item_path(dataset, index)}: the dataset ({_dataset_name(dataset)}) returned {shown}"
                          f" from __getitem__({index}); it must return the pair (image, mask). {FIX_PLUGIN}.")
    return tuple(item)


def read_mask(dataset, index: int):
    """``dataset.read_mask(index)``, with a failure named as :func:`read_item` names it."""
    try:
        return dataset.read_mask(index)
    except Exception as exc:
        if _passed_on(exc):
            raise
        raise _failed(dataset, index, f"read_mask({index})", exc) from exc
