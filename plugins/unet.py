"""U-Net (Ronneberger et al. 2015) trained from scratch, in the widely used padded-convolution form.

With the default ``width: 64`` the channels are 64-128-256-512-1024 and the model has exactly
31,044,691 parameters for 19 classes: two 3x3 convolutions per level, each followed by batch-norm
and ReLU, 2x2 max-pooling down, 2x2 stride-2 transposed convolutions up, and a 1x1 classifier.
The 3x3 convolutions keep their biases (redundant before batch-norm, but part of the reference
parameter count; without them the model has 31,038,803).

Three options make small U-Nets cheap where CPUs are slow. A 3x3 convolution costs in proportion to
in x out channels x pixels, so the doubling plan spends the same arithmetic at every level;
``channels`` sets each level's width (e.g. 32-48-64-96-128 grows slower than it pools and costs far
less at the deep levels). ``stem_stride: 2`` makes the first convolution stride 2, so every level
works on a quarter of the pixels, and up-samples the logits bilinearly to the input size.
``skip: add`` adds the up-sampled features to the skip connection instead of concatenating them
(as LinkNet does), halving the input of each decoder level's first convolution; with it,
``last_up_convs: false`` drops the last decoder level's two full-resolution convolutions, so the
classifier reads the sum of the up-sampled features and the first level's (a quarter less arithmetic
for the 16-24-32-48-64 plan).

Two options make it learn faster for the same arithmetic, which matters most in short schedules.
``block: residual`` adds each level's input to its two convolutions' output (He et al. 2016; a 1x1
convolution where the width changes), so gradients reach the early levels directly.
``deep_supervision`` (a weight, 0 = off) adds a 1x1 classifier on every decoder level but the last; in
training the model returns their logits too (``DeepSupervision``), at each level's own resolution, and
each is trained with the recipe's loss against the masks sampled at that resolution, at that weight, so
the coarse levels learn the classes directly. Scoring them at their own resolution rather than
up-sampled to the input's spares the CPU three full-size 19-class maps to up-sample, score and
back-propagate per step (the quickstart: 12% less wall time with AVX2 kernels, the same mIoU within
seed noise). Eval mode and export return the main logits only; the auxiliary classifiers cost no
inference time.
"""
from __future__ import annotations

import math
from typing import Literal

import attrs
import torch
from attrs.validators import max_len, min_len
from torch import nn
from torch.nn import functional as F

from segbench import hookimpl
from segbench.config import in_range
from segbench.deep_supervision import DeepSupervision

LEVELS = 5
DEFAULT_WIDTH = 64


def _channels_or_width(instance, attribute, value):
    if value is not None and instance.width != DEFAULT_WIDTH:
        raise ValueError(f"set either width ({instance.width}) or channels ({list(value)}), not both:"
                         " channels lists every level's width")


def _last_up_convs_need_added_skips(instance, attribute, value):
    if not value and instance.skip != "add":
        raise ValueError("false needs skip: add (the classifier then reads the sum of the up-sampled features and"
                         " the first level's, which concatenated skips do not give); set skip: add, or leave"
                         " last_up_convs true")


@attrs.frozen
class UNetConfig:
    """``width``: the first level's channels, doubled at each of the 5 levels; or ``channels``: every
    level's width (2 to 6 levels, e.g. [32, 48, 64, 96, 128]). ``stem_stride`` 2 halves the input in the
    first convolution and up-samples the logits: a quarter of the arithmetic. ``skip``: ``concat``
    (the paper's) or ``add`` the encoder's features to the decoder's. ``block``: ``plain`` (two
    convolutions) or ``residual`` (the two plus a shortcut). ``deep_supervision``: the weight of the
    auxiliary classifiers' losses (0 leaves them out). ``last_up_convs: false`` (with ``skip: add``) leaves
    out the last decoder level's two convolutions, the costliest of the decoder at full resolution."""

    width: int = attrs.field(default=DEFAULT_WIDTH, validator=in_range(1, 1024))
    channels: tuple[int, ...] | None = attrs.field(
        default=None, converter=attrs.converters.optional(tuple),
        validator=attrs.validators.optional([in_range(1, 4096), min_len(2), max_len(6), _channels_or_width]))
    stem_stride: Literal[1, 2] = attrs.field(default=1, validator=attrs.validators.in_((1, 2)))
    skip: Literal["concat", "add"] = attrs.field(default="concat",
                                                 validator=attrs.validators.in_(("concat", "add")))
    block: Literal["plain", "residual"] = attrs.field(default="plain",
                                                      validator=attrs.validators.in_(("plain", "residual")))
    deep_supervision: float = attrs.field(default=0.0, validator=in_range(0, 10))
    last_up_convs: bool = attrs.field(default=True, validator=_last_up_convs_need_added_skips)

    def level_channels(self) -> tuple[int, ...]:
        return self.channels if self.channels is not None else tuple(self.width * 2**i for i in range(LEVELS))


class DoubleConv(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


def _conv_bn(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> list[nn.Module]:
    # No bias: the batch-norm after it has one.
    return [nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, bias=False),
            nn.BatchNorm2d(out_channels)]


class ResidualDoubleConv(nn.Module):
    """Two 3x3 convolutions with batch-norm, plus the input (through a 1x1 convolution where the width
    changes, after 2x2 average pooling where the stride does), then ReLU: ResNet's basic block."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.body = nn.Sequential(*_conv_bn(in_channels, out_channels, 3, stride), nn.ReLU(inplace=True),
                                  *_conv_bn(out_channels, out_channels, 3))
        # Pooling rather than a strided 1x1 convolution (ResNet-D's shortcut): every input pixel counts, and
        # torch 2.14's CPU kernel for a strided 1x1 convolution of a channels-last RGB image crashes the process
        # in the backward pass. ceil_mode matches the 3x3 stride-2 convolution's output size on odd sizes.
        shortcut = [nn.AvgPool2d(stride, ceil_mode=True, count_include_pad=False)] if stride != 1 else []
        if in_channels != out_channels:
            shortcut += _conv_bn(in_channels, out_channels, 1)
        self.shortcut = nn.Sequential(*shortcut) if shortcut else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


BLOCKS = {"plain": DoubleConv, "residual": ResidualDoubleConv}


class Down(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int, block=DoubleConv):
        super().__init__(nn.MaxPool2d(2), block(in_channels, out_channels))


class Up(nn.Module):
    """Upsample 2x to the skip connection's width, pad to its size (odd sizes lose a row at pooling),
    concatenate (or add), two convolutions (or none)."""

    def __init__(self, deep_channels: int, skip_channels: int, add: bool = False, block=DoubleConv):
        super().__init__()
        self.add = add
        self.up = nn.ConvTranspose2d(deep_channels, skip_channels, kernel_size=2, stride=2)
        # No block: the level passes on the sum itself.
        self.conv = nn.Identity() if block is None else block(skip_channels if add else 2 * skip_channels,
                                                               skip_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        dy, dx = skip.shape[-2] - x.shape[-2], skip.shape[-1] - x.shape[-1]
        x = F.pad(x, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])
        return self.conv(skip + x if self.add else torch.cat([skip, x], dim=1))


class UNet(nn.Module):
    """``(N, 3, H, W)`` images to ``(N, num_classes, H, W)`` logits, for any H and W (in training mode with
    ``deep_supervision`` > 0, a ``DeepSupervision`` holding them and the decoder levels' logits)."""

    def __init__(self, num_classes: int, *, channels: tuple[int, ...] = UNetConfig().level_channels(),
                 stem_stride: int = 1, skip: str = "concat", block: str = "plain", deep_supervision: float = 0.0,
                 last_up_convs: bool = True, in_channels: int = 3):
        super().__init__()
        self.stem_stride = stem_stride
        # The poolings (and the stem) must leave at least one pixel at the bottom level.
        self.min_side = 2 ** (len(channels) - 1) * stem_stride
        level = BLOCKS[block]
        self.inc = level(in_channels, channels[0], stride=stem_stride)
        self.downs = nn.ModuleList(Down(a, b, level) for a, b in zip(channels[:-1], channels[1:]))
        decoder = list(zip(reversed(channels[1:]), reversed(channels[:-1])))
        self.ups = nn.ModuleList(
            Up(deep, width, add=skip == "add", block=level if index < len(decoder) - 1 or last_up_convs else None)
            for index, (deep, width) in enumerate(decoder))
        self.head = nn.Conv2d(channels[0], num_classes, kernel_size=1)
        self.deep_supervision = deep_supervision
        # One classifier per decoder level before the last (whose output the head reads).
        self.auxiliary_heads = nn.ModuleList(
            nn.Conv2d(width, num_classes, kernel_size=1) for width in list(reversed(channels[:-1]))[:-1]
        ) if deep_supervision > 0 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        # Traced for an ONNX export, the sizes are graph values: the padding must be too, not a branch taken at
        # the traced size (a dynamic-size export would then skip it for small inputs and give wrong logits).
        if torch.jit.is_tracing() or height < self.min_side or width < self.min_side:
            x = F.pad(x, [0, self._shortfall(width), 0, self._shortfall(height)])
        skips = [self.inc(x)]
        for down in self.downs:
            skips.append(down(skips[-1]))
        supervise = self.training and self.auxiliary_heads is not None
        auxiliary = []
        x = skips.pop()
        for index, up in enumerate(self.ups):
            x = up(x, skips.pop())
            if supervise and index < len(self.auxiliary_heads):
                auxiliary.append(self._unpadded(self.auxiliary_heads[index](x), height, width))
        logits = self.head(x)
        if self.stem_stride != 1:
            logits = F.interpolate(logits, size=(height + self._shortfall(height), width + self._shortfall(width)),
                                   mode="bilinear", align_corners=False)
        logits = logits[..., :height, :width]
        return DeepSupervision(logits, tuple(auxiliary), self.deep_supervision) if supervise else logits

    def _shortfall(self, side):
        """How far ``side`` is below the smallest input side: an int, or a graph value while traced."""
        if isinstance(side, torch.Tensor):
            return torch.clamp(self.min_side - side, min=0)
        return max(0, self.min_side - side)

    def _unpadded(self, logits: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """A coarse level's logits without the rows and columns that cover only the padding of a small input."""
        rows = math.ceil(logits.shape[-2] * height / max(height, self.min_side))
        columns = math.ceil(logits.shape[-1] * width / max(width, self.min_side))
        return logits[..., :rows, :columns]


def build_unet(config: UNetConfig, *, num_classes: int) -> UNet:
    model = UNet(num_classes, channels=config.level_channels(), stem_stride=config.stem_stride,
                 skip=config.skip, block=config.block, deep_supervision=config.deep_supervision,
                 last_up_convs=config.last_up_convs)
    model.segbench_init = "random"
    return model


@hookimpl
def segbench_register_models(register):
    register("unet", build_unet, config=UNetConfig)
