"""U-Net (Ronneberger et al. 2015) trained from scratch, in the widely used padded-convolution form.

With the default ``width: 64`` the channels are 64-128-256-512-1024 and the model has exactly
31,044,691 parameters for 19 classes: two 3x3 convolutions per level, each followed by batch-norm
and ReLU, 2x2 max-pooling down, 2x2 stride-2 transposed convolutions up, and a 1x1 classifier.
The 3x3 convolutions keep their biases (redundant before batch-norm, but part of the reference
parameter count; without them the model has 31,038,803).
"""
from __future__ import annotations

import attrs
import torch
from torch import nn
from torch.nn import functional as F

from segbench import hookimpl
from segbench.config import in_range

LEVELS = 5
MIN_SIDE = 2 ** (LEVELS - 1)  # four 2x2 poolings shrink a smaller side to nothing


@attrs.frozen
class UNetConfig:
    """``width`` is the channel count of the first level; each level below doubles it."""

    width: int = attrs.field(default=64, validator=in_range(1, 1024))


class DoubleConv(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class Down(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(nn.MaxPool2d(2), DoubleConv(in_channels, out_channels))


class Up(nn.Module):
    """Upsample 2x, pad to the skip connection's size (odd sizes lose a row at pooling), concatenate."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, in_channels // 2, kernel_size=2, stride=2)
        self.conv = DoubleConv(in_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        dy, dx = skip.shape[-2] - x.shape[-2], skip.shape[-1] - x.shape[-1]
        x = F.pad(x, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])
        return self.conv(torch.cat([skip, x], dim=1))


class UNet(nn.Module):
    """``(N, 3, H, W)`` images to ``(N, num_classes, H, W)`` logits, for any H and W."""

    def __init__(self, num_classes: int, *, width: int = 64, in_channels: int = 3):
        super().__init__()
        channels = [width * 2**i for i in range(LEVELS)]
        self.inc = DoubleConv(in_channels, channels[0])
        self.downs = nn.ModuleList(Down(c, c * 2) for c in channels[:-1])
        self.ups = nn.ModuleList(Up(c, c // 2) for c in reversed(channels[1:]))
        self.head = nn.Conv2d(channels[0], num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        if height < MIN_SIDE or width < MIN_SIDE:
            x = F.pad(x, [0, max(0, MIN_SIDE - width), 0, max(0, MIN_SIDE - height)])
        skips = [self.inc(x)]
        for down in self.downs:
            skips.append(down(skips[-1]))
        x = skips.pop()
        for up in self.ups:
            x = up(x, skips.pop())
        return self.head(x)[..., :height, :width]


def build_unet(config: UNetConfig, *, num_classes: int) -> UNet:
    model = UNet(num_classes, width=config.width)
    model.segbench_init = "random"
    return model


@hookimpl
def segbench_register_models(register):
    register("unet", build_unet, config=UNetConfig)
