"""What a model may return in training mode to train auxiliary classifiers beside its main one (deep
supervision, as PSPNet's and U-Net++'s auxiliary heads): the trainer applies the recipe's loss to each of
them and adds it, weighted, to the main logits' loss. In eval mode the model returns its logits alone."""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch.nn import functional as F


class DeepSupervision(NamedTuple):
    """``logits`` ``(N, C, H, W)`` as in eval mode; ``auxiliary``: more logits ``(N, C, h, w)`` with
    ``h <= H`` and ``w <= W`` (a coarse level's own resolution is cheapest: the masks are sampled at that size),
    each trained with the recipe's loss; ``weight``: each auxiliary loss's weight against the main loss's 1.
    A tuple, so that DistributedDataParallel and torch's tracing see the tensors."""

    logits: torch.Tensor
    auxiliary: tuple[torch.Tensor, ...]
    weight: float


def split_training_output(output) -> DeepSupervision:
    """A model's training-mode output as a ``DeepSupervision`` (plain logits have no auxiliary ones)."""
    if isinstance(output, DeepSupervision):
        return output
    return DeepSupervision(output, (), 0.0)


def supervised_loss(criterion, output: DeepSupervision, masks: torch.Tensor) -> torch.Tensor:
    """The main logits' loss plus ``weight`` times each auxiliary logits' loss (logits in fp32); auxiliary
    logits smaller than the masks are scored against the masks sampled at their size."""
    loss = criterion(output.logits.float(), masks)
    for auxiliary in output.auxiliary:
        loss = loss + output.weight * criterion(auxiliary.float(), masks_at(masks, auxiliary.shape[-2:]))
    return loss


def masks_at(masks: torch.Tensor, size) -> torch.Tensor:
    """``(N, H, W)`` label masks at ``size``: each output pixel takes the label nearest its centre (never a
    blend of labels, and the ignore index stays the ignore index)."""
    if tuple(masks.shape[-2:]) == tuple(size):
        return masks
    sampled = F.interpolate(masks[:, None].float(), size=tuple(size), mode="nearest-exact")[:, 0]
    return sampled.to(masks.dtype)
