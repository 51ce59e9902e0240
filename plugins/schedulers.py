"""Built-in learning-rate schedulers: ``poly``, ``cosine``, ``constant`` (per iteration) and
``plateau`` (per evaluation, on the selection mIoU), each with an optional linear warm-up.

Every parameter group keeps its own base lr (``optimizer.groups`` may give the backbone a smaller
one): per-iteration schedules set ``lr = base lr x factor``, so the groups keep their ratio.
The base lrs and the position are in ``state_dict()``, so a resumed run continues exactly.
"""
from __future__ import annotations

import math
from typing import Callable

import attrs
import torch

from segbench import hookimpl
from segbench.config import in_range
from segbench.errors import CheckpointError, ConfigError
from segbench.functional.lr import cosine_factor, poly_factor, warmup_factor


@attrs.frozen
class ConstantConfig:
    warmup_iterations: int = attrs.field(default=0, validator=in_range(0, 10**9))
    warmup_ratio: float = attrs.field(default=0.001, validator=in_range(0.0, 1.0, low_open=True, high_open=True))


@attrs.frozen
class PolyConfig(ConstantConfig):
    power: float = attrs.field(default=0.9, validator=in_range(0.0, 100.0, low_open=True))
    min_lr: float = attrs.field(default=0.0, validator=in_range(0.0, 100.0))


@attrs.frozen
class CosineConfig(ConstantConfig):
    min_lr: float = attrs.field(default=0.0, validator=in_range(0.0, 100.0))


@attrs.frozen
class PlateauConfig(ConstantConfig):
    patience: int = attrs.field(default=4, validator=in_range(0, 10**9))
    factor: float = attrs.field(default=0.5, validator=in_range(0.0, 1.0, low_open=True, high_open=True))
    min_lr: float = attrs.field(default=0.0, validator=in_range(0.0, 100.0))
    threshold: float = attrs.field(default=1.0e-4, validator=in_range(0.0, 100.0))


def _base_lrs(optimizer) -> list[float]:
    # "initial_lr" is where torch schedulers keep the base lr; an optimizer state loaded from a
    # checkpoint carries it, so the base survives even before our own state is restored.
    return [float(group.setdefault("initial_lr", group["lr"])) for group in optimizer.param_groups]


def _check_state(state: dict, optimizer, keys: tuple[str, ...]) -> None:
    missing = [key for key in keys if key not in state]
    if missing:
        raise CheckpointError(
            f"the scheduler state in the checkpoint lacks {', '.join(missing)}; it was saved by a"
            " different scheduler. Resume with the recipe the run was started with."
        )
    if len(state["base_lrs"]) != len(optimizer.param_groups):
        raise CheckpointError(
            f"the checkpoint's scheduler state has {len(state['base_lrs'])} parameter group(s) but the"
            f" optimizer has {len(optimizer.param_groups)}; `optimizer.groups` changed since the run"
            " started. Resume with the recipe the run was started with."
        )


class IterationSchedule:
    """Sets each group's lr after every optimizer step: warm-up x (floor + (base - floor) x decay).

    ``decay(iteration)`` goes from 1 to 0; a group's floor is ``min(min_lr, its base lr)``.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        *,
        decay: Callable[[int], float],
        min_lr: float = 0.0,
        warmup_iterations: int = 0,
        warmup_ratio: float = 0.001,
    ):
        self.optimizer = optimizer
        self.decay = decay
        self.min_lr = min_lr
        self.warmup_iterations = warmup_iterations
        self.warmup_ratio = warmup_ratio
        self.base_lrs = _base_lrs(optimizer)
        self.iteration = 0
        self._apply()

    def _apply(self) -> None:
        decay = self.decay(self.iteration)
        warmup = warmup_factor(self.iteration, self.warmup_iterations, start_ratio=self.warmup_ratio)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            floor = min(self.min_lr, base)
            group["lr"] = (floor + (base - floor) * decay) * warmup

    def step_iteration(self) -> None:
        self.iteration += 1
        self._apply()

    def step_epoch(self, metric: float | None) -> None:
        """Per-iteration schedules ignore evaluations."""

    def state_dict(self) -> dict:
        return {"iteration": self.iteration, "base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state: dict) -> None:
        _check_state(state, self.optimizer, ("iteration", "base_lrs"))
        self.iteration = int(state["iteration"])
        self.base_lrs = [float(lr) for lr in state["base_lrs"]]
        self._apply()


class PlateauSchedule:
    """``ReduceLROnPlateau`` on the selection mIoU (mode ``max``), after an optional linear warm-up.

    The plateau rule acts on the un-warmed lrs; warm-up multiplies them during its iterations.
    torch reduces when more than ``patience`` evaluations in a row fail to beat the best mIoU by a
    relative ``threshold``. A missing or NaN metric (nothing scored) is skipped.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, config: PlateauConfig):
        self.optimizer = optimizer
        self.warmup_iterations = config.warmup_iterations
        self.warmup_ratio = config.warmup_ratio
        self.base_lrs = _base_lrs(optimizer)
        self.plateau_lrs = list(self.base_lrs)
        self.iteration = 0
        self._set(self.plateau_lrs)
        self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer,
            mode="max",
            factor=config.factor,
            patience=config.patience,
            threshold=config.threshold,
            min_lr=config.min_lr,
        )
        self._apply()

    def _set(self, lrs: list[float]) -> None:
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = lr

    def _apply(self) -> None:
        warmup = warmup_factor(self.iteration, self.warmup_iterations, start_ratio=self.warmup_ratio)
        self._set([lr * warmup for lr in self.plateau_lrs])

    def step_iteration(self) -> None:
        self.iteration += 1
        self._apply()

    def step_epoch(self, metric: float | None) -> None:
        if metric is None or math.isnan(metric):
            return
        self._set(self.plateau_lrs)
        self.plateau.step(metric)
        self.plateau_lrs = [float(group["lr"]) for group in self.optimizer.param_groups]
        self._apply()

    def state_dict(self) -> dict:
        return {
            "iteration": self.iteration,
            "base_lrs": list(self.base_lrs),
            "plateau_lrs": list(self.plateau_lrs),
            "plateau": self.plateau.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        _check_state(state, self.optimizer, ("iteration", "base_lrs", "plateau_lrs", "plateau"))
        self.iteration = int(state["iteration"])
        self.base_lrs = [float(lr) for lr in state["base_lrs"]]
        self.plateau_lrs = [float(lr) for lr in state["plateau_lrs"]]
        self.plateau.load_state_dict(state["plateau"])
        self._apply()


def _check_warmup(config: ConstantConfig, total_iterations: int) -> None:
    if config.warmup_iterations >= total_iterations > 0:
        raise ConfigError(
            [
                (
                    "scheduler.warmup_iterations",
                    f"{config.warmup_iterations} warm-up iterations leave nothing of the run's"
                    f" {total_iterations} iterations (trainer.epochs, batch size and processes set them); train"
                    f" longer, or warm up for fewer, e.g. scheduler.warmup_iterations={total_iterations // 10}",
                )
            ]
        )


def build_poly(config: PolyConfig, *, optimizer, total_iterations: int, iterations_per_epoch: int):
    _check_warmup(config, total_iterations)
    return IterationSchedule(
        optimizer,
        decay=lambda i: poly_factor(i, total_iterations, power=config.power),
        min_lr=config.min_lr,
        warmup_iterations=config.warmup_iterations,
        warmup_ratio=config.warmup_ratio,
    )


def build_cosine(config: CosineConfig, *, optimizer, total_iterations: int, iterations_per_epoch: int):
    _check_warmup(config, total_iterations)
    return IterationSchedule(
        optimizer,
        decay=lambda i: cosine_factor(i, total_iterations),
        min_lr=config.min_lr,
        warmup_iterations=config.warmup_iterations,
        warmup_ratio=config.warmup_ratio,
    )


def build_constant(config: ConstantConfig, *, optimizer, total_iterations: int, iterations_per_epoch: int):
    _check_warmup(config, total_iterations)
    return IterationSchedule(
        optimizer,
        decay=lambda i: 1.0,
        warmup_iterations=config.warmup_iterations,
        warmup_ratio=config.warmup_ratio,
    )


def build_plateau(config: PlateauConfig, *, optimizer, total_iterations: int, iterations_per_epoch: int):
    _check_warmup(config, total_iterations)
    return PlateauSchedule(optimizer, config)


def smoke_warmup(config: ConstantConfig) -> ConstantConfig:
    """A --smoke run has two iterations: a warm-up, if any, takes one."""
    return attrs.evolve(config, warmup_iterations=min(config.warmup_iterations, 1))


@hookimpl
def segbench_register_schedulers(register):
    register("poly", build_poly, config=PolyConfig, smoke=smoke_warmup)
    register("cosine", build_cosine, config=CosineConfig, smoke=smoke_warmup)
    register("plateau", build_plateau, config=PlateauConfig, smoke=smoke_warmup)
    register("constant", build_constant, config=ConstantConfig, smoke=smoke_warmup, default=True)
