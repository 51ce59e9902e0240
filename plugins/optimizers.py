"""Built-in optimizers: adam, adamw, sgd (torch.optim), with named parameter groups."""
from __future__ import annotations

import attrs
import torch
from segbench import hookimpl
from segbench.config import in_range
from segbench.registry import GroupSettings

_LR = in_range(0, 100, low_open=True)
_WEIGHT_DECAY = in_range(0, 10)


@attrs.frozen
class GroupConfig:
    """Settings for the parameters of one named sub-module (e.g. ``backbone``)."""

    lr: float | None = attrs.field(default=None, validator=_LR)
    weight_decay: float | None = attrs.field(default=None, validator=_WEIGHT_DECAY)


def _groups_field():
    return attrs.field(factory=dict)


@attrs.frozen
class AdamConfig:
    lr: float = attrs.field(default=1.0e-4, validator=_LR)
    betas: tuple[float, float] = attrs.field(default=(0.9, 0.999), validator=in_range(0, 1, high_open=True))
    weight_decay: float = attrs.field(default=0.0, validator=_WEIGHT_DECAY)
    eps: float = attrs.field(default=1.0e-8, validator=in_range(0, 1, low_open=True))
    groups: dict[str, GroupConfig] = _groups_field()


@attrs.frozen
class SGDConfig:
    lr: float = attrs.field(default=0.01, validator=_LR)
    momentum: float = attrs.field(default=0.9, validator=in_range(0, 1))
    nesterov: bool = False
    weight_decay: float = attrs.field(default=5.0e-4, validator=_WEIGHT_DECAY)
    groups: dict[str, GroupConfig] = _groups_field()


def _fused_ok(param_groups) -> bool:
    # On CPU the fused step is ~4x faster than the default loop over the parameters, for Adam(W) and SGD
    # (benchmarks/bench_optimizer.py); on CUDA fused is standard.
    # fp32 and fp64 only: torch's fused CPU SGD mishandled fp16/bf16 parameters until mid-2026 (#191763).
    params = [p for g in param_groups for p in g["params"]]
    return bool(params) and all(p.dtype in (torch.float32, torch.float64) and p.device.type in ("cpu", "cuda")
                                for p in params)


def build_adam(config: AdamConfig, *, param_groups):
    return torch.optim.Adam(param_groups, lr=config.lr, betas=config.betas, eps=config.eps,
                            weight_decay=config.weight_decay, fused=_fused_ok(param_groups))


def build_adamw(config: AdamConfig, *, param_groups):
    return torch.optim.AdamW(param_groups, lr=config.lr, betas=config.betas, eps=config.eps,
                             weight_decay=config.weight_decay, fused=_fused_ok(param_groups))


def build_sgd(config: SGDConfig, *, param_groups):
    return torch.optim.SGD(param_groups, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov,
                           weight_decay=config.weight_decay, fused=_fused_ok(param_groups))


def parameter_groups(config: AdamConfig | SGDConfig) -> dict[str, GroupSettings]:
    """``groups: {backbone: {lr: 1.0e-5}}``: the sub-modules that get their own lr or weight decay."""
    return {prefix: GroupSettings(lr=group.lr, weight_decay=group.weight_decay)
            for prefix, group in config.groups.items()}


@hookimpl
def segbench_register_optimizers(register):
    register("adam", build_adam, config=AdamConfig, param_groups=parameter_groups)
    register("adamw", build_adamw, config=AdamConfig, param_groups=parameter_groups)
    register("sgd", build_sgd, config=SGDConfig, param_groups=parameter_groups)
