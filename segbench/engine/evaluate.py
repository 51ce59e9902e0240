"""Evaluation with the official Cityscapes rule: full-resolution logits, one global confusion matrix."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.utils.data import Subset
from tqdm import tqdm

from segbench.data.loader import data_loader
from segbench.data.reading import failing_file, item_path, read_item, read_mask
from segbench.data.transformed import SameSize
from segbench.engine.distributed import all_reduce_sum, any_rank, unwrap_for_evaluation
from segbench.engine.runtime import Runtime
from segbench.errors import ConfigError, DataError
from segbench.functional.metrics import confusion_matrix
from segbench.records import EvaluationSettings
from segbench.stderr import STDERR
from segbench.transforms import for_dataset


def _forward(model, images, runtime: Runtime):
    images = runtime.images(images)
    with runtime.autocast():
        return model(images).float()


# One forward pass per window: more windows than this per image make a single evaluation batch take minutes
# (a 2x2 window on a 1024x2048 image is half a million passes). Typical settings use 2 to 21.
MAX_WINDOWS_PER_IMAGE = 256


class EvaluationStopped(Exception):
    """The ``stop`` callback of an evaluation said to stop (a preemption signal arrived)."""


def window_grid(height: int, width: int, window, stride) -> tuple[int, int]:
    """Rows and columns of sliding windows over a ``height`` x ``width`` image."""
    win_h, win_w = min(window[0], height), min(window[1], width)
    step_h, step_w = stride
    if step_h > win_h and height > win_h or step_w > win_w and width > win_w:
        raise ValueError(f"sliding-window stride {tuple(stride)} exceeds the window {(win_h, win_w)}:"
                         " pixels between windows would get no prediction")
    return max(math.ceil((height - win_h) / step_h), 0) + 1, max(math.ceil((width - win_w) / step_w), 0) + 1


def _window_and_stride(config, image_size):
    window = config.window or tuple(image_size)
    stride = config.stride or (max(1, window[0] * 2 // 3), max(1, window[1] * 2 // 3))
    return window, stride


def check_evaluation_cost(config, image_size, *, split: str, files=()) -> None:
    """Refuse sliding-window settings that cut each ``image_size`` image into too many windows."""
    if config.mode != "slide":
        return
    window, stride = _window_and_stride(config, image_size)
    rows, cols = window_grid(*image_size, window, stride)
    if rows * cols > MAX_WINDOWS_PER_IMAGE:
        raise ConfigError([("evaluation.window", (
            f"window {list(window)} with stride {list(stride)} cuts each {image_size[0]}x{image_size[1]} {split}"
            f" image into {rows}x{cols} = {rows * cols} windows, one forward pass each (at most"
            f" {MAX_WINDOWS_PER_IMAGE}): one evaluation batch would take minutes, longer than a cluster's"
            " preemption warning. Use a larger window (e.g. the training crop) or stride, or evaluation.mode: whole"))],
            files=files)


def slide_logits(model, images, *, window, stride, num_classes, runtime: Runtime, stop=None):
    """Sliding-window logits ``(N, C, H, W)`` averaged over overlapping ``window`` tiles.

    ``stop()`` is asked before each window; when it says so, :class:`EvaluationStopped` is raised.
    """
    n, _, height, width = images.shape
    win_h, win_w = min(window[0], height), min(window[1], width)
    step_h, step_w = stride
    rows, cols = window_grid(height, width, window, stride)
    logits = torch.zeros((n, num_classes, height, width), device=runtime.device)
    counts = torch.zeros((1, 1, height, width), device=runtime.device)
    for row in range(rows):
        for col in range(cols):
            if stop is not None and stop():
                raise EvaluationStopped
            top = min(row * step_h, height - win_h)
            left = min(col * step_w, width - win_w)
            tile = images[:, :, top:top + win_h, left:left + win_w]
            logits[:, :, top:top + win_h, left:left + win_w] += _forward(model, tile, runtime)
            counts[:, :, top:top + win_h, left:left + win_w] += 1
    return logits / counts


def _logits(model, images, *, config, num_classes, runtime: Runtime, stop=None):
    if config.mode == "slide":
        window, stride = _window_and_stride(config, images.shape[-2:])
        return slide_logits(model, images, window=window, stride=stride, num_classes=num_classes,
                            runtime=runtime, stop=stop)
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


def predict(model, images, *, label_size, config, num_classes, runtime: Runtime, stop=None):
    """Predicted train ids ``(N, H, W)`` at ``label_size``: logits are up-sampled before the argmax.

    Test-time augmentation as in mmsegmentation: for each of ``config.scales`` the image is resized
    by that factor (bilinear; sliding windows keep their size in pixels), and with ``config.flip``
    also mirrored; the class probabilities of every variant, brought back to ``label_size`` (and
    mirrored back), are summed before the argmax. ``scales: [1.0]`` without flip is a plain argmax
    of the logits.
    """
    run = dict(config=config, num_classes=num_classes, runtime=runtime, stop=stop)
    scales = tuple(config.scales)
    if scales == (1.0,) and not config.flip:
        return _at_size(_logits(model, images, **run), label_size).argmax(dim=1)
    total = None
    for scale in scales:
        scaled = _rescaled(images, scale)
        variants = [(scaled, False)] + ([(scaled.flip(-1), True)] if config.flip else [])
        for image, mirrored in variants:
            if total is not None and stop is not None and stop():
                raise EvaluationStopped
            logits = _at_size(_logits(model, image, **run), label_size)
            probabilities = (logits.flip(-1) if mirrored else logits).softmax(dim=1)
            total = probabilities if total is None else total + probabilities
    return total.argmax(dim=1)


class _EvalItems(torch.utils.data.Dataset):
    """Dataset items with the eval pipeline applied to the image; the label stays at full resolution."""

    def __init__(self, dataset, pipeline, *, batch_size: int = 1):
        self.dataset, self.pipeline = dataset, for_dataset(pipeline, dataset)
        self._sizes = SameSize(fix="Set evaluation.batch_size: 1 (labels are scored at their own size).") \
            if batch_size > 1 else None

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        image, mask = read_item(self.dataset, index)
        generator = torch.Generator().manual_seed(index)
        try:
            image_t, _ = self.pipeline(image, mask, generator)
        except DataError as exc:
            raise DataError(f"{failing_file(self.dataset, index, exc)}: {exc}") from None
        if self._sizes is not None:
            self._sizes.check(self.dataset, index, "is evaluated (image after data.eval_transforms, label) as",
                              image_t, mask)
        return image_t, mask


def evaluated_size(dataset, pipeline) -> tuple[int, int]:
    """The (H, W) the model sees for the first item of ``dataset`` after the eval pipeline (only its mask is read)."""
    mask = read_mask(dataset, 0)
    image = torch.zeros((3, *mask.shape[-2:]), dtype=torch.uint8)
    try:
        return tuple(for_dataset(pipeline, dataset)(image, mask, torch.Generator().manual_seed(0))[0].shape[-2:])
    except DataError as exc:
        raise DataError(f"{item_path(dataset, 0, label=True)}: {exc}") from None


@torch.no_grad()
def evaluate_per_image(model, dataset, pipeline, *, config, num_classes, ignore_index, runtime: Runtime,
                       num_workers=0, progress=True, desc="evaluate", stop=None) -> torch.Tensor:
    """One ``(C, C + 1)`` confusion matrix per image of ``dataset``: ``(I, C, C + 1)`` int64, in dataset
    order (rows: ground truth; see metrics). Their sum is the global matrix of the official rule.

    Under distributed runs each rank scores every ``world_size``-th image (no padding, so no image
    is counted twice) and fills its rows; the stacks are summed across ranks: the result is exact.
    ``stop()`` (a preemption signal arrived) is asked between sliding windows and before every batch;
    ranks agree after each batch, and all raise :class:`EvaluationStopped` together.
    """
    env = runtime.dist
    model = unwrap_for_evaluation(model, env)
    was_training = model.training
    model.eval()
    indices = list(range(env.rank, len(dataset), env.world_size))
    loader = data_loader(Subset(_EvalItems(dataset, pipeline, batch_size=config.batch_size), indices),
                         batch_size=config.batch_size,
                         num_workers=num_workers, shuffle=False)
    # Rank 0 has the most images: every rank takes part in as many stop votes as it has batches.
    steps = math.ceil(len(range(0, len(dataset), env.world_size)) / config.batch_size)
    matrices = torch.zeros((len(dataset), num_classes, num_classes + 1), dtype=torch.int64)
    bar = tqdm(total=len(loader), desc=desc, leave=False, disable=not (progress and env.is_main), unit="batch",
               file=STDERR)
    batches = iter(loader)
    position = 0
    try:
        for _ in range(steps):
            stopping = stop is not None and stop()
            batch = None if stopping else next(batches, None)
            if batch is not None:
                images, masks = batch
                try:
                    preds = predict(model, images, label_size=tuple(masks.shape[-2:]), config=config,
                                    num_classes=num_classes, runtime=runtime, stop=stop)
                    preds = preds.to(torch.uint8).cpu() if num_classes < 255 else preds.cpu()
                    for pred, mask in zip(preds, masks):
                        matrices[indices[position]] = confusion_matrix(pred, mask, num_classes=num_classes,
                                                                       ignore_index=ignore_index)
                        position += 1
                except EvaluationStopped:
                    stopping = True
                bar.update(1)
            if stop is not None and any_rank(stopping, env, runtime.device):
                raise EvaluationStopped
    finally:
        bar.close()
        del batches
        model.train(was_training)
    return all_reduce_sum(matrices, env)


def evaluate_confusion(model, dataset, pipeline, **options) -> torch.Tensor:
    """The global ``(C, C + 1)`` confusion matrix over ``dataset``: the sum of the per-image matrices
    (:func:`evaluate_per_image`, which takes the same arguments)."""
    return evaluate_per_image(model, dataset, pipeline, **options).sum(dim=0)
