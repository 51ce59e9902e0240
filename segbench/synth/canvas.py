"""A painter's-algorithm canvas: shapes paint *surface* ids, one vectorised pass turns ids into pixels.

Every drawn shape belongs to a surface (a colour and a texture) and every surface to an *object* (a labelId and,
for instance classes, an instance number). Labels are therefore exact per pixel: they are gathered from the same
id image the colours come from, which PIL draws without antialiasing.
"""
from __future__ import annotations

from typing import Sequence

import attrs
import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from segbench.synth.labels import INSTANCE_LABELS

Points = Sequence[tuple[float, float]]
RGB = tuple[float, float, float]

_PATTERNS = {"": 0, "bars": 1, "courses": 2, "tiles": 3}

@attrs.frozen
class Look:
    """How one surface is coloured, before the image-wide lighting.

    ``color`` is RGB in 0..255. ``gradient`` is added linearly from the top (0) to the bottom (1) of the image
    (sky, glass). ``blotch`` and ``leaf`` scale smooth multiplicative noise of low and medium frequency
    (stains, foliage); ``grain`` is additive per-pixel noise in colour units. A ``pattern`` alternates ``color``
    with ``pattern_color`` every ``pattern_period`` pixels (``pattern_duty`` of each period shows ``color``):
    ``"bars"`` (vertical: fences), ``"courses"`` (horizontal: brick and block walls) or ``"tiles"`` (a checker:
    paving). Surfaces with ``ground`` receive cast shadows.
    """

    color: RGB
    gradient: RGB = (0.0, 0.0, 0.0)
    blotch: float = 0.05
    leaf: float = 0.0
    grain: float = 4.0
    pattern: str = ""
    pattern_color: RGB = (0.0, 0.0, 0.0)
    pattern_period: float = 0.0
    pattern_duty: float = 0.5
    ground: bool = False


@attrs.frozen
class Rendering:
    """One rendered scene: ``image`` (H, W, 3) uint8 RGB, ``label_ids`` (H, W) uint8 Cityscapes labelIds,
    ``instance_ids`` (H, W) int32 (``labelId * 1000 + k`` for instance classes, the labelId elsewhere) and
    ``objects`` (H, W) int32 object index, with ``object_labels`` / ``object_droppable`` per object."""

    image: np.ndarray
    label_ids: np.ndarray
    instance_ids: np.ndarray
    objects: np.ndarray
    object_labels: np.ndarray
    object_droppable: np.ndarray


class Canvas:
    """Collects objects, surfaces and shapes; :meth:`render` produces the image and its exact labels."""

    def __init__(self, height: int, width: int):
        self.height, self.width = height, width
        self._ids = Image.new("I", (width, height), 0)
        self._draw = ImageDraw.Draw(self._ids)
        self._shade = Image.new("L", (width, height), 255)
        self._shade_draw = ImageDraw.Draw(self._shade)
        self._object_labels: list[int] = []
        self._object_instances: list[int] = []
        self._object_droppable: list[bool] = []
        self._surface_objects: list[int] = []
        self._looks: list[Look] = []
        self._instance_counts: dict[int, int] = {}
        # Surface 0 (what an undrawn pixel shows) is unlabelled; scenes always paint over it.
        self.surface(self.new_object(0), Look(color=(0.0, 0.0, 0.0)))

    def new_object(self, label_id: int, *, droppable: bool = False) -> int:
        """A new object of class ``label_id``; instance classes get the next instance number of the image.

        ``droppable`` objects may be left out of the coarse annotation (small things).
        """
        if label_id in INSTANCE_LABELS:
            k = self._instance_counts.get(label_id, 0)
            self._instance_counts[label_id] = k + 1
            instance = label_id * 1000 + k
        else:
            instance = label_id
        self._object_labels.append(label_id)
        self._object_instances.append(instance)
        self._object_droppable.append(droppable)
        return len(self._object_labels) - 1

    def surface(self, obj: int, look: Look) -> int:
        """A new surface of object ``obj`` drawn with ``look``; returns the id that shapes paint."""
        self._surface_objects.append(obj)
        self._looks.append(look)
        return len(self._looks) - 1

    def polygon(self, surface: int, points: Points | None) -> None:
        if points is not None and len(points) >= 3:
            self._draw.polygon(points, fill=surface)

    def ellipse(self, surface: int, box: tuple[float, float, float, float]) -> None:
        x0, y0, x1, y1 = box
        if x1 - x0 >= 0.5 and y1 - y0 >= 0.5:
            self._draw.ellipse((x0, y0, x1, y1), fill=surface)

    def line(self, surface: int, points: Points, width: float) -> None:
        self._draw.line(points, fill=surface, width=max(1, int(round(width))))

    def rectangle(self, surface: int, box: tuple[float, float, float, float]) -> None:
        x0, y0, x1, y1 = box
        self._draw.rectangle((x0, y0, x1, y1), fill=surface)

    def shadow(self, points: Points | None, strength: float) -> None:
        """Darken ground surfaces inside ``points`` to ``1 - strength`` of their brightness."""
        if points is not None and len(points) >= 3:
            self._shade_draw.polygon(points, fill=int(round(255 * (1.0 - strength))))

    def render(self, rng: np.random.Generator, *, brightness: float, cast: RGB, blur: float,
               sensor_noise: float) -> Rendering:
        """Colour every pixel from its surface's look, then apply lighting, a slight blur and sensor noise."""
        h, w = self.height, self.width
        ids = np.asarray(self._ids, dtype=np.int32)
        looks = self._looks
        color = np.array([lk.color for lk in looks], dtype=np.float32)
        gradient = np.array([lk.gradient for lk in looks], dtype=np.float32)
        blotch = np.array([lk.blotch for lk in looks], dtype=np.float32)
        leaf = np.array([lk.leaf for lk in looks], dtype=np.float32)
        grain = np.array([lk.grain for lk in looks], dtype=np.float32)
        pattern = np.array([_PATTERNS[lk.pattern] if lk.pattern_period > 0 else 0 for lk in looks], dtype=np.int8)
        pattern_color = np.array([lk.pattern_color for lk in looks], dtype=np.float32)
        pattern_freq = np.array([1.0 / lk.pattern_period if lk.pattern_period > 0 else 0.0 for lk in looks],
                                dtype=np.float32)
        pattern_duty = np.array([lk.pattern_duty for lk in looks], dtype=np.float32)
        ground = np.array([lk.ground for lk in looks], dtype=bool)

        rows = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
        pixels = color[ids] + gradient[ids] * rows
        kind = pattern[ids]
        if kind.any():
            freq = pattern_freq[ids]
            u = np.arange(w, dtype=np.float32)[None, :] * freq
            v = np.arange(h, dtype=np.float32)[:, None] * freq
            duty = pattern_duty[ids]
            other = np.select(
                [kind == 1, kind == 2, kind == 3],
                [np.mod(u, 1.0) >= duty, np.mod(v, 1.0) >= duty, (np.floor(u) + np.floor(v)) % 2 == 1],
                default=False)
            pixels = np.where(other[..., None], pattern_color[ids], pixels)

        # Noise fields have a fixed number of cells per image, so a scene looks alike at every resolution.
        lum = 1.0 + blotch[ids] * _smooth_noise(rng, (6, 12), (h, w))
        lum += leaf[ids] * _smooth_noise(rng, (40, 80), (h, w))
        pixels *= lum[..., None]
        pixels += (grain[ids] * rng.standard_normal((h, w), dtype=np.float32))[..., None]

        shade = np.asarray(self._shade, dtype=np.float32) * (1.0 / 255.0)
        shade = np.where(ground[ids], shade, np.float32(1.0))
        pixels *= (shade[..., None] * np.float32(brightness)) * np.asarray(cast, dtype=np.float32)

        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
        if blur > 0:
            image = image.filter(ImageFilter.GaussianBlur(blur))
        noisy = np.asarray(image, dtype=np.float32)
        noisy = noisy + rng.standard_normal(noisy.shape, dtype=np.float32) * np.float32(sensor_noise)

        surface_objects = np.asarray(self._surface_objects, dtype=np.int32)
        objects = surface_objects[ids]
        object_labels = np.asarray(self._object_labels, dtype=np.uint8)
        object_instances = np.asarray(self._object_instances, dtype=np.int32)
        return Rendering(
            image=np.clip(noisy + 0.5, 0, 255).astype(np.uint8),
            label_ids=object_labels[objects],
            instance_ids=object_instances[objects],
            objects=objects,
            object_labels=object_labels,
            object_droppable=np.asarray(self._object_droppable, dtype=bool),
        )


def _smooth_noise(rng: np.random.Generator, cells: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """Unit-variance-ish noise, smooth over ``size / cells`` pixels: (H, W) float32."""
    h, w = size
    ch, cw = min(cells[0], h), min(cells[1], w)
    coarse = rng.standard_normal((ch, cw), dtype=np.float32)
    return np.asarray(Image.fromarray(coarse, "F").resize((w, h), Image.Resampling.BICUBIC))
