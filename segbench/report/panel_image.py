"""A prediction panel as a picture: image | ground truth | prediction, with the image's own mIoU and a legend."""
from __future__ import annotations

import numpy as np
import torch

from segbench.functional.metrics import confusion_matrix, summarize
from segbench.palette import colorize, comparison_panel


def panel_image(panel, *, header_prefix: str = "") -> np.ndarray:
    """``(H', W', 3)`` uint8 for a :class:`segbench.engine.loggers.PredictionPanel`."""
    truth, pred = np.asarray(panel.truth), np.asarray(panel.prediction)
    num_classes = len(panel.class_names)
    valid = truth < num_classes
    matrix = confusion_matrix(torch.from_numpy(pred.astype(np.uint8)), torch.from_numpy(truth.astype(np.uint8)),
                              num_classes=num_classes, ignore_index=panel.ignore_index)
    summary = summarize(matrix, panel.class_names)
    shown = sorted(set(np.unique(truth[valid]).tolist()) | set(np.unique(pred).tolist()) & set(range(num_classes)))
    miou = "n/a" if summary["mIoU"] is None else f"{100 * summary['mIoU']:.1f}%"
    picture = comparison_panel(np.asarray(panel.image), colorize(truth, panel.palette), colorize(pred, panel.palette),
                               header=f"{header_prefix}{panel.sample_id} · image mIoU {miou}", legend_ids=shown,
                               class_names=panel.class_names, palette=panel.palette,
                               ignored_shown=not bool(valid.all()))
    return np.asarray(picture)
