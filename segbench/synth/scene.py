"""One random street scene: camera, street layout, roadside, traffic and people, drawn far to near."""
from __future__ import annotations

import attrs
import numpy as np

from segbench.synth import materials as m
from segbench.synth import objects as o
from segbench.synth.camera import Camera
from segbench.synth.canvas import Canvas, Look, Rendering
from segbench.synth.labels import LABEL
from segbench.synth.street import FAR, DepthQueue, Street, random_street
from segbench.synth.street_sides import roadside, street_end
from segbench.synth.traffic import ego_and_borders, traffic

# (probability, style) of what lines each side of the street: buildings, buildings and green, or green.
ROADSIDE_STYLES = [(0.58, "city"), (0.2, "mixed"), (0.22, "park")]


def render_scene(rng: np.random.Generator, height: int, width: int) -> Rendering:
    """Draw one scene of ``height`` x ``width`` pixels; every random choice comes from ``rng``.

    The scene itself (geometry and colours) depends on ``rng`` only, so a seed shows the same street at any
    resolution; the noise textures are resolution-dependent.
    """
    cam = Camera(width=width, height=height, focal=width * rng.uniform(1.05, 1.3),
                 cx=width * (0.5 + rng.uniform(-0.07, 0.07)), cy=height * rng.uniform(0.36, 0.48),
                 elevation=rng.uniform(1.25, 1.6))
    street = random_street(rng)
    zenith, horizon, clear = m.sky_colors(rng)
    sunny = clear and rng.random() < 0.8 or (not clear and rng.random() < 0.15)
    sun = int(rng.choice([-1, 1])) if sunny else 0
    painter = o.Painter(canvas=Canvas(height, width), cam=cam, rng=rng, sky=horizon, sun=sun,
                        shadow=rng.uniform(0.35, 0.6) if sun else 0.15)

    _sky(painter, zenith, horizon, clear)
    _distance(painter, horizon)
    road = _ground(painter, street)
    back, front = DepthQueue(), DepthQueue()
    styles = {side: m.pick(rng, ROADSIDE_STYLES) for side in (-1, 1)}
    for side in (-1, 1):
        roadside(painter, street, side, styles[side], back, front)
    street_end(painter, street, back, road)
    traffic(painter, street, front)
    back.draw()
    front.draw()
    ego_and_borders(painter)
    brightness = rng.uniform(0.7, 1.15) if sun else rng.uniform(0.65, 1.05)
    cast = tuple(np.clip(1.0 + rng.normal(0, 0.05, 3), 0.85, 1.15).tolist())
    return painter.canvas.render(rng, brightness=brightness, cast=cast, blur=min(0.3 * width / 256, 1.0),
                                 sensor_noise=rng.uniform(1.0, 3.0))


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
        canvas.polygon(canvas.surface(canvas.new_object(LABEL[label]), look), cam.flat(0.0, x0, x1, near, FAR))
    for side, width in zip((-1, 1), s.sidewalk):
        obj = canvas.new_object(LABEL["sidewalk"])
        x0, x1 = sorted((s.out(side, 0.0), s.out(side, width)))
        look = m.paving(rng, cam.width / 256)
        canvas.polygon(canvas.surface(obj, look), cam.flat(0.0, x0, x1, near, FAR))
        curb = canvas.surface(obj, attrs.evolve(look, color=m.scaled(look.color, rng.uniform(1.05, 1.3)), pattern=""))
        x0, x1 = sorted((s.out(side, 0.0), s.out(side, 0.22)))
        canvas.polygon(curb, cam.flat(0.0, x0, x1, near, FAR))

    road_obj = canvas.new_object(LABEL["road"])
    road = m.asphalt(rng)
    canvas.polygon(canvas.surface(road_obj, road), cam.flat(0.0, s.left, s.right, near, FAR))
    for side, width in zip((-1, 1), s.parking):
        if width and rng.random() < 0.35:  # a paved parking strip (a void class in the benchmark)
            x0, x1 = sorted((s.edge(side), s.edge(side) - side * width))
            obj = canvas.new_object(LABEL["parking"])
            canvas.polygon(canvas.surface(obj, m.paving(rng, cam.width / 256)), cam.flat(0.0, x0, x1, near, FAR))
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
            canvas.polygon(paint, cam.flat(0.0, x - 0.07, x + 0.07, near, FAR))
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
