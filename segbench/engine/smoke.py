"""Files that ``--smoke`` runs need and cannot download."""
from __future__ import annotations

from pathlib import Path

import torch

from segbench.cache import cache_dir
from segbench.atomic import atomic_write_bytes


def standin_backbone_weights() -> Path:
    """A randomly initialised ResNet50 state dict standing in for ImageNet weights in smoke runs."""
    path = cache_dir() / "smoke" / "resnet50-standin.pth"
    if not path.exists():
        import torchvision

        generator_state = torch.get_rng_state()
        torch.manual_seed(0)
        state = torchvision.models.resnet50(weights=None).state_dict()
        torch.set_rng_state(generator_state)
        atomic_write_bytes(path, lambda handle: torch.save(state, handle))
    return path
