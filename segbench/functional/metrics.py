"""Segmentation metrics under the official Cityscapes rule, reduced from one confusion matrix.

The rule (cityscapesscripts ``evalPixelLevelSemanticLabeling``): a single confusion matrix is
summed over the whole evaluated set; for class ``c``

- TP = pixels with ground truth ``c`` predicted ``c``;
- FN = ground-truth-``c`` pixels predicted anything else, including a label that is not a class;
- FP = pixels predicted ``c`` whose ground truth is a valid class (ignored pixels never count);
- IoU = TP / (TP + FP + FN), NaN when that is 0/0; mIoU is the mean of the non-NaN IoUs.

Matrix layout: ``(C, C + 1)`` int64, rows = ground-truth class, columns = predicted class, and
the extra last column ("void") counts valid ground-truth pixels whose prediction lies outside
``[0, C)`` (for example 255 in a submitted train-id PNG). Those pixels are misses of their row's
class and false positives of no class; a ``(C, C)`` matrix cannot record them, which is why the
column exists. ``cm[:, :C]`` is the usual square matrix. The reducers below also accept a square
``(C, C)`` matrix (no void predictions).

Matrices of disjoint image sets add up to the matrix of their union, so accumulating is a sum
(exact under a distributed all-reduce), and only the global matrix gives numbers comparable with
published ones: the mean of per-image mIoUs is a different quantity.
"""
from __future__ import annotations

import math
from typing import Iterable, Sequence

import torch

_DIRECT_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)
_CHUNK = 1 << 20  # elements converted per step: temporaries small enough to be reused, few enough steps


def _check_labels(name: str, labels: torch.Tensor) -> torch.Tensor:
    dtype = labels.dtype
    if dtype.is_floating_point or dtype.is_complex or dtype == torch.bool:
        raise TypeError(f"{name} must be an integer tensor of class ids, got dtype {dtype}")
    # Wider unsigned types lack most kernels; int64 holds every id that can be a class.
    return labels if dtype in _DIRECT_DTYPES else labels.to(torch.int64)


def _byte_codes(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``labels`` as uint8 codes for ``C <= 255``: ids in ``[0, C)`` unchanged, the rest >= ``C``.

    Clamping to ``[-1, C]`` then casting sends -1 to 255 (integer casts wrap), so every
    out-of-range value becomes ``C`` or 255. Done in chunks: a whole-tensor int64 temporary
    would cost more in page faults than the arithmetic.
    """
    if labels.dtype == torch.uint8:
        return labels
    high = min(num_classes, torch.iinfo(labels.dtype).max)
    flat = labels.reshape(-1)
    codes = torch.empty(flat.shape, dtype=torch.uint8, device=flat.device)
    for start in range(0, flat.numel(), _CHUNK):
        codes[start : start + _CHUNK].copy_(flat[start : start + _CHUNK].clamp(-1, high))
    return codes


def _byte_confusion(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """uint8 codes in, ``(C, C + 1)`` out, ``C <= 255``: index ``target * (C + 1) + min(pred, C)``.

    No boolean mask: a target >= C lands in rows C..255 of a 256-row table, sliced away after the
    bincount. The index fits int16 up to 127 classes (half the memory traffic of int32).
    """
    width = num_classes + 1
    bins = 256 * width
    index = pred.reshape(-1).to(torch.int16 if bins <= 2**15 else torch.int32)
    if num_classes < 255:
        index.clamp_(max=num_classes)
    index.add_(target.reshape(-1), alpha=width)
    counts = torch.bincount(index, minlength=bins)
    return counts.view(256, width)[:num_classes].clone()


def _wide_confusion(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Any integer dtypes, ``C > 255``: codes clamped to ``[-1, C]`` in int64, then one bincount.

    Targets shift to ``0 .. C + 1`` (rows 0 and ``C + 1`` hold the unscored pixels); predictions
    below 0 become ``C``, the void column.
    """
    width = num_classes + 1
    pred = pred.to(torch.int64).clamp(-1, num_classes)
    pred = torch.where(pred < 0, num_classes, pred)
    index = target.to(torch.int64).clamp(-1, num_classes).add_(1).mul_(width).add_(pred)
    counts = torch.bincount(index.reshape(-1), minlength=(num_classes + 2) * width)
    return counts.view(num_classes + 2, width)[1 : num_classes + 1].clone()


def confusion_matrix(
    pred: torch.Tensor, target: torch.Tensor, *, num_classes: int, ignore_index: int = 255
) -> torch.Tensor:
    """Confusion matrix of integer predictions against ground truth, in one ``bincount``.

    ``pred`` and ``target``: integer tensors of the same shape, ``(N, H, W)`` or ``(H, W)`` (any
    shape works), any integer dtype and any values. Returns ``(C, C + 1)`` int64: rows are the
    ground-truth class, columns the predicted class, column ``C`` the valid-ground-truth pixels
    predicted outside ``[0, C)`` (misses of the row's class, see the module docstring).

    Pixels whose target lies outside ``[0, C)`` (``ignore_index`` and any other value) are not
    scored, whatever is predicted there. ``ignore_index`` must not be a class id.

    Fastest with ``uint8`` inputs (``logits.argmax(1).to(torch.uint8)`` when ``C <= 255``);
    other integer dtypes are first converted to uint8 codes.
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be at least 1, got {num_classes}")
    if 0 <= ignore_index < num_classes:
        raise ValueError(
            f"ignore_index {ignore_index} is a class id (num_classes={num_classes});"
            " pick a negative value or one >= num_classes (255 for Cityscapes train ids)"
        )
    if pred.shape != target.shape:
        raise ValueError(f"pred shape {tuple(pred.shape)} differs from target shape {tuple(target.shape)}")
    pred = _check_labels("pred", pred)
    target = _check_labels("target", target)
    if num_classes <= 255:
        return _byte_confusion(_byte_codes(pred, num_classes), _byte_codes(target, num_classes), num_classes)
    return _wide_confusion(pred, target, num_classes)


def sum_confusion(matrices: Iterable[torch.Tensor]) -> torch.Tensor:
    """Sum confusion matrices of disjoint image sets: the matrix of their union."""
    total = None
    for matrix in matrices:
        if total is None:
            total = matrix.to(torch.int64, copy=True)
        elif matrix.shape != total.shape:
            raise ValueError(f"cannot sum confusion matrices of shapes {tuple(total.shape)} and {tuple(matrix.shape)}")
        else:
            total += matrix
    if total is None:
        raise ValueError("sum_confusion needs at least one matrix")
    return total


def _split(cm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the square part ``(C, C)`` and the row totals ``(C,)`` (void column included), float64."""
    if cm.dim() != 2 or cm.shape[1] not in (cm.shape[0], cm.shape[0] + 1):
        raise ValueError(f"expected a (C, C) or (C, C + 1) confusion matrix, got shape {tuple(cm.shape)}")
    cm = cm.to(torch.float64)
    return cm[:, : cm.shape[0]], cm.sum(dim=1)


def iou_per_class(cm: torch.Tensor) -> torch.Tensor:
    """Per-class IoU ``(C,)`` float64 from a ``(C, C + 1)`` or ``(C, C)`` matrix.

    TP / (TP + FP + FN); NaN for a class that is neither in the ground truth nor predicted on a
    scored pixel. A class predicted on scored pixels but absent from the ground truth gets 0.
    """
    square, gt_pixels = _split(cm)
    tp = square.diagonal()
    denominator = gt_pixels + square.sum(dim=0) - tp  # (TP + FN) + (TP + FP) - TP
    return torch.where(denominator > 0, tp / denominator.clamp(min=1), math.nan)


def row_normalized(cm: torch.Tensor) -> torch.Tensor:
    """Each row of a ``(C, C)`` or ``(C, C + 1)`` matrix divided by its total (float64): row ``c`` is where
    the pixels of ground-truth class ``c`` went. A class without pixels keeps a row of zeros."""
    cm = cm.to(torch.float64)
    return cm / cm.sum(dim=1, keepdim=True).clamp(min=1)


def mean_iou(cm: torch.Tensor) -> float:
    """Mean of the non-NaN class IoUs; NaN when every class is NaN (nothing scored)."""
    iou = iou_per_class(cm)
    present = iou[~iou.isnan()]
    return float(present.mean()) if present.numel() else math.nan


def pixel_accuracy(cm: torch.Tensor) -> float:
    """Correct pixels / scored pixels (ignored ground truth excluded); NaN when nothing is scored."""
    square, gt_pixels = _split(cm)
    total = float(gt_pixels.sum())
    return float(square.diagonal().sum()) / total if total > 0 else math.nan


def _plain(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def summarize(cm: torch.Tensor, class_names: Sequence[str]) -> dict:
    """The report of one confusion matrix, JSON-ready (NaN written as ``None``).

    ``{"mIoU": float | None, "pixel_accuracy": float | None,
    "per_class_iou": {name: float | None}}``; every number is a fraction in [0, 1].
    """
    iou = iou_per_class(cm)
    if len(class_names) != iou.numel():
        raise ValueError(f"{len(class_names)} class names for a matrix of {iou.numel()} classes")
    return {
        "mIoU": _plain(mean_iou(cm)),
        "pixel_accuracy": _plain(pixel_accuracy(cm)),
        "per_class_iou": {name: _plain(value) for name, value in zip(class_names, iou.tolist())},
    }


class ConfusionAccumulator:
    """Running sum of confusion matrices over batches; all the metric math stays in the functions.

    ``update(pred, target)`` takes the arguments of ``confusion_matrix``; ``matrix`` is the
    ``(C, C + 1)`` sum so far (all-reduce it with a sum to combine processes).
    """

    def __init__(self, num_classes: int, *, ignore_index: int = 255):
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = torch.zeros(num_classes, num_classes + 1, dtype=torch.int64)

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        cm = confusion_matrix(pred, target, num_classes=self.num_classes, ignore_index=self.ignore_index)
        self.matrix += cm.to(self.matrix.device)

    def reset(self) -> None:
        self.matrix.zero_()

    def summary(self, class_names: Sequence[str]) -> dict:
        return summarize(self.matrix, class_names)
