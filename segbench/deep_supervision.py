"""What a model may return in training mode to train auxiliary classifiers beside its main one (deep
supervision, as PSPNet's and U-Net++'s auxiliary heads): the trainer applies the recipe's loss to each of
them and adds it, weighted, to the main logits' loss. In eval mode the model returns its logits alone."""
from __future__ import annotations

from typing import NamedTuple

import torch


class DeepSupervision(NamedTuple):
    """``logits`` ``(N, C, H, W)`` as in eval mode; ``auxiliary``: more logits of that same shape (up-sample
    them to the input size), each trained with the recipe's loss; ``weight``: each auxiliary loss's weight
    against the main loss's 1. A tuple, so that DistributedDataParallel and torch's tracing see the tensors."""

    logits: torch.Tensor
    auxiliary: tuple[torch.Tensor, ...]
    weight: float


def split_training_output(output) -> DeepSupervision:
    """A model's training-mode output as a ``DeepSupervision`` (plain logits have no auxiliary ones)."""
    if isinstance(output, DeepSupervision):
        return output
    return DeepSupervision(output, (), 0.0)


def supervised_loss(criterion, output: DeepSupervision, masks: torch.Tensor) -> torch.Tensor:
    """The main logits' loss plus ``weight`` times each auxiliary logits' loss (logits in fp32)."""
    loss = criterion(output.logits.float(), masks)
    for auxiliary in output.auxiliary:
        loss = loss + output.weight * criterion(auxiliary.float(), masks)
    return loss
