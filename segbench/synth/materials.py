"""Colour and texture choices per material.

The palettes overlap on purpose: asphalt, paving, concrete, facades, poles and car paint all share greys, foliage
and grass share greens, overcast sky and white facades share whites, so a pixel's colour alone does not tell its
class; the shape, the position in the street and the neighbours do.
"""
from __future__ import annotations

import numpy as np

from segbench.synth.canvas import RGB, Look


def clip_rgb(values) -> RGB:
    r, g, b = (min(max(float(v), 0.0), 255.0) for v in values)
    return (r, g, b)


def jitter(rng: np.random.Generator, rgb, spread: float) -> RGB:
    """``rgb`` shifted in brightness by ~``spread`` and in each channel by a third of that."""
    shift, *channels = rng.normal(0.0, 1.0, 4).tolist()
    return clip_rgb(c + spread * (shift + d / 3.0) for c, d in zip(rgb, channels))


def grey(rng: np.random.Generator, lo: float, hi: float, tint: float = 5.0) -> RGB:
    level, *channels = rng.random(4).tolist()
    g = lo + (hi - lo) * level
    return clip_rgb(g + tint * 1.7 * (d - 0.5) for d in channels)


def mix(a, b, t: float) -> RGB:
    return clip_rgb((1.0 - t) * x + t * y for x, y in zip(a, b))


def scaled(rgb, factor: float) -> RGB:
    return clip_rgb(c * factor for c in rgb)


def pick_jittered(rng: np.random.Generator, options: list[tuple[float, RGB]], spread: float) -> RGB:
    """One of the weighted base colours, jittered by ``spread``."""
    return jitter(rng, pick(rng, options), spread)


def pick(rng: np.random.Generator, options: list[tuple[float, object]]):
    """One of the ``(weight, value)`` options, chosen with probability proportional to its weight."""
    total = sum(w for w, _ in options)
    target = rng.random() * total
    for weight, value in options:
        target -= weight
        if target < 0:
            return value
    return options[-1][1]


# ---- ground ---------------------------------------------------------------------------------------------------

def asphalt(rng: np.random.Generator) -> Look:
    color = pick(rng, [(0.85, lambda: grey(rng, 55, 125, 4)), (0.15, lambda: grey(rng, 110, 150, 6))])()
    return Look(color=color, blotch=rng.uniform(0.04, 0.12), grain=rng.uniform(4, 9), ground=True)


def paving(rng: np.random.Generator, pixel_scale: float) -> Look:
    """Slabs or setts: a fine checker of two close shades (``pixel_scale``: image width / 256)."""
    color = pick(rng, [
        (0.45, lambda: grey(rng, 125, 195, 6)),
        (0.3, lambda: jitter(rng, (165, 118, 102), 18)),
        (0.25, lambda: jitter(rng, (172, 160, 135), 18)),
    ])()
    return Look(color=color, blotch=rng.uniform(0.04, 0.1), grain=rng.uniform(4, 8), ground=True,
                pattern="tiles" if rng.random() < 0.75 else "", pattern_color=scaled(color, rng.uniform(0.84, 0.93)),
                pattern_period=rng.uniform(1.5, 3.0) * pixel_scale)


def lane_paint(rng: np.random.Generator, road: Look) -> Look:
    paint = pick(rng, [(0.85, (236, 236, 230)), (0.15, (225, 195, 90))])
    return Look(color=mix(road.color, paint, rng.uniform(0.45, 0.9)), blotch=0.08, grain=6, ground=True)


def grass(rng: np.random.Generator) -> Look:
    color = pick(rng, [
        (0.5, lambda: jitter(rng, (130, 150, 70), 18)),
        (0.3, lambda: jitter(rng, (155, 145, 85), 18)),
        (0.2, lambda: jitter(rng, (125, 105, 80), 18)),
    ])()
    return Look(color=color, blotch=rng.uniform(0.05, 0.1), leaf=rng.uniform(0.03, 0.08),
                grain=rng.uniform(10, 16), ground=True)


def dirt(rng: np.random.Generator) -> Look:
    return Look(color=jitter(rng, (130, 115, 95), 22), blotch=0.12, leaf=0.1, grain=9, ground=True)


# ---- structures -----------------------------------------------------------------------------------------------

def facade_color(rng: np.random.Generator) -> RGB:
    return pick(rng, [
        (0.2, lambda: grey(rng, 75, 215, 7)),
        (0.24, lambda: jitter(rng, (200, 180, 145), 22)),
        (0.18, lambda: jitter(rng, (145, 75, 60), 20)),
        (0.14, lambda: jitter(rng, (222, 216, 202), 12)),
        (0.22, lambda: jitter(rng, pick(rng, [(1, (205, 170, 165)), (1, (170, 192, 168)), (1, (178, 186, 208)),
                                              (1, (215, 192, 120)), (1, (120, 110, 100))]), 18)),
    ])()


def facade(rng: np.random.Generator, color: RGB) -> Look:
    return Look(color=color, blotch=rng.uniform(0.04, 0.12), grain=rng.uniform(3, 8))


def glass(rng: np.random.Generator, sky: RGB) -> Look:
    color = pick(rng, [
        (0.55, lambda: jitter(rng, (50, 58, 70), 15)),
        (0.3, lambda: mix(jitter(rng, (95, 105, 120), 20), sky, 0.4)),
        (0.15, lambda: jitter(rng, (195, 175, 120), 25)),  # lit or curtained
    ])()
    return Look(color=color, gradient=tuple(rng.normal(0, 10, 3).tolist()), blotch=0.1, grain=4)


def concrete(rng: np.random.Generator) -> Look:
    color = pick(rng, [(0.6, lambda: grey(rng, 95, 205, 6)), (0.25, lambda: jitter(rng, (185, 170, 140), 20)),
                       (0.15, lambda: jitter(rng, (140, 80, 65), 18))])()
    return Look(color=color, blotch=rng.uniform(0.06, 0.14), grain=rng.uniform(4, 9))


def wall_stone(rng: np.random.Generator) -> Look:
    """Garden and boundary walls: bare concrete, sandstone or weathered, moss-stained blocks."""
    color = pick(rng, [(0.35, lambda: grey(rng, 110, 190, 6)), (0.3, lambda: jitter(rng, (205, 180, 130), 15)),
                       (0.35, lambda: jitter(rng, (100, 105, 85), 12))])()
    return Look(color=color, blotch=rng.uniform(0.1, 0.18), grain=rng.uniform(6, 10))


def fence_bars(rng: np.random.Generator) -> Look:
    """Railings painted dark green, bare galvanised metal, or wooden slats."""
    return pick(rng, [(0.45, lambda: Look(color=jitter(rng, (45, 95, 65), 10), blotch=0.05, grain=4)),
                      (0.3, lambda: metal(rng)),
                      (0.25, lambda: Look(color=jitter(rng, (120, 90, 60), 15), grain=6))])()


def metal(rng: np.random.Generator) -> Look:
    color = pick(rng, [(0.55, lambda: grey(rng, 70, 185, 5)), (0.25, lambda: jitter(rng, (45, 62, 50), 12)),
                       (0.2, lambda: grey(rng, 25, 60, 3))])()
    return Look(color=color, blotch=0.05, grain=4)


def roof(rng: np.random.Generator) -> Look:
    color = pick(rng, [(0.5, lambda: jitter(rng, (135, 65, 50), 18)), (0.5, lambda: grey(rng, 50, 110, 4))])()
    return Look(color=color, blotch=0.08, grain=6)


# ---- nature and sky -------------------------------------------------------------------------------------------

def foliage_color(rng: np.random.Generator) -> RGB:
    return pick(rng, [
        (0.6, lambda: jitter(rng, (70, 105, 45), 18)),
        (0.2, lambda: jitter(rng, (110, 130, 60), 20)),
        (0.1, lambda: jitter(rng, (150, 130, 60), 20)),
        (0.1, lambda: jitter(rng, (45, 60, 40), 10)),
    ])()


def foliage(rng: np.random.Generator, color: RGB) -> Look:
    return Look(color=jitter(rng, color, 10), blotch=0.1, leaf=rng.uniform(0.18, 0.32), grain=rng.uniform(9, 16))


def bark(rng: np.random.Generator) -> Look:
    return Look(color=jitter(rng, (85, 70, 55), 15), blotch=0.08, grain=8)


def sky_colors(rng: np.random.Generator) -> tuple[RGB, RGB, bool]:
    """(zenith, horizon, clear): clear blue, overcast or hazy."""
    kind = pick(rng, [(0.55, "clear"), (0.35, "overcast"), (0.1, "hazy")])
    if kind == "clear":
        top = jitter(rng, (85, 135, 210), 15)
        return top, mix(top, (225, 230, 235), rng.uniform(0.4, 0.8)), True
    if kind == "overcast":
        top = grey(rng, 160, 225, 4)
        return top, scaled(top, rng.uniform(1.0, 1.12)), False
    top = jitter(rng, (195, 195, 180), 12)
    return top, mix(top, (235, 225, 205), 0.5), False


# ---- traffic and people ---------------------------------------------------------------------------------------

def paint_color(rng: np.random.Generator) -> RGB:
    return pick(rng, [
        (0.2, lambda: grey(rng, 205, 240, 3)),
        (0.18, lambda: grey(rng, 140, 190, 4)),
        (0.14, lambda: grey(rng, 80, 130, 4)),
        (0.18, lambda: grey(rng, 20, 55, 3)),
        (0.1, lambda: jitter(rng, (35, 50, 95), 12)),
        (0.08, lambda: jitter(rng, (150, 30, 32), 18)),
        (0.05, lambda: jitter(rng, (50, 85, 55), 12)),
        (0.04, lambda: jitter(rng, (195, 185, 150), 14)),
        (0.03, lambda: jitter(rng, (215, 175, 40), 15)),
    ])()


def paint(rng: np.random.Generator, color: RGB | None = None) -> Look:
    color = paint_color(rng) if color is None else color
    return Look(color=color, gradient=tuple(rng.normal(0, 12, 3).tolist()), blotch=0.05, grain=4)


def bus_livery(rng: np.random.Generator) -> RGB:
    """City bus operators paint in yellow, red or blue; trams use other colours (see ``tram_livery``)."""
    return pick_jittered(rng, [(0.45, (225, 195, 40)), (0.35, (185, 40, 40)), (0.2, (40, 90, 170))], 15)


def tram_livery(rng: np.random.Generator) -> RGB:
    return pick_jittered(rng, [(0.55, (40, 135, 120)), (0.45, (120, 40, 90))], 12)


def truck_cab_color(rng: np.random.Generator) -> RGB:
    return pick_jittered(rng, [(0.4, (230, 230, 225)), (0.2, (45, 90, 60)), (0.2, (150, 155, 160)),
                              (0.2, (60, 70, 90))], 12)


def motorcycle_paint(rng: np.random.Generator) -> RGB:
    return pick(rng, [(0.4, lambda: grey(rng, 15, 40, 3)), (0.3, lambda: jitter(rng, (175, 25, 30), 15)),
                      (0.15, lambda: jitter(rng, (230, 120, 25), 15)), (0.15, lambda: grey(rng, 150, 190, 4))])()


def cargo_color(rng: np.random.Generator) -> RGB:
    """Box bodies and tarpaulins: mostly white or grey, sometimes a company colour."""
    return pick(rng, [(0.55, lambda: grey(rng, 185, 240, 4)), (0.2, lambda: jitter(rng, (55, 100, 60), 12)),
                      (0.25, lambda: jitter(rng, (185, 165, 120), 12))])()


def rubber(rng: np.random.Generator) -> Look:
    return Look(color=grey(rng, 18, 45, 2), blotch=0.05, grain=3)


def clothing(rng: np.random.Generator) -> Look:
    color = pick(rng, [
        (0.35, lambda: grey(rng, 20, 80, 4)),
        (0.15, lambda: grey(rng, 90, 200, 5)),
        (0.2, lambda: jitter(rng, (55, 65, 100), 15)),
        (0.3, lambda: clip_rgb(rng.uniform(30, 220, 3))),
    ])()
    return Look(color=color, blotch=0.06, grain=5)


def riding_jacket(rng: np.random.Generator) -> Look:
    """Cyclists and motorcyclists: high-visibility, sports or leather jackets."""
    color = pick(rng, [
        (0.3, lambda: jitter(rng, (205, 230, 45), 12)),
        (0.2, lambda: jitter(rng, (240, 120, 30), 12)),
        (0.2, lambda: jitter(rng, (40, 90, 200), 15)),
        (0.3, lambda: grey(rng, 15, 45, 3)),
    ])()
    return Look(color=color, blotch=0.05, grain=4)


def skin(rng: np.random.Generator) -> Look:
    return Look(color=mix((235, 195, 165), (105, 75, 55), rng.uniform(0, 1)), blotch=0.03, grain=3)


def hair(rng: np.random.Generator) -> Look:
    return Look(color=pick(rng, [(0.6, grey(rng, 25, 60, 6)), (0.25, jitter(rng, (110, 80, 50), 15)),
                                 (0.15, jitter(rng, (200, 175, 120), 15))]), blotch=0.05, grain=5)


def helmet(rng: np.random.Generator) -> Look:
    color = pick(rng, [(0.4, lambda: grey(rng, 15, 50, 3)), (0.25, lambda: grey(rng, 210, 245, 3)),
                       (0.35, lambda: clip_rgb(rng.uniform(30, 230, 3)))])()
    return Look(color=color, gradient=(40.0, 40.0, 40.0), blotch=0.03, grain=3)


def lamp(color: RGB) -> Look:
    return Look(color=color, blotch=0.02, grain=3)
