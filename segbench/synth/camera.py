"""A pinhole camera looking down the street, and world-space faces projected to image polygons.

World coordinates in metres: X to the right, Y up (the road is Y = 0), Z forward along the street. Every face
the scenes draw is axis-aligned, so clipping at the near plane is a clamp of its Z range.
"""
from __future__ import annotations

import math

import attrs
import numpy as np

Polygon = list[tuple[float, float]]

_LIMIT = 1.0e6  # pixels: points just beyond the near plane land far outside; PIL rasterises in int32


def _clamp(value: float) -> float:
    return -_LIMIT if value < -_LIMIT else (_LIMIT if value > _LIMIT else value)


@attrs.frozen
class Camera:
    width: int
    height: int
    focal: float  # pixels
    cx: float  # vanishing point, pixels
    cy: float  # horizon row, pixels
    elevation: float  # camera height above the road, metres
    near: float = 0.8  # metres

    def project(self, x, y, z) -> Polygon:
        """Image points of world points (numbers or sequences, broadcast together)."""
        n = max(len(v) if hasattr(v, "__len__") else 1 for v in (x, y, z))
        xs, ys, zs = (v if hasattr(v, "__len__") else (v,) * n for v in (x, y, z))
        f, cx, cy, e = self.focal, self.cx, self.cy, self.elevation
        return [(_clamp(cx + f * a / c), _clamp(cy + f * (e - b) / c)) for a, b, c in zip(xs, ys, zs)]

    def point(self, x: float, y: float, z: float) -> tuple[float, float]:
        return (self.cx + self.focal * x / z, self.cy + self.focal * (self.elevation - y) / z)

    def scale(self, z: float) -> float:
        """Pixels per metre at depth ``z``."""
        return self.focal / z

    def ground_z(self, row: float) -> float:
        """Depth of the road seen at image row ``row`` (infinite at or above the horizon)."""
        return math.inf if row <= self.cy else self.focal * self.elevation / (row - self.cy)

    def side(self, x: float, y0: float, y1: float, z0: float, z1: float) -> Polygon | None:
        """The face X = ``x`` (parallel to the street), Y in [y0, y1], Z in [z0, z1]."""
        z0 = max(z0, self.near)
        if z1 <= z0:
            return None
        f, cx, cy, e = self.focal, self.cx, self.cy, self.elevation
        a, b = f / z0, f / z1
        u0, u1 = _clamp(cx + a * x), _clamp(cx + b * x)
        return [(u0, _clamp(cy + a * (e - y0))), (u0, _clamp(cy + a * (e - y1))),
                (u1, _clamp(cy + b * (e - y1))), (u1, _clamp(cy + b * (e - y0)))]

    def front(self, z: float, x0: float, x1: float, y0: float, y1: float) -> Polygon | None:
        """The face Z = ``z`` (facing the camera), X in [x0, x1], Y in [y0, y1]."""
        if z < self.near:
            return None
        a = self.focal / z
        u0, u1 = _clamp(self.cx + a * x0), _clamp(self.cx + a * x1)
        v0, v1 = _clamp(self.cy + a * (self.elevation - y0)), _clamp(self.cy + a * (self.elevation - y1))
        return [(u0, v0), (u1, v0), (u1, v1), (u0, v1)]

    def flat(self, y: float, x0: float, x1: float, z0: float, z1: float) -> Polygon | None:
        """The horizontal face Y = ``y``, X in [x0, x1], Z in [z0, z1] (the road, roofs, shadows)."""
        z0 = max(z0, self.near)
        if z1 <= z0:
            return None
        f, cx, cy, e = self.focal, self.cx, self.cy, self.elevation
        a, b = f / z0, f / z1
        v0, v1 = _clamp(cy + a * (e - y)), _clamp(cy + b * (e - y))
        return [(_clamp(cx + a * x0), v0), (_clamp(cx + a * x1), v0), (_clamp(cx + b * x1), v1),
                (_clamp(cx + b * x0), v1)]

    def in_plane(self, plane: str, offset: float, u, v) -> Polygon | None:
        """Points given in a vertical plane: ``plane="z"`` (Z = offset, u = X) or ``"x"`` (X = offset, u = Z)."""
        u = np.asarray(u, float)
        if plane == "z":
            return None if offset < self.near else self.project(u, v, offset)
        if np.min(u) < self.near:
            return None
        return self.project(offset, v, u)
