"""People, and riders on bicycles and motorcycles (sizes in metres)."""
from __future__ import annotations

import numpy as np

from segbench.synth import materials as m
from segbench.synth.canvas import Look
from segbench.synth.labels import LABEL
from segbench.synth.painter import CIRCLE, Painter


def figure(p: Painter, obj: int, x: float, z: float, height: float, *, base: float = 0.0,
           pose: str = "walk") -> None:
    """A person billboard facing the camera at (``x``, ``z``): legs, torso, arms, head.

    ``pose``: ``walk`` / ``stand`` (feet on ``base``), ``ride`` (sitting at ``base``, legs straddling down).
    """
    rng, cam, canvas = p.rng, p.cam, p.canvas
    h = height
    legs = canvas.surface(obj, m.clothing(rng))
    top = canvas.surface(obj, m.riding_jacket(rng) if pose == "ride" else m.clothing(rng))
    face = canvas.surface(obj, m.skin(rng))
    hair = canvas.surface(obj, m.helmet(rng) if pose == "ride" else m.hair(rng))
    hip = base + (0.48 * h if pose != "ride" else 0.05)
    shoulder = hip + 0.34 * h
    half_hip, half_sh, leg_w = 0.1 * h, 0.13 * h, 0.075 * h

    def quad(surface, pts):
        us, vs = zip(*pts)
        canvas.polygon(surface, cam.in_plane("z", z, np.add(us, x), vs))

    if pose == "ride":
        for s in (-1, 1):
            quad(legs, [(s * half_hip * 0.6, hip + 0.05), (s * (half_hip + 0.1), hip), (s * (half_hip + 0.12),
                        hip - 0.42), (s * (half_hip + 0.02), hip - 0.5)])
    else:
        spread = rng.uniform(0.0, 0.09) * h if pose == "walk" else 0.02 * h
        for s, swing in ((-1, spread), (1, -spread)):
            cx = s * (half_hip - leg_w / 2)
            quad(legs, [(cx - leg_w / 2, hip), (cx + leg_w / 2, hip), (cx + swing + leg_w / 2, base),
                        (cx + swing - leg_w / 2, base)])
    if rng.random() < 0.3:  # coat down to the knees
        quad(top, [(-half_sh, shoulder), (half_sh, shoulder), (half_hip * 1.3, hip - 0.15 * h),
                   (-half_hip * 1.3, hip - 0.15 * h)])
    else:
        quad(top, [(-half_sh, shoulder), (half_sh, shoulder), (half_hip, hip), (-half_hip, hip)])
    arm_w = 0.055 * h
    for s in (-1, 1):
        reach = rng.uniform(-0.05, 0.08) * h
        quad(top, [(s * half_sh, shoulder), (s * (half_sh + arm_w), shoulder - 0.02 * h),
                   (s * (half_sh + arm_w + reach), shoulder - 0.36 * h), (s * (half_sh + reach), shoulder - 0.36 * h)])
    head_r = 0.062 * h
    hy = shoulder + 0.03 * h + head_r * 1.2
    p.disc(face, "z", z, x, hy, head_r, head_r * 1.25)
    cap = 1.3 if pose == "ride" else 1.05  # riders wear helmets
    us = x + head_r * cap * np.cos(CIRCLE[:8])
    canvas.polygon(hair, cam.in_plane("z", z, us, hy + head_r * 0.3 + head_r * cap * np.sin(CIRCLE[:8])))
    if rng.random() < 0.25:  # a bag
        s = rng.choice([-1, 1])
        quad(canvas.surface(obj, m.clothing(rng)),
             [(s * half_sh, hip + 0.1 * h), (s * (half_sh + 0.12 * h), hip + 0.1 * h),
              (s * (half_sh + 0.12 * h), hip - 0.05 * h), (s * half_sh, hip - 0.05 * h)])


def person(p: Painter, x: float, z: float) -> None:
    height = p.rng.uniform(1.6, 1.95) if p.rng.random() > 0.1 else p.rng.uniform(1.1, 1.4)
    p.ground_shadow(x - 0.3, x + 0.3, z - 0.2, z + 0.4, 0.3 + 0.3 * p.shadow)
    figure(p, p.canvas.new_object(LABEL["person"], droppable=True), x, z, height,
           pose="walk" if p.rng.random() < 0.7 else "stand")


def two_wheeler(p: Painter, kind: str, plane: str, offset: float, u: float, *, facing: int,
                rider: bool) -> None:
    """A bicycle or motorcycle in a vertical plane (``"x"``: along the street, ``"z"``: across), centred at
    ``u`` along the plane, optionally ridden (the rider is a separate ``rider`` instance)."""
    rng, cam, canvas = p.rng, p.cam, p.canvas
    moto = kind == "motorcycle"
    obj = canvas.new_object(LABEL[kind], droppable=True)
    base, r = (1.4, 0.32) if moto else (1.05, 0.34)
    tyre = canvas.surface(obj, m.rubber(rng))
    inner = canvas.surface(obj, m.metal(rng) if moto else Look(color=m.grey(rng, 80, 170), blotch=0.2, grain=25))
    frame = canvas.surface(obj, m.paint(rng, m.motorcycle_paint(rng)) if moto else m.paint(rng))
    z_mid = u if plane == "x" else offset
    x_mid = offset if plane == "x" else u
    p.ground_shadow(x_mid - 0.4, x_mid + 0.4, z_mid - 0.7, z_mid + 0.7, 0.3 + 0.3 * p.shadow)

    def at(a, v):
        return cam.in_plane(plane, offset, u + facing * np.asarray(a, float), v)

    for a in (-base / 2, base / 2):
        p.disc(tyre, plane, offset, u + facing * a, r, r)
        p.disc(inner, plane, offset, u + facing * a, r, 0.8 * r if not moto else 0.5 * r)
    width = max(1.0, 0.05 * cam.scale(z_mid))
    if moto:
        canvas.polygon(frame, at([-0.65, -0.2, 0.5, 0.6, 0.3, -0.15, -0.6], [0.45, 0.35, 0.45, 0.75, 0.95,
                                                                                0.85, 0.8]))
        canvas.polygon(canvas.surface(obj, m.rubber(rng)), at([-0.25, 0.2, 0.2, -0.25], [0.25, 0.25, 0.55, 0.55]))
    else:
        hub_r, hub_f, crank, seat, bar = (-base / 2, r), (base / 2, r), (-0.05, r * 0.9), (-0.2, r + 0.55), \
            (0.35, r + 0.62)
        pts = at([hub_r[0], crank[0], seat[0], bar[0], hub_f[0], crank[0]],
                 [hub_r[1], crank[1], seat[1], bar[1], hub_f[1], crank[1]])
        if pts is not None:
            canvas.line(frame, pts[:5], width)
            canvas.line(frame, [pts[2], pts[5], pts[3]], width)
    if plane == "x":  # seen from behind: the rear wheel and mudguard show edge-on
        canvas.polygon(frame, cam.front(z_mid - base / 2, x_mid - 0.08, x_mid + 0.08, 0.1, 0.9))
    if rider:
        figure(p, canvas.new_object(LABEL["rider"], droppable=True), x_mid, z_mid - 0.05,
               rng.uniform(1.6, 1.9), base=0.95 if moto else r + 0.55, pose="ride")
