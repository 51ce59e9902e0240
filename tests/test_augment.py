"""Paired augmentation keeps image and label aligned, never invents label values, and is reproducible."""
import pytest
import torch
from hypothesis import given, strategies as st
from torchvision.transforms.v2 import functional as TF

from segbench.functional.augment import (
    CropLargerThanImageError,
    apply_color_jitter,
    apply_hflip,
    apply_resize,
    apply_scale_crop,
    normalize,
    sample_color_jitter,
    sample_hflip,
    sample_scale_crop,
)
from segbench.plugins import make_plugin_manager
from segbench.registry import build_registries
from segbench.transforms import parse_pipeline as parse_with

# The built-in transforms, looked up as a recipe's lists are.
TRANSFORMS = build_registries(make_plugin_manager(load_entry_points=False)).transforms


def parse_pipeline(specs, *, path):
    return parse_with(specs, path=path, transforms=TRANSFORMS)

IGNORE = 255
SUBPIXELS = 4  # the coordinate image stores 4 * coordinate, so images up to 64 pixels fit in uint8

sizes = st.tuples(st.integers(4, 64), st.integers(4, 64))
crops = st.tuples(st.integers(1, 80), st.integers(1, 80))
scale_ranges = st.tuples(st.floats(0.5, 2.0), st.floats(0.0, 1.0)).map(lambda t: (t[0], t[0] * (1 + t[1])))
seeds = st.integers(0, 2**32)


def coordinate_image(height, width):
    """Channel 0 = 4 * row, channel 1 = 4 * column, channel 2 = 255 (marks real, unpadded pixels)."""
    rows = torch.arange(height).view(-1, 1).expand(height, width)
    cols = torch.arange(width).view(1, -1).expand(height, width)
    return torch.stack([rows * SUBPIXELS, cols * SUBPIXELS, torch.full_like(rows, 255)]).to(torch.uint8)


def coordinate_masks(height, width):
    """Labels holding each pixel's row and column (all below 64, so never the ignore index)."""
    rows = torch.arange(height, dtype=torch.uint8).view(-1, 1).expand(height, width).contiguous()
    cols = torch.arange(width, dtype=torch.uint8).view(1, -1).expand(height, width).contiguous()
    return rows, cols


def geometric(image, mask, seed, *, scale_range, crop_size, p_flip, resize_to=None):
    generator = torch.Generator().manual_seed(seed)
    params = sample_scale_crop(generator, tuple(image.shape[-2:]), scale_range=scale_range, crop_size=crop_size)
    image, mask = apply_scale_crop(image, mask, params, ignore_index=IGNORE)
    image, mask = apply_hflip(image, mask, sample_hflip(generator, p=p_flip))
    if resize_to is not None:
        image, mask = apply_resize(image, mask, resize_to)
    return image, mask, params


def assert_coordinates_agree(image, rows, cols, valid, tolerance):
    """The image's interpolated coordinates match the label's (nearest) coordinates at ``valid`` pixels."""
    assert ((image[0][valid].float() / SUBPIXELS - rows[valid].float()).abs() <= tolerance).all()
    assert ((image[1][valid].float() / SUBPIXELS - cols[valid].float()).abs() <= tolerance).all()


@given(size=sizes, crop=crops, scale_range=scale_ranges, p_flip=st.sampled_from([0.0, 0.5, 1.0]), seed=seeds)
def test_image_and_label_stay_aligned_and_padding_is_ignore_and_zero(size, crop, scale_range, p_flip, seed):
    image = coordinate_image(*size)
    row_mask, col_mask = coordinate_masks(*size)
    kwargs = dict(scale_range=scale_range, crop_size=crop, p_flip=p_flip)
    out_image, out_rows, params = geometric(image, row_mask, seed, **kwargs)
    _, out_cols, _ = geometric(image, col_mask, seed, **kwargs)

    assert tuple(out_image.shape) == (3, *crop)
    padding = out_rows == IGNORE
    assert torch.equal(padding, out_cols == IGNORE)
    # Padding is exactly where the image is zero in all channels; everything else is real image.
    assert torch.equal(padding, out_image[2] == 0)
    assert not out_image[:, padding].any()
    assert (out_image[2][~padding] == 255).all()
    # At each labelled pixel the image's interpolated coordinates agree with the label's (nearest)
    # ones: half a source pixel between the two samplings, uint8 rounding (1/8), and a smaller shift
    # where an antialiasing filter is cut off at the image border (at most 0.75 seen in all).
    assert_coordinates_agree(out_image, out_rows, out_cols, ~padding, 1.0)

    # The region read is the window scaled by 1/s, up to rounding to whole source pixels.
    (_, _, source_h, source_w), (_, _, target_h, target_w) = params.source_box, params.target_box
    assert abs(source_h * params.scale - target_h) <= params.scale + 1
    assert abs(source_w * params.scale - target_w) <= params.scale + 1


@given(size=sizes, out_size=st.tuples(st.integers(1, 80), st.integers(1, 80)))
def test_resize_keeps_image_and_label_aligned(size, out_size):
    image = coordinate_image(*size)
    row_mask, col_mask = coordinate_masks(*size)
    out_image, out_rows = apply_resize(image, row_mask, out_size)
    _, out_cols = apply_resize(image, col_mask, out_size)
    assert tuple(out_image.shape) == (3, *out_size) and tuple(out_rows.shape) == out_size
    # Half a pixel between nearest and bilinear centres, uint8 rounding, and the shift of an
    # antialiasing filter truncated at the border (up to half its support, the downscale factor).
    factor = max(size[0] / out_size[0], size[1] / out_size[1], 1.0)
    valid = torch.ones(out_size, dtype=torch.bool)
    assert_coordinates_agree(out_image, out_rows, out_cols, valid, 0.5 + 0.5 / SUBPIXELS + factor / 2)


@given(size=sizes, crop=crops, scale_range=scale_ranges, seed=seeds, data=st.data())
def test_labels_never_gain_values(size, crop, scale_range, seed, data):
    values = data.draw(st.lists(st.integers(0, 255), min_size=1, max_size=6, unique=True))
    generator = torch.Generator().manual_seed(seed)
    mask = torch.tensor(values, dtype=torch.uint8)[torch.randint(len(values), size, generator=generator)]
    image = torch.randint(0, 256, (3, *size), dtype=torch.uint8, generator=generator)
    _, out, _ = geometric(image, mask, seed, scale_range=scale_range, crop_size=crop, p_flip=0.5,
                          resize_to=data.draw(st.none() | st.tuples(st.integers(1, 48), st.integers(1, 48))))
    assert set(out.unique().tolist()) <= set(values) | {IGNORE}


@given(size=sizes, crop=crops, scale_range=scale_ranges, seed=seeds)
def test_crop_has_requested_size(size, crop, scale_range, seed):
    image, mask = coordinate_image(*size), coordinate_masks(*size)[0]
    out_image, out_mask, _ = geometric(image, mask, seed, scale_range=scale_range, crop_size=crop, p_flip=0.5)
    assert tuple(out_image.shape) == (3, *crop) and tuple(out_mask.shape) == crop
    assert out_image.dtype == torch.uint8 and out_mask.dtype == torch.uint8


@given(size=sizes, seed=seeds)
def test_flip_twice_is_identity(size, seed):
    generator = torch.Generator().manual_seed(seed)
    image = torch.randint(0, 256, (3, *size), dtype=torch.uint8, generator=generator)
    mask = torch.randint(0, 20, size, dtype=torch.uint8, generator=generator)
    flipped = apply_hflip(image, mask, True)
    assert torch.equal(flipped[0][..., 0], image[..., -1]) and torch.equal(flipped[1][..., 0], mask[..., -1])
    back = apply_hflip(*flipped, True)
    assert torch.equal(back[0], image) and torch.equal(back[1], mask)


@given(size=sizes, crop=crops, scale_range=scale_ranges, seed=seeds)
def test_same_seed_same_output(size, crop, scale_range, seed):
    image = torch.randint(0, 256, (3, *size), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    mask = torch.randint(0, 19, size, dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    first = geometric(image, mask, seed, scale_range=scale_range, crop_size=crop, p_flip=0.5)
    second = geometric(image, mask, seed, scale_range=scale_range, crop_size=crop, p_flip=0.5)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1]) and first[2] == second[2]


@given(size=sizes, seed=seeds, strengths=st.tuples(*[st.floats(0.0, 0.9)] * 3, st.sampled_from([0.0, 0.1, 0.5])))
def test_color_jitter_matches_torchvision_kernels(size, seed, strengths):
    brightness, contrast, saturation, hue = strengths
    generator = torch.Generator().manual_seed(seed)
    image = torch.randint(0, 256, (3, *size), dtype=torch.uint8, generator=generator)
    params = sample_color_jitter(generator, brightness=brightness, contrast=contrast, saturation=saturation, hue=hue)
    expected = image
    kernels = {0: (TF.adjust_brightness, params.brightness), 1: (TF.adjust_contrast, params.contrast),
               2: (TF.adjust_saturation, params.saturation), 3: (TF.adjust_hue, params.hue)}
    for op in params.order:
        kernel, factor = kernels[op]
        if factor is not None:
            expected = kernel(expected, factor)
    assert torch.equal(apply_color_jitter(image, params), expected)


def test_color_jitter_samples_factors_in_range_and_skips_disabled_ones():
    generator = torch.Generator().manual_seed(0)
    for _ in range(200):
        params = sample_color_jitter(generator, brightness=0.25, contrast=1.5, saturation=0.0, hue=0.1)
        assert sorted(params.order) == [0, 1, 2, 3]
        assert 0.75 <= params.brightness <= 1.25 and 0.0 <= params.contrast <= 2.5
        assert params.saturation is None and -0.1 <= params.hue <= 0.1
    image = torch.randint(0, 256, (3, 8, 8), dtype=torch.uint8)
    assert apply_color_jitter(image, sample_color_jitter(generator)) is image


def test_normalize_equals_torchvision_scale_then_normalize():
    image = torch.randint(0, 256, (3, 16, 24), dtype=torch.uint8).permute(0, 2, 1)  # non-contiguous input
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    expected = TF.normalize(TF.to_dtype(image, torch.float32, scale=True), list(mean), list(std))
    out = normalize(image, mean=mean, std=std)
    assert out.dtype == torch.float32 and out.is_contiguous()
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_crop_larger_than_image_without_padding_fails_whatever_the_draw():
    generator = torch.Generator().manual_seed(0)
    with pytest.raises(CropLargerThanImageError, match="32x32 crop does not fit a 40x40 image scaled by 0.75"):
        sample_scale_crop(generator, (40, 40), scale_range=(0.75, 1.25), crop_size=(32, 32), pad=False)
    params = sample_scale_crop(generator, (40, 40), scale_range=(0.8, 1.25), crop_size=(32, 32), pad=False)
    assert params.target_box == (0, 0, 32, 32)


def test_small_image_lands_whole_inside_a_padded_crop():
    image, mask = coordinate_image(10, 20), coordinate_masks(10, 20)[0]
    generator = torch.Generator().manual_seed(3)
    params = sample_scale_crop(generator, (10, 20), scale_range=(1.0, 1.0), crop_size=(16, 32))
    out_image, out_mask = apply_scale_crop(image, mask, params, ignore_index=IGNORE)
    top, left, height, width = params.target_box
    assert (height, width) == (10, 20)
    assert torch.equal(out_image[:, top:top + 10, left:left + 20], image)
    assert torch.equal(out_mask[top:top + 10, left:left + 20], mask)
    assert (out_mask == IGNORE).sum() == 16 * 32 - 10 * 20


# ---- whole pipelines, as a recipe declares them ------------------------------------------------

step_specs = st.one_of(
    st.builds(lambda low, spread, h, w, pad: {"name": "random_scale_crop", "scale": [low, low * (1 + spread)],
                                              "size": [h, w], "pad": pad},
              st.floats(0.5, 2.0), st.floats(0.0, 1.0), st.integers(1, 48), st.integers(1, 48), st.just(True)),
    st.builds(lambda p: {"name": "hflip", "p": p}, st.floats(0.0, 1.0)),
    st.builds(lambda b, c, s, h: {"name": "color_jitter", "brightness": b, "contrast": c, "saturation": s, "hue": h},
              st.floats(0.0, 0.5), st.floats(0.0, 0.5), st.floats(0.0, 0.5), st.sampled_from([0.0, 0.05])),
    st.builds(lambda h, w: {"name": "resize", "size": [h, w]}, st.integers(1, 48), st.integers(1, 48)),
)
pipelines = st.lists(step_specs, max_size=4).map(lambda specs: parse_pipeline([*specs, {"name": "normalize"}],
                                                                            path="train_transforms"))


def random_pair(size, values, seed):
    generator = torch.Generator().manual_seed(seed)
    mask = torch.tensor(values, dtype=torch.uint8)[torch.randint(len(values), size, generator=generator)]
    return torch.randint(0, 256, (3, *size), dtype=torch.uint8, generator=generator), mask


@given(pipeline=pipelines, size=sizes, seed=seeds,
       values=st.lists(st.integers(0, 255), min_size=1, max_size=6, unique=True))
def test_any_pipeline_keeps_label_values_and_is_reproducible(pipeline, size, seed, values):
    image, mask = random_pair(size, values, seed)
    out_image, out_mask = pipeline(image, mask, torch.Generator().manual_seed(seed))
    assert out_image.dtype == torch.float32 and out_mask.dtype == torch.int64
    assert out_image.shape[-2:] == out_mask.shape
    assert set(out_mask.unique().tolist()) <= set(values) | {IGNORE}
    again = pipeline(image, mask, torch.Generator().manual_seed(seed))
    assert torch.equal(out_image, again[0]) and torch.equal(out_mask, again[1])


@given(size=sizes, seed=seeds, strengths=st.tuples(*[st.floats(0.0, 1.0)] * 3, st.sampled_from([0.0, 0.2])))
def test_color_jitter_never_changes_the_label(size, seed, strengths):
    b, c, s, h = strengths
    pipeline = parse_pipeline([{"name": "color_jitter", "brightness": b, "contrast": c, "saturation": s, "hue": h},
                               {"name": "normalize"}], path="train_transforms")
    image, mask = random_pair(size, [0, 3, 7, 255], seed)
    _, out_mask = pipeline(image, mask, torch.Generator().manual_seed(seed))
    assert torch.equal(out_mask, mask.to(torch.int64))
