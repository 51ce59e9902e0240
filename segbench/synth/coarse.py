"""Coarse annotation in the style of Cityscapes ``gtCoarse``, derived from the exact labels.

Real coarse polygons cover the inside of large regions and leave a band along every boundary unlabelled; small
objects are often skipped altogether. Here: droppable objects (things, poles, signs, lights, street furniture)
that are small, and a random share of the others, become unlabelled (0), then every pixel within ``margin``
pixels (a square window) of a label boundary becomes unlabelled too.
"""
from __future__ import annotations

import numpy as np

from segbench.synth.canvas import Rendering


def coarse_margin(height: int, width: int) -> int:
    """The unlabelled band's half-width in pixels: about 1.5 % of the image height, at least 1."""
    return max(1, round(min(height, width / 2) / 64))


def coarsen(rendering: Rendering, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``(label_ids, instance_ids)`` of the coarse annotation, same shapes and dtypes as the fine ones."""
    fine = rendering.label_ids
    h, w = fine.shape
    areas = np.bincount(rendering.objects.ravel(), minlength=len(rendering.object_labels))
    small = areas < 0.002 * h * w
    dropped = rendering.object_droppable & (small | (rng.random(len(areas)) < 0.3))
    labels = np.where(dropped[rendering.objects], np.uint8(0), fine)

    margin = round(coarse_margin(h, w) * rng.uniform(1.0, 1.6))
    boundary = np.zeros((h, w), dtype=bool)
    boundary[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    boundary[:, :-1] |= labels[:, 1:] != labels[:, :-1]
    boundary[1:, :] |= labels[1:, :] != labels[:-1, :]
    boundary[:-1, :] |= labels[1:, :] != labels[:-1, :]
    labels = np.where(_dilate(boundary, margin), np.uint8(0), labels)
    instances = np.where(labels == fine, rendering.instance_ids, labels.astype(np.int32))
    return labels, instances


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Boolean dilation by a (2r+1)-square window, as two separable running sums."""
    out = mask
    for axis in (0, 1):
        pad = [(0, 0), (0, 0)]
        pad[axis] = (radius + 1, radius)
        sums = np.cumsum(np.pad(out, pad).astype(np.int32), axis=axis)
        n = out.shape[axis]
        hi = np.take(sums, np.arange(2 * radius + 1, 2 * radius + 1 + n), axis=axis)
        lo = np.take(sums, np.arange(0, n), axis=axis)
        out = (hi - lo) > 0
    return out
