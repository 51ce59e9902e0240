"""Fast-SCNN (``fast_scnn``): "Fast-SCNN: Fast Semantic Segmentation Network" (Poudel et al. 2019),
built from the paper's Tables 1 and 2.

Learning to down-sample (a 3x3 stride-2 convolution to 32 channels, depthwise-separable stride-2
convolutions to 48 and 64) feeds two branches: the 1/8-resolution features themselves and a global
feature extractor (MobileNetV2 inverted-residual bottlenecks, expansion 6: 3 x 64 at stride 2,
3 x 96 at stride 2, 3 x 128 at stride 1, then a pyramid pooling module with bins 1, 2, 3 and 6).
The feature fusion module adds the 1x1-projected 1/8 features to the 1/32 features up-sampled x4,
through a depthwise 3x3 convolution of dilation 4 and a 1x1 projection. The classifier has two
depthwise-separable convolutions and a 1x1 convolution; logits are up-sampled to the input size.
1,137,795 parameters for 19 classes (the paper: 1.11M).

The pyramid pooling averages over the same windows as ``adaptive_avg_pool2d``, written as two small
matrix products so that the model exports to ONNX at any input size.
"""
from __future__ import annotations

import attrs
import torch
from torch import nn
from torch.nn import functional as F

from segbench import hookimpl

PYRAMID_BINS = (1, 2, 3, 6)


@attrs.frozen
class FastSCNNConfig:
    pass


def _conv_bn_relu(in_channels, out_channels, kernel_size=1, *, stride=1, groups=1, dilation=1, relu=True):
    layers = [nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=dilation * (kernel_size // 2),
                        dilation=dilation, groups=groups, bias=False), nn.BatchNorm2d(out_channels)]
    return nn.Sequential(*layers, *([nn.ReLU(inplace=True)] if relu else []))


def _ds_conv(in_channels, out_channels, *, stride=1):
    """Depthwise-separable convolution: depthwise 3x3 then pointwise 1x1, each with batch-norm and ReLU."""
    return nn.Sequential(_conv_bn_relu(in_channels, in_channels, 3, stride=stride, groups=in_channels),
                         _conv_bn_relu(in_channels, out_channels))


class InvertedResidual(nn.Module):
    """MobileNetV2 bottleneck: 1x1 expand, depthwise 3x3, linear 1x1 project; residual when shapes allow."""

    def __init__(self, in_channels, out_channels, *, stride, expansion=6):
        super().__init__()
        hidden = in_channels * expansion
        self.residual = stride == 1 and in_channels == out_channels
        self.block = nn.Sequential(_conv_bn_relu(in_channels, hidden),
                                   _conv_bn_relu(hidden, hidden, 3, stride=stride, groups=hidden),
                                   _conv_bn_relu(hidden, out_channels, relu=False))

    def forward(self, x):
        out = self.block(x)
        return x + out if self.residual else out


def _pooling_matrix(size: int, bins: int, like: torch.Tensor) -> torch.Tensor:
    """``(bins, size)`` rows averaging the windows ``adaptive_avg_pool`` uses along one axis."""
    index = torch.arange(bins, device=like.device)[:, None]
    start = (index * size) // bins
    end = ((index + 1) * size + bins - 1) // bins
    position = torch.arange(size, device=like.device)[None, :]
    inside = ((position >= start) & (position < end)).to(like.dtype)
    return inside / inside.sum(dim=1, keepdim=True)


def adaptive_avg_pool(x: torch.Tensor, bins: int) -> torch.Tensor:
    """``adaptive_avg_pool2d(x, bins)`` for ``x`` ``(N, C, H, W)``, from matrix products (exports to ONNX)."""
    rows = _pooling_matrix(x.shape[-2], bins, x)
    cols = _pooling_matrix(x.shape[-1], bins, x)
    return torch.matmul(torch.matmul(rows, x), cols.transpose(0, 1))


class PyramidPooling(nn.Module):
    def __init__(self, channels, out_channels, bins=PYRAMID_BINS):
        super().__init__()
        self.bins = bins
        self.reduce = nn.ModuleList(_conv_bn_relu(channels, channels // 4) for _ in bins)
        self.project = _conv_bn_relu(channels * 2, out_channels)

    def forward(self, x):
        size = x.shape[-2:]
        pooled = [F.interpolate(reduce(adaptive_avg_pool(x, bins)), size=size, mode="bilinear", align_corners=False)
                  for bins, reduce in zip(self.bins, self.reduce)]
        return self.project(torch.cat([x, *pooled], dim=1))


class FeatureFusion(nn.Module):
    def __init__(self, high_channels, low_channels, out_channels, *, scale=4):
        super().__init__()
        self.low = nn.Sequential(_conv_bn_relu(low_channels, low_channels, 3, groups=low_channels, dilation=scale),
                                 _conv_bn_relu(low_channels, out_channels, relu=False))
        self.high = _conv_bn_relu(high_channels, out_channels, relu=False)

    def forward(self, high, low):
        low = F.interpolate(low, size=high.shape[-2:], mode="bilinear", align_corners=False)
        return F.relu(self.high(high) + self.low(low))


class FastSCNN(nn.Module):
    """``(N, 3, H, W)`` images to ``(N, num_classes, H, W)`` logits. Sub-modules: ``downsample``,
    ``global_features``, ``fusion``, ``classifier``."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.downsample = nn.Sequential(_conv_bn_relu(3, 32, 3, stride=2), _ds_conv(32, 48, stride=2),
                                        _ds_conv(48, 64, stride=2))
        blocks = []
        for in_channels, out_channels, stride in ((64, 64, 2), (64, 96, 2), (96, 128, 1)):
            blocks += [InvertedResidual(in_channels, out_channels, stride=stride),
                       InvertedResidual(out_channels, out_channels, stride=1),
                       InvertedResidual(out_channels, out_channels, stride=1)]
        self.global_features = nn.Sequential(*blocks, PyramidPooling(128, 128))
        self.fusion = FeatureFusion(64, 128, 128)
        self.classifier = nn.Sequential(_ds_conv(128, 128), _ds_conv(128, 128), nn.Dropout(0.1),
                                        nn.Conv2d(128, num_classes, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        high = self.downsample(x)
        logits = self.classifier(self.fusion(high, self.global_features(high)))
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


def build_fast_scnn(config: FastSCNNConfig, *, num_classes: int) -> FastSCNN:
    model = FastSCNN(num_classes)
    model.segbench_init = "random"
    return model


@hookimpl
def segbench_register_models(register):
    register("fast_scnn", build_fast_scnn, config=FastSCNNConfig)
