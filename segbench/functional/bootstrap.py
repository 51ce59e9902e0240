"""Bootstrap statistics of an experiment (several seeds, one per-image confusion matrix per image).

An experiment is ``(S, I, C, C + 1)`` integer matrices: S seeds (runs), each scored on the same I images.
Every number follows the official rule: a seed's mIoU comes from the sum of its images' matrices, never
from averaging per-image mIoUs. The experiment's value is the mean over seeds of those global mIoUs.

One bootstrap replicate draws I images with replacement (the same draw for every seed, and for both
experiments of a comparison: the images are shared) and S seeds with replacement, sums the drawn
images' matrices per seed and recomputes the mIoU. Two experiments with the same seeds draw their
seeds together (paired); otherwise each draws its own. Draws come from ``numpy.random.Generator``
streams keyed by ``seed`` (and, for unpaired seed draws, by the experiment's content), so a table is
reproducible and swapping A and B only negates the difference.

Intervals are percentile intervals of the replicates, taken as order statistics (so negating the
replicates negates the interval exactly). A percentile interval can miss the observed value when the
bootstrap distribution is strongly skewed (a handful of images); the interval is then widened to reach it.
"""
from __future__ import annotations

import hashlib
import math
import warnings

import attrs
import numpy as np

DEFAULT_RESAMPLES = 2000
DEFAULT_CONFIDENCE = 0.95
_IMAGES, _PAIRED_SEEDS, _OWN_SEEDS = 0, 1, 2  # stream keys


@attrs.frozen(eq=False)
class Replicates:
    """The per-image confusion matrices of an experiment's runs, one row of images per seed.

    ``matrices``: ``(S, I, C, C + 1)`` (or ``(S, I, C, C)``) integers; ``seeds[s]`` and ``image_ids[i]``
    name row ``s`` and image ``i``.
    """

    seeds: tuple[int, ...]
    image_ids: tuple[str, ...]
    matrices: np.ndarray

    def __attrs_post_init__(self):
        shape = self.matrices.shape
        if self.matrices.ndim != 4 or shape[:2] != (len(self.seeds), len(self.image_ids)) or \
                shape[3] not in (shape[2], shape[2] + 1):
            raise ValueError(f"matrices of shape {shape} do not fit {len(self.seeds)} seed(s) x"
                             f" {len(self.image_ids)} image(s) x (C, C + 1)")
        if len(set(self.seeds)) != len(self.seeds) or len(set(self.image_ids)) != len(self.image_ids):
            raise ValueError("seeds and image ids must be unique")
        if not self.seeds or not self.image_ids:
            raise ValueError("an experiment needs at least one seed and one image")

    def canonical(self) -> "Replicates":
        """Seeds and images in sorted order: the statistics do not depend on the order runs were read in."""
        seed_order = sorted(range(len(self.seeds)), key=self.seeds.__getitem__)
        image_order = sorted(range(len(self.image_ids)), key=self.image_ids.__getitem__)
        matrices = self.matrices[np.ix_(seed_order, image_order)]
        return Replicates(tuple(self.seeds[s] for s in seed_order),
                          tuple(self.image_ids[i] for i in image_order), matrices)

    def digest(self) -> int:
        """A number fixed by the content (seeds, images, matrices): keys this experiment's own seed draws."""
        h = hashlib.sha256(repr((self.seeds, self.image_ids, self.matrices.shape)).encode())
        h.update(np.ascontiguousarray(self.matrices, dtype=np.int64).tobytes())
        return int.from_bytes(h.digest()[:8], "little")


@attrs.frozen
class Interval:
    """A point estimate with its bootstrap confidence interval (``nan`` where nothing was scored)."""

    estimate: float
    low: float
    high: float

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def negated(self) -> "Interval":
        return Interval(-self.estimate, -self.high, -self.low)


@attrs.frozen
class ExperimentStats:
    """Across-seed mean and sample standard deviation (``nan`` for one seed), and the mIoU interval."""

    seeds: tuple[int, ...]
    images: int
    miou_mean: float
    miou_std: float
    pixel_accuracy_mean: float
    pixel_accuracy_std: float
    class_iou_mean: tuple[float, ...]
    class_iou_std: tuple[float, ...]
    miou: Interval


@attrs.frozen
class Difference:
    """B minus A: mIoU, pixel accuracy and each class IoU, with paired bootstrap intervals."""

    miou: Interval
    pixel_accuracy: Interval
    class_iou: tuple[Interval, ...]
    paired_seeds: bool
    images: int
    resamples: int
    confidence: float


# ---- metrics of stacks of matrices ---------------------------------------------------------------

def iou_batch(matrices: np.ndarray) -> np.ndarray:
    """Per-class IoU ``(..., C)`` of matrices ``(..., C, C + 1)`` or ``(..., C, C)``, float64.

    The rule of ``segbench.functional.metrics.iou_per_class``: TP / (TP + FP + FN), NaN when 0/0.
    """
    m = np.asarray(matrices, dtype=np.float64)
    classes = m.shape[-2]
    square = m[..., :classes]
    tp = np.diagonal(square, axis1=-2, axis2=-1)
    denominator = m.sum(axis=-1) + square.sum(axis=-2) - tp
    return np.where(denominator > 0, tp / np.maximum(denominator, 1), np.nan)


def _nanmean_last(values: np.ndarray) -> np.ndarray:
    present = ~np.isnan(values)
    count = present.sum(axis=-1)
    total = np.where(present, values, 0.0).sum(axis=-1)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def miou_batch(matrices: np.ndarray) -> np.ndarray:
    """Mean of the non-NaN class IoUs of each matrix ``(..., C, C + 1)`` -> ``(...)``."""
    return _nanmean_last(iou_batch(matrices))


def pixel_accuracy_batch(matrices: np.ndarray) -> np.ndarray:
    """Correct / scored pixels of each matrix ``(..., C, C + 1)`` -> ``(...)``; NaN when nothing is scored."""
    m = np.asarray(matrices, dtype=np.float64)
    correct = np.diagonal(m[..., :m.shape[-2]], axis1=-2, axis2=-1).sum(axis=-1)
    total = m.sum(axis=(-2, -1))
    return np.where(total > 0, correct / np.maximum(total, 1), np.nan)


# ---- resampling ----------------------------------------------------------------------------------

def draw_counts(rng: np.random.Generator, n: int, resamples: int) -> np.ndarray:
    """How often each of ``n`` items is drawn in each of ``resamples`` draws of ``n`` with replacement:
    ``(resamples, n)`` float64 counts (each row sums to ``n``)."""
    picks = rng.integers(0, n, size=(resamples, n))
    counts = np.zeros((resamples, n))
    np.add.at(counts, (np.arange(resamples)[:, None], picks), 1.0)
    return counts


def resampled_matrices(matrices: np.ndarray, image_counts: np.ndarray) -> np.ndarray:
    """Global matrices of resampled images: ``(S, I, C, K)`` with counts ``(B, I)`` -> ``(B, S, C, K)``."""
    s, i, c, k = matrices.shape
    flat = matrices.reshape(s, i, c * k).astype(np.float64)
    summed = np.tensordot(image_counts, flat, axes=([1], [1]))  # (B, S, C*K), a matrix product
    return summed.reshape(len(image_counts), s, c, k)


def _seed_mean(values: np.ndarray, seed_counts: np.ndarray) -> np.ndarray:
    """Weighted mean over seeds: values ``(B, S, ...)``, counts ``(B, S)`` -> ``(B, ...)``."""
    weights = seed_counts / seed_counts.sum(axis=1, keepdims=True)
    return np.einsum("bs,bs...->b...", weights, values)


def resampled_miou(matrices: np.ndarray, image_counts: np.ndarray, seed_counts: np.ndarray) -> np.ndarray:
    """The experiment's mIoU in each replicate ``(B,)``: per seed, the mIoU of the drawn images' summed
    matrix; then the mean over the drawn seeds. All-ones counts give the observed value."""
    return _seed_mean(miou_batch(resampled_matrices(matrices, image_counts)), seed_counts)


def percentile_interval(estimate: float, replicates: np.ndarray, confidence: float) -> Interval:
    """Order-statistic percentile interval, widened to contain ``estimate``; NaN replicates are dropped."""
    values = np.sort(replicates[~np.isnan(replicates)])
    if math.isnan(estimate) or values.size == 0:
        return Interval(float(estimate), math.nan, math.nan)
    k = min(int(math.floor((1 - confidence) / 2 * values.size)), (values.size - 1) // 2)
    low, high = float(values[k]), float(values[values.size - 1 - k])
    return Interval(float(estimate), min(low, float(estimate)), max(high, float(estimate)))


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng([seed, *key])


def _check(resamples: int, confidence: float) -> None:
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")


def _std(values: np.ndarray) -> np.ndarray:
    if values.shape[0] < 2:
        return np.full(values.shape[1:], np.nan)
    with warnings.catch_warnings():  # a class scored in fewer than two seeds has no spread: NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanstd(values, axis=0, ddof=1) if values.ndim > 1 else np.array(np.std(values, ddof=1))


def experiment_stats(experiment: Replicates, *, resamples: int = DEFAULT_RESAMPLES,
                     confidence: float = DEFAULT_CONFIDENCE, seed: int = 0) -> ExperimentStats:
    """Mean and spread across seeds, and the bootstrap interval of the mean mIoU over seeds and images."""
    _check(resamples, confidence)
    exp = experiment.canonical()
    totals = exp.matrices.sum(axis=1)  # (S, C, K): each seed's global matrix
    mious, accuracies, classes = miou_batch(totals), pixel_accuracy_batch(totals), iou_batch(totals)
    image_counts = draw_counts(_rng(seed, _IMAGES), len(exp.image_ids), resamples)
    seed_counts = draw_counts(_rng(seed, _PAIRED_SEEDS), len(exp.seeds), resamples)
    class_mean = _nanmean_last(classes.T)  # a class absent from every seed's images stays NaN
    return ExperimentStats(
        seeds=exp.seeds, images=len(exp.image_ids),
        miou_mean=float(mious.mean()), miou_std=float(_std(mious)),
        pixel_accuracy_mean=float(accuracies.mean()), pixel_accuracy_std=float(_std(accuracies)),
        class_iou_mean=tuple(float(v) for v in class_mean),
        class_iou_std=tuple(float(v) for v in _std(classes)),
        miou=percentile_interval(float(mious.mean()), resampled_miou(exp.matrices, image_counts, seed_counts),
                                 confidence))


def _replicate_metrics(exp: Replicates, image_counts, seed_counts):
    """(mIoU (B,), pixel accuracy (B,), class IoU (B, C)) of each replicate, means over drawn seeds."""
    drawn = resampled_matrices(exp.matrices, image_counts)
    return (_seed_mean(miou_batch(drawn), seed_counts), _seed_mean(pixel_accuracy_batch(drawn), seed_counts),
            _seed_mean(iou_batch(drawn), seed_counts))


def compare(a: Replicates, b: Replicates, *, resamples: int = DEFAULT_RESAMPLES,
            confidence: float = DEFAULT_CONFIDENCE, seed: int = 0) -> Difference:
    """B minus A with paired bootstrap intervals: the same image draws for both, and the same seed
    draws when both experiments have the same seeds. Raises ``ValueError`` when the images differ."""
    _check(resamples, confidence)
    a, b = a.canonical(), b.canonical()
    if a.image_ids != b.image_ids:
        only_a = sorted(set(a.image_ids) - set(b.image_ids))[:3]
        only_b = sorted(set(b.image_ids) - set(a.image_ids))[:3]
        raise ValueError(f"the two experiments were scored on different images ({len(a.image_ids)} vs"
                         f" {len(b.image_ids)}; only in A: {only_a}, only in B: {only_b})")
    if a.matrices.shape[2:] != b.matrices.shape[2:]:
        raise ValueError(f"the two experiments have different classes (matrices {a.matrices.shape[2:]} vs"
                         f" {b.matrices.shape[2:]})")
    # Pairing needs the same images, not only the same names: each image's labelled pixels per class (the
    # matrices' row sums) do not depend on the model, so they differ only where the images do.
    labels_a, labels_b = a.matrices[0].sum(axis=-1), b.matrices[0].sum(axis=-1)
    if not np.array_equal(labels_a, labels_b):
        differing = [a.image_ids[i] for i in np.flatnonzero((labels_a != labels_b).any(axis=-1))]
        raise ValueError(f"the two experiments name the same {len(a.image_ids)} images but their labels differ"
                         f" ({len(differing)} image(s), e.g. {differing[:3]}): they were scored on different data"
                         " (another dataset, data seed or label setting), so no image-by-image comparison holds")
    image_counts = draw_counts(_rng(seed, _IMAGES), len(a.image_ids), resamples)
    paired = a.seeds == b.seeds
    if paired:
        counts_a = counts_b = draw_counts(_rng(seed, _PAIRED_SEEDS), len(a.seeds), resamples)
    else:
        counts_a = draw_counts(_rng(seed, _OWN_SEEDS, a.digest()), len(a.seeds), resamples)
        counts_b = draw_counts(_rng(seed, _OWN_SEEDS, b.digest()), len(b.seeds), resamples)
    ones_images = np.ones((1, len(a.image_ids)))
    observed_a = _replicate_metrics(a, ones_images, np.ones((1, len(a.seeds))))
    observed_b = _replicate_metrics(b, ones_images, np.ones((1, len(b.seeds))))
    drawn_a = _replicate_metrics(a, image_counts, counts_a)
    drawn_b = _replicate_metrics(b, image_counts, counts_b)

    def interval(index, column=None):
        pick = (lambda x: x[:, column]) if column is not None else (lambda x: x)
        estimate = float(pick(observed_b[index])[0] - pick(observed_a[index])[0])
        return percentile_interval(estimate, pick(drawn_b[index]) - pick(drawn_a[index]), confidence)

    classes = a.matrices.shape[2]
    with np.errstate(invalid="ignore"):
        return Difference(miou=interval(0), pixel_accuracy=interval(1),
                          class_iou=tuple(interval(2, c) for c in range(classes)), paired_seeds=paired,
                          images=len(a.image_ids), resamples=resamples, confidence=confidence)
