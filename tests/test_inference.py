"""Inference modes: sliding windows stitch exactly, flip averaging makes predictions mirror-consistent."""
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from segbench.engine.evaluate import predict, slide_logits
from segbench.engine.runtime import Runtime
from segbench.recipe.schema import EvaluationConfig

CPU = torch.device("cpu")
NUM_CLASSES = 5


def _pixelwise_model():
    """A 1x1 convolution: every pixel's logits depend on that pixel only, wherever the tile starts."""
    torch.manual_seed(0)
    return torch.nn.Conv2d(3, NUM_CLASSES, kernel_size=1).double().eval()


def _context_model():
    """3x3 convolutions with zero padding: not mirror-symmetric, sees its neighbours and the border."""
    torch.manual_seed(1)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.Conv2d(8, NUM_CLASSES, 3, padding=1)).eval()


def _predict(model, images, **config):
    return predict(model, images, label_size=tuple(images.shape[-2:]), config=EvaluationConfig(**config),
                   num_classes=NUM_CLASSES, runtime=Runtime(CPU))


@settings(max_examples=40, deadline=None)
@given(height=st.integers(4, 23), width=st.integers(4, 23), win_h=st.integers(1, 24), win_w=st.integers(1, 24),
       step_h=st.integers(1, 24), step_w=st.integers(1, 24))
def test_sliding_windows_cover_every_pixel_and_average_exactly(height, width, win_h, win_w, step_h, step_w):
    step_h, step_w = min(step_h, win_h), min(step_w, win_w)
    images = torch.rand(2, 3, height, width, dtype=torch.float64, generator=torch.Generator().manual_seed(height))
    model = _pixelwise_model()
    with torch.no_grad():
        whole = model(images)
        tiled = slide_logits(model, images, window=(win_h, win_w), stride=(step_h, step_w), num_classes=NUM_CLASSES,
                             runtime=Runtime(CPU))
    assert tiled.shape == whole.shape
    assert torch.allclose(tiled.double(), whole, atol=1e-6)


def test_a_stride_larger_than_the_window_is_refused_in_the_recipe():
    with pytest.raises(ValueError, match="stride .* larger than the window"):
        EvaluationConfig(mode="slide", window=(4, 4), stride=(2, 5))
    with pytest.raises(ValueError, match="exceeds the window"):
        slide_logits(_pixelwise_model(), torch.rand(1, 3, 4, 4, dtype=torch.float64), window=(1, 1), stride=(1, 2),
                     num_classes=NUM_CLASSES, runtime=Runtime(CPU))


def test_a_window_as_large_as_the_image_is_whole_image_inference():
    images = torch.rand(2, 3, 12, 20, generator=torch.Generator().manual_seed(0))
    model = _context_model()
    with torch.no_grad():
        assert torch.equal(_predict(model, images, mode="slide", window=(12, 20)), _predict(model, images))
        # the border context differs once tiles are smaller than the image: the modes are really different
        assert not torch.equal(_predict(model, images, mode="slide", window=(6, 8), stride=(3, 4)),
                               _predict(model, images))


def test_predictions_are_upsampled_to_the_label_size():
    images = torch.rand(1, 3, 8, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        pred = predict(_context_model(), images, label_size=(16, 32), config=EvaluationConfig(),
                       num_classes=NUM_CLASSES, runtime=Runtime(CPU))
    assert pred.shape == (1, 16, 32)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16), mode=st.sampled_from(["whole", "slide"]))
def test_flip_averaging_predicts_the_mirror_image_as_the_mirror_of_the_prediction(seed, mode):
    images = torch.rand(2, 3, 10, 14, generator=torch.Generator().manual_seed(seed))
    model = _context_model()
    config = {"mode": mode, "window": (6, 9), "stride": (4, 5)} if mode == "slide" else {"mode": mode}
    with torch.no_grad():
        flipped = _predict(model, images, flip=True, **config)
        assert torch.equal(_predict(model, images.flip(-1), flip=True, **config), flipped.flip(-1))


def test_without_flip_a_lopsided_model_is_not_mirror_consistent():
    """The property above is the flip's doing: the same model without it breaks it on these images."""
    images = torch.rand(4, 3, 10, 14, generator=torch.Generator().manual_seed(3))
    model = _context_model()
    with torch.no_grad():
        assert not torch.equal(_predict(model, images.flip(-1)), _predict(model, images).flip(-1))



def _reference_probabilities(model, images, label_size, scale, mirrored):
    """One test-time variant written out by hand: resize, (mirror,) logits, back to the label size."""
    height, width = images.shape[-2:]
    scaled = F.interpolate(images, size=(round(height * scale), round(width * scale)), mode="bilinear",
                           align_corners=False) if scale != 1.0 else images
    logits = model(scaled.flip(-1) if mirrored else scaled)
    logits = F.interpolate(logits, size=label_size, mode="bilinear", align_corners=False)
    return (logits.flip(-1) if mirrored else logits).softmax(dim=1)


def test_a_single_scale_without_flip_is_the_plain_argmax_of_the_upsampled_logits():
    images = torch.rand(2, 3, 9, 13, generator=torch.Generator().manual_seed(5))
    model = _context_model()
    with torch.no_grad():
        expected = F.interpolate(model(images), size=(18, 26), mode="bilinear", align_corners=False).argmax(dim=1)
        for config in (EvaluationConfig(), EvaluationConfig(scales=(1.0,), flip=False)):
            pred = predict(model, images, label_size=(18, 26), config=config, num_classes=NUM_CLASSES,
                           runtime=Runtime(CPU))
            assert torch.equal(pred, expected)


@pytest.mark.parametrize("mode", ["whole", "slide"])
def test_multi_scale_flip_averages_the_softmax_of_every_variant(mode):
    images = torch.rand(2, 3, 12, 16, generator=torch.Generator().manual_seed(7))
    model = _context_model()
    scales = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)
    # a window as large as the largest image: sliding covers it in one tile, so the reference holds exactly
    slide = {"mode": "slide", "window": (28, 28)} if mode == "slide" else {}
    with torch.no_grad():
        total = sum(_reference_probabilities(model, images, (12, 16), scale, mirrored)
                    for scale in scales for mirrored in (False, True))
        pred = _predict(model, images, scales=scales, flip=True, **slide)
    assert torch.equal(pred, total.argmax(dim=1))
    with torch.no_grad():  # and the scales do change the answer on these images
        assert not torch.equal(pred, _predict(model, images, flip=True, **slide))


def test_multi_scale_works_with_small_sliding_windows():
    images = torch.rand(1, 3, 16, 24, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        pred = _predict(_context_model(), images, mode="slide", window=(8, 8), stride=(5, 5), scales=(0.5, 1.5),
                        flip=True)
    assert pred.shape == (1, 16, 24)


@pytest.mark.parametrize("scales", [(), (0.0, 1.0), (-1.0,)])
def test_scales_must_be_positive(scales):
    with pytest.raises(ValueError, match="scales"):
        EvaluationConfig(scales=scales)
