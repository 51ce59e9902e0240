"""Augmentation pipelines described in a recipe as a list of ``{name: ..., <options>}`` mappings::

    train_transforms:
      - {name: random_scale_crop, scale: [0.75, 1.25], size: [512, 1024], pad: true}
      - {name: hflip, p: 0.5}
      - {name: color_jitter, brightness: 0.25, contrast: 0.25, saturation: 0.25, hue: 0.0}
      - {name: normalize}

Every list ends with ``normalize`` (uint8 -> float32); the steps before it work on uint8 images.
"""
from __future__ import annotations

import difflib
from typing import Any, Callable

import attrs
import torch

from segbench.config import IMAGE_SIDE_MAX, in_range, structure_config
from segbench.errors import ConfigError, DataError
from segbench.functional import augment

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


Apply = Callable[[Any, torch.Tensor, torch.Tensor, torch.Generator, int], tuple[torch.Tensor, torch.Tensor]]


def _random_scale_crop(config: RandomScaleCropConfig, image, mask, generator, ignore_index):
    params = augment.sample_scale_crop(generator, tuple(image.shape[-2:]), scale_range=config.scale,
                                       crop_size=config.size, pad=config.pad)
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


TRANSFORMS: dict[str, tuple[type, Apply]] = {
    "random_scale_crop": (RandomScaleCropConfig, _random_scale_crop),
    "hflip": (HFlipConfig, _hflip),
    "color_jitter": (ColorJitterConfig, _color_jitter),
    "resize": (ResizeConfig, _resize),
    "normalize": (NormalizeConfig, _normalize),
}


@attrs.frozen
class Step:
    """One configured transform; ``path`` is where the recipe declares it (for error messages)."""

    name: str
    config: Any
    path: str

    def __call__(self, image, mask, generator, ignore_index):
        return TRANSFORMS[self.name][1](self.config, image, mask, generator, ignore_index)


def _check_inputs(image: torch.Tensor, mask: torch.Tensor) -> None:
    if image.dtype != torch.uint8 or image.ndim != 3 or image.shape[0] != 3:
        raise DataError(f"expected a uint8 RGB image of shape (3, H, W), got {image.dtype} {tuple(image.shape)};"
                        " the dataset must return images as decoded, before any normalisation")
    if mask.dtype != torch.uint8 or mask.ndim != 2:
        raise DataError(f"expected a uint8 label of shape (H, W), got {mask.dtype} {tuple(mask.shape)}")
    if tuple(mask.shape) != tuple(image.shape[-2:]):
        raise DataError(f"image ({image.shape[-2]}x{image.shape[-1]}) and label ({mask.shape[0]}x{mask.shape[1]})"
                        " differ in size; check that each label file belongs to its image")


@attrs.frozen
class Pipeline:
    """Callable ``(image uint8 (3, H, W), mask uint8 (H, W), generator) -> (float32 (3, h, w), int64 (h, w))``.

    All randomness comes from ``generator``: the same generator state gives the same output.
    """

    steps: tuple[Step, ...]
    ignore_index: int = attrs.field(default=255, validator=[attrs.validators.ge(0), attrs.validators.le(255)])

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(step.name for step in self.steps)

    def __call__(self, image: torch.Tensor, mask: torch.Tensor,
                 generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        _check_inputs(image, mask)
        for step in self.steps:
            try:
                image, mask = step(image, mask, generator, self.ignore_index)
            except augment.CropLargerThanImageError as exc:
                raise ConfigError([(f"{step.path}.size", f"{exc}; set `pad: true`, or lower `size` or the low"
                                    " end of `scale`")]) from exc
        return image, mask.to(torch.int64)


def parse_pipeline(specs: list, *, path: str) -> Pipeline:
    """Build a :class:`Pipeline` from recipe ``specs`` declared at ``path`` (e.g. ``data.train_transforms``).

    Raises ``ConfigError`` listing every problem: unknown names, unknown keys, bad values, and a
    list that does not end with ``normalize``.
    """
    problems: list[tuple[str, str]] = []
    steps: list[Step] = []
    if not isinstance(specs, (list, tuple)):
        raise ConfigError([(path, f"expected a list of transforms like [{{name: hflip, p: 0.5}}], got {specs!r}")])
    available = ", ".join(TRANSFORMS)
    for index, spec in enumerate(specs):
        where = f"{path}[{index}]"
        if not isinstance(spec, dict) or "name" not in spec:
            problems.append((where, f"expected a mapping with a `name:` key (one of {available}), got {spec!r}"))
            continue
        name = spec["name"]
        if not isinstance(name, str) or name not in TRANSFORMS:
            close = difflib.get_close_matches(str(name), TRANSFORMS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append((f"{where}.name", f"unknown transform {name!r}{hint}; available: {available}"))
            continue
        options = {key: value for key, value in spec.items() if key != "name"}
        try:
            config = structure_config(TRANSFORMS[name][0], options, path=where)
        except ConfigError as exc:
            problems += exc.problems
            continue
        steps.append(Step(name, config, where))

    last = len(specs) - 1
    positions = [i for i, spec in enumerate(specs) if isinstance(spec, dict) and spec.get("name") == "normalize"]
    for position in positions:
        if position != last:
            problems.append((f"{path}[{position}]", "normalize must be the last transform, and appear once"))
    if last not in positions:
        problems.append((path, "must end with {name: normalize} (the model takes normalised float images;"
                               " the transforms before it work on uint8)"))
    if problems:
        raise ConfigError(problems)
    return Pipeline(tuple(steps))
