"""LR-ASPP on MobileNetV3-Large (``lraspp_mobilenet_v3``): torchvision's ``lraspp_mobilenet_v3_large``.

The segmentation head of "Searching for MobileNetV3" (Howard et al. 2019): a squeeze-and-excitation
style attention branch on the stride-16 (dilated) features plus a stride-8 skip, 3,221,198
parameters for 19 classes (torchvision's table: 3,221,538 at 21). ``pretrained`` takes ``none``
(random initialisation, nothing read or downloaded), ``imagenet`` (torchvision's MobileNetV3-Large
ImageNet weights from the local torch hub cache) or the path of a ``mobilenet_v3_large`` state dict,
exactly as the ResNet50 DeepLabs do (see ``segbench_plugins.resnet50_weights``).

``bn_momentum`` sets the batch-norm momentum of the whole model: torchvision's MobileNetV3 backbone
uses 0.01, whose running statistics lag far behind the weights in a short run from scratch (on the
synthetic city after 384 steps: eval-mode mIoU 0.07 where batch statistics gave 0.33).
"""
from __future__ import annotations

import attrs
import torch
from attrs.validators import and_, gt, le, optional
from torch import nn
from torch.nn import functional as F

from segbench import hookimpl
from segbench_plugins.resnet50_weights import Backbone, init_backbone, pretrained_field


def _mobilenet_v3_large_imagenet_url() -> str:
    from torchvision.models import MobileNet_V3_Large_Weights

    return MobileNet_V3_Large_Weights.IMAGENET1K_V1.url


# torchvision's segmentation backbone is mobilenet_v3_large().features: the ImageNet file's keys lose
# their ``features.`` prefix, and its ImageNet classifier is not loaded.
MOBILENET_V3_LARGE = Backbone("MobileNetV3-Large", "mobilenet_v3_large", _mobilenet_v3_large_imagenet_url,
                              strip_prefixes=("backbone.", "features."), ignored_prefixes=("classifier.",),
                              example_keys="features.0.0.weight, features.1.block.0.0.weight")


@attrs.frozen
class LRASPPConfig:
    pretrained: str = pretrained_field()
    bn_momentum: float | None = attrs.field(default=None, validator=optional(and_(gt(0.0), le(1.0))))  # None: torchvision's


class LRASPP(nn.Module):
    """``(N, 3, H, W)`` -> ``(N, C, H, W)`` logits. Sub-modules: ``backbone`` (MobileNetV3-Large
    features, dilated last stage) and ``head`` (torchvision's ``LRASPPHead``)."""

    def __init__(self, num_classes: int, *, bn_momentum: float | None = None):
        super().__init__()
        from torchvision.models.segmentation import lraspp_mobilenet_v3_large  # torchvision: only when built

        model = lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=num_classes)
        self.backbone = model.backbone
        self.head = model.classifier
        if bn_momentum is not None:
            for module in self.modules():
                if isinstance(module, nn.BatchNorm2d):
                    module.momentum = bn_momentum

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.head(self.backbone(x))
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


def build_lraspp(config: LRASPPConfig, *, num_classes: int) -> LRASPP:
    model = LRASPP(num_classes, bn_momentum=config.bn_momentum)
    model.segbench_init = init_backbone(model.backbone, config.pretrained, MOBILENET_V3_LARGE)
    return model


def random_backbone(config):
    """A checkpoint replaces every weight, and a smoke run cannot assume ImageNet weights are present:
    no backbone file is read."""
    return attrs.evolve(config, pretrained="none")


@hookimpl
def segbench_register_models(register):
    register("lraspp_mobilenet_v3", build_lraspp, config=LRASPPConfig, smoke=random_backbone,
             for_checkpoint=random_backbone)
