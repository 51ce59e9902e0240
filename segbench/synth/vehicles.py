"""Cars, trucks, buses, trams and caravans, drawn as boxes in world space (sizes in metres)."""
from __future__ import annotations

import numpy as np

from segbench.synth import materials as m
from segbench.synth.labels import LABEL
from segbench.synth.painter import Painter

CAR_WHEEL_RADIUS = 0.32  # metres


def car(p: Painter, xc: float, z0: float, *, facing: int, label: str = "car") -> float:
    """A car at lateral centre ``xc`` whose nearest end is at depth ``z0``; ``facing`` +1 shows the rear,
    -1 the front (oncoming). Returns the far end's depth."""
    rng, cam, canvas = p.rng, p.cam, p.canvas
    tall = rng.random() < 0.2
    length, width = rng.uniform(3.8, 4.9), rng.uniform(1.65, 1.9)
    height = rng.uniform(1.6, 1.85) if tall else rng.uniform(1.38, 1.55)
    x0, x1, z1 = xc - width / 2, xc + width / 2, z0 + length
    obj = canvas.new_object(LABEL[label], droppable=True)
    body = m.paint(rng)
    tyre = m.rubber(rng)
    glass = m.glass(rng, p.sky)
    r, belt = CAR_WHEEL_RADIUS, 0.55 * height + 0.12
    p.ground_shadow(x0 - 0.1, x1 + 0.1, z0 - 0.2, z1 + 0.2, 0.35 + 0.4 * p.shadow)

    tyre_id = canvas.surface(obj, tyre)
    for wx in (x0 + 0.07, x1 - 0.33):
        canvas.polygon(tyre_id, cam.front(z0 + 0.6, wx, wx + 0.26, 0.0, 0.5))
    side_x = p.box(obj, body, x0, x1, 0.28, belt, z0, z1)
    if side_x is not None:
        rim = canvas.surface(obj, m.metal(rng))
        for wz in (z0 + 0.85, z1 - 0.85):
            p.disc(tyre_id, "x", side_x, wz, r, r)
            p.disc(rim, "x", side_x, wz, r, 0.55 * r)
    near_overhang, far_overhang = (0.9, 1.2) if facing > 0 else (1.2, 0.9)
    cz0, cz1 = z0 + near_overhang, z1 - far_overhang
    cx0, cx1 = x0 + 0.12, x1 - 0.12
    cabin_side = p.box(obj, body, cx0, cx1, belt, height, cz0, cz1)
    glass_id = canvas.surface(obj, glass)
    if cabin_side is not None:
        canvas.polygon(glass_id, cam.side(cabin_side, belt + 0.06, height - 0.08, cz0 + 0.15, cz1 - 0.2))
    canvas.polygon(glass_id, cam.front(cz0, cx0 + 0.1, cx1 - 0.1, belt + 0.05, height - 0.07))

    if facing > 0:
        lights = m.lamp(m.jitter(rng, (175, 30, 30), 15))
        light_y = (0.62 * belt, 0.9 * belt)
    else:
        lights = m.lamp(m.jitter(rng, (235, 232, 215), 8))
        light_y = (0.55 * belt, 0.75 * belt)
        canvas.polygon(canvas.surface(obj, m.rubber(rng)), cam.front(z0, xc - 0.45, xc + 0.45, 0.4, 0.6 * belt))
    light_id = canvas.surface(obj, lights)
    for lx in (x0 + 0.06, x1 - 0.32):
        canvas.polygon(light_id, cam.front(z0, lx, lx + 0.26, *light_y))
    plate = canvas.surface(obj, m.lamp(m.grey(rng, 200, 235, 3)))
    canvas.polygon(plate, cam.front(z0, xc - 0.26, xc + 0.26, 0.33, 0.44))
    return z1


def truck(p: Painter, xc: float, z0: float, *, facing: int) -> float:
    rng, cam, canvas = p.rng, p.cam, p.canvas
    width, cargo_len, cab_len = rng.uniform(2.2, 2.5), rng.uniform(3.5, 7.0), 2.1
    cab_h, cargo_h = rng.uniform(2.6, 3.1), rng.uniform(3.0, 3.8)
    x0, x1 = xc - width / 2, xc + width / 2
    obj = canvas.new_object(LABEL["truck"], droppable=True)
    cab, cargo, tyre = m.paint(rng, m.truck_cab_color(rng)), m.paint(rng, m.cargo_color(rng)), m.rubber(rng)
    total = cargo_len + cab_len + 0.3
    p.ground_shadow(x0 - 0.1, x1 + 0.1, z0 - 0.2, z0 + total + 0.2, 0.35 + 0.4 * p.shadow)
    if facing > 0:
        parts = [(cab, cab_h, z0 + cargo_len + 0.3, z0 + total, True), (cargo, cargo_h, z0, z0 + cargo_len, False)]
    else:
        parts = [(cargo, cargo_h, z0 + cab_len + 0.3, z0 + total, False), (cab, cab_h, z0, z0 + cab_len, True)]
    tyre_id = canvas.surface(obj, tyre)
    chassis = canvas.surface(obj, m.rubber(rng))
    for wx in (x0 + 0.05, x1 - 0.45):
        canvas.polygon(tyre_id, cam.front(z0 + 0.8, wx, wx + 0.4, 0.0, 0.95))
    for look, h, a, b, is_cab in parts:
        side_x = p.box(obj, look, x0, x1, 0.9 if not is_cab else 0.6, h, a, b)
        if is_cab:
            glass = canvas.surface(obj, m.glass(rng, p.sky))
            if side_x is not None:
                canvas.polygon(glass, cam.side(side_x, 1.6, h - 0.25, a + 0.25, a + 1.2))
            if facing < 0:
                canvas.polygon(glass, cam.front(a, x0 + 0.12, x1 - 0.12, 1.55, h - 0.2))
        if side_x is not None:
            canvas.polygon(chassis, cam.side(side_x, 0.45, 0.9, a, b))
            for wz in (a + 0.7, b - 0.7) if b - a > 2.5 else (a + 0.9,):
                p.disc(tyre_id, "x", side_x, wz, 0.5, 0.5)
    return z0 + total


def bus(p: Painter, xc: float, z0: float, *, facing: int) -> float:
    rng, cam, canvas = p.rng, p.cam, p.canvas
    width, length, height = 2.55, rng.choice([rng.uniform(10.5, 13.0), 18.0]), rng.uniform(3.0, 3.3)
    x0, x1, z1 = xc - width / 2, xc + width / 2, z0 + length
    obj = canvas.new_object(LABEL["bus"], droppable=True)
    body = m.paint(rng, m.bus_livery(rng))
    p.ground_shadow(x0 - 0.1, x1 + 0.1, z0 - 0.2, z1 + 0.2, 0.35 + 0.4 * p.shadow)
    tyre_id = canvas.surface(obj, m.rubber(rng))
    for wx in (x0 + 0.1, x1 - 0.5):
        canvas.polygon(tyre_id, cam.front(z0 + 2.2, wx, wx + 0.4, 0.0, 0.9))
    side_x = p.box(obj, body, x0, x1, 0.3, height, z0, z1)
    glass = canvas.surface(obj, m.glass(rng, p.sky))
    frame = canvas.surface(obj, p.look(body, 0.7))
    if side_x is not None:
        canvas.polygon(glass, cam.side(side_x, 1.05, 2.55, z0 + 0.3, z1 - 0.3))
        for pz in np.arange(z0 + 1.4, z1 - 0.5, 1.45):
            canvas.polygon(frame, cam.side(side_x, 1.05, 2.55, pz, pz + 0.12))
        for wz in (z0 + 2.6, z1 - 3.0):
            p.disc(tyre_id, "x", side_x, wz, 0.5, 0.5)
    if facing < 0:
        canvas.polygon(glass, cam.front(z0, x0 + 0.15, x1 - 0.15, 1.0, height - 0.45))
    else:
        canvas.polygon(glass, cam.front(z0, x0 + 0.25, x1 - 0.25, 1.7, height - 0.5))
        lights = canvas.surface(obj, m.lamp(m.jitter(rng, (175, 30, 30), 15)))
        for lx in (x0 + 0.08, x1 - 0.38):
            canvas.polygon(lights, cam.front(z0, lx, lx + 0.3, 0.6, 1.0))
    display = canvas.surface(obj, m.lamp(m.jitter(rng, (230, 160, 40), 15)))
    canvas.polygon(display, cam.front(z0, xc - 0.7, xc + 0.7, height - 0.38, height - 0.1))
    return z1


def tram(p: Painter, xc: float, z0: float) -> float:
    """A tram (Cityscapes labels trams as ``train``) running on rails along the street."""
    rng, cam, canvas = p.rng, p.cam, p.canvas
    width, length, height = rng.uniform(2.3, 2.65), rng.uniform(24.0, 36.0), rng.uniform(3.3, 3.6)
    x0, x1, z1 = xc - width / 2, xc + width / 2, z0 + length
    obj = canvas.new_object(LABEL["train"], droppable=True)
    body = m.paint(rng, m.tram_livery(rng))
    p.ground_shadow(x0 - 0.1, x1 + 0.1, z0 - 0.2, z1 + 0.2, 0.35 + 0.4 * p.shadow)
    pole = canvas.surface(obj, m.metal(rng))
    canvas.polygon(pole, cam.front(z0 + 4.0, xc - 0.6, xc + 0.6, height, height + 0.08))
    canvas.polygon(pole, cam.front(z0 + 4.0, xc - 0.04, xc + 0.04, height, height + 1.3))
    side_x = p.box(obj, body, x0, x1, 0.25, height, z0, z1)
    skirt = canvas.surface(obj, m.rubber(rng))
    glass = canvas.surface(obj, m.glass(rng, p.sky))
    frame = canvas.surface(obj, p.look(body, 0.75))
    canvas.polygon(glass, cam.front(z0, x0 + 0.15, x1 - 0.15, 1.1, height - 0.35))
    canvas.polygon(skirt, cam.front(z0, x0, x1, 0.25, 0.55))
    if side_x is not None:
        canvas.polygon(skirt, cam.side(side_x, 0.25, 0.55, z0, z1))
        canvas.polygon(glass, cam.side(side_x, 1.1, 2.45, z0 + 0.5, z1 - 0.5))
        for pz in np.arange(z0 + 2.0, z1 - 0.5, 1.9):
            canvas.polygon(frame, cam.side(side_x, 1.1, 2.45, pz, pz + 0.2))
    return z1


def caravan(p: Painter, xc: float, z0: float) -> float:
    """A parked caravan (a void instance class)."""
    rng, cam, canvas = p.rng, p.cam, p.canvas
    width, length, height = 2.2, rng.uniform(4.5, 6.5), rng.uniform(2.4, 2.7)
    x0, x1 = xc - width / 2, xc + width / 2
    obj = canvas.new_object(LABEL["caravan"], droppable=True)
    side_x = p.box(obj, m.paint(rng, m.grey(rng, 200, 240, 4)), x0, x1, 0.35, height, z0, z0 + length)
    glass = canvas.surface(obj, m.glass(rng, p.sky))
    canvas.polygon(glass, cam.front(z0, x0 + 0.5, x1 - 0.5, 1.3, 1.9))
    if side_x is not None:
        canvas.polygon(glass, cam.side(side_x, 1.3, 1.9, z0 + 1.0, z0 + 2.2))
    return z0 + length
