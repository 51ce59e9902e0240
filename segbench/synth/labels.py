"""Cityscapes label tables, taken from ``torchvision.datasets.Cityscapes.classes`` (never retyped)."""
from __future__ import annotations

import numpy as np

from segbench.lazy_torchvision import cityscapes_classes

_CLASSES = [c for c in cityscapes_classes() if c.id >= 0]  # license plate (-1) never appears in PNGs

#: labelId of every class name, e.g. ``LABEL["road"] == 7``.
LABEL: dict[str, int] = {c.name: c.id for c in _CLASSES}

#: ``TRAIN_ID[label_id]``: the 19-class train id, 255 for ignored labelIds (index with any uint8 array).
TRAIN_ID = np.full(256, 255, dtype=np.uint8)
#: ``COLOR[label_id]``: the official visualisation colour (RGB uint8).
COLOR = np.zeros((256, 3), dtype=np.uint8)
for _c in _CLASSES:
    TRAIN_ID[_c.id] = _c.train_id if 0 <= _c.train_id < 255 else 255
    COLOR[_c.id] = _c.color

#: labelIds whose pixels carry instance numbers (``labelId * 1000 + k`` in ``*_instanceIds.png``).
INSTANCE_LABELS = frozenset(c.id for c in _CLASSES if c.has_instances)

#: The 19 evaluated class names in train-id order.
TRAIN_NAMES: tuple[str, ...] = tuple(
    c.name for c in sorted((c for c in _CLASSES if 0 <= c.train_id < 255), key=lambda c: c.train_id))

NUM_LABEL_IDS = max(LABEL.values()) + 1  # 34
