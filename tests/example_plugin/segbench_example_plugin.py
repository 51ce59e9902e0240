"""A third-party segbench plugin: registers the ``tiny_fcn`` model."""
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


@hookimpl
def segbench_register_models(register):
    register("tiny_fcn", build_tiny_fcn, config=TinyFCNConfig)
