"""A third-party segbench plugin: registers the ``tiny_fcn`` model and the ``invert`` transform."""
from functools import partial

import attrs
import torch
from torch import nn

from segbench import hookimpl


@attrs.frozen
class TinyFCNConfig:
    channels: int = attrs.field(default=8, validator=attrs.validators.gt(0))


class TinyFCN(nn.Module):
    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(channels, num_classes, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(images)


def build_tiny_fcn(config: TinyFCNConfig, *, num_classes: int) -> nn.Module:
    return TinyFCN(config.channels, num_classes)


def smoke_tiny_fcn(config: TinyFCNConfig) -> TinyFCNConfig:
    """A --smoke run only checks that everything fits together: two channels do."""
    return attrs.evolve(config, channels=2)


@attrs.frozen
class InvertConfig:
    p: float = attrs.field(default=0.5, validator=[attrs.validators.ge(0.0), attrs.validators.le(1.0)])


def _invert(config: InvertConfig, image, mask, generator, ignore_index):
    if torch.rand((), generator=generator) < config.p:  # the generator is the only source of randomness
        image = 255 - image
    return image, mask


def build_invert(config: InvertConfig):
    return partial(_invert, config)  # picklable: DataLoader workers receive it


@hookimpl
def segbench_register_models(register):
    register("tiny_fcn", build_tiny_fcn, config=TinyFCNConfig, smoke=smoke_tiny_fcn)


@hookimpl
def segbench_register_transforms(register):
    register("invert", build_invert, config=InvertConfig)
