"""A third-party plugin written from the README's "Writing a plugin" section: a model with its own
``pretrained`` key and smoke variant, a transform, and models that break the model contract."""
from functools import partial

import attrs
import torch
from torch import nn

from segbench import hookimpl


@attrs.frozen
class TinySegConfig:
    channels: int = attrs.field(default=8, validator=attrs.validators.gt(0))
    pretrained: str = "none"  # this plugin's own meaning: "imagenet" would be its own weights, not ResNet50's


def build_tiny_seg(config: TinySegConfig, *, num_classes: int) -> nn.Module:
    if config.pretrained not in ("none", "imagenet"):
        raise ValueError(f"pretrained must be none or imagenet, got {config.pretrained!r}")
    return nn.Sequential(nn.Conv2d(3, config.channels, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(config.channels, num_classes, 1))


def smaller_tiny_seg(config: TinySegConfig) -> TinySegConfig:
    return attrs.evolve(config, channels=2)


@attrs.frozen
class InvertConfig:
    p: float = attrs.field(default=1.0, validator=[attrs.validators.ge(0.0), attrs.validators.le(1.0)])


def _invert(config, image, mask, generator, ignore_index):
    if torch.rand((), generator=generator) < config.p:
        image = 255 - image
    return image, mask


def build_invert(config: InvertConfig):
    return partial(_invert, config)


class ThirdParty:
    @hookimpl
    def segbench_register_models(self, register):
        register("tiny_seg", build_tiny_seg, config=TinySegConfig, smoke=smaller_tiny_seg)

    @hookimpl
    def segbench_register_transforms(self, register):
        register("invert", build_invert, config=InvertConfig)


# ---- models that break the contract, each as torchvision-style code would ------------------------

@attrs.frozen
class BadConfig:
    pass


class HalfSize(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.conv = nn.Conv2d(3, num_classes, 3, stride=2, padding=1)

    def forward(self, x):
        return self.conv(x)  # logits at half the input resolution


class DictOut(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.conv = nn.Conv2d(3, num_classes, 1)

    def forward(self, x):
        return {"out": self.conv(x)}  # as torchvision's segmentation models do


class BadModels:
    @hookimpl
    def segbench_register_models(self, register):
        register("half_size", lambda config, *, num_classes: HalfSize(num_classes), config=BadConfig)
        register("dict_out", lambda config, *, num_classes: DictOut(num_classes), config=BadConfig)
        register("extra_class", lambda config, *, num_classes: nn.Conv2d(3, num_classes + 1, 1), config=BadConfig)
        register("cannot_build", _cannot_build, config=BadConfig)


def _cannot_build(config, *, num_classes):
    raise RuntimeError("needs a GPU with 80 GB")


class Misspelled:
    @hookimpl
    def segbench_register_model(self, register):  # "models": a typo pluggy would silently ignore
        register("never", build_tiny_seg, config=TinySegConfig)


class Undecorated:
    def segbench_register_models(self, register):  # no @hookimpl: segbench would never call it
        register("never", build_tiny_seg, config=TinySegConfig)
