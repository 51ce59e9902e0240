"""Learning-rate schedules as pure functions of the iteration: a factor that multiplies a base lr.

``iteration`` counts optimizer steps already taken (0 before the first step). A schedule over
``total`` iterations reaches its end value at ``iteration == total`` and stays there.
"""
from __future__ import annotations

import math


def _progress(iteration: int, total: int) -> float:
    if total < 1:
        raise ValueError(f"total iterations must be at least 1, got {total}")
    if iteration < 0:
        raise ValueError(f"iteration must be non-negative, got {iteration}")
    return min(iteration, total) / total


def poly_factor(iteration: int, total: int, *, power: float = 0.9) -> float:
    """Polynomial decay ``(1 - iteration / total) ** power``: 1 at the start, 0 at ``total``."""
    return (1.0 - _progress(iteration, total)) ** power


def cosine_factor(iteration: int, total: int, *, min_ratio: float = 0.0) -> float:
    """Half-cosine decay from 1 to ``min_ratio`` over ``total`` iterations."""
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * _progress(iteration, total)))


def warmup_factor(iteration: int, warmup_iterations: int, *, start_ratio: float = 0.001) -> float:
    """Linear warm-up from ``start_ratio`` at iteration 0 to 1 at ``warmup_iterations``; 1 after.

    With ``warmup_iterations == 0`` there is no warm-up (always 1).
    """
    if warmup_iterations < 0 or iteration < 0:
        raise ValueError(f"iteration ({iteration}) and warmup_iterations ({warmup_iterations}) must be non-negative")
    if iteration >= warmup_iterations:
        return 1.0
    return start_ratio + (1.0 - start_ratio) * iteration / warmup_iterations
