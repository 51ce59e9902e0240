"""Trees and hedges (sizes in metres)."""
from __future__ import annotations

import math

import numpy as np

from segbench.synth import materials as m
from segbench.synth.labels import LABEL
from segbench.synth.painter import Painter


def tree(p: Painter, x: float, z: float, size: float) -> None:
    """Trunk and a lumpy canopy: a union of differently shaded ellipses, itself noisily textured."""
    rng, cam, canvas = p.rng, p.cam, p.canvas
    obj = canvas.new_object(LABEL["vegetation"])
    trunk_h = rng.uniform(1.8, 3.2) * size
    radius = rng.uniform(1.4, 3.0) * size
    cy = trunk_h + radius * 0.8
    if p.sun:
        p.canvas.shadow(cam.flat(0.0, x - radius - p.sun * 2, x + radius - p.sun * 2, z - radius * 0.6,
                                 z + radius * 0.6), 0.6 * p.shadow)
    tw = rng.uniform(0.12, 0.2) * size
    canvas.polygon(canvas.surface(obj, m.bark(rng)), cam.front(z, x - tw, x + tw, 0.0, cy))
    base = m.foliage_color(rng)
    n = int(rng.integers(6, 11))
    centres = np.column_stack([rng.normal(0, 0.45, n), rng.normal(0, 0.35, n)]) * radius
    radii = rng.uniform(0.35, 0.65, (n, 2)) * radius
    small = int(rng.integers(6, 14))
    angles = rng.uniform(0, 2 * math.pi, small)
    ring = np.column_stack([np.cos(angles) * 0.9, np.sin(angles) * 0.7]) * radius
    centres = np.vstack([centres, ring])
    radii = np.vstack([radii, rng.uniform(0.15, 0.3, (small, 1)) * radius * np.array([[1.0, 1.0]])])
    # Three shades, lighter towards the top; each blob takes the shade of its height.
    shades = [canvas.surface(obj, m.foliage(rng, m.scaled(base, k))) for k in (0.85, 1.0, 1.15)]
    s = cam.scale(z)
    for (du, dv), (ru, rv) in zip(centres.tolist(), radii.tolist()):
        u, v = cam.point(x + du, cy + dv, z)
        shade = shades[min(2, max(0, int((dv / radius + 0.6) * 2.0 + rng.random() - 0.5)))]
        canvas.ellipse(shade, (u - ru * s, v - rv * s, u + ru * s, v + rv * s))


def hedge(p: Painter, x: float, z0: float, z1: float, *, outward: int) -> None:
    rng, cam, canvas = p.rng, p.cam, p.canvas
    obj = canvas.new_object(LABEL["vegetation"])
    height, depth = rng.uniform(0.8, 1.8), rng.uniform(0.6, 1.2)
    base = m.foliage_color(rng)
    z0 = max(z0, cam.near)
    if z1 <= z0:
        return
    zs = np.linspace(z0, z1, max(4, int((z1 - z0) / 0.7)))
    tops = height + rng.normal(0, 0.08, len(zs))
    if height < cam.elevation:
        canvas.polygon(canvas.surface(obj, m.foliage(rng, m.scaled(base, 1.1))),
                       cam.flat(height, min(x, x + outward * depth), max(x, x + outward * depth), z0, z1))
    pts = cam.project(x, np.concatenate([tops, [0.0, 0.0]]), np.concatenate([zs, [z1, z0]]))
    canvas.polygon(canvas.surface(obj, m.foliage(rng, m.scaled(base, p.side_light(-outward)))), pts)
    canvas.polygon(canvas.surface(obj, m.foliage(rng, m.scaled(base, 0.9))),
                   cam.front(z0, min(x, x + outward * depth), max(x, x + outward * depth), 0.0, height))
