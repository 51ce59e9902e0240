"""The built-in losses: ignored pixels never count, weights and averaging match torch's cross-entropy."""
from __future__ import annotations

import math

import attrs
import pytest
import torch
from torch.nn import functional as F

IGNORE = 255
C = 5
LOSSES = ["cross_entropy", "ohem_cross_entropy"]


def _loss(registries, name, *, class_weights=None, **settings):
    entry = registries.losses.get(name)
    config = attrs.evolve(entry.default_config(), **settings)
    return entry.factory(config, ignore_index=IGNORE, class_weights=class_weights)


def _batch(seed=0, shape=(2, 6, 7), ignored_fraction=0.3):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(shape[0], C, *shape[1:], generator=generator)
    target = torch.randint(0, C, shape, generator=generator)
    target[torch.rand(shape, generator=generator) < ignored_fraction] = IGNORE
    return logits, target


@pytest.mark.parametrize("name", LOSSES)
def test_ignored_pixels_do_not_change_the_loss(registries, name):
    loss = _loss(registries, name)
    logits, target = _batch()
    ignored = target == IGNORE
    assert ignored.any()
    changed = logits.clone()
    changed[ignored.unsqueeze(1).expand_as(changed)] = 100.0
    assert loss(changed, target) == pytest.approx(loss(logits, target).item(), rel=1e-6)


@pytest.mark.parametrize("name", LOSSES)
def test_only_ignored_pixels_give_zero_loss_not_nan(registries, name):
    logits, target = _batch()
    logits.requires_grad_(True)
    value = _loss(registries, name)(logits, torch.full_like(target, IGNORE))
    value.backward()
    assert value.item() == 0.0
    assert torch.equal(logits.grad, torch.zeros_like(logits))


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_cross_entropy_matches_torch(registries, weighted, label_smoothing):
    weights = torch.tensor([0.5, 1.0, 2.0, 3.0, 0.25]) if weighted else None
    logits, target = _batch()
    expected = F.cross_entropy(logits, target, weight=weights, ignore_index=IGNORE, label_smoothing=label_smoothing)
    actual = _loss(registries, "cross_entropy", class_weights=weights, label_smoothing=label_smoothing)(logits, target)
    assert actual.item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize("weighted", [False, True])
def test_ohem_equals_cross_entropy_when_every_pixel_is_kept(registries, weighted):
    weights = torch.tensor([0.5, 1.0, 2.0, 3.0, 0.25]) if weighted else None
    logits, target = _batch(seed=3)
    ohem = _loss(registries, "ohem_cross_entropy", class_weights=weights, min_kept=target.numel())
    expected = F.cross_entropy(logits, target, weight=weights, ignore_index=IGNORE)
    assert ohem(logits, target).item() == pytest.approx(expected.item(), rel=1e-5)


def test_class_weights_change_the_loss_as_torch_weighted_cross_entropy_does(registries):
    logits, target = _batch(seed=1)
    weights = torch.tensor([4.0, 1.0, 1.0, 1.0, 1.0])
    plain = _loss(registries, "cross_entropy")(logits, target)
    weighted = _loss(registries, "cross_entropy", class_weights=weights)(logits, target)
    assert weighted.item() != pytest.approx(plain.item(), rel=1e-3)
    assert weighted.item() == pytest.approx(
        F.cross_entropy(logits, target, weight=weights, ignore_index=IGNORE).item(), rel=1e-5)


def _pixels_with_true_class_probability(probabilities):
    """Logits ``(1, 2, 1, P)`` and target ``(1, 1, P)`` (class 0) with the given p(class 0) per pixel."""
    p = torch.tensor(probabilities)
    logits = torch.stack([torch.log(p), torch.log1p(-p)]).view(1, 2, 1, -1)
    return logits, torch.zeros(1, 1, len(probabilities), dtype=torch.long)


def test_ohem_keeps_pixels_below_the_probability_threshold(registries):
    logits, target = _pixels_with_true_class_probability([0.9, 0.8, 0.6, 0.3, 0.1])
    loss = _loss(registries, "ohem_cross_entropy", threshold=0.7, min_kept=0)(logits, target)
    assert loss.item() == pytest.approx(-(math.log(0.6) + math.log(0.3) + math.log(0.1)) / 3, rel=1e-5)


def test_ohem_keeps_at_least_min_kept_hardest_pixels(registries):
    logits, target = _pixels_with_true_class_probability([0.99, 0.9, 0.8, 0.6, 0.1])
    target[..., 4] = IGNORE  # the hardest pixel is ignored, so it must not be picked
    loss = _loss(registries, "ohem_cross_entropy", threshold=0.7, min_kept=3)(logits, target)
    assert loss.item() == pytest.approx(-(math.log(0.9) + math.log(0.8) + math.log(0.6)) / 3, rel=1e-5)
    everything = _loss(registries, "ohem_cross_entropy", threshold=0.7, min_kept=100)(logits, target)
    assert everything.item() == pytest.approx(
        F.cross_entropy(logits, target, ignore_index=IGNORE).item(), rel=1e-5)


@pytest.mark.parametrize("name", LOSSES)
def test_gradients_flow_to_labelled_pixels_only(registries, name):
    logits, target = _batch(seed=2)
    logits.requires_grad_(True)
    _loss(registries, name, class_weights=torch.ones(C)).to(logits.device)(logits, target).backward()
    per_pixel = logits.grad.abs().sum(dim=1)
    ignored = target == IGNORE
    assert torch.isfinite(logits.grad).all()
    assert (per_pixel[ignored] == 0).all()
    assert (per_pixel[~ignored] > 0).any()


@pytest.mark.parametrize(("name", "settings"), [
    ("cross_entropy", {"label_smoothing": 1.0}),
    ("ohem_cross_entropy", {"threshold": 0.0}),
    ("ohem_cross_entropy", {"threshold": 1.5}),
    ("ohem_cross_entropy", {"min_kept": -1}),
])
def test_out_of_range_settings_are_rejected(registries, name, settings):
    with pytest.raises(ValueError, match=next(iter(settings))):
        registries.losses.get(name).config(**settings)
