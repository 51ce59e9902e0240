"""Class weights from label histograms: ENet and median frequency balancing, plus their plugin."""
import math

import pytest
import torch
from hypothesis import given, settings, strategies as st

from segbench.errors import DataError
from segbench.functional.class_weights import enet_weights, median_frequency_weights
from segbench.plugins import make_plugin_manager
from segbench.registry import build_registries

counts = st.integers(0, 10**9).map(float)
histograms = st.lists(counts, min_size=1, max_size=25).filter(any).map(lambda h: torch.tensor(h, dtype=torch.float64))
c_values = st.floats(1.0001, 2.0)


def pairs_not_increasing(histogram, weights):
    """True when a more frequent class never gets a larger weight."""
    return all(
        weights[i] <= weights[j]
        for i in range(len(histogram))
        for j in range(len(histogram))
        if histogram[i] > histogram[j]
    )


@settings(deadline=None)
@given(histograms, c_values)
def test_enet_weights_are_positive_bounded_and_float32(histogram, c):
    weights = enet_weights(histogram, c=c)
    assert weights.dtype == torch.float32 and weights.shape == histogram.shape
    assert bool((weights > 0).all())
    assert bool((weights <= torch.tensor(1 / math.log(c), dtype=torch.float32)).all())
    assert bool((weights >= torch.tensor(1 / math.log(c + 1), dtype=torch.float32)).all())


@settings(deadline=None)
@given(histograms, c_values)
def test_enet_more_frequent_class_never_weighs_more(histogram, c):
    assert pairs_not_increasing(histogram, enet_weights(histogram, c=c))


@settings(deadline=None)
@given(histograms, st.floats(1e-6, 1e6), st.integers(-20, 20))
def test_enet_weights_do_not_depend_on_the_histogram_scale(histogram, scale, exponent):
    weights = enet_weights(histogram)
    assert torch.equal(enet_weights(histogram * 2.0**exponent), weights)  # exact in binary
    torch.testing.assert_close(enet_weights(histogram * scale), weights, rtol=1e-6, atol=0)


def test_enet_formula_and_absent_class():
    weights = enet_weights(torch.tensor([3.0, 1.0, 0.0]), c=1.02)
    expected = [1 / math.log(1.02 + 0.75), 1 / math.log(1.02 + 0.25), 1 / math.log(1.02)]
    torch.testing.assert_close(weights, torch.tensor(expected, dtype=torch.float32))


@settings(deadline=None)
@given(histograms)
def test_median_frequency_weights_properties(histogram):
    weights = median_frequency_weights(histogram)
    assert weights.dtype == torch.float32 and weights.shape == histogram.shape
    assert bool((weights > 0).all()) and bool(torch.isfinite(weights).all())
    assert pairs_not_increasing(histogram, weights)
    torch.testing.assert_close(median_frequency_weights(histogram * 3.7), weights, rtol=1e-6, atol=0)


def test_median_frequency_values():
    # Present frequencies 0.1, 0.2, 0.3, 0.4 -> median 0.25; the absent class takes the largest weight.
    weights = median_frequency_weights(torch.tensor([1.0, 2.0, 0.0, 3.0, 4.0]))
    torch.testing.assert_close(weights, torch.tensor([2.5, 1.25, 2.5, 0.25 / 0.3, 0.625]))
    assert median_frequency_weights(torch.tensor([5.0, 1.0, 9.0]))[0] == 1.0  # the median class


@pytest.mark.parametrize("weighting", [enet_weights, median_frequency_weights])
def test_no_labelled_pixels_is_a_data_error(weighting):
    with pytest.raises(DataError, match="no labelled pixels in the training set"):
        weighting(torch.zeros(19, dtype=torch.float64))


def test_enet_rejects_c_not_above_one():
    with pytest.raises(ValueError, match="greater than 1"):
        enet_weights(torch.ones(3), c=1.0)


def test_plugin_registers_both_weightings():
    registry = build_registries(
        make_plugin_manager(builtins=["segbench_plugins.class_weightings"], load_entry_points=False)
    ).class_weightings
    assert registry.names() == ["enet", "median_frequency"]
    histogram = torch.tensor([10.0, 1.0, 0.0], dtype=torch.float64)
    enet = registry.get("enet")
    assert enet.default_config().c == 1.02
    assert torch.equal(enet.factory(enet.default_config())(histogram), enet_weights(histogram, c=1.02))
    assert torch.equal(
        enet.factory(enet.config(c=1.1))(histogram), enet_weights(histogram, c=1.1)
    )
    with pytest.raises(ValueError):
        enet.config(c=1.0)
    median = registry.get("median_frequency")
    assert torch.equal(median.factory(median.default_config())(histogram), median_frequency_weights(histogram))
