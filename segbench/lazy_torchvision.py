"""torchvision, imported where it is used rather than when segbench loads.

Importing torchvision takes about a second (its ``ops`` load ``torch._dynamo``): ``segbench list``, ``show``,
``emit-slurm`` and every recipe error would pay it without drawing a pixel. Modules that need torchvision call
these at the point of use; after the first call Python's module cache makes each a dictionary look-up.
"""
from __future__ import annotations


def v2_functional():
    """``torchvision.transforms.v2.functional`` (its ``InterpolationMode`` included)."""
    from torchvision.transforms.v2 import functional

    return functional


def cityscapes_classes():
    """``torchvision.datasets.Cityscapes.classes``: the official label table."""
    from torchvision.datasets import Cityscapes

    return Cityscapes.classes


def torchvision_io():
    """``torchvision.io``: libpng decoding."""
    import torchvision.io

    return torchvision.io
