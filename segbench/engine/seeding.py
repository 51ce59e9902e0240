"""Seeds for the parts of a run that draw from the global random generators, each derived from the recipe seed.

Model initialisation and training (dropout, a loss's sampling) draw from torch's global generator.
Each is seeded from ``(recipe seed, purpose)`` right before it starts, so whatever ran earlier in the
process (generating the synthetic data, counting the class histogram, a plugin's checks) cannot shift
it: the same recipe gives the same weights with a cold or a warm cache, on any node. Data order and
augmentation never touch the global generators (``segbench.data.transformed``), nor do DataLoaders
(``segbench.data.loader``).
"""
from __future__ import annotations

import random

import numpy as np
import torch

from segbench.data.transformed import derived_seed


def seed_global_generators(seed: int, purpose: str) -> None:
    """Seed torch (CPU and CUDA), Python's ``random`` and NumPy's global generators for ``purpose``."""
    value = derived_seed(purpose, seed)
    torch.manual_seed(value)
    random.seed(value)
    np.random.seed(value % 2**32)
