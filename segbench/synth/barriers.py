"""Walls, fences and guard rails along the street (sizes in metres)."""
from __future__ import annotations

import attrs
import numpy as np

from segbench.synth import materials as m
from segbench.synth.labels import LABEL
from segbench.synth.painter import Painter


def wall(p: Painter, x: float, z0: float, z1: float, *, outward: int, height: float | None = None) -> None:
    rng = p.rng
    height = rng.uniform(0.6, 2.4) if height is None else height
    obj = p.canvas.new_object(LABEL["wall"])
    look = m.wall_stone(rng)
    if rng.random() < 0.7:  # block or brick courses with lighter joints
        course = rng.uniform(0.2, 0.5) * p.cam.scale(max(p.cam.near, (z0 + z1) / 2))
        look = attrs.evolve(look, pattern="courses", pattern_color=m.scaled(look.color, rng.uniform(1.15, 1.35)),
                            pattern_period=max(2.0, course), pattern_duty=rng.uniform(0.6, 0.8))
    thick = rng.uniform(0.25, 0.5)
    xa, xb = sorted((x, x + outward * thick))
    p.box(obj, look, xa, xb, 0.0, height, z0, z1)


def fence(p: Painter, x: float, z0: float, z1: float, *, outward: int) -> None:
    """A fence along the street: bars over a see-through pattern (the whole fence area is ``fence``)."""
    rng, cam, canvas = p.rng, p.cam, p.canvas
    obj = canvas.new_object(LABEL["fence"])
    height = rng.uniform(0.9, 2.0)
    bars = m.fence_bars(rng)
    gap = m.scaled(bars.color, rng.uniform(0.45, 0.75)) if rng.random() < 0.5 else m.foliage_color(rng)
    z_mid = max(cam.near, (z0 + z1) / 2)
    period = max(2.0, rng.uniform(0.1, 0.25) * cam.scale(z_mid))
    look = attrs.evolve(bars, pattern="bars", pattern_color=gap, pattern_period=period,
                        pattern_duty=rng.uniform(0.3, 0.6))
    canvas.polygon(canvas.surface(obj, look), cam.side(x, 0.0, height, z0, z1))
    rail = canvas.surface(obj, bars)
    canvas.polygon(rail, cam.side(x, height - 0.08, height, z0, z1))
    canvas.polygon(rail, cam.front(max(z0, cam.near + 0.01), min(x, x + outward * 0.06),
                                   max(x, x + outward * 0.06), 0.0, height))


def guard_rail(p: Painter, x: float, z0: float, z1: float) -> None:
    rng, cam, canvas = p.rng, p.cam, p.canvas
    obj = canvas.new_object(LABEL["guard rail"])
    look = canvas.surface(obj, m.metal(rng))
    canvas.polygon(look, cam.side(x, 0.45, 0.8, z0, z1))
    for z in np.arange(max(z0, cam.near + 1.0), z1, 4.0):
        canvas.polygon(look, cam.front(z, x - 0.06, x + 0.06, 0.0, 0.6))
