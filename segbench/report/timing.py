"""Timing repeated calls: a warm-up, then enough timed runs for stable percentiles."""
from __future__ import annotations

import statistics
import time
from typing import Callable

import attrs

MIN_REPEATS, MIN_SECONDS = 20, 2.0
WARMUP_RUNS, WARMUP_SECONDS = 3, 0.5


@attrs.frozen
class Timing:
    """Statistics of repeated calls, in milliseconds per call (a call handles ``batch`` images)."""

    p50_ms: float
    p90_ms: float
    mean_ms: float
    min_ms: float
    repeats: int
    images_per_s: float  # batch / p50


def time_calls(call: Callable[[], object], *, batch: int, warmup: int | None = None, repeats: int | None = None,
               clock=time.perf_counter) -> tuple[Timing, int]:
    """Warm up, then time ``call`` (which must return only when its work is done): ``(timing, warm-up runs)``.

    Defaults: at least ``WARMUP_RUNS`` runs and ``WARMUP_SECONDS`` of warm-up; at least ``MIN_REPEATS``
    timed runs and ``MIN_SECONDS`` of timing.
    """
    warm_runs, started = 0, clock()
    while warm_runs < (warmup if warmup is not None else WARMUP_RUNS) or \
            (warmup is None and clock() - started < WARMUP_SECONDS):
        call()
        warm_runs += 1
    times, started = [], clock()
    while True:
        before = clock()
        call()
        times.append(clock() - before)
        elapsed = clock() - started
        if repeats is not None:
            if len(times) >= repeats:
                break
        elif len(times) >= MIN_REPEATS and elapsed >= MIN_SECONDS:
            break
    ordered = sorted(times)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    median = statistics.median(ordered)
    timing = Timing(p50_ms=1e3 * median, p90_ms=1e3 * p90, mean_ms=1e3 * statistics.fmean(ordered),
                    min_ms=1e3 * ordered[0], repeats=len(ordered), images_per_s=batch / median)
    return timing, warm_runs
