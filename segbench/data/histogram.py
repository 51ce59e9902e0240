"""Per-class pixel counts over a dataset's masks (for class weighting), cached by the dataset's fingerprint."""
from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import torch
from tqdm import tqdm

from segbench.atomic import atomic_write_text
from segbench.data.loader import data_loader
from segbench.data.reading import item_path, read_mask
from segbench.errors import LabelValueError

_FORMAT = "segbench class histogram v1"


class _MaskCounts(torch.utils.data.Dataset):
    """Item ``i``: int64 pixel counts ``(num_classes,)`` of mask ``i`` (runs in DataLoader workers)."""

    def __init__(self, dataset, num_classes: int, ignore_index: int):
        self.dataset, self.num_classes, self.ignore_index = dataset, num_classes, ignore_index

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        mask = read_mask(self.dataset, index)
        counts = torch.bincount(mask.reshape(-1), minlength=max(self.num_classes, self.ignore_index + 1))
        stray = counts[self.num_classes:].clone()
        if 0 <= self.ignore_index - self.num_classes < len(stray):
            stray[self.ignore_index - self.num_classes] = 0
        if bool(stray.any()):
            values = (torch.nonzero(stray).flatten() + self.num_classes).tolist()
            error = LabelValueError.of(values, num_classes=self.num_classes, ignore_index=self.ignore_index)
            raise LabelValueError(f"{item_path(self.dataset, index, label=True)}: {error}")
        return counts[: self.num_classes]


def _cache_file(cache_dir: Path, fingerprint: str, num_classes: int, ignore_index: int) -> Path:
    key = hashlib.sha256(f"{_FORMAT}|{fingerprint}|{num_classes}|{ignore_index}".encode("utf-8")).hexdigest()
    return Path(cache_dir) / f"{key[:32]}.json"


def _load(path: Path, num_classes: int) -> torch.Tensor | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        counts = data["counts"]
    except (OSError, ValueError, KeyError, TypeError):
        return None  # absent or damaged: count again and overwrite
    if data.get("format") != _FORMAT or not isinstance(counts, list) or len(counts) != num_classes:
        return None
    return torch.tensor(counts, dtype=torch.float64)


def _store(path: Path, payload: dict) -> None:
    """Write atomically (temp file + rename), so concurrent runs never read half a file."""
    try:
        atomic_write_text(path, json.dumps(payload, indent=1))
    except OSError as exc:
        warnings.warn(f"could not cache the class histogram in {path}: {exc}", stacklevel=3)


def class_histogram(dataset, *, num_classes: int, cache_dir: Path | None, progress: bool = True,
                    num_workers: int = 0) -> torch.Tensor:
    """Labelled pixels per class over ``dataset``: float64 ``(num_classes,)``, ignored pixels excluded.

    One pass over ``dataset.read_mask(i)`` (images are not decoded), spread over ``num_workers``
    DataLoader workers. With ``cache_dir`` the counts are stored as JSON keyed by
    ``dataset.fingerprint()``, so an unchanged dataset is counted once.
    """
    ignore_index = dataset.info.ignore_index
    cache_file = None
    if cache_dir is not None:
        cache_file = _cache_file(cache_dir, dataset.fingerprint(), num_classes, ignore_index)
        cached = _load(cache_file, num_classes)
        if cached is not None:
            return cached
    total = torch.zeros(num_classes, dtype=torch.int64)
    loader = data_loader(_MaskCounts(dataset, num_classes, ignore_index), batch_size=None, shuffle=False,
                        num_workers=num_workers)
    for counts in tqdm(loader, total=len(dataset), desc="class histogram", unit="mask", disable=not progress,
                       leave=False):
        total += counts
    if cache_file is not None:
        _store(cache_file, {"format": _FORMAT, "dataset": repr(dataset), "images": len(dataset),
                            "num_classes": num_classes, "ignore_index": ignore_index, "counts": total.tolist()})
    return total.to(torch.float64)
