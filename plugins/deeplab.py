"""DeepLab models on torchvision's ResNet50: DeepLabV3+ (``deeplabv3plus``) and DeepLabV3 (``deeplabv3``).

Both take ``pretrained``: ``none`` (random initialisation, nothing is read or downloaded),
``imagenet`` (torchvision's ResNet50 ImageNet weights from the local torch hub cache) or the path of
a ResNet50 state dict. See ``segbench_plugins.resnet50_weights``.
"""
from __future__ import annotations

import attrs
import torch
from attrs.validators import in_
from torch import nn
from torch.nn import functional as F

from segbench import hookimpl
from segbench_plugins.resnet50_weights import IMAGENET, RANDOM, init_backbone, pretrained_field, standin_weights

ATROUS_RATES = {16: (6, 12, 18), 8: (12, 24, 36)}
DILATION = {16: [False, False, True], 8: [False, True, True]}


def _upsample(x: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def _conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


@attrs.frozen
class DeepLabV3PlusConfig:
    """``output_stride`` 16 (atrous rates 6/12/18) or 8 (12/24/36, about 2.6x the forward FLOPs)."""

    output_stride: int = attrs.field(default=16, validator=in_((8, 16)))
    pretrained: str = pretrained_field()


class DeepLabV3PlusHead(nn.Module):
    """ASPP on the stride-16/8 features, then the decoder that fuses the stride-4 features."""

    def __init__(self, num_classes: int, *, atrous_rates, in_channels: int = 2048, low_channels: int = 256):
        super().__init__()
        from torchvision.models.segmentation.deeplabv3 import ASPP  # torchvision loads in a second: not at start-up

        self.aspp = ASPP(in_channels, atrous_rates, out_channels=256)
        self.low_project = _conv_bn_relu(low_channels, 48, 1)
        self.fuse = nn.Sequential(_conv_bn_relu(256 + 48, 256, 3), _conv_bn_relu(256, 256, 3))
        self.classifier = nn.Conv2d(256, num_classes, 1)

    def forward(self, features: torch.Tensor, low_features: torch.Tensor) -> torch.Tensor:
        low = self.low_project(low_features)
        x = _upsample(self.aspp(features), low.shape[-2:])
        return self.classifier(self.fuse(torch.cat([x, low], dim=1)))


class DeepLabV3Plus(nn.Module):
    """DeepLabV3+ (Chen et al. 2018) with a ResNet50 encoder: ``(N, 3, H, W)`` -> ``(N, C, H, W)``.

    ASPP and decoder use full 3x3 convolutions, as in the paper's ResNet variant: 40,351,667
    parameters for 19 classes (segmentation_models_pytorch's depthwise-separable version has 26.68M).
    Sub-modules: ``backbone`` (ResNet50 without ``fc``) and ``head`` (``aspp``, ``low_project``,
    ``fuse``, ``classifier``).
    """

    def __init__(self, num_classes: int, *, output_stride: int = 16):
        super().__init__()
        from torchvision.models import resnet50
        from torchvision.models._utils import IntermediateLayerGetter

        resnet = resnet50(weights=None, replace_stride_with_dilation=DILATION[output_stride])
        self.backbone = IntermediateLayerGetter(resnet, return_layers={"layer1": "low", "layer4": "out"})
        self.head = DeepLabV3PlusHead(num_classes, atrous_rates=ATROUS_RATES[output_stride])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.backbone(x)
        return _upsample(self.head(features["out"], features["low"]), x.shape[-2:])


def build_deeplabv3plus(config: DeepLabV3PlusConfig, *, num_classes: int) -> DeepLabV3Plus:
    model = DeepLabV3Plus(num_classes, output_stride=config.output_stride)
    model.segbench_init = init_backbone(model.backbone, config.pretrained)
    return model


@attrs.frozen
class DeepLabV3Config:
    """``aux: true`` adds torchvision's auxiliary FCN head (on layer3), frozen; see ``DeepLabV3``."""

    aux: bool = False
    pretrained: str = pretrained_field()


class DeepLabV3(nn.Module):
    """torchvision's ``deeplabv3_resnet50``: DeepLabV3 at output stride 8, ASPP 12/24/36, no decoder.

    This is the model the source project trained when it said "DeepLabV3+": 39.64M parameters for
    19 classes (42.00M with the auxiliary head). It returns the ``out`` logits only. With ``aux``
    the auxiliary head is kept so that the parameters match ``deeplabv3_resnet50(aux_loss=True)``,
    but segbench trains a single output, so it gets no loss: its parameters are frozen
    (``requires_grad=False``) so that optimizers and DistributedDataParallel skip them.
    Sub-modules: ``backbone``, ``head`` (torchvision's ``classifier``) and ``aux_head``.
    """

    def __init__(self, num_classes: int, *, aux: bool = False):
        super().__init__()
        from torchvision.models.segmentation import deeplabv3_resnet50

        model = deeplabv3_resnet50(weights=None, weights_backbone=None, num_classes=num_classes, aux_loss=aux)
        self.backbone = model.backbone
        self.head = model.classifier
        self.aux_head = model.aux_classifier
        if self.aux_head is not None:
            self.aux_head.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _upsample(self.head(self.backbone(x)["out"]), x.shape[-2:])


def build_deeplabv3(config: DeepLabV3Config, *, num_classes: int) -> DeepLabV3:
    model = DeepLabV3(num_classes, aux=config.aux)
    model.segbench_init = init_backbone(model.backbone, config.pretrained)
    return model


def smoke_backbone(config):
    """ImageNet weights cannot be assumed present where a smoke run goes: a stand-in file is read."""
    if config.pretrained != IMAGENET:
        return config
    return attrs.evolve(config, pretrained=str(standin_weights()))


def random_backbone(config):
    """A checkpoint replaces every weight: no backbone file needs to exist where a run is inspected."""
    return attrs.evolve(config, pretrained=RANDOM)


@hookimpl
def segbench_register_models(register):
    register("deeplabv3plus", build_deeplabv3plus, config=DeepLabV3PlusConfig, smoke=smoke_backbone,
             for_checkpoint=random_backbone)
    register("deeplabv3", build_deeplabv3, config=DeepLabV3Config, smoke=smoke_backbone,
             for_checkpoint=random_backbone)
