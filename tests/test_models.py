"""Contract tests run on every registered model, plus the built-in models' sizes and options."""
from __future__ import annotations

import subprocess
import sys
import types

import attrs
import pytest
import torch
from torch.nn import functional as F

from segbench.engine.param_groups import split_param_groups
from segbench.model_info import describe_model
from segbench.plugins import make_plugin_manager
from segbench.registry import build_registries

NUM_CLASSES = 19
SMALL_SETTINGS = {"unet": {"width": 8}}  # keep forward passes of large defaults fast
MODEL_NAMES = build_registries(make_plugin_manager(load_entry_points=False)).models.names()


@pytest.fixture(scope="module")
def models(registries):
    """Each model built once from its default config (with SMALL_SETTINGS) and shared by the tests."""
    cache = {}

    def get(name):
        if name not in cache:
            entry = registries.models.get(name)
            config = attrs.evolve(entry.default_config(), **SMALL_SETTINGS.get(name, {}))
            torch.manual_seed(0)
            cache[name] = entry.factory(config, num_classes=NUM_CLASSES)
        return cache[name]

    return get


def _build(registries, name, *, meta=True, **settings):
    """Build a model; on the meta device (no memory, no initialisation) unless ``meta=False``."""
    entry = registries.models.get(name)
    config = attrs.evolve(entry.default_config(), **settings)
    if not meta:
        return entry.factory(config, num_classes=NUM_CLASSES)
    with torch.device("meta"):
        return entry.factory(config, num_classes=NUM_CLASSES)


def _params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def test_built_in_models_are_registered():
    assert {"unet", "deeplabv3plus", "deeplabv3", "lraspp_mobilenet_v3", "fast_scnn", "enet"} <= set(MODEL_NAMES)


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("size", [(64, 64), (65, 97)])
def test_maps_an_image_batch_to_logits_at_input_resolution(models, name, size):
    model = models(name).train()
    logits = model(torch.randn(2, 3, *size))
    assert logits.shape == (2, NUM_CLASSES, *size)
    assert logits.dtype == torch.float32
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_backward_reaches_every_trainable_parameter_with_finite_gradients(models, name):
    model = models(name).train()
    model.zero_grad(set_to_none=True)
    target = torch.randint(0, NUM_CLASSES, (2, 64, 64))
    F.cross_entropy(model(torch.randn(2, 3, 64, 64)), target).backward()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert trainable
    assert [n for n, p in trainable if p.grad is None] == []
    assert [n for n, p in trainable if not torch.isfinite(p.grad).all()] == []


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_eval_mode_takes_a_single_image(models, name):
    model = models(name).eval()
    with torch.no_grad():
        logits = model(torch.randn(1, 3, 33, 47))
    assert logits.shape == (1, NUM_CLASSES, 33, 47)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_default_config_starts_from_random_weights(models, name):
    assert getattr(models(name), "segbench_init", "random") == "random"


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_describe_model_counts_parameters_and_flops(models, name):
    model = models(name).train()
    info = describe_model(model, input_size=(64, 64))
    assert info.params == _params(model) > 0
    assert info.size_mb >= info.params * 4 / 1e6
    assert info.gflops > 0
    assert model.training  # describe_model restores the mode it found


@pytest.mark.parametrize(("name", "settings", "expected"), [
    ("unet", {}, 31_044_691),
    ("deeplabv3plus", {}, 40_351_667),
    ("deeplabv3plus", {"output_stride": 8}, 40_351_667),
    ("lraspp_mobilenet_v3", {}, 3_221_198),  # torchvision's table: 3,221,538 at 21 classes
    ("fast_scnn", {}, 1_137_795),
    ("enet", {}, 363_618),
])
def test_exact_parameter_counts_for_19_classes(registries, name, settings, expected):
    assert _params(_build(registries, name, **settings)) == expected


@pytest.mark.parametrize(("settings", "millions"), [({}, 39.64), ({"aux": True}, 42.00)])
def test_deeplabv3_matches_torchvision_parameter_counts(registries, settings, millions):
    assert round(_params(_build(registries, "deeplabv3", **settings)) / 1e6, 2) == millions


def test_unet_width_scales_channels(registries):
    model = _build(registries, "unet", width=16)
    assert model.inc[0].out_channels == 16
    assert model.downs[-1][1][0].out_channels == 16 * 16


@pytest.mark.parametrize("size", [(33, 47), (16, 17), (5, 3), (1, 1)])
def test_unet_handles_odd_and_tiny_sizes(models, size):
    with torch.no_grad():
        assert models("unet").eval()(torch.randn(1, 3, *size)).shape == (1, NUM_CLASSES, *size)


def test_unet_channel_plan_sets_every_level_and_costs_less_than_doubling(registries):
    plan = _build(registries, "unet", channels=[16, 32, 48, 64, 96])
    assert [down[1][0].out_channels for down in plan.downs] == [32, 48, 64, 96]
    assert [up.conv[0].out_channels for up in plan.ups] == [64, 48, 32, 16]
    doubling = _build(registries, "unet", width=16)
    assert describe_model(plan, input_size=(64, 128)).gflops < 0.7 * describe_model(doubling, input_size=(64, 128)).gflops


@pytest.mark.parametrize("size", [(64, 128), (33, 47), (5, 3), (1, 1)])
def test_unet_stride_2_stem_predicts_at_the_input_size_for_a_quarter_of_the_work(registries, size):
    small = _build(registries, "unet", meta=False, channels=[8, 12, 16], stem_stride=2).eval()
    with torch.no_grad():
        assert small(torch.randn(1, 3, *size)).shape == (1, NUM_CLASSES, *size)
    full = _build(registries, "unet", channels=[8, 12, 16])
    assert describe_model(small, input_size=(64, 128)).gflops == pytest.approx(
        describe_model(full, input_size=(64, 128)).gflops / 4, rel=0.15)


@pytest.mark.parametrize("size", [(64, 128), (33, 47), (5, 3)])
def test_unet_added_skips_keep_the_output_size_and_halve_the_decoders_first_convolution(registries, size):
    added = _build(registries, "unet", meta=False, channels=[8, 12, 16], skip="add").eval()
    with torch.no_grad():
        assert added(torch.randn(1, 3, *size)).shape == (1, NUM_CLASSES, *size)
    concatenated = _build(registries, "unet", meta=False, channels=[8, 12, 16])
    assert [up.conv[0].in_channels for up in added.ups] == [12, 8]
    assert [up.conv[0].in_channels for up in concatenated.ups] == [24, 16]
    cost = {name: describe_model(model, input_size=(64, 128)).gflops
            for name, model in (("added", added), ("concatenated", concatenated))}
    assert cost["added"] < cost["concatenated"]


@pytest.mark.parametrize("size", [(64, 128), (33, 47), (5, 3)])
@pytest.mark.parametrize("stem_stride", [1, 2])
def test_unet_residual_blocks_add_a_shortcut_to_every_level(registries, size, stem_stride):
    model = _build(registries, "unet", meta=False, channels=[8, 12, 16], block="residual", skip="add",
                   stem_stride=stem_stride).train()
    blocks = [model.inc, *(down[1] for down in model.downs), *(up.conv for up in model.ups)]
    # A 1x1 convolution where the width changes (after pooling where the stride does), the input itself where
    # neither does.
    assert [type(b.shortcut).__name__ for b in blocks] == ["Sequential", "Sequential", "Sequential", "Identity",
                                                           "Identity"]
    assert isinstance(model.inc.shortcut[0], torch.nn.AvgPool2d) == (stem_stride == 2)
    target = torch.randint(0, NUM_CLASSES, (2, *size))
    F.cross_entropy(model(torch.randn(2, 3, *size)), target).backward()
    assert [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0] == []
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, *size)).shape == (1, NUM_CLASSES, *size)


def test_unet_residual_stride_2_stem_trains_in_channels_last_memory():
    """A strided 1x1 shortcut convolution on the RGB input crashed the process (torch 2.14's CPU kernel, its
    weight gradient in channels-last memory, segfault): in a child process, so that a crash fails this test
    alone."""
    code = """if True:
        import torch
        from torch.nn import functional as F
        from segbench_plugins.unet import UNet
        model = UNet(19, channels=(8, 12, 16), skip="add", block="residual", stem_stride=2)
        model = model.to(memory_format=torch.channels_last).train()
        for size in [(64, 128), (33, 47)]:
            images = torch.randn(2, 3, *size).to(memory_format=torch.channels_last)
            F.cross_entropy(model(images), torch.randint(0, 19, (2, *size))).backward()
        print("trained")
    """
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0 and completed.stdout.strip() == "trained", completed.stderr[-2000:]


@pytest.mark.parametrize(("size", "level_sizes"), [((64, 128), [(16, 32), (32, 64)]),
                                                   ((33, 47), [(8, 11), (16, 23)]),
                                                   ((5, 3), [(2, 1), (3, 2)])])  # padded to 8x8 inside
def test_unet_deep_supervision_trains_a_classifier_per_decoder_level_and_predicts_with_the_main_one(
        registries, size, level_sizes):
    from segbench.deep_supervision import DeepSupervision, masks_at, supervised_loss

    model = _build(registries, "unet", meta=False, channels=[8, 12, 16, 24], deep_supervision=0.4).train()
    images, target = torch.randn(2, 3, *size), torch.randint(0, NUM_CLASSES, (2, *size))
    output = model(images)
    assert isinstance(output, DeepSupervision) and output.weight == 0.4
    assert output.logits.shape == (2, NUM_CLASSES, *size)
    # The levels at 1/4 and 1/2 of the input, at their own resolution (without what covers only padding).
    assert [tuple(a.shape) for a in output.auxiliary] == [(2, NUM_CLASSES, *s) for s in level_sizes]
    loss = supervised_loss(F.cross_entropy, output, target)
    expected = F.cross_entropy(output.logits, target) + 0.4 * sum(
        F.cross_entropy(a, masks_at(target, a.shape[-2:])) for a in output.auxiliary)
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.auxiliary_heads.parameters())
    with torch.no_grad():  # eval mode (evaluation, export, latency): the main logits alone
        assert model.eval()(images).shape == (2, NUM_CLASSES, *size)
    plain = _build(registries, "unet", meta=False, channels=[8, 12, 16, 24])
    assert plain.auxiliary_heads is None
    assert _params(model) - _params(plain) == (16 + 1) * NUM_CLASSES + (12 + 1) * NUM_CLASSES


@pytest.mark.parametrize("size", [(64, 128), (33, 47), (5, 3)])
def test_unet_without_the_last_up_convolutions_classifies_the_summed_features_for_less_work(registries, size):
    lean = _build(registries, "unet", meta=False, channels=[8, 12, 16], skip="add", last_up_convs=False).eval()
    with torch.no_grad():
        assert lean(torch.randn(1, 3, *size)).shape == (1, NUM_CLASSES, *size)
    full = _build(registries, "unet", meta=False, channels=[8, 12, 16], skip="add")
    assert isinstance(lean.ups[-1].conv, torch.nn.Identity) and not isinstance(lean.ups[0].conv, torch.nn.Identity)
    assert _params(full) - _params(lean) == 2 * (8 * 8 * 9 + 8 + 2 * 8)  # two 3x3 convolutions with bias, two BNs
    saved = describe_model(full, input_size=(64, 128)).gflops - describe_model(lean, input_size=(64, 128)).gflops
    assert saved == pytest.approx(2 * 2 * 8 * 8 * 9 * 64 * 128 / 1e9, rel=0.05)


@pytest.mark.parametrize(("settings", "message"), [
    ({"width": 16, "channels": [16, 32]}, "either width"),
    ({"skip": "multiply"}, "skip"),
    ({"channels": [16]}, "channels"),
    ({"channels": [16, 0]}, "at least 1"),
    ({"stem_stride": 4}, "stem_stride"),
    ({"block": "dense"}, "block"),
    ({"deep_supervision": -0.4}, "deep_supervision"),
    ({"last_up_convs": False}, "needs skip: add"),
])
def test_unet_rejects_bad_channel_plans(registries, settings, message):
    with pytest.raises(ValueError, match=message):
        registries.models.get("unet").config(**settings)


@pytest.mark.parametrize("name", ["deeplabv3plus", "deeplabv3"])
def test_deeplab_sub_modules_can_be_given_their_own_learning_rates(models, name):
    model = models(name)
    groups = split_param_groups(model, {"backbone": types.SimpleNamespace(lr=1.0e-4, weight_decay=None),
                                        "head": types.SimpleNamespace(lr=1.0e-3, weight_decay=None)})
    by_name = {g["name"]: g for g in groups}
    assert by_name["backbone"]["lr"] == 1.0e-4 and by_name["head"]["lr"] == 1.0e-3
    assert sum(p.numel() for p in by_name["backbone"]["params"]) == 23_508_032  # ResNet50 without fc
    assert "rest" not in by_name


@pytest.mark.parametrize(("output_stride", "feature_side"), [(16, 4), (8, 8)])
def test_deeplabv3plus_output_stride(registries, output_stride, feature_side):
    model = _build(registries, "deeplabv3plus", meta=False, output_stride=output_stride).eval()
    with torch.no_grad():
        features = model.backbone(torch.randn(1, 3, 64, 64))
    assert features["out"].shape[-2:] == (feature_side, feature_side)
    assert features["low"].shape[1:] == (256, 16, 16)


def test_deeplabv3plus_rejects_other_output_strides(registries):
    with pytest.raises(ValueError, match="output_stride"):
        registries.models.get("deeplabv3plus").config(output_stride=32)


def test_deeplabv3_aux_head_is_kept_but_frozen(registries):
    model = _build(registries, "deeplabv3", meta=False, aux=True)
    assert model.aux_head is not None
    assert not any(p.requires_grad for p in model.aux_head.parameters())
    info = describe_model(model, input_size=(64, 64))
    assert info.params - info.trainable_params == _params(model.aux_head)
    assert isinstance(model.eval()(torch.randn(1, 3, 64, 64)), torch.Tensor)


def test_describe_model_counts_flops_like_a_real_forward_pass(models):
    from torch.utils.flop_counter import FlopCounterMode

    model = models("unet").eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.zeros(1, 3, 64, 96))
    assert describe_model(model, input_size=(64, 96)).gflops * 1e9 == pytest.approx(counter.get_total_flops())
    assert describe_model(model, input_size=(128, 192)).gflops == pytest.approx(
        4 * describe_model(model, input_size=(64, 96)).gflops, rel=0.01)


def test_lraspp_is_torchvisions_lraspp_mobilenet_v3_large(registries):
    from torchvision.models.segmentation import lraspp_mobilenet_v3_large

    reference = lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=21)
    assert _params(reference) == 3_221_538  # the count in torchvision's model table
    ours = _build(registries, "lraspp_mobilenet_v3")
    assert [tuple(p.shape) for p in ours.backbone.parameters()] == \
        [tuple(p.shape) for p in reference.backbone.parameters()]


@pytest.mark.parametrize(("name", "millions"), [("fast_scnn", 1.1), ("enet", 0.36)])
def test_real_time_models_have_their_papers_sizes(registries, name, millions):
    assert _params(_build(registries, name)) == pytest.approx(millions * 1e6, rel=0.05)


def test_enet_unpooling_matches_max_unpool():
    from segbench_plugins.enet import _unpool

    values = torch.randn(2, 4, 10, 6)
    pooled, indices = F.max_pool2d(values, 2, return_indices=True)
    assert torch.equal(_unpool(pooled, indices), F.max_unpool2d(pooled, indices, 2))


@pytest.mark.parametrize("size", [(7, 9), (32, 64), (2, 3), (1, 1)])
def test_fast_scnn_pyramid_pooling_matches_adaptive_average_pooling(size):
    from segbench_plugins.fast_scnn import PYRAMID_BINS, adaptive_avg_pool

    features = torch.randn(2, 5, *size)
    for bins in PYRAMID_BINS:
        torch.testing.assert_close(adaptive_avg_pool(features, bins), F.adaptive_avg_pool2d(features, bins))


def test_lraspp_batch_norm_momentum_is_torchvisions_unless_set(registries):
    from torch import nn

    def momenta(model):
        return {m.momentum for m in model.modules() if isinstance(m, nn.BatchNorm2d)}

    assert momenta(_build(registries, "lraspp_mobilenet_v3").backbone) == {0.01}
    assert momenta(_build(registries, "lraspp_mobilenet_v3", bn_momentum=0.1)) == {0.1}
    with pytest.raises(ValueError):
        registries.models.get("lraspp_mobilenet_v3").config(bn_momentum=0.0)
