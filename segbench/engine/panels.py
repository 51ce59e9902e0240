"""Predictions of the first images of an evaluation split, for the loggers' prediction panels."""
from __future__ import annotations

import torch

from segbench.engine.evaluate import predict
from segbench.data.reading import read_item
from segbench.engine.loggers import PredictionPanel


@torch.no_grad()
def prediction_panels(model, dataset, pipeline, *, count: int, config, runtime) -> list[PredictionPanel]:
    """``dataset``'s first ``count`` items with their predictions: the same images at every evaluation, so
    that a viewer can step through training."""
    info = dataset.info
    was_training = model.training
    model.eval()
    panels = []
    try:
        for index in range(min(count, len(dataset))):
            image, mask = read_item(dataset, index)
            image_t, _ = pipeline(image, mask, torch.Generator().manual_seed(index))
            pred = predict(model, image_t[None], label_size=tuple(mask.shape[-2:]), config=config,
                           num_classes=info.num_classes, runtime=runtime)[0].to(torch.uint8).cpu()
            panels.append(PredictionPanel(_sample_id(dataset, index), image.permute(1, 2, 0).numpy(), mask.numpy(),
                                          pred.numpy(), tuple(info.class_names), tuple(info.palette),
                                          info.ignore_index))
    finally:
        model.train(was_training)
    return panels


def _sample_id(dataset, index: int) -> str:
    try:
        return str(dataset.sample_id(index))
    except Exception:
        return str(index)
