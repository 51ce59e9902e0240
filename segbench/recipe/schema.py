"""Config classes for the recipe sections the core owns (trainer, evaluation)."""
from __future__ import annotations

import re
from typing import Literal

import attrs

from segbench.config import IMAGE_SIDE_MAX, in_range

TOP_LEVEL_KEYS = (
    "description", "seed", "seeds", "model", "data", "loss", "class_weighting", "optimizer", "scheduler",
    "strategy", "trainer", "evaluation", "logging", "slurm", "upstream",
)
# Written by segbench, never by a recipe: the identity of the run a stage starts from (``segbench.recipe.stages``).
UPSTREAM_KEY = "upstream"


DEVICES = "auto, cpu, cuda or cuda:N (mps or xpu where torch has them)"
# What torch.device accepts for the kinds segbench runs on (a device index is a C int8 there).
_DEVICE = re.compile(r"auto|(cpu|cuda|mps|xpu)(:(0|[1-9]\d?|1[01]\d|12[0-7]))?")


def _device_name(instance, attribute, value: str) -> None:
    # Checked with the recipe, so that emit-slurm refuses it before the job waits in the queue.
    if not _DEVICE.fullmatch(value):
        raise ValueError(f"{value!r} is not a device; use {DEVICES}")


_device_name.bounds = DEVICES  # what `segbench list -v` shows as the allowed values


@attrs.frozen
class TrainerConfig:
    """How to train: length, batching, precision, device, validation and logging cadence."""

    epochs: int = attrs.field(default=1, validator=in_range(0, 100_000))
    max_iterations: int | None = attrs.field(default=None, validator=in_range(1, 10**9))
    batch_size: int = attrs.field(default=8, validator=in_range(1, 4096))
    accumulate: int = attrs.field(default=1, validator=in_range(1, 4096))
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    channels_last: bool | None = None  # None: on when the precision is bf16/fp16
    device: str = attrs.field(default="auto", validator=_device_name)
    num_workers: int = attrs.field(default=2, validator=in_range(0, 256))
    eval_every: int = attrs.field(default=1, validator=in_range(1, 100_000))  # epochs between selection evaluations
    log_every: int = attrs.field(default=10, validator=in_range(1, 10**9))  # optimizer steps between log records
    select_on: Literal["select", "report"] = "select"
    report_checkpoint: Literal["best", "last"] = "best"
    grad_clip: float | None = attrs.field(default=None, validator=in_range(0, 1.0e6, low_open=True))
    sync_batchnorm: bool = False
    deterministic: bool = True

    def __attrs_post_init__(self):
        if self.epochs == 0 and self.max_iterations is None:
            raise ValueError("trainer.epochs is 0 and no trainer.max_iterations is set: nothing to train;"
                             " set epochs >= 1 or max_iterations")


@attrs.frozen
class EvaluationConfig:
    """How to score: whole-image or sliding-window inference at the label's full resolution, optionally
    averaged with the horizontally mirrored image (``flip``; twice the inference cost) and over rescaled
    copies of the image (``scales``, e.g. ``[0.5, 0.75, 1.0, 1.25, 1.5, 1.75]``: multi-scale test-time
    augmentation; the cost grows with the sum of the squared scales)."""

    mode: Literal["whole", "slide"] = "whole"
    # (H, W); default: the training crop
    window: tuple[int, int] | None = attrs.field(default=None, validator=in_range(1, IMAGE_SIDE_MAX))
    # default: two thirds of the window
    stride: tuple[int, int] | None = attrs.field(default=None, validator=in_range(1, IMAGE_SIDE_MAX))
    batch_size: int = attrs.field(default=1, validator=in_range(1, 4096))
    flip: bool = False
    scales: tuple[float, ...] = attrs.field(default=(1.0,), validator=in_range(0, 8, low_open=True))

    def __attrs_post_init__(self):
        if not self.scales or any(not scale > 0 for scale in self.scales):
            raise ValueError(f"evaluation.scales must be a non-empty list of positive factors such as"
                             f" [0.75, 1.0, 1.25], got {list(self.scales)}")
        for name in ("window", "stride"):
            value = getattr(self, name)
            if value is not None and min(value) <= 0:
                raise ValueError(f"evaluation.{name} must be positive, got {list(value)}")
        if self.window is not None and self.stride is not None and \
                any(step > size for step, size in zip(self.stride, self.window)):
            raise ValueError(f"evaluation.stride {list(self.stride)} is larger than the window {list(self.window)}:"
                             " the pixels between windows would get no prediction; use a stride <= the window")
