"""Bootstrap statistics over seeds and images: properties of the intervals and of the resampling."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from segbench.functional import bootstrap as bs
from segbench.functional.metrics import confusion_matrix, mean_iou, pixel_accuracy

CLASSES = 3
RESAMPLES = 200
# each example resamples a few hundred times: fewer examples than the default keep the file fast
few = settings(max_examples=25)


@st.composite
def experiments(draw, seeds=None, images=None, labels=None):
    """Per-image matrices from random small label maps: realistic (C, C + 1) matrices. Experiments drawn with
    the same ``labels`` (a seed) are scored on the same label maps, as two experiments compared must be."""
    n_seeds = seeds or draw(st.integers(1, 3))
    n_images = images or draw(st.integers(1, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    labels_rng = rng if labels is None else np.random.default_rng(labels)
    target = labels_rng.integers(0, CLASSES + 1, size=(n_images, 4, 4))  # CLASSES is the ignore label here
    matrices = np.zeros((n_seeds, n_images, CLASSES, CLASSES + 1), dtype=np.int64)
    for s in range(n_seeds):
        flip = rng.random(target.shape) < draw(st.floats(0, 0.8))
        pred = np.where(flip, rng.integers(0, CLASSES, size=target.shape), target)
        for i in range(n_images):
            matrices[s, i] = confusion_matrix(torch.from_numpy(pred[i]), torch.from_numpy(target[i]),
                                              num_classes=CLASSES, ignore_index=CLASSES).numpy()
    seed_ids = tuple(draw(st.lists(st.integers(0, 50), min_size=n_seeds, max_size=n_seeds, unique=True)))
    return bs.Replicates(seed_ids, tuple(f"img{i:03d}" for i in range(n_images)), matrices)


def _same(x: float, y: float) -> bool:
    return (math.isnan(x) and math.isnan(y)) or x == y


@few
@given(experiments())
def test_identical_runs_differ_by_exactly_zero_with_a_zero_width_interval(exp):
    diff = bs.compare(exp, exp, resamples=RESAMPLES)
    for interval in (diff.miou, diff.pixel_accuracy, *diff.class_iou):
        assert all(_same(v, 0.0) or (math.isnan(v) and math.isnan(interval.estimate))
                   for v in (interval.estimate, interval.low, interval.high))
    assert diff.miou == bs.Interval(0.0, 0.0, 0.0) and not diff.miou.excludes_zero


@few
@given(st.data())
def test_swapping_a_and_b_negates_the_difference(data):
    images, labels = data.draw(st.integers(1, 5)), data.draw(st.integers(0, 2**32 - 1))
    a, b = data.draw(experiments(images=images, labels=labels)), data.draw(experiments(images=images, labels=labels))
    forward, backward = bs.compare(a, b, resamples=RESAMPLES), bs.compare(b, a, resamples=RESAMPLES)
    for one, other in ((forward.miou, backward.miou), (forward.pixel_accuracy, backward.pixel_accuracy),
                       *zip(forward.class_iou, backward.class_iou)):
        negated = other.negated()
        assert all(_same(x, y) for x, y in zip(attrs_tuple(one), attrs_tuple(negated)))


def attrs_tuple(interval):
    return interval.estimate, interval.low, interval.high


@few
@given(st.data())
def test_the_interval_contains_the_point_estimate(data):
    images, labels = data.draw(st.integers(1, 6)), data.draw(st.integers(0, 2**32 - 1))
    a, b = data.draw(experiments(images=images, labels=labels)), data.draw(experiments(images=images, labels=labels))
    diff = bs.compare(a, b, resamples=RESAMPLES, confidence=data.draw(st.sampled_from([0.5, 0.9, 0.95])))
    stats = bs.experiment_stats(a, resamples=RESAMPLES)
    for interval in (diff.miou, diff.pixel_accuracy, *diff.class_iou, stats.miou):
        if not math.isnan(interval.low):
            assert interval.low <= interval.estimate <= interval.high


@few
@given(st.data())
def test_reordering_images_or_seeds_changes_nothing(data):
    images, labels = data.draw(st.integers(1, 6)), data.draw(st.integers(0, 2**32 - 1))
    a, b = data.draw(experiments(images=images, labels=labels)), data.draw(experiments(images=images, labels=labels))
    seed_order = data.draw(st.permutations(range(len(b.seeds))))
    image_order = data.draw(st.permutations(range(images)))
    shuffled = bs.Replicates(tuple(b.seeds[s] for s in seed_order), tuple(b.image_ids[i] for i in image_order),
                             b.matrices[np.ix_(seed_order, image_order)])
    one, other = bs.compare(a, b, resamples=RESAMPLES), bs.compare(a, shuffled, resamples=RESAMPLES)
    for x, y in ((one.miou, other.miou), (one.pixel_accuracy, other.pixel_accuracy),
                 *zip(one.class_iou, other.class_iou)):
        assert all(_same(u, v) for u, v in zip(attrs_tuple(x), attrs_tuple(y)))
    one, other = bs.experiment_stats(b, resamples=RESAMPLES), bs.experiment_stats(shuffled, resamples=RESAMPLES)
    assert all(_same(u, v) for u, v in zip(attrs_tuple(one.miou), attrs_tuple(other.miou)))
    assert one.seeds == other.seeds
    assert _same(one.miou_std, other.miou_std) and one.class_iou_mean == pytest.approx(other.class_iou_mean,
                                                                                         nan_ok=True)


@few
@given(experiments(seeds=1))
def test_identity_resamples_give_the_global_miou(exp):
    global_matrix = torch.from_numpy(exp.matrices[0].sum(axis=0))
    identity = bs.resampled_miou(exp.matrices, np.ones((4, len(exp.image_ids))), np.ones((4, 1)))
    expected = mean_iou(global_matrix)
    if math.isnan(expected):
        assert np.isnan(identity).all()
    else:
        assert identity == pytest.approx([expected] * 4, rel=1e-12)
    stats = bs.experiment_stats(exp, resamples=RESAMPLES)
    assert _same(stats.miou.estimate, stats.miou_mean)
    if not math.isnan(expected):
        assert stats.miou_mean == pytest.approx(expected, rel=1e-12)
        assert stats.pixel_accuracy_mean == pytest.approx(pixel_accuracy(global_matrix), rel=1e-12)


def test_the_same_seed_gives_the_same_table_and_another_seed_other_draws():
    rng = np.random.default_rng(1)
    matrices = rng.integers(0, 50, size=(3, 40, CLASSES, CLASSES + 1))
    a = bs.Replicates((0, 1, 2), tuple(map(str, range(40))), matrices)
    # other predictions of the same labels: each row (a labelled class's pixels) spread over other columns
    b = bs.Replicates((0, 1, 2), tuple(map(str, range(40))), rng.permuted(matrices, axis=-1))
    assert bs.compare(a, b, seed=3) == bs.compare(a, b, seed=3)
    assert bs.compare(a, b, seed=3).miou != bs.compare(a, b, seed=4).miou
    assert bs.compare(a, b).paired_seeds
    c = bs.Replicates((3, 4, 5), a.image_ids, b.matrices)
    assert not bs.compare(a, c).paired_seeds


def test_a_clear_difference_excludes_zero_and_noise_does_not():
    rng = np.random.default_rng(0)
    target = rng.integers(0, CLASSES, size=(60, 8, 8))

    def experiment(error_rate, seeds):
        matrices = np.zeros((len(seeds), 60, CLASSES, CLASSES + 1), dtype=np.int64)
        for s in range(len(seeds)):
            flip = rng.random(target.shape) < error_rate
            pred = np.where(flip, rng.integers(0, CLASSES, size=target.shape), target)
            for i in range(60):
                matrices[s, i] = confusion_matrix(torch.from_numpy(pred[i]), torch.from_numpy(target[i]),
                                                  num_classes=CLASSES).numpy()
        return bs.Replicates(tuple(seeds), tuple(f"{i}" for i in range(60)), matrices)

    good, worse, good_again = experiment(0.2, [0, 1, 2]), experiment(0.5, [0, 1, 2]), experiment(0.2, [3, 4, 5])
    clear = bs.compare(good, worse, resamples=500)
    assert clear.miou.excludes_zero and clear.miou.high < 0
    assert not bs.compare(good, good_again, resamples=500).miou.excludes_zero


def test_mismatched_images_are_refused():
    matrices = np.ones((1, 2, CLASSES, CLASSES + 1), dtype=np.int64)
    with pytest.raises(ValueError, match="different images"):
        bs.compare(bs.Replicates((0,), ("a", "b"), matrices), bs.Replicates((0,), ("a", "c"), matrices))


@few
@given(experiments(), st.data())
def test_images_with_the_same_names_but_other_labels_are_not_paired(exp, data):
    """Same ids, other label maps (another dataset or data seed): an image-by-image pairing would be false."""
    image = data.draw(st.integers(0, len(exp.image_ids) - 1))
    other = exp.matrices.copy()
    other[:, image, 0, 0] += 1  # one more labelled pixel of class 0 in that image, for every seed
    with pytest.raises(ValueError, match=rf"labels differ \(1 image\(s\), e.g. \['{exp.image_ids[image]}'\]\)"):
        bs.compare(exp, bs.Replicates(exp.seeds, exp.image_ids, other), resamples=RESAMPLES)
    bs.compare(exp, exp, resamples=RESAMPLES)  # the same labels, whatever the predictions: paired
