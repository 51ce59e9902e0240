"""Built-in transforms: ``random_scale_crop``, ``hflip``, ``color_jitter``, ``resize`` and ``normalize``
(the final step: uint8 -> float32 model input). The sampling and the arithmetic are the pure
functions of ``segbench.functional.augment``; here they get their recipe configs.

``--smoke`` shrinks crop and resize sizes to ``SMOKE_SIZE`` (the smoke dataset's image size).
"""
from __future__ import annotations

from functools import partial

import attrs

from segbench import hookimpl
from segbench.config import IMAGE_SIDE_MAX, in_range
from segbench.errors import ConfigError
from segbench.functional import augment

SMOKE_SIZE = (64, 128)


_ranged = in_range(0.0, 1.0)


def _positive_pair(instance, attribute, value) -> None:
    if len(value) != 2 or not all(1 <= v <= IMAGE_SIDE_MAX for v in value):
        raise ValueError(f"must be two sizes in pixels [height, width], each from 1 to {IMAGE_SIDE_MAX};"
                         f" got {list(value)}")


def _scale_range(instance, attribute, value) -> None:
    low, high = value
    if not 0 < low <= high <= 16:
        raise ValueError(f"must be [low, high] with 0 < low <= high <= 16, got {list(value)}")


def _channel_means(instance, attribute, value) -> None:
    # Images are scaled to [0, 1] before normalisation, so are their statistics.
    if len(value) != 3 or not all(0.0 <= v <= 1.0 for v in value):
        raise ValueError(f"must be three values (one per RGB channel) from 0 to 1, for images scaled to [0, 1];"
                         f" got {list(value)}")


def _channel_stds(instance, attribute, value) -> None:
    if len(value) != 3 or not all(0.0 < v <= 1.0 for v in value):
        raise ValueError(f"must be three values (one per RGB channel) greater than 0 and at most 1, for images"
                         f" scaled to [0, 1] (a zero std divides by zero: the loss becomes NaN); got {list(value)}")


@attrs.frozen
class RandomScaleCropConfig:
    """Resize by a random factor in ``scale``, then cut a ``size`` [height, width] window at a random
    place; with ``pad``, a window larger than the scaled image is padded (image 0, label ignored)."""

    scale: tuple[float, float] = attrs.field(default=(0.75, 1.25), validator=_scale_range)
    size: tuple[int, int] = attrs.field(default=(512, 1024), validator=_positive_pair)
    pad: bool = True


@attrs.frozen
class HFlipConfig:
    """Mirror image and label left-right with probability ``p``."""

    p: float = attrs.field(default=0.5, validator=_ranged)


@attrs.frozen
class ColorJitterConfig:
    """Random brightness, contrast and saturation factors in ``[1 - v, 1 + v]`` and a hue shift in
    ``[-hue, hue]`` (0 disables one; hue is slow on CPU), applied to the image in random order."""

    brightness: float = attrs.field(default=0.25, validator=_ranged)
    contrast: float = attrs.field(default=0.25, validator=_ranged)
    saturation: float = attrs.field(default=0.25, validator=_ranged)
    hue: float = attrs.field(default=0.0, validator=in_range(0.0, 0.5))


@attrs.frozen
class ResizeConfig:
    """Resize image (bilinear) and label (nearest) to ``size`` [height, width]."""

    size: tuple[int, int] = attrs.field(default=(512, 1024), validator=_positive_pair)


@attrs.frozen
class NormalizeConfig:
    """uint8 -> float32 ``(x / 255 - mean) / std`` per channel (ImageNet statistics by default)."""

    mean: tuple[float, float, float] = attrs.field(default=augment.IMAGENET_MEAN, validator=_channel_means)
    std: tuple[float, float, float] = attrs.field(default=augment.IMAGENET_STD, validator=_channel_stds)


def _random_scale_crop(config: RandomScaleCropConfig, image, mask, generator, ignore_index):
    try:
        params = augment.sample_scale_crop(generator, tuple(image.shape[-2:]), scale_range=config.scale,
                                           crop_size=config.size, pad=config.pad)
    except augment.CropLargerThanImageError as exc:
        raise ConfigError([("size", f"{exc}; set `pad: true`, or lower `size` or the low end of `scale`")]) from exc
    return augment.apply_scale_crop(image, mask, params, ignore_index=ignore_index)


def _hflip(config: HFlipConfig, image, mask, generator, ignore_index):
    return augment.apply_hflip(image, mask, augment.sample_hflip(generator, p=config.p))


def _color_jitter(config: ColorJitterConfig, image, mask, generator, ignore_index):
    params = augment.sample_color_jitter(generator, brightness=config.brightness, contrast=config.contrast,
                                         saturation=config.saturation, hue=config.hue)
    return augment.apply_color_jitter(image, params), mask


def _resize(config: ResizeConfig, image, mask, generator, ignore_index):
    return augment.apply_resize(image, mask, config.size)


def _normalize(config: NormalizeConfig, image, mask, generator, ignore_index):
    return augment.normalize(image, mean=config.mean, std=config.std), mask


def _smaller(config):
    return attrs.evolve(config, size=tuple(min(a, b) for a, b in zip(config.size, SMOKE_SIZE)))


def _factory(apply):
    def build(config):
        return partial(apply, config)
    return build


@hookimpl
def segbench_register_transforms(register):
    register("random_scale_crop", _factory(_random_scale_crop), config=RandomScaleCropConfig, smoke=_smaller)
    register("hflip", _factory(_hflip), config=HFlipConfig)
    register("color_jitter", _factory(_color_jitter), config=ColorJitterConfig)
    register("resize", _factory(_resize), config=ResizeConfig, smoke=_smaller)
    register("normalize", _factory(_normalize), config=NormalizeConfig, final=True)
