"""What each kind's factory must return, checked as soon as a component is built: a factory returning
``None`` or the wrong object would otherwise fail later, inside another component (an optimizer that is
not one blamed on the scheduler built from it) or in the middle of training."""
from __future__ import annotations

from typing import Any, Callable

from segbench.errors import FIX_PLUGIN, PluginError


def _has(*names: str) -> Callable[[Any], bool]:
    return lambda obj: all(callable(getattr(obj, name, None)) for name in names)


def _module(obj) -> bool:
    import torch

    return isinstance(obj, torch.nn.Module)


def _optimizer(obj) -> bool:
    import torch

    return isinstance(obj, torch.optim.Optimizer)


def _dataset(obj) -> bool:
    return _has("__len__", "__getitem__", "read_mask", "sample_id", "image_path", "label_path",
                "fingerprint")(obj) and hasattr(getattr(obj, "info", None), "class_names")


# kind -> (what it must return, in words; the check)
RETURNS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "models": ("a torch.nn.Module", _module),
    "datasets": ("a segbench.data.SegmentationDataset whose info is a segbench.data.DatasetInfo", _dataset),
    "losses": ("a callable (logits, targets) -> scalar loss, such as a torch.nn.Module", callable),
    "optimizers": ("a torch.optim.Optimizer over the param_groups it was given", _optimizer),
    "schedulers": ("an object with step_iteration(), step_epoch(metric), state_dict() and load_state_dict(state)",
                   _has("step_iteration", "step_epoch", "state_dict", "load_state_dict")),
    "strategies": ("a segbench.engine.strategy.Strategy (upstream(recipe) and prepare(model, upstream_run=...))",
                   _has("upstream", "prepare")),
    "class_weightings": ("a callable histogram -> weights", callable),
    "transforms": ("a callable (image, mask, generator, ignore_index) -> (image, mask)", callable),
    "loggers": ("a segbench.engine.loggers.Logger", _has("start", "train", "evaluate", "flush", "close")),
}


def check_built(entry, built, *, path: str):
    """``built`` if it is what ``entry``'s kind must return, else ``PluginError`` naming its plugin and ``path``
    (where the recipe declares the component)."""
    wanted, check = RETURNS.get(entry.kind, ("", lambda obj: True))
    if check(built):
        return built
    raise PluginError(f"{path}: {entry.noun} {entry.name!r} ({entry.origin}): its factory returned"
                      f" {type(built).__module__}.{type(built).__qualname__}, not {wanted}. {FIX_PLUGIN}.")


def check_class_weights(entry, weights, *, num_classes: int, path: str = "class_weighting"):
    """A class weighting's result as float32 ``(num_classes,)``: refused naming the plugin unless it is a tensor
    of that many finite, positive weights (others fail inside the loss or turn it into NaN)."""
    import torch

    problem = None
    if not isinstance(weights, torch.Tensor):
        problem = f"a {type(weights).__module__}.{type(weights).__qualname__}"
    elif not weights.is_floating_point() or tuple(weights.shape) != (num_classes,):
        problem = f"a {weights.dtype} tensor of shape {tuple(weights.shape)}"
    elif not bool(torch.isfinite(weights).all()) or not bool((weights > 0).all()):
        bad = [round(float(w), 6) for w in weights if not (torch.isfinite(w) and w > 0)]
        problem = f"weights that are not finite and positive ({', '.join(map(str, bad[:5]))})"
    if problem is not None:
        raise PluginError(f"{path}: class weighting {entry.name!r} ({entry.origin}) must return a float tensor of"
                          f" {num_classes} finite, positive weights (one per class), but returned {problem}."
                          f" {FIX_PLUGIN}.")
    return weights.to(torch.float32)
