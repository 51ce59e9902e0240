"""Built-in class weightings: ENet (``enet``) and median frequency balancing (``median_frequency``)."""
from __future__ import annotations

import functools

import attrs

from segbench import hookimpl
from segbench.config import in_range
from segbench.functional.class_weights import enet_weights, median_frequency_weights


@attrs.frozen
class ENetConfig:
    # c > 1 keeps ln(c + p) positive even for a class with no pixels (p = 0).
    c: float = attrs.field(default=1.02, validator=in_range(1.0, 100.0, low_open=True))


@attrs.frozen
class MedianFrequencyConfig:
    pass


def build_enet(config: ENetConfig):
    return functools.partial(enet_weights, c=config.c)


def build_median_frequency(config: MedianFrequencyConfig):
    return median_frequency_weights


@hookimpl
def segbench_register_class_weightings(register):
    register("enet", build_enet, config=ENetConfig)
    register("median_frequency", build_median_frequency, config=MedianFrequencyConfig)
