"""Figures of the HTML report, drawn with matplotlib into PNG files: confusion-matrix heat maps."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from segbench.atomic import atomic_write_bytes
from segbench.functional.metrics import row_normalized

DPI = 100


def confusion_png(matrix, class_names: Sequence[str], out: Path, *, title: str) -> Path:
    """The row-normalised confusion matrix (rows: ground truth, columns: prediction, last column "void" when
    the matrix has one) as a heat map with percentages in the cells when the classes are few enough to read."""
    from matplotlib.figure import Figure

    cm = row_normalized(torch.as_tensor(matrix))
    classes, columns = cm.shape
    labels = list(class_names)[:classes]
    column_labels = labels + ["void"] * (columns - classes)
    side = max(3.4, 0.2 * columns + 2.0)
    figure = Figure(figsize=(side + 0.8, side), dpi=DPI, layout="constrained")
    ax = figure.subplots()
    image = ax.imshow(cm.numpy(), cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks(range(columns), column_labels, rotation=90, fontsize=8)
    ax.set_yticks(range(classes), labels, fontsize=8)
    ax.set(xlabel="predicted class", ylabel="ground-truth class", title=title)
    if columns <= 12:
        for row in range(classes):
            for col in range(columns):
                value = float(cm[row, col])
                ax.text(col, row, f"{100 * value:.0f}", ha="center", va="center", fontsize=7,
                        color="white" if value > 0.5 else "black")
    figure.colorbar(image, ax=ax, fraction=0.046, pad=0.02, label="share of the row's pixels")
    atomic_write_bytes(out, lambda handle: figure.savefig(handle, format="png", dpi=DPI))
    return out
