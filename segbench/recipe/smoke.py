"""``--smoke``: the same recipe on a tiny synthetic city, a few iterations, small crops."""
from __future__ import annotations

import copy

SMOKE_DATASET = {"name": "synthetic_city", "train": 8, "val": 4, "train_extra": 4, "size": [64, 128], "seed": 0}
SMOKE_CROP = [64, 128]
SMOKE_TRAINER = {"max_iterations": 2, "epochs": 1, "num_workers": 0, "log_every": 1, "eval_every": 1}
SMOKE_SUBSET_CAP = 2


def _shrink_subset(role: dict) -> None:
    subset = role.get("subset")
    if isinstance(subset, dict):
        for key in ("first", "random"):
            if isinstance(subset.get(key), int):
                subset[key] = min(subset[key], SMOKE_SUBSET_CAP)
        if subset.get("cities") is not None:  # real city names do not exist in the smoke tree
            role["subset"] = {"first": SMOKE_SUBSET_CAP, "invert": bool(subset.get("invert", False))}


def smoke_variant(data: dict, *, standin_weights: str) -> dict:
    """Return a copy of a resolved recipe that runs in seconds on generated data.

    ImageNet weights cannot be assumed present, so a ``pretrained: imagenet`` model loads
    ``standin_weights`` (a ResNet50 state dict) instead: the loading path is exercised, not the accuracy.
    """
    data = copy.deepcopy(data)
    section = data.setdefault("data", {})
    if isinstance(section, dict):
        section["dataset"] = dict(SMOKE_DATASET)
        for role in ("train", "select", "report"):
            if isinstance(section.get(role), dict):
                _shrink_subset(section[role])
        for key in ("train_transforms", "eval_transforms"):
            for transform in section.get(key) or []:
                if isinstance(transform, dict) and "size" in transform:
                    transform["size"] = list(SMOKE_CROP)
    trainer = data.setdefault("trainer", {})
    if isinstance(trainer, dict):
        trainer.update(SMOKE_TRAINER)
        trainer["batch_size"] = 2
        trainer["accumulate"] = min(int(trainer.get("accumulate", 1) or 1), 2)
    evaluation = data.get("evaluation")
    if isinstance(evaluation, dict) and evaluation.get("window") is not None:
        evaluation["window"], evaluation["stride"] = list(SMOKE_CROP), [32, 64]
    scheduler = data.get("scheduler")
    if isinstance(scheduler, dict) and scheduler.get("warmup_iterations"):
        scheduler["warmup_iterations"] = 1  # warm-up must fit in the two smoke iterations
    model = data.get("model")
    if isinstance(model, dict) and model.get("pretrained") == "imagenet":
        model["pretrained"] = standin_weights
    return data
