"""Traffic on the lanes, people and riders, and the ego vehicle's bonnet and the image borders."""
from __future__ import annotations

import numpy as np

from segbench.synth import materials as m
from segbench.synth import objects as o
from segbench.synth.canvas import Look
from segbench.synth.labels import LABEL
from segbench.synth.street import DepthQueue, Street


def traffic(p: o.Painter, s: Street, front: DepthQueue) -> None:
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


def _vehicle(p: o.Painter, front: DepthQueue, kind: str, xc: float, z: float, *, facing: int) -> float:
    """Queue a vehicle whose near end is at ``z``; returns (an estimate of) its far end."""
    if kind == "motorcycle":
        front.add(z, o.two_wheeler, p, "motorcycle", "x", xc, z + 0.8, facing=facing, rider=True)
        return z + 2.0
    lengths = {"car": 5.0, "truck": 11.0, "bus": 18.0, "caravan": 6.5}
    fn = {"car": o.car, "truck": o.truck, "bus": o.bus, "caravan": o.caravan}[kind]
    kwargs = {} if kind == "caravan" else {"facing": facing}
    front.add(z, fn, p, xc, z, **kwargs)
    return z + lengths[kind]


def ego_and_borders(p: o.Painter) -> None:
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
