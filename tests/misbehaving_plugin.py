"""Plugin components that break their contracts the way third-party code does: a dataset with stray label
values or numpy arrays, a transform that resizes the image but not the mask, a loss that is not a
backpropagatable scalar, models whose factory returns nothing or whose output is wrong only in training."""
import attrs
import torch
from torch import nn

from segbench import hookimpl
from segbench.deep_supervision import DeepSupervision
from tests.engine_plugin import Blobs, BlobsConfig


@attrs.frozen
class NoConfig:
    pass


def _data_not_here(config):
    from segbench.errors import DataUnavailableError

    raise DataUnavailableError("no data in /nowhere")


@attrs.frozen
class OddSchedulerConfig:
    keeps: str = "numpy"  # what its state_dict() holds: numpy, a lambda (cannot be pickled), or plain
    lr: str = "0.1"  # the rate it sets after every step (text: recipes refuse a NaN number)


class OddScheduler:
    """A scheduler whose state a checkpoint cannot keep, or which sets an impossible learning rate."""

    def __init__(self, config, *, optimizer, total_iterations, iterations_per_epoch):
        self.config, self.optimizer = config, optimizer

    def step_iteration(self):
        for group in self.optimizer.param_groups:
            group["lr"] = float(self.config.lr)

    def step_epoch(self, metric):
        pass

    def state_dict(self):
        import numpy as np

        keeps = {"numpy": np.float64(0.5), "lambda": lambda: 0, "plain": 0.5}[self.config.keeps]
        return {"history": [1.0, {"best": keeps}]}

    def load_state_dict(self, state):
        pass


@attrs.frozen
class StrayLabelsConfig(BlobsConfig):
    value: int = 250  # neither a class (0..2) nor the ignore index (255)
    numpy: bool = False


class StrayLabels(Blobs):
    def __init__(self, config):
        super().__init__(config)
        self.value, self.numpy = config.value, config.numpy
        self.masks = self.masks.clone()
        self.masks[:, 0, 0] = config.value

    def __getitem__(self, index):
        image, mask = super().__getitem__(index)
        return (image.numpy(), mask.numpy()) if self.numpy else (image, mask)


class RaisingItem(Blobs):
    """A file that went missing: item 3 raises what reading it would."""

    def __getitem__(self, index):
        if index == 3:
            raise FileNotFoundError(f"/data/img_{index}.png")
        return super().__getitem__(index)


class ThreeTuple(Blobs):
    def __getitem__(self, index):
        return (*super().__getitem__(index), {"id": index})  # metadata beside the pair


def _new_labels(image, mask, generator, ignore_index):
    mask = mask.clone()
    mask[0, 0] = 77  # neither a class nor the ignore index
    return image, mask


def _new_labels_in_place(image, mask, generator, ignore_index):
    mask[0, 0] = 77  # the same tensor comes back
    return image, mask


def _uint8_final(image, mask, generator, ignore_index):
    return image, mask  # a final step that forgot to make the model's float input


class DetachedLogits(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.conv = nn.Conv2d(3, num_classes, 1)

    def forward(self, x):
        return self.conv(x).detach()


def _half_image(image, mask, generator, ignore_index):
    return image[:, ::2, ::2], mask  # the mask keeps its size


def _returns_image_only(image, mask, generator, ignore_index):
    return image


def _floats_early(image, mask, generator, ignore_index):
    return image.float() / 255, mask


class _Loss(nn.Module):
    def __init__(self, reduce):
        super().__init__()
        self.reduce = reduce

    def forward(self, logits, target):
        return self.reduce(nn.functional.cross_entropy(logits, target, ignore_index=255, reduction="none"))


_LOSSES = {
    "per_pixel_loss": lambda pixels: pixels,                       # forgot the reduction
    "detached_loss": lambda pixels: pixels.mean().detach(),        # cut from the graph
    "integer_loss": lambda pixels: torch.tensor(3),                # not computed from the logits at all
    "raising_loss": lambda pixels: pixels[:, :, 99].mean(),        # a bug inside the plugin's own code
}


class TrainOnlyHalfSize(nn.Module):
    """Right in eval mode (what the model contract runs), half-size logits in training mode."""

    def __init__(self, num_classes):
        super().__init__()
        self.conv = nn.Conv2d(3, num_classes, 1)

    def forward(self, x):
        out = self.conv(x)
        return out[:, :, ::2, ::2] if self.training else out


class AuxiliaryMissingClass(nn.Module):
    """Deep supervision whose auxiliary classifier has one class too few."""

    def __init__(self, num_classes):
        super().__init__()
        self.conv = nn.Conv2d(3, num_classes, 1)

    def forward(self, x):
        out = self.conv(x)
        return DeepSupervision(out, (out[:, :-1, ::2, ::2],), 0.4) if self.training else out


class NanAtInit(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.conv = nn.Conv2d(3, num_classes, 1)

    def forward(self, x):
        return self.conv(x) / x.sum()  # 0 / 0 for an all-zero image


class PooledBatchNorm(nn.Module):
    """Batch-norm over globally pooled features, as in ASPP's pooling branch: fine in eval mode, refused by
    torch in training mode for a batch of one."""

    def __init__(self, num_classes):
        super().__init__()
        self.conv = nn.Conv2d(3, num_classes, 1)
        self.norm = nn.BatchNorm2d(num_classes)

    def forward(self, x):
        out = self.conv(x)
        return out + self.norm(out.mean(dim=(2, 3), keepdim=True))


_WEIGHTS = {
    "nan_weights": lambda histogram: torch.full(histogram.shape, float("nan")),
    "one_weight_too_many": lambda histogram: torch.ones(len(histogram) + 1),
    "list_weights": lambda histogram: [1.0] * len(histogram),
}


class Misbehaving:
    @hookimpl
    def segbench_register_datasets(self, register):
        register("stray_labels", StrayLabels, config=StrayLabelsConfig)
        register("a_list", lambda config: [1, 2, 3], config=BlobsConfig)
        register("raising_item", RaisingItem, config=BlobsConfig)
        register("three_tuple", ThreeTuple, config=BlobsConfig)
        register("not_here", _data_not_here, config=BlobsConfig)

    @hookimpl
    def segbench_register_optimizers(self, register):
        register("forgot_return", lambda config, *, param_groups: None, config=NoConfig)

    @hookimpl
    def segbench_register_schedulers(self, register):
        register("not_a_scheduler", lambda config, **context: object(), config=NoConfig)
        register("odd", OddScheduler, config=OddSchedulerConfig)

    @hookimpl
    def segbench_register_class_weightings(self, register):
        for name, weights in _WEIGHTS.items():
            register(name, lambda config, weights=weights: weights, config=NoConfig)

    @hookimpl
    def segbench_register_transforms(self, register):
        register("half_image", lambda config: _half_image, config=NoConfig)
        register("image_only", lambda config: _returns_image_only, config=NoConfig)
        register("floats_early", lambda config: _floats_early, config=NoConfig)
        register("new_labels", lambda config: _new_labels, config=NoConfig)
        register("new_labels_in_place", lambda config: _new_labels_in_place, config=NoConfig)
        register("uint8_final", lambda config: _uint8_final, config=NoConfig, final=True)

    @hookimpl
    def segbench_register_losses(self, register):
        for name, reduce in _LOSSES.items():
            register(name, lambda config, *, ignore_index, class_weights, reduce=reduce: _Loss(reduce),
                     config=NoConfig)

    @hookimpl
    def segbench_register_models(self, register):
        register("returns_none", lambda config, *, num_classes: None, config=NoConfig)
        register("train_only_half_size", lambda config, *, num_classes: TrainOnlyHalfSize(num_classes),
                 config=NoConfig)
        register("auxiliary_missing_class", lambda config, *, num_classes: AuxiliaryMissingClass(num_classes),
                 config=NoConfig)
        register("nan_at_init", lambda config, *, num_classes: NanAtInit(num_classes), config=NoConfig)
        register("pooled_batch_norm", lambda config, *, num_classes: PooledBatchNorm(num_classes), config=NoConfig)
        register("detached_logits", lambda config, *, num_classes: DetachedLogits(num_classes), config=NoConfig)
