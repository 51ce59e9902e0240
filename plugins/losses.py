"""Built-in losses: ``cross_entropy`` and ``ohem_cross_entropy`` (online hard example mining).

Both average like ``torch.nn.functional.cross_entropy``: a sum over the counted pixels divided by
the sum of their class weights (their number without weights). A batch with no counted pixel has
loss 0 rather than NaN, so a crop that is entirely ignored does not look like divergence.
"""
from __future__ import annotations

import math

import attrs
import torch
from torch import nn
from torch.nn import functional as F

from segbench import hookimpl
from segbench.config import in_range


def _weighted_mean(total: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    # total is 0 whenever denominator is 0 (no counted pixel); clamping keeps 0 / 0 out of the graph.
    return total / denominator.clamp_min(torch.finfo(denominator.dtype).tiny)


class _PixelLoss(nn.Module):
    def __init__(self, *, ignore_index: int, class_weights: torch.Tensor | None):
        super().__init__()
        self.ignore_index = ignore_index
        self.register_buffer("class_weights", None if class_weights is None else class_weights.float())

    def _pixel_weights(self, target: torch.Tensor, counted: torch.Tensor) -> torch.Tensor:
        """``(N, H, W)`` weight of each pixel's true class; 0 where not counted."""
        if self.class_weights is None:
            return counted.float()
        safe_target = target.masked_fill(~counted, 0)
        return self.class_weights[safe_target] * counted


@attrs.frozen
class CrossEntropyConfig:
    label_smoothing: float = attrs.field(default=0.0, validator=in_range(0.0, 1.0, high_open=True))


class CrossEntropyLoss(_PixelLoss):
    """Pixel-wise cross-entropy; ``forward(logits (N, C, H, W), target (N, H, W) int64) -> scalar``."""

    def __init__(self, *, ignore_index: int, class_weights: torch.Tensor | None, label_smoothing: float = 0.0):
        super().__init__(ignore_index=ignore_index, class_weights=class_weights)
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        total = F.cross_entropy(logits, target, weight=self.class_weights, ignore_index=self.ignore_index,
                                reduction="sum", label_smoothing=self.label_smoothing)
        counted = target != self.ignore_index
        return _weighted_mean(total, self._pixel_weights(target, counted).sum())


@attrs.frozen
class OhemConfig:
    """Keep the pixels whose true-class probability is below ``threshold``, and at least the
    ``min_kept`` hardest ones (or all labelled pixels if there are fewer)."""

    threshold: float = attrs.field(default=0.7, validator=in_range(0.0, 1.0, low_open=True))
    min_kept: int = attrs.field(default=100_000, validator=in_range(0, 10**9))


class OhemCrossEntropyLoss(_PixelLoss):
    """Cross-entropy over the hard pixels only (Shrivastava et al. 2016; as in PSPNet/HRNet for Cityscapes).

    Hardness is the unweighted per-pixel loss ``-ln p(true class)``; a pixel is hard when it exceeds
    ``-ln(threshold)``. Ignored pixels are never kept. The kept pixels are averaged like
    ``CrossEntropyLoss``, so keeping every pixel gives exactly the cross-entropy.
    """

    def __init__(self, *, ignore_index: int, class_weights: torch.Tensor | None, threshold: float = 0.7,
                 min_kept: int = 100_000):
        super().__init__(ignore_index=ignore_index, class_weights=class_weights)
        self.loss_threshold = -math.log(threshold)
        self.min_kept = min_kept

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        pixel_loss = F.cross_entropy(logits, target, ignore_index=self.ignore_index, reduction="none")
        labelled = target != self.ignore_index
        kept = self._hard_pixels(pixel_loss.detach(), labelled)
        weights = self._pixel_weights(target, kept)
        return _weighted_mean((pixel_loss * weights).sum(), weights.sum())

    def _hard_pixels(self, pixel_loss: torch.Tensor, labelled: torch.Tensor) -> torch.Tensor:
        hard = labelled & (pixel_loss > self.loss_threshold)
        wanted = min(self.min_kept, int(labelled.sum()))
        if int(hard.sum()) >= wanted:
            return hard
        # Too few above the threshold: take the `wanted` largest losses among labelled pixels instead.
        scores = pixel_loss.masked_fill(~labelled, -math.inf).flatten()
        kept = torch.zeros_like(labelled).flatten()
        kept[scores.topk(wanted, sorted=False).indices] = True
        return kept.view_as(labelled)


def build_cross_entropy(config: CrossEntropyConfig, *, ignore_index: int, class_weights=None) -> CrossEntropyLoss:
    return CrossEntropyLoss(ignore_index=ignore_index, class_weights=class_weights,
                            label_smoothing=config.label_smoothing)


def build_ohem_cross_entropy(config: OhemConfig, *, ignore_index: int, class_weights=None) -> OhemCrossEntropyLoss:
    return OhemCrossEntropyLoss(ignore_index=ignore_index, class_weights=class_weights,
                                threshold=config.threshold, min_kept=config.min_kept)


@hookimpl
def segbench_register_losses(register):
    register("cross_entropy", build_cross_entropy, config=CrossEntropyConfig)
    register("ohem_cross_entropy", build_ohem_cross_entropy, config=OhemConfig)
