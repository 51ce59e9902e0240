"""What each training step checks of the plugins' outputs before backpropagating: the model's logits in
training mode (the model contract is checked once in eval mode; a model may differ in training mode, as
torchvision's return auxiliary outputs) and the loss value. A violation would otherwise surface as a torch
traceback from inside the loss or ``backward`` naming no plugin. The checks read shapes and flags only."""
from __future__ import annotations

import contextlib
import math

import torch

from segbench.deep_supervision import DeepSupervision, split_training_output
from segbench.errors import FIX_PLUGIN, PluginError, RecipeError, SegbenchError

# Failures inside a component whose cause is the recipe's setting, not the component's code:
# (words of torch's message, what to change).
RECIPE_CAUSES = (
    ("Expected more than 1 value per channel when training",
     "batch-norm needs more than one value per channel while training (a batch of one image pooled to 1x1);"
     " set trainer.batch_size to 2 or more (it counts images per process)"),
)


def check_training_logits(output, masks: torch.Tensor, component, *, num_classes: int) -> DeepSupervision:
    """``output`` of ``component``'s model in training mode: logits ``(N, num_classes, H, W)`` for masks
    ``(N, H, W)``, or a ``DeepSupervision`` whose main logits have that shape and whose auxiliary logits have
    it or a smaller height and width. Returns it as a ``DeepSupervision``, for ``supervised_loss``."""
    supervised = split_training_output(output)
    _check_logits(supervised.logits, masks, component, num_classes=num_classes, what="one float tensor of logits")
    for index, auxiliary in enumerate(supervised.auxiliary):
        _check_logits(auxiliary, masks, component, num_classes=num_classes, smaller=True,
                      what=f"auxiliary logits (DeepSupervision.auxiliary[{index}]) as a float tensor")
    weight = supervised.weight
    if supervised.auxiliary and not (isinstance(weight, (int, float)) and math.isfinite(weight) and weight >= 0):
        entry = component.entry
        raise PluginError(f"{component.path}: model {entry.name!r} ({entry.origin}) returned DeepSupervision with"
                          f" weight {weight!r}; the auxiliary losses' weight must be a finite number >= 0."
                          f" {FIX_PLUGIN}.")
    return supervised


def _check_logits(logits, masks: torch.Tensor, component, *, num_classes: int, what: str,
                  smaller: bool = False) -> None:
    """``smaller``: the height and width may be smaller than the masks' (auxiliary logits)."""
    expected = (masks.shape[0], num_classes, *masks.shape[-2:])
    got = None
    if isinstance(logits, dict):
        got = f"a dict with keys {sorted(map(str, logits))} (return the main logits tensor in training mode too)"
    elif not isinstance(logits, torch.Tensor):
        got = f"a {type(logits).__name__}"
    elif not logits.is_floating_point():
        got = f"a {logits.dtype} tensor"
    else:
        shape = tuple(logits.shape)
        fits = shape == expected or (smaller and logits.ndim == 4 and shape[:2] == expected[:2]
                                     and all(1 <= side <= limit for side, limit in zip(shape[2:], expected[2:])))
        if not fits:
            got = f"shape {shape}"
        elif not logits.requires_grad and torch.is_grad_enabled():
            # Found here, the model is named; found by the loss or backward, the loss would be blamed.
            got = ("a tensor without a gradient (detached, computed under torch.no_grad(), or from a model none of"
                   " whose parameters requires a gradient)")
    if got is None:
        return
    entry = component.entry
    raise PluginError(f"{component.path}: model {entry.name!r} ({entry.origin}) in training mode must return"
                      f" {what} {expected} for this batch (N, num_classes, H, W at the input size"
                      f"{', or smaller' if smaller else ''}), but it returned {got}. {FIX_PLUGIN}.")


def check_loss_value(loss, component) -> None:
    """``loss`` from ``component`` must be a floating-point scalar tensor connected to the model's output."""
    if (isinstance(loss, torch.Tensor) and loss.ndim == 0 and loss.is_floating_point()
            and (loss.requires_grad or not torch.is_grad_enabled())):
        return
    entry = component.entry
    if not isinstance(loss, torch.Tensor):
        got = f"a {type(loss).__name__}"
    elif loss.ndim != 0:
        got = (f"a tensor of shape {tuple(loss.shape)} (reduce it, e.g. with .mean() over the pixels that are not"
               " ignored)")
    elif not loss.is_floating_point():
        got = f"a {loss.dtype} tensor"
    else:
        got = ("a tensor without a gradient (computed outside autograd: .detach(), .item(), torch.no_grad() or a"
               " new torch.tensor)")
    raise PluginError(f"{component.path}: loss {entry.name!r} ({entry.origin}) must return a floating-point scalar"
                      f" tensor computed from the logits, so that it can be backpropagated, but it returned {got}."
                      f" {FIX_PLUGIN}.")


def check_learning_rates(optimizer: torch.optim.Optimizer, component, method: str) -> None:
    """After ``component`` (the scheduler) ran ``method``: every parameter group's lr a finite number >= 0."""
    bad = [(index, group.get("lr")) for index, group in enumerate(optimizer.param_groups)
           if not (isinstance(group.get("lr"), (int, float)) and math.isfinite(group["lr"]) and group["lr"] >= 0)]
    if not bad:
        return
    entry = component.entry
    shown = ", ".join(f"group {index}: {lr!r}" for index, lr in bad)
    raise PluginError(f"{component.path}: scheduler {entry.name!r} ({entry.origin}) set a learning rate that is not"
                      f" a finite number >= 0 in {method} ({shown}). {FIX_PLUGIN}.")


@contextlib.contextmanager
def blamed_on(component, doing: str):
    """Report an exception raised inside ``component``'s code while ``doing`` as that plugin's error (one line;
    ``--debug`` adds the traceback). segbench's own errors and running out of memory pass through unchanged."""
    try:
        yield
    except (SegbenchError, torch.OutOfMemoryError):
        raise
    except Exception as exc:
        entry = component.entry
        failed = (f"{component.path}: {entry.noun} {entry.name!r} ({entry.origin}) failed {doing}:"
                  f" {type(exc).__name__}: {exc}")
        fix = next((fix for words, fix in RECIPE_CAUSES if words in str(exc)), None)
        if fix is not None:
            raise RecipeError(f"{failed}. {fix}.") from exc
        raise PluginError(f"{failed}. {FIX_PLUGIN} (--debug shows where).") from exc
