"""Street objects drawn from world-space boxes, faces and billboards (sizes in metres, see ``camera``)."""
from __future__ import annotations

import math

import attrs
import numpy as np

from segbench.synth import materials as m
from segbench.synth.camera import Camera
from segbench.synth.canvas import RGB, Canvas, Look
from segbench.synth.labels import LABEL

_CIRCLE = np.linspace(0.0, 2.0 * math.pi, 14, endpoint=False)


@attrs.define
class Painter:
    """What every object needs: where to draw, how to project, the random stream and the light."""

    canvas: Canvas
    cam: Camera
    rng: np.random.Generator
    sky: RGB  # horizon colour, reflected by glass
    sun: int  # -1: sun from the left, +1: from the right, 0: overcast
    shadow: float  # strength of cast shadows

    def side_light(self, normal_x: float) -> float:
        """Brightness factor of a face whose normal points along +X (``normal_x`` > 0) or -X."""
        if self.sun == 0:
            return 0.9
        return 1.06 if normal_x * self.sun < 0 else 0.74

    def front_light(self) -> float:
        return 0.93 if self.sun == 0 else 0.86

    def look(self, base: Look, factor: float) -> Look:
        return attrs.evolve(base, color=m.scaled(base.color, factor))

    def box(self, obj: int, base: Look, x0: float, x1: float, y0: float, y1: float, z0: float, z1: float,
            *, top: bool = True) -> float | None:
        """The visible faces of an axis-aligned box; returns the X of the visible side face (or None)."""
        cam, canvas = self.cam, self.canvas
        if top and y1 < cam.elevation:
            canvas.polygon(canvas.surface(obj, self.look(base, 1.08)), cam.flat(y1, x0, x1, z0, z1))
        side_x = x1 if x1 < 0 else (x0 if x0 > 0 else None)
        if side_x is not None:
            light = self.side_light(1.0 if side_x == x1 else -1.0)
            canvas.polygon(canvas.surface(obj, self.look(base, light)), cam.side(side_x, y0, y1, z0, z1))
        canvas.polygon(canvas.surface(obj, self.look(base, self.front_light())), cam.front(z0, x0, x1, y0, y1))
        return side_x

    def disc(self, surface: int, plane: str, offset: float, u: float, v: float, r: float,
             rv: float | None = None) -> None:
        rv = r if rv is None else rv
        self.canvas.polygon(surface, self.cam.in_plane(plane, offset, u + r * np.cos(_CIRCLE),
                                                       v + rv * np.sin(_CIRCLE)))

    def ground_shadow(self, x0: float, x1: float, z0: float, z1: float, strength: float) -> None:
        shift = 0.0 if self.sun == 0 else -self.sun * 0.6
        x0, x1 = min(x0, x0 + shift), max(x1, x1 + shift)
        self.canvas.shadow(self.cam.flat(0.0, x0, x1, z0, z1), strength)


# ---- vehicles -------------------------------------------------------------------------------------------------

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
    r, belt = 0.32, 0.55 * height + 0.12
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


# ---- two-wheelers and people ----------------------------------------------------------------------------------

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
    us = x + head_r * cap * np.cos(_CIRCLE[:8])
    canvas.polygon(hair, cam.in_plane("z", z, us, hy + head_r * 0.3 + head_r * cap * np.sin(_CIRCLE[:8])))
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


# ---- street furniture -----------------------------------------------------------------------------------------

def pole(p: Painter, x: float, z: float, height: float, *, radius: float | None = None) -> int:
    radius = p.rng.uniform(0.08, 0.13) if radius is None else radius
    obj = p.canvas.new_object(LABEL["pole"], droppable=True)
    p.canvas.polygon(p.canvas.surface(obj, m.metal(p.rng)), p.cam.front(z, x - radius, x + radius, 0.0, height))
    return obj


def lamp_post(p: Painter, x: float, z: float, *, toward: int) -> None:
    """A street lamp whose arm reaches over the road (``toward`` = +1: to the right)."""
    rng, cam, canvas = p.rng, p.cam, p.canvas
    height = rng.uniform(5.5, 9.0)
    obj = pole(p, x, z, height)
    look = canvas.surface(obj, m.metal(rng))
    arm = rng.uniform(0.8, 2.2)
    x_end = x + toward * arm
    canvas.polygon(look, cam.front(z, min(x, x_end), max(x, x_end), height - 0.12, height))
    canvas.polygon(look, cam.front(z, x_end - 0.3, x_end + 0.3, height - 0.3, height))


def sign(p: Painter, x: float, z: float, y: float) -> None:
    rng, cam, canvas = p.rng, p.cam, p.canvas
    obj = canvas.new_object(LABEL["traffic sign"], droppable=True)
    kind = m.pick(rng, [(0.35, "round"), (0.2, "triangle"), (0.35, "rect"), (0.1, "diamond")])
    red, white, blue = m.jitter(rng, (195, 30, 35), 15), m.grey(rng, 205, 240, 3), m.jitter(rng, (30, 70, 165), 15)
    s = rng.uniform(0.3, 0.45)
    if kind == "round":
        outer = m.pick(rng, [(0.6, red), (0.4, blue)])
        p.disc(canvas.surface(obj, m.lamp(outer)), "z", z, x, y, s)
        if outer is red:
            p.disc(canvas.surface(obj, m.lamp(m.pick(rng, [(0.7, white), (0.3, blue)]))), "z", z, x, y, 0.7 * s)
    elif kind == "triangle":
        us, vs = [x - s, x + s, x], [y + 0.6 * s, y + 0.6 * s, y - 0.9 * s]
        canvas.polygon(canvas.surface(obj, m.lamp(red)), cam.in_plane("z", z, us, vs))
        canvas.polygon(canvas.surface(obj, m.lamp(white)),
                       cam.in_plane("z", z, [x - 0.6 * s, x + 0.6 * s, x], [y + 0.35 * s, y + 0.35 * s, y - 0.5 * s]))
    elif kind == "rect":
        color = m.pick(rng, [(0.45, blue), (0.35, white), (0.2, m.jitter(rng, (230, 190, 40), 15))])
        wide = rng.uniform(0.8, 1.6)
        canvas.polygon(canvas.surface(obj, m.lamp(color)), cam.front(z, x - wide * s, x + wide * s, y - s, y + s))
    else:
        us, vs = [x - s, x, x + s, x], [y, y + s, y, y - s]
        canvas.polygon(canvas.surface(obj, m.lamp(white)), cam.in_plane("z", z, us, vs))
        canvas.polygon(canvas.surface(obj, m.lamp(m.jitter(rng, (230, 190, 40), 12))),
                       cam.in_plane("z", z, [x - .6 * s, x, x + .6 * s, x], [y, y + .6 * s, y, y - .6 * s]))


def sign_post(p: Painter, x: float, z: float) -> None:
    height = p.rng.uniform(2.3, 3.4)
    pole(p, x, z, height, radius=p.rng.uniform(0.06, 0.09))
    sign(p, x, z - 0.05, height - 0.35)
    if p.rng.random() < 0.35:
        sign(p, x, z - 0.05, height - 1.1)


def traffic_light(p: Painter, x: float, z: float, y: float, *, lit: bool) -> None:
    """A signal head whose top is at height ``y``; ``lit`` ones face the camera and show one lamp."""
    rng, cam, canvas = p.rng, p.cam, p.canvas
    obj = canvas.new_object(LABEL["traffic light"], droppable=True)
    w, h = rng.uniform(0.38, 0.48), rng.uniform(0.95, 1.15)
    housing = m.pick(rng, [(0.75, m.grey(rng, 20, 50, 3)), (0.25, m.jitter(rng, (205, 165, 35), 15))])
    if rng.random() < 0.5:  # back plate with a white border
        canvas.polygon(canvas.surface(obj, m.lamp(m.grey(rng, 190, 235, 3))),
                       cam.front(z + 0.02, x - w * 0.9, x + w * 0.9, y - h - 0.08, y + 0.08))
    canvas.polygon(canvas.surface(obj, Look(color=housing, blotch=0.03, grain=3)), cam.front(z, x - w / 2, x + w / 2,
                                                                                             y - h, y))
    if not lit:
        return
    on = int(rng.integers(3))
    colors = [(235, 45, 35), (245, 170, 30), (60, 220, 120)]
    for k in range(3):
        c = colors[k] if k == on else m.scaled(colors[k], 0.25)
        p.disc(canvas.surface(obj, m.lamp(m.jitter(rng, c, 8))), "z", z - 0.01, x, y - h * (k + 0.5) / 3,
               0.36 * w)


def traffic_light_post(p: Painter, x: float, z: float, *, toward: int) -> None:
    """A signal post at the curb; sometimes a mast arm carrying heads over the road."""
    rng = p.rng
    if rng.random() < 0.4:
        height = rng.uniform(5.5, 6.5)
        obj = pole(p, x, z, height, radius=0.13)
        arm = rng.uniform(3.0, 7.0)
        x_end = x + toward * arm
        p.canvas.polygon(p.canvas.surface(obj, m.metal(rng)),
                         p.cam.front(z, min(x, x_end), max(x, x_end), height - 0.2, height))
        for k in range(int(rng.integers(1, 3))):
            traffic_light(p, x + toward * arm * (0.55 + 0.4 * k), z - 0.05, height - 0.2, lit=True)
    else:
        height = rng.uniform(2.8, 3.8)
        pole(p, x, z, height, radius=rng.uniform(0.07, 0.1))
        traffic_light(p, x, z - 0.05, height + 0.05, lit=rng.random() < 0.9)


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


def street_box(p: Painter, label: str, x: float, z: float, *, width: float, depth: float,
               height: float, look: Look) -> None:
    """A box-shaped void object: ``static`` (bins, cabinets, bollards) or ``dynamic`` (prams, carts)."""
    obj = p.canvas.new_object(LABEL[label], droppable=True)
    p.box(obj, look, x - width / 2, x + width / 2, 0.0, height, z, z + depth)


def building(p: Painter, x: float, z0: float, z1: float, height: float, *, outward: int,
             color: RGB, front_face: bool) -> None:
    """A facade along the street at X = ``x`` with windows, a ground floor and sometimes a roof.

    ``outward`` is the side's direction (-1 left, +1 right): the building extends away from the street.
    """
    rng, cam, canvas = p.rng, p.cam, p.canvas
    obj = canvas.new_object(LABEL["building"])
    base = m.facade(rng, color)
    depth = 14.0
    xa, xb = sorted((x, x + outward * depth))
    if rng.random() < 0.3:  # pitched roof rising away from the street
        ridge = rng.uniform(2.0, 4.5)
        pts = cam.project([x, x, x + outward * 4, x + outward * 4], [height, height, height + ridge, height + ridge],
                          [max(z0, cam.near), z1, z1, max(z0, cam.near)])
        canvas.polygon(canvas.surface(obj, m.roof(rng)), pts)
    canvas.polygon(canvas.surface(obj, p.look(base, p.side_light(-outward))), cam.side(x, 0.0, height, z0, z1))
    front = cam.front(z0, xa, xb, 0.0, height) if front_face else None
    canvas.polygon(canvas.surface(obj, p.look(base, p.front_light())), front)
    if rng.random() < 0.4:  # cornice
        band = canvas.surface(obj, p.look(base, 0.75))
        canvas.polygon(band, cam.side(x, height - 0.5, height, z0, z1))

    glass_looks = [canvas.surface(obj, m.glass(rng, p.sky)) for _ in range(int(rng.integers(1, 4)))]
    frame = canvas.surface(obj, Look(color=m.grey(rng, 180, 240, 3), grain=3)) if rng.random() < 0.5 else None
    floor_h, spacing = rng.uniform(2.9, 3.6), rng.uniform(2.4, 4.2)
    win_w, win_h = spacing * rng.uniform(0.35, 0.6), floor_h * rng.uniform(0.4, 0.62)
    ground_h = rng.uniform(3.2, 4.2)
    floors = np.arange(ground_h + 0.7, height - win_h - 0.4, floor_h)
    zc0 = max(z0, cam.near + 0.5)
    cols = np.arange(zc0 + spacing / 2 + rng.uniform(0, spacing / 2), z1 - spacing / 3, spacing)
    # Drawn before the pixel-size cut-off below, so the random stream (and the scene) is the same at every size.
    panes = rng.integers(len(glass_looks), size=(len(cols), len(floors))).tolist()
    # Columns run from near to far; once a window would be under a pixel wide, the facade stays plain.
    for zc, column in zip(cols.tolist(), panes):
        seen_w = cam.focal * abs(x) * (1 / (zc - win_w / 2) - 1 / (zc + win_w / 2))
        if cam.scale(zc) * win_h < 1.5 or seen_w < 0.35:
            break
        for y, pane in zip(floors.tolist(), column):
            if frame is not None:
                canvas.polygon(frame, cam.side(x, y - 0.12, y + win_h + 0.12, zc - win_w / 2 - 0.1,
                                               zc + win_w / 2 + 0.1))
            canvas.polygon(glass_looks[pane], cam.side(x, y, y + win_h, zc - win_w / 2, zc + win_w / 2))
    if front_face and z0 > cam.near:
        xs = np.arange(xa + spacing / 2, xb - spacing / 3, spacing)
        for xc in xs:
            for y in floors:
                canvas.polygon(glass_looks[0], cam.front(z0, xc - win_w / 2, xc + win_w / 2, y, y + win_h))
    shop = rng.random() < 0.5
    if shop:
        sign_band = canvas.surface(obj, m.lamp(m.clip_rgb(rng.uniform(20, 235, 3))))
        canvas.polygon(sign_band, cam.side(x, ground_h - 0.9, ground_h - 0.35, zc0 + 0.5, z1 - 0.5))
        glass = glass_looks[0]
        for zc in np.arange(zc0 + 1.5, z1 - 1.0, rng.uniform(3.0, 6.0)):
            if cam.scale(zc) < 2.0:
                break
            canvas.polygon(glass, cam.side(x, 0.3, ground_h - 1.1, zc, zc + 2.2))
    else:
        door = canvas.surface(obj, Look(color=m.jitter(rng, (80, 60, 45), 20), grain=4))
        zd = zc0 + rng.uniform(1.0, max(1.5, z1 - zc0 - 2.0))
        canvas.polygon(door, cam.side(x, 0.0, 2.3, zd, zd + 1.3))
