"""Paired image/mask augmentation: sample parameters with an explicit generator, then apply them.

Images are ``uint8`` tensors ``(3, H, W)`` until :func:`normalize` turns them into ``float32``;
masks are ``uint8`` tensors ``(H, W)`` of train ids. Masks are only ever resized with nearest
neighbour (``nearest-exact``: the same pixel-centre convention as the image's bilinear resize,
so the two stay aligned) and padded with the ignore index, so a mask never gains a label value
that was not in its input.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from segbench.lazy_torchvision import v2_functional

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class CropLargerThanImageError(ValueError):
    """A crop without padding was requested that is larger than the (scaled) image."""


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * torch.rand((), generator=generator, dtype=torch.float64).item()


def _randint(generator: torch.Generator, low: int, high: int) -> int:
    """A uniform integer in ``[low, high]`` (both included)."""
    return int(torch.randint(low, high + 1, (), generator=generator).item())


# ---------------------------------------------------------------------------------------------
# Horizontal flip


def sample_hflip(generator: torch.Generator, *, p: float = 0.5) -> bool:
    """Whether to flip, true with probability ``p``."""
    return _uniform(generator, 0.0, 1.0) < p


def apply_hflip(image: torch.Tensor, mask: torch.Tensor, flip: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Mirror ``image (C, H, W)`` and ``mask (H, W)`` left-right when ``flip`` is true."""
    if not flip:
        return image, mask
    TF = v2_functional()
    return TF.horizontal_flip(image), TF.horizontal_flip(mask)


# ---------------------------------------------------------------------------------------------
# Random scale + crop, fused


class ScaleCropParams(NamedTuple):
    """Where a scaled crop comes from and where it lands.

    ``source_box`` ``(top, left, height, width)`` is the region of the input image that is read;
    it is resized to the size of ``target_box`` ``(top, left, height, width)`` and placed there in
    an output of ``output_size`` ``(height, width)``; the rest of the output is padding.
    """

    scale: float
    source_box: tuple[int, int, int, int]
    target_box: tuple[int, int, int, int]
    output_size: tuple[int, int]


def _scaled(length: int, scale: float) -> int:
    return max(1, round(length * scale))


def sample_scale_crop(generator: torch.Generator, image_size: tuple[int, int], *,
                      scale_range: tuple[float, float], crop_size: tuple[int, int],
                      pad: bool = True) -> ScaleCropParams:
    """Sample a scale ``s`` uniformly in ``scale_range`` and a uniformly placed ``crop_size`` window
    of the image resized by ``s``.

    A window larger than the scaled image contains all of it at a random offset, the rest being
    padding; with ``pad=False`` that raises :class:`CropLargerThanImageError` whenever it could
    happen for some scale in the range (so the error does not depend on the random draw).

    Only the part of the input under the window is read and resized (see :func:`apply_scale_crop`).
    Its borders are rounded to whole input pixels, so the effective scale of a crop differs from
    ``s`` by less than one input pixel over the crop's extent.
    """
    height, width = (int(v) for v in image_size)
    crop_h, crop_w = (int(v) for v in crop_size)
    low, high = scale_range
    if not pad and (_scaled(height, low) < crop_h or _scaled(width, low) < crop_w):
        raise CropLargerThanImageError(
            f"a {crop_h}x{crop_w} crop does not fit a {height}x{width} image scaled by {low:g}"
            f" ({_scaled(height, low)}x{_scaled(width, low)}) and padding is off"
        )
    scale = _uniform(generator, low, high)
    scaled_h, scaled_w = _scaled(height, scale), _scaled(width, scale)
    top = _randint(generator, min(0, scaled_h - crop_h), max(0, scaled_h - crop_h))
    left = _randint(generator, min(0, scaled_w - crop_w), max(0, scaled_w - crop_w))

    # The window's overlap with the scaled image, in scaled coordinates ...
    y0, y1 = max(top, 0), min(top + crop_h, scaled_h)
    x0, x1 = max(left, 0), min(left + crop_w, scaled_w)
    # ... and the input pixels it covers.
    src_y0 = min(round(y0 * height / scaled_h), height - 1)
    src_y1 = max(min(round(y1 * height / scaled_h), height), src_y0 + 1)
    src_x0 = min(round(x0 * width / scaled_w), width - 1)
    src_x1 = max(min(round(x1 * width / scaled_w), width), src_x0 + 1)
    return ScaleCropParams(
        scale=scale,
        source_box=(src_y0, src_x0, src_y1 - src_y0, src_x1 - src_x0),
        target_box=(y0 - top, x0 - left, y1 - y0, x1 - x0),
        output_size=(crop_h, crop_w),
    )


def _resize_image(image: torch.Tensor, size: list[int]) -> torch.Tensor:
    TF = v2_functional()
    if size == [1, 1] and image.dtype == torch.uint8:
        # torch's vectorised uint8 antialiasing kernel fails an internal assert on a 1x1 output.
        return TF.resize(image.float(), size, antialias=True).round_().to(torch.uint8)
    return TF.resize(image, size, interpolation=TF.InterpolationMode.BILINEAR, antialias=True)


def apply_scale_crop(image: torch.Tensor, mask: torch.Tensor, params: ScaleCropParams, *,
                     ignore_index: int = 255) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut, resize and pad ``image (C, H, W)`` and ``mask (H, W)`` to ``params.output_size``.

    Cropping comes first, so only pixels that end up in the output are interpolated (bilinear with
    antialiasing for the image, nearest for the mask); padding is 0 in the image and
    ``ignore_index`` in the mask.
    """
    TF = v2_functional()
    top, left, height, width = params.source_box
    target_top, target_left, target_h, target_w = params.target_box
    out_h, out_w = params.output_size
    image = _resize_image(TF.crop(image, top, left, height, width), [target_h, target_w])
    mask = TF.resize_mask(TF.crop(mask, top, left, height, width), [target_h, target_w],
                          interpolation=TF.InterpolationMode.NEAREST_EXACT)
    if (target_h, target_w) != (out_h, out_w):
        padding = [target_left, target_top, out_w - target_left - target_w, out_h - target_top - target_h]
        image = TF.pad(image, padding, fill=0)
        mask = TF.pad_mask(mask, padding, fill=ignore_index)
    return image, mask


# ---------------------------------------------------------------------------------------------
# Deterministic resize


def apply_resize(image: torch.Tensor, mask: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Resize ``image (C, H, W)`` (bilinear, antialiased) and ``mask (H, W)`` (nearest) to ``size``."""
    TF = v2_functional()
    size = [int(size[0]), int(size[1])]
    return (_resize_image(image, size),
            TF.resize_mask(mask, size, interpolation=TF.InterpolationMode.NEAREST_EXACT))


# ---------------------------------------------------------------------------------------------
# Colour jitter (image only)

BRIGHTNESS, CONTRAST, SATURATION, HUE = range(4)


class ColorJitterParams(NamedTuple):
    """Factors for each adjustment (``None``: not applied) and the order they are applied in."""

    order: tuple[int, ...]
    brightness: float | None
    contrast: float | None
    saturation: float | None
    hue: float | None


def sample_color_jitter(generator: torch.Generator, *, brightness: float = 0.0, contrast: float = 0.0,
                        saturation: float = 0.0, hue: float = 0.0) -> ColorJitterParams:
    """Factors as in ``torchvision.transforms.v2.ColorJitter``: brightness, contrast and saturation
    uniform in ``[max(0, 1 - v), 1 + v]``, hue uniform in ``[-hue, hue]``, in a random order.
    A strength of 0 disables the adjustment."""
    order = tuple(torch.randperm(4, generator=generator).tolist())

    def factor(strength: float) -> float | None:
        return _uniform(generator, max(0.0, 1.0 - strength), 1.0 + strength) if strength > 0 else None

    b, c, s = factor(brightness), factor(contrast), factor(saturation)
    h = _uniform(generator, -hue, hue) if hue > 0 else None
    return ColorJitterParams(order, b, c, s, h)


def _gray_floor(image: torch.Tensor) -> torch.Tensor:
    """``(1, H, W)`` luma of a float ``(3, H, W)`` image holding uint8 values, as torchvision computes it."""
    r, g, b = image.unbind(dim=-3)
    return r.mul(0.2989).add_(g, alpha=0.587).add_(b, alpha=0.114).floor_().unsqueeze(-3)


def _blend_(image: torch.Tensor, other: torch.Tensor, ratio: float) -> torch.Tensor:
    # Clamp and truncate after every step: a uint8 image between steps, as torchvision's kernels produce
    # (floor equals truncation once clamped to >= 0, and is vectorised where trunc is not).
    return image.mul_(ratio).add_(other, alpha=1.0 - ratio).clamp_(0, 255).floor_()


def _to_uint8(image: torch.Tensor) -> torch.Tensor:
    # Holds whole numbers in 0..255; float32 -> uint8 is not vectorised on CPU, via int16 it is (5x faster).
    return image.to(torch.int16).to(torch.uint8)


def apply_color_jitter(image: torch.Tensor, params: ColorJitterParams) -> torch.Tensor:
    """Adjust a ``uint8`` image ``(3, H, W)``; the result equals torchvision's ``adjust_brightness``,
    ``adjust_contrast``, ``adjust_saturation`` and ``adjust_hue`` applied to uint8 in ``params.order``.

    Brightness, contrast and saturation run in place on one float32 copy (torchvision's kernels
    round-trip through float32 for every step, which costs several times more on CPU). Hue uses
    torchvision's kernel (an HSV round trip, slow on CPU) and only runs when its factor is set.
    """
    TF = v2_functional()
    factors = (params.brightness, params.contrast, params.saturation, params.hue)
    steps = [(op, factors[op]) for op in params.order if factors[op] is not None]
    if not steps:
        return image
    work = image.to(torch.float32, memory_format=torch.contiguous_format)
    for op, factor in steps:
        if op == BRIGHTNESS:
            work.mul_(factor).clamp_(0, 255).floor_()
        elif op == CONTRAST:
            _blend_(work, _gray_floor(work).mean(dim=(-3, -2, -1), keepdim=True), factor)
        elif op == SATURATION:
            _blend_(work, _gray_floor(work), factor)
        else:
            work = TF.adjust_hue(_to_uint8(work), factor).to(torch.float32)
    return _to_uint8(work)


# ---------------------------------------------------------------------------------------------
# Normalisation


def normalize(image: torch.Tensor, *, mean: tuple[float, float, float] = IMAGENET_MEAN,
              std: tuple[float, float, float] = IMAGENET_STD) -> torch.Tensor:
    """``uint8 (3, H, W)`` -> contiguous ``float32 (3, H, W)`` equal to ``(image / 255 - mean) / std``.

    ``mean`` and ``std`` are per channel on the 0..1 scale (ImageNet's by default).
    """
    TF = v2_functional()
    if image.dtype != torch.uint8:
        raise TypeError(f"normalize expects a uint8 image, got {image.dtype}")
    work = image.to(torch.float32, memory_format=torch.contiguous_format)
    return TF.normalize(work, [255.0 * m for m in mean], [255.0 * s for s in std], inplace=True)

