"""A small in-memory plugin for engine tests: a model without batch-norm and a learnable toy dataset."""
from pathlib import Path

import attrs
import torch
from torch import nn

from segbench import hookimpl
from segbench.data.dataset import DatasetInfo, SegmentationDataset
from segbench.plugins import make_plugin_manager
from segbench.registry import build_registries

NUM_CLASSES = 3
INFO = DatasetInfo(class_names=("dark", "mid", "bright"), palette=((0, 0, 0), (128, 128, 128), (255, 255, 255)))


@attrs.frozen
class NoBNConfig:
    channels: int = 8


def build_nobn(config: NoBNConfig, *, num_classes: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, config.channels, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(config.channels, num_classes, 1))


@attrs.frozen
class BlobsConfig:
    count: int = 12
    size: int = 16
    seed: int = 0
    split: str = attrs.field(default="train", validator=attrs.validators.in_(("train", "val")))
    subset: int | None = None
    nan_after: int | None = None  # item index whose image turns into NaN-producing values


class Blobs(SegmentationDataset):
    """Images whose class is the brightness band of each pixel: learnable by a 3x3 conv net."""

    info = INFO

    def __init__(self, config: BlobsConfig):
        generator = torch.Generator().manual_seed(config.seed + (1000 if config.split == "val" else 0))
        count = config.subset or config.count
        base = torch.rand((count, 1, config.size // 4, config.size // 4), generator=generator)
        gray = torch.nn.functional.interpolate(base, size=(config.size, config.size), mode="bilinear")[:, 0]
        self.masks = (gray * NUM_CLASSES).clamp(max=NUM_CLASSES - 1).to(torch.uint8)
        self.images = (gray * 255).to(torch.uint8)[:, None].expand(-1, 3, -1, -1).contiguous()
        self.split = config.split

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        return self.images[index], self.masks[index]

    def read_mask(self, index):
        return self.masks[index]

    def sample_id(self, index):
        return f"{self.split}_{index:04d}"

    def image_path(self, index):
        return Path(f"/memory/{self.split}/{index}.png")

    def label_path(self, index):
        return Path(f"/memory/{self.split}/{index}_label.png")

    def fingerprint(self):
        return f"blobs-{self.split}-{len(self)}"


@attrs.frozen
class NanAfterConfig:
    step: int = 3


class NanAfter(nn.Module):
    """Cross-entropy that turns into NaN from its ``step``-th call on."""

    def __init__(self, config, *, ignore_index, class_weights):
        super().__init__()
        self.step, self.calls = config.step, 0

    def forward(self, logits, target):
        self.calls += 1
        loss = nn.functional.cross_entropy(logits, target.long())
        return loss * float("nan") if self.calls >= self.step else loss


class EnginePlugin:
    @hookimpl
    def segbench_register_models(self, register):
        register("nobn", build_nobn, config=NoBNConfig)

    @hookimpl
    def segbench_register_datasets(self, register):
        register("blobs", Blobs, config=BlobsConfig)

    @hookimpl
    def segbench_register_losses(self, register):
        register("nan_after", NanAfter, config=NanAfterConfig)


def registries():
    pm = make_plugin_manager(load_entry_points=False)
    pm.register(EnginePlugin(), name="engine-test-plugin")
    return build_registries(pm)


RECIPE = """\
seed: 0
model: {name: nobn}
data:
  dataset: {name: blobs, count: 12, size: 16}
  train: {split: train}
  select: {split: val, count: 4}
  report: {split: val, count: 6}
  train_transforms:
    - {name: hflip, p: 0.5}
    - {name: normalize}
loss: {name: cross_entropy}
optimizer: {name: sgd, lr: 0.1, momentum: 0.0, weight_decay: 0.0}
scheduler: {name: constant}
trainer: {epochs: 3, batch_size: 2, num_workers: 0, precision: fp32, log_every: 1}
logging: [{name: jsonl}]
"""
