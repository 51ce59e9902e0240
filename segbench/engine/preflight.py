"""What a run can only check once it has read its data, checked before a cluster job waits in a queue for it:
the training split against the batch size and the number of processes, the scheduler (its warm-up) against
the run's length, the cost of evaluating the selection and report splits, and what a dataset can check of
its files without reading them all (file headers).

``segbench run`` makes these checks while it builds the run (:func:`check_against_data`); ``segbench
emit-slurm`` makes them for each job it is about to submit (:func:`preflight`), with the job's process count.
"""
from __future__ import annotations

import torch

from segbench.engine.distributed import DistEnv
from segbench.engine.evaluate import check_evaluation_cost, evaluated_size
from segbench.engine.trainer import ScheduleLength, schedule_length
from segbench.errors import (ConfigError, DataError, DataUnavailableError, PluginError, RecipeError, SegbenchError,
                             naming_recipe_files)


def check_against_data(plan, train_data, select_data, report_data, env: DistEnv) -> ScheduleLength:
    """The run's length for ``train_data``; refuses what its data makes impossible."""
    for data in {id(data): data for data in (train_data, select_data, report_data)}.values():
        check_files = getattr(data, "check_files", None)  # SegmentationDataset's; duck-typed datasets may lack it
        if check_files is not None:
            check_files()
    for split, data in (("selection", select_data), ("report", report_data)):
        if len(data):  # before training, not after it: the size the evaluation sees, after eval_transforms
            check_evaluation_cost(plan.evaluation, evaluated_size(data, plan.eval_transforms), split=split,
                                  files=plan.recipe.files)
    try:
        return schedule_length(len(train_data), plan.trainer, env)
    except DataError as exc:  # too few images for a batch per process: the recipe's batch size or data
        raise ConfigError([("trainer.batch_size", str(exc))], files=plan.recipe.files) from None


def check_scheduler(plan, length: ScheduleLength) -> None:
    """Build the scheduler on a stand-in optimizer: a warm-up longer than the run is refused as it would be."""
    stand_in = plan.optimizer.build(param_groups=[{"params": [torch.nn.Parameter(torch.zeros(1))]}])
    with naming_recipe_files(plan.recipe.files):
        plan.scheduler.build(optimizer=stand_in, total_iterations=length.total_iterations,
                             iterations_per_epoch=length.iterations_per_epoch)


def preflight(plan, *, world_size: int = 1) -> str | None:
    """Raise what ``segbench run`` would refuse for ``plan`` with ``world_size`` processes once it reads the data;
    ``None`` when all is well, or why the data could not be checked (it cannot be read on this machine)."""
    from segbench.engine.build import build_datasets

    try:
        train, select, report = build_datasets(plan)
    except DataUnavailableError as exc:  # e.g. Cityscapes on the compute nodes' storage only: the job checks it
        return str(exc).split(". ")[0]
    except DataError as exc:  # a mistake about data that is here (too few images for a subset): the job's too
        raise RecipeError(f"{' <- '.join(plan.recipe.files)}: {exc}") from None
    except (RecipeError, PluginError):
        raise
    except SegbenchError as exc:  # a plugin's dataset that raised something of its own (its folder missing?)
        return str(exc).split(". ")[0]
    length = check_against_data(plan, train, select, report, DistEnv(world_size=world_size))
    check_scheduler(plan, length)
    return None
