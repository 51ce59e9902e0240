"""Prediction panels (image | ground truth | prediction) of the first images of an evaluation split."""
from __future__ import annotations

import numpy as np
import torch

from segbench.engine.evaluate import predict
from segbench.engine.loggers import PredictionPanel
from segbench.functional.metrics import confusion_matrix, summarize
from segbench.report.palette import colorize, comparison_panel


@torch.no_grad()
def prediction_panels(model, dataset, pipeline, *, count: int, config, runtime) -> list[PredictionPanel]:
    """Panels of ``dataset``'s first ``count`` items: the same images at every evaluation, so that a
    viewer can step through training. Each header gives the image's own mIoU."""
    info = dataset.info
    was_training = model.training
    model.eval()
    panels = []
    try:
        for index in range(min(count, len(dataset))):
            image, mask = dataset[index]
            image_t, _ = pipeline(image, mask, torch.Generator().manual_seed(index))
            pred = predict(model, image_t[None], label_size=tuple(mask.shape[-2:]), config=config,
                           num_classes=info.num_classes, runtime=runtime)[0].to(torch.uint8).cpu()
            panels.append(PredictionPanel(_sample_id(dataset, index), render_panel(image, mask, pred, info)))
    finally:
        model.train(was_training)
    return panels


def render_panel(image: torch.Tensor, mask: torch.Tensor, pred: torch.Tensor, info, *, header_prefix="") -> np.ndarray:
    """``(H, W, 3)`` uint8 panel from a ``uint8 (3, H, W)`` image, its train-id mask and the predicted ids."""
    truth, pred_np = mask.numpy(), pred.numpy()
    valid = truth < info.num_classes
    summary = summarize(confusion_matrix(pred, mask, num_classes=info.num_classes, ignore_index=info.ignore_index),
                        info.class_names)
    shown = sorted(set(np.unique(truth[valid]).tolist()) | set(np.unique(pred_np).tolist()))
    miou = "n/a" if summary["mIoU"] is None else f"{100 * summary['mIoU']:.1f}%"
    panel = comparison_panel(image.permute(1, 2, 0).numpy(), colorize(truth, info.palette),
                             colorize(pred_np, info.palette), header=f"{header_prefix}image mIoU {miou}",
                             legend_ids=shown, class_names=info.class_names, palette=info.palette,
                             ignored_shown=not bool(valid.all()))
    return np.asarray(panel)


def _sample_id(dataset, index: int) -> str:
    try:
        return str(dataset.sample_id(index))
    except Exception:
        return str(index)
