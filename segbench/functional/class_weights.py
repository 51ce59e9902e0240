"""Per-class loss weights computed from the training set's label histogram.

``histogram`` is a float64 tensor ``(C,)`` of labelled pixel counts per class over the training
set (ignored pixels already excluded); the result is a float32 tensor ``(C,)`` of positive weights.
A class with no pixels never appears as a target, so its weight cannot change a weighted
cross-entropy; each function still gives it a finite positive value (stated below).
"""
from __future__ import annotations

import torch

from segbench.errors import DataError


def _frequencies(histogram: torch.Tensor) -> torch.Tensor:
    """Pixel frequency per class ``(C,)`` float64, summing to 1."""
    if histogram.dim() != 1 or histogram.numel() == 0:
        raise ValueError(f"expected a (C,) histogram, got shape {tuple(histogram.shape)}")
    histogram = histogram.to(torch.float64)
    if not bool(torch.isfinite(histogram).all()) or bool((histogram < 0).any()):
        raise ValueError(f"pixel counts must be finite and non-negative, got {histogram.tolist()}")
    total = histogram.sum()
    if total == 0:
        raise DataError(
            "no labelled pixels in the training set: every mask pixel is the ignore index, so class"
            " weights cannot be computed. Check that the masks hold train ids (not label ids) and"
            " that the dataset's root and split are right, or remove the class weighting from the recipe."
        )
    return histogram / total


def enet_weights(histogram: torch.Tensor, *, c: float = 1.02) -> torch.Tensor:
    """ENet weighting (Paszke et al. 2016): ``w_c = 1 / ln(c + p_c)``, ``p_c`` the pixel frequency.

    ``histogram``: ``(C,)`` pixel counts. ``c`` must exceed 1 so that ``ln(c + p) > 0`` for
    every ``p`` in [0, 1]; weights then lie in ``[1 / ln(c + 1), 1 / ln(c)]`` (the ENet paper uses
    1.02, which caps weights at about 50). An absent class gets the cap ``1 / ln(c)``.
    Returns ``(C,)`` float32.
    """
    if not c > 1.0:
        raise ValueError(f"c must be greater than 1 so that ln(c + p) > 0, got {c}")
    frequency = _frequencies(histogram)
    return (1.0 / torch.log(c + frequency)).to(torch.float32)


def median_frequency_weights(histogram: torch.Tensor) -> torch.Tensor:
    """Median frequency balancing (Eigen & Fergus 2015, SegNet): ``w_c = median(f) / f_c``.

    ``f_c`` is the class's share of all labelled pixels and the median is taken over the classes
    that occur (the mean of the two middle values for an even count, as ``numpy.median``). A class
    with no pixels gets the largest weight of the present classes. Returns ``(C,)`` float32.
    """
    frequency = _frequencies(histogram)
    present = frequency > 0
    median = torch.quantile(frequency[present], 0.5)
    weights = torch.where(present, median / frequency.clamp(min=torch.finfo(torch.float64).tiny), 0.0)
    weights[~present] = weights[present].max()
    return weights.to(torch.float32)
