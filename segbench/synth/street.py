"""The street's layout (road, lanes, parking, sidewalks) and the far-to-near drawing queue."""
from __future__ import annotations

import functools

import attrs
import numpy as np

from segbench.synth import materials as m

FAR = 2000.0  # metres: the ground plane's far edge, beyond the horizon's last visible row


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


class DepthQueue:
    """Deferred drawings, painted far to near (ties keep insertion order)."""

    def __init__(self):
        self._items: list[tuple[float, int, functools.partial]] = []

    def add(self, depth: float, fn, /, *args, **kwargs) -> None:
        self._items.append((depth, len(self._items), functools.partial(fn, *args, **kwargs)))

    def draw(self) -> None:
        for _, _, fn in sorted(self._items, key=lambda item: (-item[0], item[1])):
            fn()


def random_street(rng: np.random.Generator) -> Street:
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
