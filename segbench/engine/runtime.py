"""Where and how a run computes, resolved once: device, precision, memory format, distributed environment."""
from __future__ import annotations

import attrs
import torch
import torch.distributed as dist

from segbench.engine.device import autocast, choose_numerics, pick_device
from segbench.engine.distributed import DistEnv

PRECISIONS = ("fp32", "bf16", "fp16")


@attrs.frozen
class Runtime:
    """The device, numeric precision, memory format and distributed environment of one process."""

    device: torch.device
    precision: str = "fp32"
    channels_last: bool = False
    dist: DistEnv = DistEnv()

    @classmethod
    def resolve(cls, trainer, *, dist: DistEnv = DistEnv()) -> "Runtime":
        """From a recipe's ``trainer`` section (``device``, ``precision``, ``channels_last``)."""
        device = pick_device(trainer.device)
        numerics = choose_numerics(trainer.precision, trainer.channels_last, device)
        return cls(device, numerics.precision, numerics.channels_last, dist)

    def following_rank_0(self) -> "Runtime":
        """This runtime with rank 0's precision and memory format (a collective: every rank calls it once).

        ``precision: auto`` times the CPU of each machine, so the nodes of one job may choose differently; one
        choice keeps a multi-process run computing as a single process would.
        """
        if not self.dist.enabled:
            return self
        choice = torch.tensor([PRECISIONS.index(self.precision), int(self.channels_last)], device=self.device)
        dist.broadcast(choice, src=0)
        return attrs.evolve(self, precision=PRECISIONS[int(choice[0])], channels_last=bool(choice[1]))

    def images(self, images: torch.Tensor) -> torch.Tensor:
        """An input batch on this device, in this memory format."""
        images = images.to(self.device, non_blocking=True)
        return images.contiguous(memory_format=torch.channels_last) if self.channels_last else images

    def model(self, model: torch.nn.Module) -> torch.nn.Module:
        """A model moved to this device and memory format."""
        model = model.to(self.device)
        return model.to(memory_format=torch.channels_last) if self.channels_last else model

    def autocast(self):
        return autocast(self.device, self.precision)

    def describe(self) -> str:
        processes = f", {self.dist.world_size} process(es), {torch.distributed.get_backend()}" \
            if self.dist.enabled and torch.distributed.is_initialized() else ""
        return f"{self.device} ({self.precision}{', channels-last' if self.channels_last else ''}{processes})"
