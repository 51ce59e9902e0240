"""Per-image confusion matrices of a run's report split, kept next to ``results.json``.

``confusion_per_image.npz`` (numpy, compressed) holds ``matrices`` ``(I, C, C + 1)`` (pixel counts, int32:
one image has fewer than 2**31 pixels), ``image_ids`` (the dataset's sample ids, in dataset order) and
``class_names``. Their sum is the run's global matrix, so statistics can resample images without running
the model again. For Cityscapes val (500 x 19 x 20) the file is a few hundred kilobytes.
"""
from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Sequence

import attrs
import numpy as np
import torch

from segbench.atomic import atomic_write_bytes
from segbench.errors import SegbenchError

FILE_NAME = "confusion_per_image.npz"


@attrs.frozen(eq=False)
class ImageScores:
    """One run's per-image confusion matrices ``(I, C, C + 1)`` int64, with image ids and class names."""

    matrices: np.ndarray
    image_ids: tuple[str, ...]
    class_names: tuple[str, ...]

    @property
    def global_matrix(self) -> np.ndarray:
        return self.matrices.sum(axis=0)


def sample_ids(dataset) -> tuple[str, ...]:
    """The dataset's sample ids, or positions when it has none (or repeats one)."""
    sample_id = getattr(dataset, "sample_id", None)
    ids = tuple(str(sample_id(i)) for i in range(len(dataset))) if sample_id else ()
    if len(set(ids)) != len(dataset):
        ids = tuple(f"{i:06d}" for i in range(len(dataset)))
    return ids


def save_image_scores(path: Path, matrices: torch.Tensor, image_ids: Sequence[str],
                      class_names: Sequence[str]) -> None:
    matrices = matrices.cpu().numpy()
    if matrices.max(initial=0) >= 2**31:
        raise ValueError("a per-image confusion matrix count does not fit int32")

    def write(handle):
        np.savez_compressed(handle, matrices=matrices.astype(np.int32), image_ids=np.array(list(image_ids)),
                            class_names=np.array(list(class_names)))

    atomic_write_bytes(Path(path), write)


def load_image_scores(path: Path) -> ImageScores:
    """Read a ``confusion_per_image.npz``; a damaged or foreign file is an error naming it."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            matrices = data["matrices"].astype(np.int64)
            ids = tuple(str(v) for v in data["image_ids"])
            names = tuple(str(v) for v in data["class_names"])
    except FileNotFoundError:
        raise SegbenchError(f"{path} does not exist: the run was scored before per-image matrices were kept,"
                            " so its images cannot be resampled. Train it again (`segbench run --restart`)"
                            " to include it in interval estimates.") from None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        # NumPy takes any non-archive for a pickle and suggests loading it unsafely: not advice to pass on.
        detail = "not a NumPy .npz archive" if "pickle" in str(exc) else f"{type(exc).__name__}: {exc}"
        raise SegbenchError(f"{path} is not a readable per-image confusion file ({detail})."
                            " Delete it and train the run again (`segbench run --restart`).") from None
    if matrices.ndim != 3 or matrices.shape[0] != len(ids) or matrices.shape[1] != len(names) or \
            matrices.shape[2] != len(names) + 1:
        raise SegbenchError(f"{path}: matrices of shape {matrices.shape} do not fit {len(ids)} image(s) and"
                            f" {len(names)} class(es). Delete it and train the run again.")
    if (matrices < 0).any():
        raise SegbenchError(f"{path} holds negative pixel counts: it was damaged or edited. Delete it and train"
                            " the run again.")
    return ImageScores(matrices, ids, names)
