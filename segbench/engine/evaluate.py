"""Evaluation with the official Cityscapes rule: full-resolution logits, one global confusion matrix."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.utils.data import Subset
from tqdm import tqdm

from segbench.data.loader import data_loader
from segbench.engine.distributed import all_reduce_sum, unwrap_for_evaluation
from segbench.engine.runtime import Runtime
from segbench.functional.metrics import confusion_matrix
from segbench.records import EvaluationSettings


def _forward(model, images, runtime: Runtime):
    images = runtime.images(images)
    with runtime.autocast():
        return model(images).float()


def slide_logits(model, images, *, window, stride, num_classes, runtime: Runtime):
    """Sliding-window logits ``(N, C, H, W)`` averaged over overlapping ``window`` tiles."""
    n, _, height, width = images.shape
    win_h, win_w = min(window[0], height), min(window[1], width)
    step_h, step_w = stride
    if step_h > win_h and height > win_h or step_w > win_w and width > win_w:
        raise ValueError(f"sliding-window stride {tuple(stride)} exceeds the window {(win_h, win_w)}:"
                         " pixels between windows would get no prediction")
    rows = max(math.ceil((height - win_h) / step_h), 0) + 1
    cols = max(math.ceil((width - win_w) / step_w), 0) + 1
    logits = torch.zeros((n, num_classes, height, width), device=runtime.device)
    counts = torch.zeros((1, 1, height, width), device=runtime.device)
    for row in range(rows):
        for col in range(cols):
            top = min(row * step_h, height - win_h)
            left = min(col * step_w, width - win_w)
            tile = images[:, :, top:top + win_h, left:left + win_w]
            logits[:, :, top:top + win_h, left:left + win_w] += _forward(model, tile, runtime)
            counts[:, :, top:top + win_h, left:left + win_w] += 1
    return logits / counts


def _logits(model, images, *, config, num_classes, runtime: Runtime):
    if config.mode == "slide":
        window = config.window or tuple(images.shape[-2:])
        stride = config.stride or (max(1, window[0] * 2 // 3), max(1, window[1] * 2 // 3))
        return slide_logits(model, images, window=window, stride=stride, num_classes=num_classes,
                            runtime=runtime)
    return _forward(model, images, runtime)


def _at_size(logits, size):
    if tuple(logits.shape[-2:]) != tuple(size):
        logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
    return logits


def evaluation_settings(config) -> EvaluationSettings:
    """What results files record about how the numbers were obtained."""
    return EvaluationSettings(mode=config.mode, flip=config.flip, batch_size=config.batch_size,
                              scales=tuple(config.scales))


def _rescaled(images, scale):
    if scale == 1.0:
        return images
    height, width = images.shape[-2:]
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    return F.interpolate(images, size=size, mode="bilinear", align_corners=False)


def predict(model, images, *, label_size, config, num_classes, runtime: Runtime):
    """Predicted train ids ``(N, H, W)`` at ``label_size``: logits are up-sampled before the argmax.

    Test-time augmentation as in mmsegmentation: for each of ``config.scales`` the image is resized
    by that factor (bilinear; sliding windows keep their size in pixels), and with ``config.flip``
    also mirrored; the class probabilities of every variant, brought back to ``label_size`` (and
    mirrored back), are summed before the argmax. ``scales: [1.0]`` without flip is a plain argmax
    of the logits.
    """
    run = dict(config=config, num_classes=num_classes, runtime=runtime)
    scales = tuple(config.scales)
    if scales == (1.0,) and not config.flip:
        return _at_size(_logits(model, images, **run), label_size).argmax(dim=1)
    total = None
    for scale in scales:
        scaled = _rescaled(images, scale)
        variants = [(scaled, False)] + ([(scaled.flip(-1), True)] if config.flip else [])
        for image, mirrored in variants:
            logits = _at_size(_logits(model, image, **run), label_size)
            probabilities = (logits.flip(-1) if mirrored else logits).softmax(dim=1)
            total = probabilities if total is None else total + probabilities
    return total.argmax(dim=1)


class _EvalItems(torch.utils.data.Dataset):
    """Dataset items with the eval pipeline applied to the image; the label stays at full resolution."""

    def __init__(self, dataset, pipeline):
        self.dataset, self.pipeline = dataset, pipeline

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        image, mask = self.dataset[index]
        generator = torch.Generator().manual_seed(index)
        image_t, _ = self.pipeline(image, mask, generator)
        return image_t, mask


@torch.no_grad()
def evaluate_confusion(model, dataset, pipeline, *, config, num_classes, ignore_index, runtime: Runtime,
                       num_workers=0, progress=True, desc="evaluate") -> torch.Tensor:
    """The global ``(C, C + 1)`` confusion matrix over ``dataset`` (rows: ground truth; see metrics).

    Under distributed runs each rank scores every ``world_size``-th image (no padding, so no image
    is counted twice) and the matrices are summed across ranks: the result is exact.
    """
    env = runtime.dist
    model = unwrap_for_evaluation(model, env)
    was_training = model.training
    model.eval()
    indices = list(range(env.rank, len(dataset), env.world_size))
    loader = data_loader(Subset(_EvalItems(dataset, pipeline), indices), batch_size=config.batch_size,
                        num_workers=num_workers, shuffle=False)
    matrix = torch.zeros((num_classes, num_classes + 1), dtype=torch.int64)
    bar = tqdm(loader, desc=desc, leave=False, disable=not (progress and env.is_main), unit="batch")
    for images, masks in bar:
        preds = predict(model, images, label_size=tuple(masks.shape[-2:]), config=config,
                        num_classes=num_classes, runtime=runtime)
        matrix += confusion_matrix(preds.to(torch.uint8).cpu() if num_classes < 255 else preds.cpu(), masks,
                                   num_classes=num_classes, ignore_index=ignore_index)
    model.train(was_training)
    return all_reduce_sum(matrix, env)
