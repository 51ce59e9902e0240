"""What every street object draws with: the canvas, the camera, the random stream and the light."""
from __future__ import annotations

import math

import attrs
import numpy as np

from segbench.synth import materials as m
from segbench.synth.camera import Camera
from segbench.synth.canvas import RGB, Canvas, Look


CIRCLE_POINTS = 14  # corners of the polygon that stands in for a circle (wheels, heads)
CIRCLE = np.linspace(0.0, 2.0 * math.pi, CIRCLE_POINTS, endpoint=False)


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
        self.canvas.polygon(surface, self.cam.in_plane(plane, offset, u + r * np.cos(CIRCLE),
                                                       v + rv * np.sin(CIRCLE)))

    def ground_shadow(self, x0: float, x1: float, z0: float, z1: float, strength: float) -> None:
        shift = 0.0 if self.sun == 0 else -self.sun * 0.6
        x0, x1 = min(x0, x0 + shift), max(x1, x1 + shift)
        self.canvas.shadow(self.cam.flat(0.0, x0, x1, z0, z1), strength)
