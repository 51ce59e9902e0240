"""Built-in optimizers: adam, adamw, sgd (torch.optim), with named parameter groups."""
from __future__ import annotations

import attrs
import torch
from attrs.validators import ge, gt, optional

from segbench import hookimpl
from segbench.registry import GroupSettings


@attrs.frozen
class GroupConfig:
    """Settings for the parameters of one named sub-module (e.g. ``backbone``)."""

    lr: float | None = attrs.field(default=None, validator=optional(gt(0)))
    weight_decay: float | None = attrs.field(default=None, validator=optional(ge(0)))


def _groups_field():
    return attrs.field(factory=dict)


@attrs.frozen
class AdamConfig:
    lr: float = attrs.field(default=1.0e-4, validator=gt(0))
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = attrs.field(default=0.0, validator=ge(0))
    eps: float = attrs.field(default=1.0e-8, validator=gt(0))
    groups: dict[str, GroupConfig] = _groups_field()

    def __attrs_post_init__(self):
        if not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"betas must be in [0, 1), got {list(self.betas)}")


@attrs.frozen
class SGDConfig:
    lr: float = attrs.field(default=0.01, validator=gt(0))
    momentum: float = attrs.field(default=0.9, validator=ge(0))
    nesterov: bool = False
    weight_decay: float = attrs.field(default=5.0e-4, validator=ge(0))
    groups: dict[str, GroupConfig] = _groups_field()


def _fused_ok(param_groups) -> bool:
    # Fused Adam is ~3x faster than the default loop on CPU and standard on CUDA.
    params = [p for g in param_groups for p in g["params"]]
    return bool(params) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)


def build_adam(config: AdamConfig, *, param_groups):
    return torch.optim.Adam(param_groups, lr=config.lr, betas=config.betas, eps=config.eps,
                            weight_decay=config.weight_decay, fused=_fused_ok(param_groups))


def build_adamw(config: AdamConfig, *, param_groups):
    return torch.optim.AdamW(param_groups, lr=config.lr, betas=config.betas, eps=config.eps,
                             weight_decay=config.weight_decay, fused=_fused_ok(param_groups))


def build_sgd(config: SGDConfig, *, param_groups):
    return torch.optim.SGD(param_groups, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov,
                           weight_decay=config.weight_decay)


def parameter_groups(config: AdamConfig | SGDConfig) -> dict[str, GroupSettings]:
    """``groups: {backbone: {lr: 1.0e-5}}``: the sub-modules that get their own lr or weight decay."""
    return {prefix: GroupSettings(lr=group.lr, weight_decay=group.weight_decay)
            for prefix, group in config.groups.items()}


@hookimpl
def segbench_register_optimizers(register):
    register("adam", build_adam, config=AdamConfig, param_groups=parameter_groups)
    register("adamw", build_adamw, config=AdamConfig, param_groups=parameter_groups)
    register("sgd", build_sgd, config=SGDConfig, param_groups=parameter_groups)
