"""What lines the street on each side: sidewalks, buildings, parks, parked cars, and the street's far end."""
from __future__ import annotations

import numpy as np

from segbench.synth import materials as m
from segbench.synth import objects as o
from segbench.synth.canvas import Look
from segbench.synth.labels import LABEL
from segbench.synth.street import FAR, DepthQueue, Street


def roadside(p: o.Painter, s: Street, side: int, style: str, back: DepthQueue, front: DepthQueue) -> None:
    rng, cam = p.rng, p.cam
    sidewalk = s.sidewalk[(side + 1) // 2]
    verge = rng.uniform(1.0, 4.0) if (style != "city" or rng.random() < 0.25) else 0.0
    if verge:
        obj = p.canvas.new_object(LABEL["terrain"])
        x0, x1 = sorted((s.out(side, sidewalk), s.out(side, sidewalk + verge)))
        p.canvas.polygon(p.canvas.surface(obj, m.grass(rng)), cam.flat(0.0, x0, x1, cam.near, FAR))
    line = sidewalk + verge  # where buildings, walls and fences stand
    x_line = s.out(side, line)

    # Buildings (city, mixed) or a park (trees behind a fence, wall or hedge).
    if style in ("city", "mixed"):
        z = cam.near - rng.uniform(0, 20)
        heights = []
        while z < s.end - 2:
            length = rng.uniform(8, 30)
            gap = style == "mixed" and rng.random() < 0.45 or rng.random() < 0.08
            if gap:
                _gap(p, x_line, z, min(z + length, s.end), side, back, front)
            else:
                height = rng.uniform(7, 26) if rng.random() < 0.85 else rng.uniform(4, 7)
                setback = rng.uniform(0, 1.5) if rng.random() < 0.3 else 0.0
                heights.append(height)
                back.add(z, o.building, p, s.out(side, line + setback), z, min(z + length, s.end), height,
                         outward=side, color=m.facade_color(rng), front_face=True)
            z += length
        if p.sun == -side and heights:  # the facades cast a shadow across the street
            reach = float(np.mean(heights)) * rng.uniform(0.3, 0.9)
            x0, x1 = sorted((x_line, x_line - side * reach))
            p.canvas.shadow(cam.flat(0.0, x0, x1, cam.near, s.end), p.shadow)
        if rng.random() < 0.2:
            hedge_z = rng.uniform(2, 30)
            front.add(hedge_z, o.hedge, p, s.out(side, line - 0.1), hedge_z, hedge_z + rng.uniform(5, 25),
                      outward=side)
    else:
        _park(p, x_line, side, s, back, front)

    # Along the curb: lamps, street trees, signs; on the sidewalk: people, bicycles, street furniture.
    curb_x = s.out(side, rng.uniform(0.35, 0.7))
    if rng.random() < 0.7:
        spacing = rng.uniform(22, 40)
        for z in np.arange(rng.uniform(3, spacing), min(s.end, 70), spacing):
            front.add(z, o.lamp_post, p, curb_x, z, toward=-side)
    if rng.random() < 0.5:
        spacing = rng.uniform(7, 14)
        x = s.out(side, min(sidewalk * 0.6, sidewalk - 0.8) if not verge else sidewalk + verge / 2)
        size = rng.uniform(0.8, 1.3)
        for z in np.arange(rng.uniform(2, spacing), min(s.end, 90), spacing):
            front.add(z, o.tree, p, x + rng.normal(0, 0.2), z, size * rng.uniform(0.85, 1.15))
    for _ in range(int(rng.poisson(0.9))):
        z = rng.uniform(6, 50)
        front.add(z, o.sign_post, p, s.out(side, rng.uniform(0.3, 0.8)), z)
    if rng.random() < 0.7:
        for _ in range(int(rng.integers(1, 8))):
            z = rng.uniform(3, 30)
            front.add(z, o.person, p, s.out(side, rng.uniform(0.4, max(0.5, sidewalk - 0.3))), z)
    if rng.random() < 0.25:
        z = rng.uniform(4, 28)
        for k in range(int(rng.integers(1, 5))):
            zb = z + 0.7 * k
            front.add(zb, o.two_wheeler, p, "bicycle", "z", zb, s.out(side, sidewalk - 0.9),
                      facing=int(rng.choice([-1, 1])), rider=False)
    if rng.random() < 0.3:
        z = rng.uniform(4, 30)
        front.add(z, o.two_wheeler, p, "motorcycle", "z", z, s.out(side, rng.uniform(0.6, 1.2)),
                  facing=int(rng.choice([-1, 1])), rider=False)
    if verge and style == "city" and rng.random() < 0.8:  # front gardens: a low wall or fence before the grass
        z0 = rng.uniform(0, 30)
        z1 = z0 + rng.uniform(6, 30)
        barrier = o.wall if rng.random() < 0.5 else o.fence
        front.add(z1, barrier, p, s.out(side, sidewalk), z0, z1, outward=side)
    for _ in range(int(rng.poisson(1.0))):
        z = rng.uniform(4, 45)
        kind = m.pick(rng, [(0.75, "static"), (0.25, "dynamic")])
        w, d, h = (rng.uniform(0.4, 1.0), rng.uniform(0.4, 0.8), rng.uniform(0.7, 1.4))
        look = m.concrete(rng) if rng.random() < 0.5 else m.metal(rng)
        front.add(z, o.street_box, p, kind, s.out(side, rng.uniform(0.5, max(0.6, sidewalk - 0.4))), z,
                  width=w, depth=d, height=h, look=look)


def _gap(p: o.Painter, x_line: float, z0: float, z1: float, side: int, back: DepthQueue,
         front: DepthQueue) -> None:
    """Between buildings: a wall or fence on the building line, trees and a building further back."""
    rng = p.rng
    if rng.random() < 0.6:
        back.add(z0, o.building, p, x_line + side * rng.uniform(10, 30), z0, z1, rng.uniform(8, 24),
                 outward=side, color=m.facade_color(rng), front_face=False)
    for _ in range(int(rng.integers(0, 4))):
        z = rng.uniform(z0, z1)
        back.add(z - 0.01, o.tree, p, x_line + side * rng.uniform(2, 10), z, rng.uniform(0.9, 1.6))
    choice = m.pick(rng, [(0.4, "wall"), (0.4, "fence"), (0.2, "none")])
    if choice == "wall":
        front.add(z1, o.wall, p, x_line, z0, z1, outward=side)
    elif choice == "fence":
        front.add(z1, o.fence, p, x_line, z0, z1, outward=side)


def _park(p: o.Painter, x_line: float, side: int, s: Street, back: DepthQueue, front: DepthQueue) -> None:
    rng, cam = p.rng, p.cam
    obj = p.canvas.new_object(LABEL["terrain"])
    x0, x1 = sorted((x_line, side * 400.0))
    p.canvas.polygon(p.canvas.surface(obj, m.grass(rng)), cam.flat(0.0, x0, x1, cam.near, FAR))
    if rng.random() < 0.5:
        z = rng.uniform(30, 120)
        back.add(400.0, o.building, p, x_line + side * rng.uniform(25, 60), z, z + rng.uniform(20, 60),
                 rng.uniform(10, 30), outward=side, color=m.facade_color(rng), front_face=True)
    for _ in range(int(rng.integers(6, 20))):
        z = rng.uniform(cam.near + 2, min(s.end + 30, 150))
        back.add(z, o.tree, p, x_line + side * rng.uniform(1.5, 25), z, rng.uniform(0.9, 1.8))
    edge = m.pick(rng, [(0.35, "fence"), (0.25, "wall"), (0.2, "hedge"), (0.1, "guard rail"), (0.1, "none")])
    z0 = cam.near - 5
    z1 = rng.uniform(30, s.end)
    if edge == "fence":
        front.add(z1, o.fence, p, x_line, z0, z1, outward=side)
    elif edge == "wall":
        front.add(z1, o.wall, p, x_line, z0, z1, outward=side)
    elif edge == "hedge":
        front.add(z1, o.hedge, p, x_line, z0, z1, outward=side)
    elif edge == "guard rail":
        front.add(z1, o.guard_rail, p, s.edge(side) + side * 0.2, z0, z1)


def street_end(p: o.Painter, s: Street, back: DepthQueue, road: Look) -> None:
    """Where the street ends: a cross street with a row of buildings across, or an open view."""
    rng, cam, canvas = p.rng, p.cam, p.canvas
    if rng.random() < 0.55:
        obj = canvas.new_object(LABEL["road"])
        canvas.polygon(canvas.surface(obj, road), cam.flat(0.0, -300, 300, s.end - 12, s.end))
        sw = canvas.new_object(LABEL["sidewalk"])
        walk = canvas.surface(sw, m.paving(rng, cam.width / 256))
        canvas.polygon(walk, cam.flat(0.0, -300, 300, s.end, s.end + 3))
        x = -150.0
        while x < 150.0:
            w = rng.uniform(10, 30)
            back.add(s.end + 3.0, _cross_building, p, x, x + w, s.end + 3, rng.uniform(8, 25))
            x += w
    if rng.random() < 0.04:  # a bridge over the street (void)
        z = rng.uniform(30, min(120, s.end))
        obj = canvas.new_object(LABEL["bridge"])
        back.add(s.end + 400, lambda: canvas.polygon(canvas.surface(obj, m.concrete(rng)),
                                                     cam.front(z, -300, 300, 5.0, rng.uniform(6.5, 8.0))))


def _cross_building(p: o.Painter, x0: float, x1: float, z: float, height: float) -> None:
    rng, cam, canvas = p.rng, p.cam, p.canvas
    obj = canvas.new_object(LABEL["building"])
    canvas.polygon(canvas.surface(obj, p.look(m.facade(rng, m.facade_color(rng)), p.front_light())),
                   cam.front(z, x0, x1, 0.0, height))
    glass = canvas.surface(obj, m.glass(rng, p.sky))
    spacing, win, floor = rng.uniform(2.5, 4.0), rng.uniform(0.8, 1.4), rng.uniform(3.0, 3.5)
    if cam.scale(z) * win < 1.5:  # (after every random draw: the scene must not depend on the resolution)
        return
    for y in np.arange(3.5, height - 2.0, floor):
        for x in np.arange(x0 + spacing / 2, x1 - 1.0, spacing):
            canvas.polygon(glass, cam.front(z, x, x + win, y, y + 1.5))
