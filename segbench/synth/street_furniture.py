"""Poles, street lamps, traffic signs and lights, and box-shaped street objects (sizes in metres)."""
from __future__ import annotations

from segbench.synth import materials as m
from segbench.synth.canvas import Look
from segbench.synth.labels import LABEL
from segbench.synth.painter import Painter


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


def street_box(p: Painter, label: str, x: float, z: float, *, width: float, depth: float,
               height: float, look: Look) -> None:
    """A box-shaped void object: ``static`` (bins, cabinets, bollards) or ``dynamic`` (prams, carts)."""
    obj = p.canvas.new_object(LABEL[label], droppable=True)
    p.box(obj, look, x - width / 2, x + width / 2, 0.0, height, z, z + depth)
