"""Facades along the street, with windows, shops, doors and roofs (sizes in metres)."""
from __future__ import annotations

import numpy as np

from segbench.synth import materials as m
from segbench.synth.canvas import RGB, Look
from segbench.synth.labels import LABEL
from segbench.synth.painter import Painter

BUILDING_DEPTH = 14.0  # metres from the facade back, for the visible front face
# Windows smaller than this on screen are not drawn (pixels): the rest of the facade stays plain.
MIN_WINDOW_HEIGHT_PX, MIN_WINDOW_WIDTH_PX = 1.5, 0.35
MIN_SHOP_WINDOW_SCALE = 2.0  # pixels per metre below which shop windows stop


def building(p: Painter, x: float, z0: float, z1: float, height: float, *, outward: int,
             color: RGB, front_face: bool) -> None:
    """A facade along the street at X = ``x`` with windows, a ground floor and sometimes a roof.

    ``outward`` is the side's direction (-1 left, +1 right): the building extends away from the street.
    """
    rng, cam, canvas = p.rng, p.cam, p.canvas
    obj = canvas.new_object(LABEL["building"])
    base = m.facade(rng, color)
    depth = BUILDING_DEPTH
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
        if cam.scale(zc) * win_h < MIN_WINDOW_HEIGHT_PX or seen_w < MIN_WINDOW_WIDTH_PX:
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
            if cam.scale(zc) < MIN_SHOP_WINDOW_SCALE:
                break
            canvas.polygon(glass, cam.side(x, 0.3, ground_h - 1.1, zc, zc + 2.2))
    else:
        door = canvas.surface(obj, Look(color=m.jitter(rng, (80, 60, 45), 20), grain=4))
        zd = zc0 + rng.uniform(1.0, max(1.5, z1 - zc0 - 2.0))
        canvas.polygon(door, cam.side(x, 0.0, 2.3, zd, zd + 1.3))
