"""One random street scene: camera, street layout, roadside, traffic and people, drawn far to near."""
from __future__ import annotations

import functools

import attrs
import numpy as np

from segbench.synth import materials as m
from segbench.synth import objects as o
from segbench.synth.camera import Camera
from segbench.synth.canvas import Canvas, Look, Rendering
from segbench.synth.labels import LABEL

_FAR = 2000.0  # metres: the ground plane's far edge, beyond the horizon's last visible row


@attrs.frozen
class Street:
    left: float  # X of the road's left edge (negative)
    right: float
    lane_width: float
    lanes: int
    oncoming: int  # the first `oncoming` lanes from the left carry traffic towards the camera
    parking: tuple[float, float]  # parking strip width inside the road on the left / right (0: none)
    sidewalk: tuple[float, float]
    end: float  # depth where the street meets a cross street (or fades out)

    def edge(self, side: int) -> float:
        return self.left if side < 0 else self.right

    def out(self, side: int, distance: float) -> float:
        """X at ``distance`` metres beyond the road edge on ``side``."""
        return self.edge(side) + side * distance

    def lane_center(self, k: int) -> float:
        return self.left + self.parking[0] + (k + 0.5) * self.lane_width


class _DepthQueue:
    """Deferred drawings, painted far to near (ties keep insertion order)."""

    def __init__(self):
        self._items: list[tuple[float, int, functools.partial]] = []

    def add(self, depth: float, fn, /, *args, **kwargs) -> None:
        self._items.append((depth, len(self._items), functools.partial(fn, *args, **kwargs)))

    def draw(self) -> None:
        for _, _, fn in sorted(self._items, key=lambda item: (-item[0], item[1])):
            fn()


def render_scene(rng: np.random.Generator, height: int, width: int) -> Rendering:
    """Draw one scene of ``height`` x ``width`` pixels; every random choice comes from ``rng``.

    The scene itself (geometry and colours) depends on ``rng`` only, so a seed shows the same street at any
    resolution; the noise textures are resolution-dependent.
    """
    cam = Camera(width=width, height=height, focal=width * rng.uniform(1.05, 1.3),
                 cx=width * (0.5 + rng.uniform(-0.07, 0.07)), cy=height * rng.uniform(0.36, 0.48),
                 elevation=rng.uniform(1.25, 1.6))
    street = _street(rng)
    zenith, horizon, clear = m.sky_colors(rng)
    sunny = clear and rng.random() < 0.8 or (not clear and rng.random() < 0.15)
    sun = int(rng.choice([-1, 1])) if sunny else 0
    painter = o.Painter(canvas=Canvas(height, width), cam=cam, rng=rng, sky=horizon, sun=sun,
                        shadow=rng.uniform(0.35, 0.6) if sun else 0.15)

    _sky(painter, zenith, horizon, clear)
    _distance(painter, horizon)
    road = _ground(painter, street)
    back, front = _DepthQueue(), _DepthQueue()
    styles = {side: m.pick(rng, [(0.58, "city"), (0.2, "mixed"), (0.22, "park")]) for side in (-1, 1)}
    for side in (-1, 1):
        _roadside(painter, street, side, styles[side], back, front)
    _street_end(painter, street, back, road)
    _traffic(painter, street, front)
    back.draw()
    front.draw()
    _ego_and_borders(painter)
    brightness = rng.uniform(0.7, 1.15) if sun else rng.uniform(0.65, 1.05)
    cast = tuple(np.clip(1.0 + rng.normal(0, 0.05, 3), 0.85, 1.15).tolist())
    return painter.canvas.render(rng, brightness=brightness, cast=cast, blur=min(0.3 * width / 256, 1.0),
                                 sensor_noise=rng.uniform(1.0, 3.0))


def _street(rng: np.random.Generator) -> Street:
    lanes = int(m.pick(rng, [(0.2, 1), (0.45, 2), (0.2, 3), (0.15, 4)]))
    lane_width = rng.uniform(2.9, 3.6)
    oncoming = lanes // 2
    parking = tuple(float(rng.uniform(2.0, 2.4)) if rng.random() < 0.45 else 0.0 for _ in range(2))
    own_lane = int(rng.integers(oncoming, lanes))
    left = -(parking[0] + (own_lane + 0.5) * lane_width) + rng.uniform(-0.5, 0.5)
    right = left + parking[0] + lanes * lane_width + parking[1]
    return Street(left=left, right=right, lane_width=lane_width, lanes=lanes, oncoming=oncoming, parking=parking,
                  sidewalk=(float(rng.uniform(1.8, 5.0)), float(rng.uniform(1.8, 5.0))),
                  end=float(rng.uniform(50.0, 220.0)))


def _sky(p: o.Painter, zenith, horizon, clear: bool) -> None:
    rng, cam, canvas = p.rng, p.cam, p.canvas
    obj = canvas.new_object(LABEL["sky"])
    to_bottom = cam.height / max(cam.cy, 1.0)
    gradient = tuple(((np.asarray(horizon) - np.asarray(zenith)) * to_bottom).tolist())
    canvas.rectangle(canvas.surface(obj, Look(color=zenith, gradient=gradient, blotch=0.04, grain=2.0)),
                     (0, 0, cam.width, cam.height))
    if clear and rng.random() < 0.7:
        for _ in range(int(rng.integers(1, 7))):
            cloud = canvas.surface(obj, Look(color=m.grey(rng, 200, 245, 3), blotch=0.12, leaf=0.08, grain=3))
            u, v = rng.uniform(0, cam.width), rng.uniform(-0.1, 0.8) * cam.cy
            size = rng.uniform(0.04, 0.15) * cam.width
            for _ in range(int(rng.integers(3, 8))):
                du, dv = rng.normal(0, size * 0.6), rng.normal(0, size * 0.15)
                ru, rv = size * rng.uniform(0.3, 0.7), size * rng.uniform(0.12, 0.3)
                canvas.ellipse(cloud, (u + du - ru, v + dv - rv, u + du + ru, v + dv + rv))


def _distance(p: o.Painter, horizon) -> None:
    """Hazy far buildings and tree lines sitting on the horizon."""
    rng, cam, canvas = p.rng, p.cam, p.canvas
    x = -400.0
    while x < 400.0:
        w = rng.uniform(15, 60)
        z = rng.uniform(350, 700)
        if rng.random() < 0.65:
            obj = canvas.new_object(LABEL["building"])
            color = m.mix(m.facade_color(rng), horizon, rng.uniform(0.15, 0.35))
            canvas.polygon(canvas.surface(obj, Look(color=color, grain=3)),
                           cam.front(z, x, x + w, 0.0, rng.uniform(8, 45)))
        elif rng.random() < 0.6:
            obj = canvas.new_object(LABEL["vegetation"])
            color = m.mix(m.foliage_color(rng), horizon, rng.uniform(0.2, 0.45))
            n = max(3, int(w / 4))
            us = np.concatenate([np.linspace(x, x + w, n), [x + w, x]])
            vs = np.concatenate([rng.uniform(6, 16, n), [0.0, 0.0]])
            canvas.polygon(canvas.surface(obj, Look(color=color, leaf=0.15, grain=6)), cam.in_plane("z", z, us, vs))
        x += w


def _ground(p: o.Painter, s: Street) -> Look:
    """Outer ground, sidewalks, road with lane marks, crossings and rails, and cast shadows; returns the road look."""
    rng, cam, canvas = p.rng, p.cam, p.canvas
    near = cam.near
    for side in (-1, 1):
        kind = m.pick(rng, [(0.6, "paving"), (0.3, "grass"), (0.1, "dirt")])
        label = {"paving": "sidewalk", "grass": "terrain", "dirt": "ground"}[kind]
        if kind == "paving":
            look = m.paving(rng, cam.width / 256)
        else:
            look = m.grass(rng) if kind == "grass" else m.dirt(rng)
        x0, x1 = sorted((s.out(side, 0.0), side * 400.0))
        canvas.polygon(canvas.surface(canvas.new_object(LABEL[label]), look), cam.flat(0.0, x0, x1, near, _FAR))
    for side, width in zip((-1, 1), s.sidewalk):
        obj = canvas.new_object(LABEL["sidewalk"])
        x0, x1 = sorted((s.out(side, 0.0), s.out(side, width)))
        look = m.paving(rng, cam.width / 256)
        canvas.polygon(canvas.surface(obj, look), cam.flat(0.0, x0, x1, near, _FAR))
        curb = canvas.surface(obj, attrs.evolve(look, color=m.scaled(look.color, rng.uniform(1.05, 1.3)), pattern=""))
        x0, x1 = sorted((s.out(side, 0.0), s.out(side, 0.22)))
        canvas.polygon(curb, cam.flat(0.0, x0, x1, near, _FAR))

    road_obj = canvas.new_object(LABEL["road"])
    road = m.asphalt(rng)
    canvas.polygon(canvas.surface(road_obj, road), cam.flat(0.0, s.left, s.right, near, _FAR))
    for side, width in zip((-1, 1), s.parking):
        if width and rng.random() < 0.35:  # a paved parking strip (a void class in the benchmark)
            x0, x1 = sorted((s.edge(side), s.edge(side) - side * width))
            obj = canvas.new_object(LABEL["parking"])
            canvas.polygon(canvas.surface(obj, m.paving(rng, cam.width / 256)), cam.flat(0.0, x0, x1, near, _FAR))
    paint = canvas.surface(road_obj, m.lane_paint(rng, road))
    marks = []
    for k in range(1, s.lanes):
        x = s.left + s.parking[0] + k * s.lane_width
        if k == s.oncoming and rng.random() < 0.5:
            marks.append((x, 0.0, 1.0))  # solid centre line
        else:
            marks.append((x, rng.uniform(0, 9), rng.uniform(0.3, 0.5)))
    if rng.random() < 0.5:
        for side in (-1, 1):
            marks.append((s.edge(side) - side * (s.parking[(side + 1) // 2] + 0.3), 0.0, 1.0))
    for x, phase, duty in marks:
        if duty >= 1.0:
            canvas.polygon(paint, cam.flat(0.0, x - 0.07, x + 0.07, near, _FAR))
            continue
        period = 9.0
        for z in np.arange(2.0 + phase, min(s.end, 150.0), period):
            canvas.polygon(paint, cam.flat(0.0, x - 0.07, x + 0.07, z, z + period * duty))
    if rng.random() < 0.25:  # zebra crossing
        z = rng.uniform(8, 30)
        for x in np.arange(s.left + 0.3, s.right - 0.5, 1.0):
            canvas.polygon(paint, cam.flat(0.0, x, x + 0.5, z, z + 3.0))
    if rng.random() < 0.12:  # a patch of bare ground on one side
        side = int(rng.choice([-1, 1]))
        z = rng.uniform(5, 40)
        x0, x1 = sorted((s.out(side, s.sidewalk[(side + 1) // 2]), s.out(side, s.sidewalk[(side + 1) // 2] + 8)))
        canvas.polygon(canvas.surface(canvas.new_object(LABEL["ground"]), m.dirt(rng)), cam.flat(0.0, x0, x1, z,
                                                                                               z + rng.uniform(4, 15)))
    return road


def _roadside(p: o.Painter, s: Street, side: int, style: str, back: _DepthQueue, front: _DepthQueue) -> None:
    rng, cam = p.rng, p.cam
    sidewalk = s.sidewalk[(side + 1) // 2]
    verge = rng.uniform(1.0, 4.0) if (style != "city" or rng.random() < 0.25) else 0.0
    if verge:
        obj = p.canvas.new_object(LABEL["terrain"])
        x0, x1 = sorted((s.out(side, sidewalk), s.out(side, sidewalk + verge)))
        p.canvas.polygon(p.canvas.surface(obj, m.grass(rng)), cam.flat(0.0, x0, x1, cam.near, _FAR))
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


def _gap(p: o.Painter, x_line: float, z0: float, z1: float, side: int, back: _DepthQueue,
         front: _DepthQueue) -> None:
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


def _park(p: o.Painter, x_line: float, side: int, s: Street, back: _DepthQueue, front: _DepthQueue) -> None:
    rng, cam = p.rng, p.cam
    obj = p.canvas.new_object(LABEL["terrain"])
    x0, x1 = sorted((x_line, side * 400.0))
    p.canvas.polygon(p.canvas.surface(obj, m.grass(rng)), cam.flat(0.0, x0, x1, cam.near, _FAR))
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


def _street_end(p: o.Painter, s: Street, back: _DepthQueue, road: Look) -> None:
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


def _traffic(p: o.Painter, s: Street, front: _DepthQueue) -> None:
    """Parked cars along the curbs, vehicles in the lanes, a tram now and then, cyclists and crossings."""
    rng = p.rng
    for side, width in zip((-1, 1), s.parking):
        if not width and rng.random() < 0.75:
            continue
        xc = s.edge(side) - side * 1.15
        z = rng.uniform(0, 12)
        while z < min(s.end, 80):
            if rng.random() < 0.65:
                kind = m.pick(rng, [(0.97, "car"), (0.02, "truck"), (0.01, "caravan")])
                z_far = _vehicle(p, front, kind, xc, z, facing=int(rng.choice([-1, 1])))
                z = z_far + rng.uniform(0.6, 3.0)
            else:
                z += rng.uniform(5, 15)
    tram_lane = int(rng.integers(s.lanes)) if rng.random() < 0.13 else -1
    own_lane = int(np.argmin([abs(s.lane_center(k)) for k in range(s.lanes)]))
    for k in range(s.lanes):
        facing = -1 if k < s.oncoming else 1
        xc = s.lane_center(k) + rng.normal(0, 0.2)
        if k == tram_lane:
            z0 = rng.uniform(10 if k == own_lane else 5, 35)
            obj = p.canvas.new_object(LABEL["rail track"])
            look = p.canvas.surface(obj, Look(color=m.grey(p.rng, 70, 120), blotch=0.1, leaf=0.1, grain=8,
                                              ground=True))
            p.canvas.polygon(look, p.cam.flat(0.0, xc - 1.0, xc + 1.0, p.cam.near, 200.0))
            front.add(z0, o.tram, p, xc, z0)
            continue
        z = rng.uniform(10, 25) if k == own_lane else rng.uniform(5, 20)
        while z < min(s.end, 90):
            if rng.random() < 0.25:
                kind = m.pick(rng, [(0.67, "car"), (0.08, "truck"), (0.1, "bus"), (0.15, "motorcycle")])
                z = _vehicle(p, front, kind, xc, z, facing=facing) + rng.uniform(4, 20)
            else:
                z += rng.uniform(8, 25)
    if rng.random() < 0.22:  # cyclists near the right edge, going our way
        for _ in range(int(rng.integers(1, 3))):
            z = rng.uniform(5, 30)
            front.add(z, o.two_wheeler, p, "bicycle", "x", s.right - s.parking[1] - rng.uniform(0.5, 1.2), z,
                      facing=1, rider=True)
    if rng.random() < 0.12:  # a cyclist crossing
        z = rng.uniform(7, 30)
        front.add(z, o.two_wheeler, p, "bicycle", "z", z, rng.uniform(s.left, s.right),
                  facing=int(rng.choice([-1, 1])), rider=True)
    if rng.random() < 0.12:  # pedestrians crossing
        z = rng.uniform(6, 30)
        for _ in range(int(rng.integers(1, 5))):
            zp = z + rng.uniform(0, 2)
            front.add(zp, o.person, p, rng.uniform(s.left, s.right), zp)
    if rng.random() < 0.5:  # signals at a junction ahead
        z = rng.uniform(10, 45)
        for side in (-1, 1):
            if rng.random() < 0.8:
                front.add(z, o.traffic_light_post, p, s.out(side, rng.uniform(0.3, 0.8)), z, toward=-side)


def _vehicle(p: o.Painter, front: _DepthQueue, kind: str, xc: float, z: float, *, facing: int) -> float:
    """Queue a vehicle whose near end is at ``z``; returns (an estimate of) its far end."""
    if kind == "motorcycle":
        front.add(z, o.two_wheeler, p, "motorcycle", "x", xc, z + 0.8, facing=facing, rider=True)
        return z + 2.0
    lengths = {"car": 5.0, "truck": 11.0, "bus": 18.0, "caravan": 6.5}
    fn = {"car": o.car, "truck": o.truck, "bus": o.bus, "caravan": o.caravan}[kind]
    kwargs = {} if kind == "caravan" else {"facing": facing}
    front.add(z, fn, p, xc, z, **kwargs)
    return z + lengths[kind]


def _ego_and_borders(p: o.Painter) -> None:
    """The recording car's bonnet at the bottom and the rectification border / out-of-ROI margins (all void)."""
    rng, canvas = p.rng, p.canvas
    w, h = canvas.width, canvas.height
    if rng.random() < 0.85:
        obj = canvas.new_object(LABEL["ego vehicle"])
        top, rise = h * (1 - rng.uniform(0.05, 0.12)), h * rng.uniform(0.01, 0.04)
        us = np.linspace(-0.05 * w, 1.05 * w, 24)
        vs = top + rise * ((us - w / 2) / (w / 2)) ** 2
        color = m.pick(rng, [(0.5, m.grey(rng, 15, 45, 2)), (0.5, m.paint_color(rng))])
        look = Look(color=color, gradient=tuple((np.asarray(p.sky) * 0.3).tolist()), blotch=0.1, grain=3)
        canvas.polygon(canvas.surface(obj, look), list(zip(us, vs)) + [(1.05 * w, h + 1), (-0.05 * w, h + 1)])
    if rng.random() < 0.5:
        obj = canvas.new_object(LABEL["rectification border"])
        look = canvas.surface(obj, Look(color=m.grey(rng, 0, 30, 2), grain=2))
        a, b = rng.uniform(0.01, 0.04) * w, rng.uniform(0.05, 0.2) * h
        canvas.polygon(look, [(0, h), (0, h - b), (a, h)])
        canvas.polygon(look, [(w, h), (w, h - b), (w - a, h)])
    if rng.random() < 0.5:
        obj = canvas.new_object(LABEL["out of roi"])
        look = canvas.surface(obj, Look(color=m.grey(rng, 0, 30, 2), grain=2))
        margin = max(1.0, 0.006 * w)
        canvas.rectangle(look, (0, 0, w, margin - 1))
        canvas.rectangle(look, (0, 0, margin - 1, h))
        canvas.rectangle(look, (w - margin, 0, w, h))
