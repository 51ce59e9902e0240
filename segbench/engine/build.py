"""Building a run's objects (data, model, loss, optimizer, scheduler) from a validated plan."""
from __future__ import annotations

import os
from pathlib import Path

import attrs
import torch

from segbench.engine.distributed import DistEnv
from segbench.engine.param_groups import split_param_groups
from segbench.engine.rundir import RunDir
from segbench.engine.trainer import schedule_length


@attrs.define
class RunComponents:
    model: torch.nn.Module  # possibly wrapped in DistributedDataParallel
    raw_model: torch.nn.Module
    train_data: object
    select_data: object
    report_data: object
    criterion: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object
    num_classes: int
    ignore_index: int
    class_names: tuple
    class_weights: dict | None
    splits_overlap: bool


def cache_dir() -> Path:
    return Path(os.environ.get("SEGBENCH_CACHE", Path.home() / ".cache" / "segbench"))


def _sample_keys(dataset) -> set:
    return {(str(dataset.image_path(i))) for i in range(len(dataset))}


def build_datasets(plan):
    datasets = {role: component.build() for role, component in plan.datasets.items()}
    report = datasets["report"]
    select = datasets.get("select", report) if plan.trainer.select_on == "select" else report
    return datasets["train"], select, report


def build_components(plan, run: RunDir, *, device, channels_last, env: DistEnv, progress=True) -> RunComponents:
    from segbench.data.histogram import class_histogram
    from segbench.data.transformed import TransformedDataset

    train_base, select_data, report_data = build_datasets(plan)
    info = train_base.info
    num_classes, ignore_index = len(info.class_names), info.ignore_index
    overlap = bool(_sample_keys(select_data) & _sample_keys(report_data))

    class_weights, weights_tensor = None, None
    if plan.class_weighting is not None:
        histogram = class_histogram(train_base, num_classes=num_classes, cache_dir=cache_dir() / "histograms",
                                    progress=progress and env.is_main, num_workers=plan.trainer.num_workers)
        weights_tensor = plan.class_weighting.build()(histogram).to(torch.float32)
        class_weights = {"method": plan.class_weighting.name,
                         "weights": dict(zip(info.class_names, (round(float(w), 6) for w in weights_tensor))),
                         "pixel_counts": dict(zip(info.class_names, (int(c) for c in histogram)))}
        if env.is_main:
            run.write_json("class_weights.json", class_weights)

    raw_model = plan.model.build(num_classes=num_classes)
    model = raw_model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if env.enabled:
        if plan.trainer.sync_batchnorm:
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
            raw_model = model
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)

    criterion = plan.loss.build(ignore_index=ignore_index,
                                class_weights=None if weights_tensor is None else weights_tensor.to(device))
    groups = split_param_groups(raw_model, getattr(plan.optimizer.config, "groups", {}) or {})
    optimizer = plan.optimizer.build(param_groups=groups)

    length = schedule_length(len(train_base), plan.trainer, env)
    scheduler = plan.scheduler.build(optimizer=optimizer, total_iterations=length.total_iterations,
                                     iterations_per_epoch=length.iterations_per_epoch)
    train_data = TransformedDataset(train_base, plan.train_transforms, seed=plan.seed,
                                    same_size=plan.trainer.batch_size > 1)
    return RunComponents(model, raw_model, train_data, select_data, report_data, criterion, optimizer, scheduler,
                         num_classes, ignore_index, tuple(info.class_names), class_weights, overlap)
