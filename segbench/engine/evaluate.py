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
    return EvaluationSettings(mode=config.mode, flip=config.flip, batch_size=config.batch_size)


def predict(model, images, *, label_size, config, num_classes, runtime: Runtime):
    """Predicted train ids ``(N, H, W)`` at ``label_size``: logits are up-sampled before the argmax.

    With ``config.flip`` the class probabilities of the image and of its mirror image (mirrored back)
    are averaged, as in the flip test-time augmentation of mmsegmentation.
    """
    run = dict(config=config, num_classes=num_classes, runtime=runtime)
    logits = _at_size(_logits(model, images, **run), label_size)
    if not config.flip:
        return logits.argmax(dim=1)
    mirrored = _at_size(_logits(model, images.flip(-1), **run), label_size).flip(-1)
    return (logits.softmax(dim=1) + mirrored.softmax(dim=1)).argmax(dim=1)


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
def evaluate_per_image(model, dataset, pipeline, *, config, num_classes, ignore_index, runtime: Runtime,
                       num_workers=0, progress=True, desc="evaluate") -> torch.Tensor:
    """One ``(C, C + 1)`` confusion matrix per image of ``dataset``: ``(I, C, C + 1)`` int64, in dataset
    order (rows: ground truth; see metrics). Their sum is the global matrix of the official rule.

    Under distributed runs each rank scores every ``world_size``-th image (no padding, so no image
    is counted twice) and fills its rows; the stacks are summed across ranks: the result is exact.
    """
    env = runtime.dist
    model = unwrap_for_evaluation(model, env)
    was_training = model.training
    model.eval()
    indices = list(range(env.rank, len(dataset), env.world_size))
    loader = data_loader(Subset(_EvalItems(dataset, pipeline), indices), batch_size=config.batch_size,
                        num_workers=num_workers, shuffle=False)
    matrices = torch.zeros((len(dataset), num_classes, num_classes + 1), dtype=torch.int64)
    bar = tqdm(loader, desc=desc, leave=False, disable=not (progress and env.is_main), unit="batch")
    position = 0
    for images, masks in bar:
        preds = predict(model, images, label_size=tuple(masks.shape[-2:]), config=config,
                        num_classes=num_classes, runtime=runtime)
        preds = preds.to(torch.uint8).cpu() if num_classes < 255 else preds.cpu()
        for pred, mask in zip(preds, masks):
            matrices[indices[position]] = confusion_matrix(pred, mask, num_classes=num_classes,
                                                           ignore_index=ignore_index)
            position += 1
    model.train(was_training)
    return all_reduce_sum(matrices, env)


def evaluate_confusion(model, dataset, pipeline, **options) -> torch.Tensor:
    """The global ``(C, C + 1)`` confusion matrix over ``dataset``: the sum of the per-image matrices
    (:func:`evaluate_per_image`, which takes the same arguments)."""
    return evaluate_per_image(model, dataset, pipeline, **options).sum(dim=0)
