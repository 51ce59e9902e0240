"""The dataset contract every dataset plugin returns, and the Cityscapes class table."""
from __future__ import annotations

import abc
import functools
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable

import attrs
import numpy as np
import torch

from segbench.lazy_torchvision import cityscapes_classes


@attrs.frozen
class DatasetInfo:
    """What a dataset's train ids mean.

    ``class_names[k]`` and ``palette[k]`` (RGB) describe train id ``k``; mask pixels equal to
    ``ignore_index`` are not scored. ``train_to_label_id[k]`` is the id written in exported label
    files (for Cityscapes the official labelId a benchmark submission uses), or ``None`` when the
    dataset has no separate export ids.
    """

    class_names: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    ignore_index: int = 255
    train_to_label_id: tuple[int, ...] | None = None

    def __attrs_post_init__(self):
        if len(self.palette) != len(self.class_names):
            raise ValueError(f"{len(self.class_names)} class names but {len(self.palette)} palette colours")
        if self.train_to_label_id is not None and len(self.train_to_label_id) != len(self.class_names):
            raise ValueError(f"{len(self.class_names)} class names but {len(self.train_to_label_id)} export ids")
        if 0 <= self.ignore_index < len(self.class_names):
            raise ValueError(f"ignore_index {self.ignore_index} is also a class id (0..{len(self.class_names) - 1})")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


class SegmentationDataset(torch.utils.data.Dataset, abc.ABC):
    """A map-style dataset of ``(image, mask)`` pairs, what a dataset plugin's factory returns.

    ``dataset[i]`` is ``(image, mask)``: ``image`` a ``uint8`` tensor ``(3, H, W)`` (RGB), ``mask`` a
    ``uint8`` tensor ``(H, W)`` of train ids, ``info.ignore_index`` where a pixel is not scored.
    A problem with item ``i``'s files raises ``segbench.errors.DataError`` naming the file, so a
    failure inside a DataLoader worker still says which image is at fault.
    """

    info: DatasetInfo

    @abc.abstractmethod
    def __len__(self) -> int: ...

    @abc.abstractmethod
    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]: ...

    @abc.abstractmethod
    def read_mask(self, index: int) -> torch.Tensor:
        """The ``uint8`` train-id mask ``(H, W)`` of item ``index``, without decoding its image."""

    @abc.abstractmethod
    def sample_id(self, index: int) -> str:
        """A short unique name of item ``index`` (for Cityscapes ``frankfurt_000000_000294``)."""

    @abc.abstractmethod
    def image_path(self, index: int) -> Path: ...

    @abc.abstractmethod
    def label_path(self, index: int) -> Path: ...

    def check_files(self) -> None:
        """Raise ``DataError`` for files that reading them would refuse, as far as cheap checks (file headers,
        no decoding) can tell. Called before a run trains, so that a broken file of the report split is not
        found after hours of training. Optional: by default nothing is checked ahead."""

    @abc.abstractmethod
    def fingerprint(self) -> str:
        """A key that changes whenever the masks could have changed (used to cache label statistics)."""


def files_fingerprint(root: str | os.PathLike, relative_paths: Iterable[str], *, config: Any) -> str:
    """SHA-256 over ``config`` (plain JSON data) and each file's relative path, size and mtime.

    Cheap (one ``stat`` per file, no reading) and independent of where ``root`` lives, so a moved
    tree keeps its key while an edited, replaced or re-extracted file changes it.
    """
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode("utf-8"))
    for rel in relative_paths:
        stat = os.stat(os.path.join(root, rel))
        digest.update(f"\n{rel}\t{stat.st_size}\t{stat.st_mtime_ns}".encode("utf-8"))
    return digest.hexdigest()


# ---- Cityscapes ---------------------------------------------------------------------------------

CITYSCAPES_MAX_LABEL_ID = 33
"""Label files hold labelIds 0..33; any larger value means the file is not a Cityscapes labelIds PNG."""


def _cityscapes_train_classes():
    classes = [c for c in cityscapes_classes() if 0 <= c.train_id < 255]
    return sorted(classes, key=lambda c: c.train_id)


@functools.cache
def cityscapes_info() -> DatasetInfo:
    """The 19 Cityscapes evaluation classes in train-id order, from torchvision's official table."""
    classes = _cityscapes_train_classes()
    if [c.train_id for c in classes] != list(range(19)):
        raise RuntimeError("torchvision's Cityscapes table does not have train ids 0..18")
    return DatasetInfo(
        class_names=tuple(c.name for c in classes),
        palette=tuple(tuple(int(v) for v in c.color) for c in classes),
        ignore_index=255,
        train_to_label_id=tuple(c.id for c in classes),
    )


@functools.cache
def _cityscapes_lut() -> np.ndarray:
    lut = np.full(256, 255, dtype=np.uint8)
    for c in cityscapes_classes():
        if 0 <= c.id <= CITYSCAPES_MAX_LABEL_ID:  # license plate (id -1) never appears in label files
            lut[c.id] = c.train_id if 0 <= c.train_id < 255 else 255
    lut.flags.writeable = False
    return lut


def cityscapes_label_to_train_lut() -> np.ndarray:
    """``uint8`` lookup table ``(256,)``: ``lut[label_id]`` is the train id (255 = ignore).

    Only entries 0..``CITYSCAPES_MAX_LABEL_ID`` are meaningful; larger values are not labelIds and
    readers reject them before looking them up. Read-only (shared by every reader).
    """
    return _cityscapes_lut()
