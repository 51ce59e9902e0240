"""Building a run's objects (data, model, loss, optimizer, scheduler) from a validated plan."""
from __future__ import annotations

import sys

import attrs
import torch

from segbench.cache import cache_dir
from segbench.component_contract import check_class_weights
from segbench.engine.model_contract import check_model_output
from segbench.engine.param_groups import split_param_groups
from segbench.engine.preflight import check_against_data
from segbench.engine.runtime import Runtime
from segbench.engine.seeding import seed_global_generators
from segbench.records import ClassWeightsRecord, write_record
from segbench.runs import RunDir


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
    class_weights: ClassWeightsRecord | None
    splits_overlap: bool


def _sample_keys(dataset) -> set:
    return {(str(dataset.image_path(i))) for i in range(len(dataset))}


def build_datasets(plan):
    datasets = {role: component.build() for role, component in plan.datasets.items()}
    report = datasets["report"]
    select = datasets.get("select", report) if plan.trainer.select_on == "select" else report
    return datasets["train"], select, report


def build_components(plan, run: RunDir, runtime: Runtime, *, progress=True) -> RunComponents:
    from segbench.data.histogram import class_histogram
    from segbench.data.transformed import TransformedDataset

    env, device = runtime.dist, runtime.device
    train_base, select_data, report_data = build_datasets(plan)
    length = check_against_data(plan, train_base, select_data, report_data, env)
    info = train_base.info
    num_classes, ignore_index = len(info.class_names), info.ignore_index
    overlap = bool(_sample_keys(select_data) & _sample_keys(report_data))

    class_weights, weights_tensor = None, None
    if plan.class_weighting is not None:
        histogram = class_histogram(train_base, num_classes=num_classes, cache_dir=cache_dir() / "histograms",
                                    progress=progress and env.is_main, num_workers=plan.trainer.num_workers)
        weights_tensor = check_class_weights(plan.class_weighting.entry, plan.class_weighting.build()(histogram),
                                             num_classes=num_classes, path=plan.class_weighting.path)
        class_weights = ClassWeightsRecord(
            method=plan.class_weighting.name,
            weights=dict(zip(info.class_names, (round(float(w), 6) for w in weights_tensor))),
            pixel_counts=dict(zip(info.class_names, (int(c) for c in histogram))))

    seed_global_generators(plan.seed, "model-init")  # whatever ran before (data generation, counting) drew from it
    raw_model = plan.model.build(num_classes=num_classes)
    check_model_output(raw_model, plan.model, num_classes=num_classes)
    model = runtime.model(raw_model)
    if env.enabled:
        if plan.trainer.sync_batchnorm and device.type == "cuda":
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
            raw_model = model
        elif plan.trainer.sync_batchnorm and env.is_main:
            # torch's SyncBatchNorm runs on GPUs only; a --smoke check on a CPU node should still run.
            print(f"segbench: note: trainer.sync_batchnorm needs CUDA; this {device.type} run normalises each"
                  " process's batch on its own (plain batch-norm)", file=sys.stderr, flush=True)
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)

    criterion = plan.loss.build(ignore_index=ignore_index,
                                class_weights=None if weights_tensor is None else weights_tensor.to(device))
    groups = split_param_groups(raw_model, plan.optimizer.entry.groups(plan.optimizer.config),
                                path=plan.optimizer.path)
    optimizer = plan.optimizer.build(param_groups=groups)

    scheduler = plan.scheduler.build(optimizer=optimizer, total_iterations=length.total_iterations,
                                     iterations_per_epoch=length.iterations_per_epoch)
    train_data = TransformedDataset(train_base, plan.train_transforms, seed=plan.seed,
                                    same_size=plan.trainer.batch_size > 1,
                                    keep_decoded=plan.trainer.num_workers == 0)
    if class_weights is not None and env.is_main:  # last: a recipe refused above leaves no file behind
        write_record(run.path / "class_weights.json", class_weights)
    return RunComponents(model, raw_model, train_data, select_data, report_data, criterion, optimizer, scheduler,
                         num_classes, ignore_index, tuple(info.class_names), class_weights, overlap)
