"""The confusion matrix and metrics follow the official Cityscapes rule, checked against a per-pixel reference."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from segbench.functional import metrics
from segbench.functional.metrics import (
    ConfusionAccumulator,
    confusion_matrix,
    iou_per_class,
    mean_iou,
    pixel_accuracy,
    sum_confusion,
    summarize,
)

IGNORE = 255


def reference_confusion(pred, target, num_classes):
    """Per-pixel loop: rows = GT class, columns = prediction, last column = prediction outside [0, C)."""
    cm = np.zeros((num_classes, num_classes + 1), dtype=np.int64)
    for t, p in zip(np.asarray(target).ravel().tolist(), np.asarray(pred).ravel().tolist()):
        if 0 <= t < num_classes:
            cm[t, p if 0 <= p < num_classes else num_classes] += 1
    return cm


def reference_iou(pred, target, num_classes):
    """IoU per class counted straight from pixels with the official TP / FP / FN definitions."""
    pred, target = np.asarray(pred).ravel(), np.asarray(target).ravel()
    scored = (target >= 0) & (target < num_classes)
    result = []
    for c in range(num_classes):
        tp = np.sum(scored & (target == c) & (pred == c))
        fn = np.sum((target == c) & (pred != c))
        fp = np.sum(scored & (target != c) & (pred == c))
        result.append(tp / (tp + fp + fn) if tp + fp + fn else math.nan)
    return np.array(result)


@st.composite
def label_batches(draw, *, dtypes=(torch.uint8,), wild=False):
    """(pred, target, C): uint8 Cityscapes-like labels, or any dtype with out-of-range values."""
    num_classes = draw(st.integers(1, 6))
    n, h, w = draw(st.integers(1, 3)), draw(st.integers(1, 5)), draw(st.integers(1, 5))
    dtype = draw(st.sampled_from(dtypes))
    info = torch.iinfo(dtype)
    values = st.integers(0, num_classes - 1) | st.just(IGNORE if info.max >= IGNORE else -1)
    if wild:
        values = values | st.integers(max(info.min, -300), min(info.max, 300)) | st.sampled_from([info.min, info.max])
    shape = (n, h, w)
    size = n * h * w
    target = draw(st.lists(values, min_size=size, max_size=size))
    pred = draw(st.lists(values, min_size=size, max_size=size))
    return (
        torch.tensor(pred, dtype=dtype).reshape(shape),
        torch.tensor(target, dtype=dtype).reshape(shape),
        num_classes,
    )


ALL_INT_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


@settings(deadline=None)
@given(label_batches(dtypes=ALL_INT_DTYPES, wild=True))
def test_matches_per_pixel_reference_for_any_labels(batch):
    pred, target, num_classes = batch
    cm = confusion_matrix(pred, target, num_classes=num_classes, ignore_index=-7)
    assert cm.dtype == torch.int64
    np.testing.assert_array_equal(cm.numpy(), reference_confusion(pred, target, num_classes))
    np.testing.assert_array_equal(iou_per_class(cm).numpy(), reference_iou(pred, target, num_classes))


@settings(deadline=None)
@given(label_batches(dtypes=(torch.int64,), wild=True))
def test_uint8_fast_path_equals_int64_path(batch):
    pred, target, num_classes = batch
    in_byte_range = lambda x: x.clamp(0, 255)  # noqa: E731
    pred8, target8 = in_byte_range(pred), in_byte_range(target)
    fast = confusion_matrix(pred8.to(torch.uint8), target8.to(torch.uint8), num_classes=num_classes)
    general = confusion_matrix(pred8, target8, num_classes=num_classes)
    assert torch.equal(fast, general)


@settings(deadline=None)
@given(label_batches())
def test_perfect_prediction_scores_one_for_present_classes(batch):
    _, target, num_classes = batch
    cm = confusion_matrix(target, target, num_classes=num_classes)
    iou = iou_per_class(cm)
    for c in range(num_classes):
        if (target == c).any():
            assert iou[c] == 1.0
        else:
            assert math.isnan(iou[c])
    if (target != IGNORE).any():
        assert mean_iou(cm) == 1.0 and pixel_accuracy(cm) == 1.0


@settings(deadline=None)
@given(label_batches(), st.data())
def test_matrices_of_a_partition_sum_to_the_whole(batch, data):
    pred, target, num_classes = batch
    cut = data.draw(st.integers(0, pred.shape[0]))
    parts = [
        confusion_matrix(pred[:cut], target[:cut], num_classes=num_classes),
        confusion_matrix(pred[cut:], target[cut:], num_classes=num_classes),
    ]
    whole = confusion_matrix(pred, target, num_classes=num_classes)
    assert torch.equal(sum_confusion(parts), whole)
    accumulator = ConfusionAccumulator(num_classes)
    for i in range(pred.shape[0]):
        accumulator.update(pred[i], target[i])
    assert torch.equal(accumulator.matrix, whole)


@settings(deadline=None)
@given(label_batches(), st.randoms(use_true_random=False))
def test_image_order_does_not_matter(batch, rng):
    pred, target, num_classes = batch
    order = list(range(pred.shape[0]))
    rng.shuffle(order)
    assert torch.equal(
        confusion_matrix(pred[order], target[order], num_classes=num_classes),
        confusion_matrix(pred, target, num_classes=num_classes),
    )


@settings(deadline=None)
@given(label_batches(), st.integers(0, 255))
def test_predictions_at_ignored_pixels_change_nothing(batch, other):
    pred, target, num_classes = batch
    changed = torch.where(target == IGNORE, torch.tensor(other, dtype=torch.uint8), pred)
    cm = confusion_matrix(pred, target, num_classes=num_classes)
    assert torch.equal(confusion_matrix(changed, target, num_classes=num_classes), cm)
    # Ignored pixels never produce false positives: each column counts only scored pixels.
    assert int(cm.sum()) == int((target != IGNORE).sum())


@settings(deadline=None)
@given(label_batches(), st.randoms(use_true_random=False))
def test_permuting_class_ids_permutes_the_ious(batch, rng):
    pred, target, num_classes = batch
    permutation = list(range(num_classes))
    rng.shuffle(permutation)
    lookup = torch.full((256,), IGNORE, dtype=torch.uint8)
    lookup[:num_classes] = torch.tensor(permutation, dtype=torch.uint8)
    iou = iou_per_class(confusion_matrix(pred, target, num_classes=num_classes))
    permuted = iou_per_class(
        confusion_matrix(lookup[pred.long()], lookup[target.long()], num_classes=num_classes)
    )
    np.testing.assert_array_equal(permuted[permutation].numpy(), iou.numpy())


@settings(deadline=None)
@given(label_batches(dtypes=ALL_INT_DTYPES, wild=True))
def test_every_number_is_a_fraction(batch):
    pred, target, num_classes = batch
    cm = confusion_matrix(pred, target, num_classes=num_classes, ignore_index=-7)
    names = [f"class{i}" for i in range(num_classes)]
    report = summarize(cm, names)
    numbers = [report["mIoU"], report["pixel_accuracy"], *report["per_class_iou"].values()]
    assert all(v is None or 0.0 <= v <= 1.0 for v in numbers)
    assert list(report["per_class_iou"]) == names


def test_global_miou_differs_from_the_mean_of_per_image_mious():
    # Image 1: 9 pixels of class 0 all right, 1 pixel of class 1 predicted 0.
    # Image 2: 10 pixels of class 1 all right.
    pred = torch.tensor([[0] * 10, [1] * 10], dtype=torch.uint8).reshape(2, 1, 10)
    target = torch.tensor([[0] * 9 + [1], [1] * 10], dtype=torch.uint8).reshape(2, 1, 10)
    per_image = [mean_iou(confusion_matrix(pred[i], target[i], num_classes=2)) for i in range(2)]
    assert per_image == [pytest.approx(0.45), 1.0]  # image 1: IoU0 = 9/10, IoU1 = 0/1
    assert sum(per_image) / 2 == pytest.approx(0.725)
    assert mean_iou(confusion_matrix(pred, target, num_classes=2)) == pytest.approx((9 / 10 + 10 / 11) / 2)


def test_class_predicted_but_absent_from_ground_truth_scores_zero_and_counts():
    target = torch.tensor([[0, 0, 0, 255]], dtype=torch.uint8)
    pred = torch.tensor([[0, 0, 1, 2]], dtype=torch.uint8)  # class 2 only on an ignored pixel
    cm = confusion_matrix(pred, target, num_classes=3)
    iou = iou_per_class(cm)
    assert iou[0] == pytest.approx(2 / 3)
    assert iou[1] == 0.0
    assert math.isnan(iou[2])
    assert mean_iou(cm) == pytest.approx((2 / 3 + 0) / 2)


def test_prediction_outside_the_classes_is_a_miss_and_no_false_positive():
    target = torch.tensor([[0, 0, 1, 1]], dtype=torch.int64)
    pred = torch.tensor([[0, 255, 1, -1]], dtype=torch.int64)
    cm = confusion_matrix(pred, target, num_classes=2)
    assert cm.tolist() == [[1, 0, 1], [0, 1, 1]]
    assert iou_per_class(cm).tolist() == [0.5, 0.5]
    assert pixel_accuracy(cm) == 0.5


def test_square_matrix_is_accepted():
    cm = torch.tensor([[3, 1], [0, 4]])
    assert iou_per_class(cm).tolist() == [0.75, 0.8]
    assert pixel_accuracy(cm) == 7 / 8


def test_nothing_scored_gives_nan_and_none():
    target = torch.full((2, 3), IGNORE, dtype=torch.uint8)
    cm = confusion_matrix(target, target, num_classes=4)
    assert int(cm.sum()) == 0 and math.isnan(mean_iou(cm)) and math.isnan(pixel_accuracy(cm))
    assert summarize(cm, list("abcd")) == {
        "mIoU": None,
        "pixel_accuracy": None,
        "per_class_iou": dict.fromkeys("abcd"),
    }


def test_conversion_in_chunks_is_exact(monkeypatch):
    monkeypatch.setattr(metrics, "_CHUNK", 7)  # many chunks and a ragged last one
    rng = np.random.default_rng(1)
    target = torch.from_numpy(rng.integers(-3, 260, size=(2, 5, 11)))
    pred = torch.from_numpy(rng.integers(-3, 260, size=(2, 5, 11)))
    cm = confusion_matrix(pred, target, num_classes=19)
    np.testing.assert_array_equal(cm.numpy(), reference_confusion(pred, target, 19))


@pytest.mark.parametrize("num_classes", [127, 128, 254, 255, 256, 400])
def test_many_classes_use_wider_indices(num_classes):
    rng = np.random.default_rng(num_classes)
    target = torch.from_numpy(rng.integers(-2, 402, size=(3, 7, 9)))
    pred = torch.from_numpy(rng.integers(-2, 402, size=(3, 7, 9)))
    cm = confusion_matrix(pred, target, num_classes=num_classes, ignore_index=-1)
    np.testing.assert_array_equal(cm.numpy(), reference_confusion(pred, target, num_classes))
    in_bytes = lambda x: x.clamp(0, 255).to(torch.uint8)  # noqa: E731
    cm = confusion_matrix(in_bytes(pred), in_bytes(target), num_classes=num_classes, ignore_index=-1)
    np.testing.assert_array_equal(cm.numpy(), reference_confusion(in_bytes(pred), in_bytes(target), num_classes))


def test_misuse_is_rejected():
    labels = torch.zeros(2, 2, dtype=torch.uint8)
    with pytest.raises(ValueError, match="ignore_index 0 is a class id"):
        confusion_matrix(labels, labels, num_classes=19, ignore_index=0)
    with pytest.raises(ValueError, match="shape"):
        confusion_matrix(labels, labels[0], num_classes=19)
    with pytest.raises(TypeError, match="integer"):
        confusion_matrix(labels.float(), labels, num_classes=19)
    with pytest.raises(ValueError, match="2 class names"):
        summarize(torch.zeros(3, 4, dtype=torch.int64), ["a", "b"])
