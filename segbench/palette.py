"""Pictures of label maps: palette colouring, overlays, and image | ground truth | prediction panels.

Train-id maps are ``uint8`` arrays ``(H, W)``; images are ``uint8`` RGB arrays ``(H, W, 3)``. Ignored
pixels (any value outside the dataset's classes, e.g. 255) are drawn black.
"""
from __future__ import annotations

import attrs
import numpy as np
from PIL import Image, ImageDraw, ImageFont

IGNORED_COLOUR = (0, 0, 0)


def palette_table(palette) -> np.ndarray:
    """A ``(256, 3)`` uint8 table: entry ``k`` is class ``k``'s colour, every other entry black."""
    table = np.zeros((256, 3), dtype=np.uint8)
    table[:] = IGNORED_COLOUR
    table[: len(palette)] = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)
    return table


def colorize(train_ids: np.ndarray, palette) -> np.ndarray:
    """``(H, W)`` uint8 train ids -> ``(H, W, 3)`` uint8 colours of ``palette`` (ignored pixels black)."""
    return palette_table(palette)[np.asarray(train_ids, dtype=np.uint8)]


def palette_png(train_ids: np.ndarray, palette) -> Image.Image:
    """A P-mode image: pixel values are the train ids, its palette is the dataset's colours.

    Viewers show the colours; reading it with PIL without ``convert`` gives the train ids back.
    """
    image = Image.fromarray(np.asarray(train_ids, dtype=np.uint8))  # mode L; putpalette makes it P
    image.putpalette(palette_table(palette).reshape(-1).tolist())
    return image


def overlay(image: np.ndarray, colours: np.ndarray, *, alpha: float = 0.5) -> np.ndarray:
    """Blend ``colours`` over ``image`` with weight ``alpha`` (both ``(H, W, 3)`` uint8)."""
    blended = (1.0 - alpha) * image.astype(np.float32) + alpha * colours.astype(np.float32)
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # Pillow without FreeType: the small bitmap font
        return ImageFont.load_default()


@attrs.frozen
class PanelLayout:
    """Geometry of a three-tile panel for ``width`` x ``height`` images.

    From the top: a header line across the panel, a title line over each tile, the tiles side by
    side with ``margin`` pixels around and between them, then legend rows. The panel is
    ``3 * width + 4 * margin`` pixels wide.
    """

    width: int
    height: int
    margin: int
    font_size: int

    @classmethod
    def for_image(cls, width: int, height: int) -> "PanelLayout":
        font_size = int(min(max(12, width // 45), 48))
        return cls(width, height, margin=max(4, font_size // 2), font_size=font_size)

    @property
    def line_height(self) -> int:
        return self.font_size + self.margin // 2

    @property
    def tiles_top(self) -> int:
        return self.margin + 2 * self.line_height

    @property
    def panel_width(self) -> int:
        return 3 * self.width + 4 * self.margin

    def tile_origin(self, k: int) -> tuple[int, int]:
        return self.margin + k * (self.width + self.margin), self.tiles_top


def _fit(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> str:
    """``text`` shortened with an ellipsis so it fits ``width`` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def _legend_entries(draw, font, class_ids, class_names, layout: PanelLayout):
    """Lay out swatch + name entries in rows no wider than the panel: ``[(x, row, class_id, name), ...]``."""
    swatch = layout.font_size
    gap = layout.margin
    x, row, placed = layout.margin, 0, []
    limit = layout.panel_width - layout.margin
    for class_id in class_ids:
        name = _fit(draw, class_names[class_id], font, limit - layout.margin - swatch - gap)
        entry = swatch + gap // 2 + int(draw.textlength(name, font=font)) + 2 * gap
        if x + entry > limit and x > layout.margin:
            x, row = layout.margin, row + 1
        placed.append((x, row, class_id, name))
        x += entry
    return placed


def comparison_panel(image: np.ndarray, truth_colours: np.ndarray, pred_colours: np.ndarray, *, header: str,
                     titles: tuple[str, str, str] = ("image", "ground truth", "prediction"), legend_ids,
                     class_names, palette, ignored_shown: bool = False) -> Image.Image:
    """image | ground truth | prediction side by side under a ``header`` line and tile ``titles``, with a
    colour legend below.

    ``legend_ids``: the train ids to list (e.g. those in the ground truth or the prediction);
    ``ignored_shown`` adds a black "ignored" swatch.
    """
    height, width = image.shape[:2]
    layout = PanelLayout.for_image(width, height)
    font = _font(layout.font_size)
    scratch = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    names = list(class_names)
    palette = [tuple(int(v) for v in colour) for colour in palette]
    ids = list(legend_ids)
    if ignored_shown:
        names.append("ignored")
        palette.append(IGNORED_COLOUR)
        ids.append(len(names) - 1)
    entries = _legend_entries(scratch, font, ids, names, layout)
    rows = 1 + max((row for _, row, _, _ in entries), default=0)
    legend_top = layout.tiles_top + height + layout.margin
    total_height = legend_top + rows * layout.line_height + layout.margin

    panel = Image.new("RGB", (layout.panel_width, total_height), (255, 255, 255))
    draw = ImageDraw.Draw(panel)
    draw.text((layout.margin, layout.margin), _fit(draw, header, font, layout.panel_width - 2 * layout.margin),
              fill=(0, 0, 0), font=font)
    for k, (tile, title) in enumerate(zip((image, truth_colours, pred_colours), titles)):
        x, y = layout.tile_origin(k)
        panel.paste(Image.fromarray(tile), (x, y))
        draw.text((x, layout.margin + layout.line_height), _fit(draw, title, font, width), fill=(64, 64, 64),
                  font=font)
    swatch = layout.font_size
    for x, row, class_id, name in entries:
        y = legend_top + row * layout.line_height
        draw.rectangle((x, y, x + swatch - 1, y + swatch - 1), fill=palette[class_id], outline=(96, 96, 96))
        draw.text((x + swatch + layout.margin // 2, y), name, fill=(0, 0, 0), font=font)
    return panel
