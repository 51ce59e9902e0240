"""ENet (``enet``): "ENet: A Deep Neural Network Architecture for Real-Time Semantic Segmentation"
(Paszke et al. 2016), built from the paper's Table 1 and Figure 2.

An initial block (a 13-filter 3x3 stride-2 convolution beside a 2x2 max-pool, concatenated), three
encoder stages of bottlenecks at 1/4 and 1/8 resolution (regular, dilated 2/4/8/16 and asymmetric
5x1 + 1x5 convolutions; stage 1 with 0.01 spatial dropout, the rest 0.1), a decoder of two stages
that max-unpools with the encoder's pooling indices, and a transposed convolution to full size.
Bottlenecks work on a quarter of their output channels, use no biases, PReLU in the encoder and ReLU
in the decoder. 363,618 parameters for 19 classes (about 0.36M, as published re-implementations count).

Unpooling places each value at the position its encoder max-pool took it from; it is written with
tensor operations (no ``MaxUnpool`` operator) so that the model exports to ONNX. Inputs whose sides
are not multiples of 8 are zero-padded and the logits cropped back.
"""
from __future__ import annotations

import attrs
import torch
from torch import nn
from torch.nn import functional as F

from segbench import hookimpl

STRIDE = 8


@attrs.frozen
class ENetConfig:
    pass


def _unpool(x: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """2x2 max-unpooling: ``x`` ``(N, C, h, w)`` to ``(N, C, 2h, 2w)``, zero except where the pool took
    its maxima. ``indices`` are ``max_pool2d``'s flat indices into each ``2h x 2w`` plane."""
    n, c, h, w = x.shape
    up = lambda t: t[:, :, :, None, :, None].expand(n, c, h, 2, w, 2).reshape(n, c, 2 * h, 2 * w)  # noqa: E731
    rows = torch.arange(2 * h, device=x.device)[:, None] * (2 * w)
    cols = torch.arange(2 * w, device=x.device)[None, :]
    return up(x) * (up(indices) == rows + cols).to(x.dtype)


class InitialBlock(nn.Module):
    def __init__(self, out_channels: int = 16):
        super().__init__()
        self.conv = nn.Conv2d(3, out_channels - 3, 3, stride=2, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = nn.PReLU(out_channels)

    def forward(self, x):
        return self.act(self.bn(torch.cat([self.conv(x), F.max_pool2d(x, 2)], dim=1)))


def _bn_act(channels: int, prelu: bool) -> list[nn.Module]:
    return [nn.BatchNorm2d(channels), nn.PReLU(channels) if prelu else nn.ReLU(inplace=True)]


class Bottleneck(nn.Module):
    """Regular, dilated or asymmetric bottleneck: identity + (1x1 reduce, conv, 1x1 expand, dropout)."""

    def __init__(self, channels: int, *, dilation: int = 1, asymmetric: int = 0, dropout: float = 0.1,
                 prelu: bool = True):
        super().__init__()
        inner = channels // 4
        if asymmetric:
            pad = asymmetric // 2
            middle = [nn.Conv2d(inner, inner, (asymmetric, 1), padding=(pad, 0), bias=False),
                      nn.Conv2d(inner, inner, (1, asymmetric), padding=(0, pad), bias=False)]
        else:
            middle = [nn.Conv2d(inner, inner, 3, padding=dilation, dilation=dilation, bias=False)]
        self.branch = nn.Sequential(
            nn.Conv2d(channels, inner, 1, bias=False), *_bn_act(inner, prelu),
            *middle, *_bn_act(inner, prelu),
            nn.Conv2d(inner, channels, 1, bias=False), nn.BatchNorm2d(channels), nn.Dropout2d(dropout))
        self.act = nn.PReLU(channels) if prelu else nn.ReLU(inplace=True)

    def forward(self, x):
        return self.act(x + self.branch(x))


class DownBottleneck(nn.Module):
    """Max-pool (indices kept) + zero channels beside (2x2 stride-2 reduce, 3x3, 1x1 expand, dropout)."""

    def __init__(self, in_channels: int, out_channels: int, *, dropout: float):
        super().__init__()
        inner = out_channels // 4
        self.extra = out_channels - in_channels
        self.branch = nn.Sequential(
            nn.Conv2d(in_channels, inner, 2, stride=2, bias=False), *_bn_act(inner, True),
            nn.Conv2d(inner, inner, 3, padding=1, bias=False), *_bn_act(inner, True),
            nn.Conv2d(inner, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels), nn.Dropout2d(dropout))
        self.act = nn.PReLU(out_channels)

    def forward(self, x):
        main, indices = F.max_pool2d(x, 2, return_indices=True)
        main = F.pad(main, [0, 0, 0, 0, 0, self.extra])
        return self.act(main + self.branch(x)), indices


class UpBottleneck(nn.Module):
    """(1x1 conv, unpool with the encoder's indices) + (1x1 reduce, 3x3 transposed stride 2, 1x1 expand)."""

    def __init__(self, in_channels: int, out_channels: int, *, dropout: float):
        super().__init__()
        inner = out_channels // 4
        self.main = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels))
        self.branch = nn.Sequential(
            nn.Conv2d(in_channels, inner, 1, bias=False), *_bn_act(inner, False),
            nn.ConvTranspose2d(inner, inner, 3, stride=2, padding=1, output_padding=1, bias=False),
            *_bn_act(inner, False),
            nn.Conv2d(inner, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels), nn.Dropout2d(dropout))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x, indices):
        return self.act(_unpool(self.main(x), indices) + self.branch(x))


def _stage_2_or_3(channels: int) -> list[Bottleneck]:
    return [Bottleneck(channels), Bottleneck(channels, dilation=2), Bottleneck(channels, asymmetric=5),
            Bottleneck(channels, dilation=4), Bottleneck(channels), Bottleneck(channels, dilation=8),
            Bottleneck(channels, asymmetric=5), Bottleneck(channels, dilation=16)]


class ENet(nn.Module):
    """``(N, 3, H, W)`` images to ``(N, num_classes, H, W)`` logits, for any H and W."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.initial = InitialBlock(16)
        self.down1 = DownBottleneck(16, 64, dropout=0.01)
        self.stage1 = nn.Sequential(*(Bottleneck(64, dropout=0.01) for _ in range(4)))
        self.down2 = DownBottleneck(64, 128, dropout=0.1)
        self.stage2 = nn.Sequential(*_stage_2_or_3(128))
        self.stage3 = nn.Sequential(*_stage_2_or_3(128))
        self.up4 = UpBottleneck(128, 64, dropout=0.1)
        self.stage4 = nn.Sequential(Bottleneck(64, prelu=False), Bottleneck(64, prelu=False))
        self.up5 = UpBottleneck(64, 16, dropout=0.1)
        self.stage5 = Bottleneck(16, prelu=False)
        self.fullconv = nn.ConvTranspose2d(16, num_classes, 2, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        x = F.pad(x, [0, -width % STRIDE, 0, -height % STRIDE])
        x, indices1 = self.down1(self.initial(x))
        x, indices2 = self.down2(self.stage1(x))
        x = self.stage3(self.stage2(x))
        x = self.stage4(self.up4(x, indices2))
        x = self.stage5(self.up5(x, indices1))
        return self.fullconv(x)[..., :height, :width]


def build_enet(config: ENetConfig, *, num_classes: int) -> ENet:
    model = ENet(num_classes)
    model.segbench_init = "random"
    return model


@hookimpl
def segbench_register_models(register):
    register("enet", build_enet, config=ENetConfig)
