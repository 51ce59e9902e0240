"""Datasets: the contract plugins implement, exact PNG reading, and label statistics."""
from segbench.data.dataset import (
    CITYSCAPES_MAX_LABEL_ID,
    DatasetInfo,
    SegmentationDataset,
    cityscapes_info,
    cityscapes_label_to_train_lut,
    files_fingerprint,
)
from segbench.data.png import read_label_png, read_png, read_rgb_png

__all__ = [
    "CITYSCAPES_MAX_LABEL_ID",
    "DatasetInfo",
    "SegmentationDataset",
    "cityscapes_info",
    "cityscapes_label_to_train_lut",
    "files_fingerprint",
    "read_label_png",
    "read_png",
    "read_rgb_png",
]
