"""The model contract, checked once when a run builds its model: a tiny forward pass must give logits
``(N, num_classes, H, W)``. Without it, a model returning a dict (as torchvision's do), the wrong size
or an extra class fails deep inside the loss, or trains and scores silently wrong."""
from __future__ import annotations

import torch

from segbench.errors import FIX_PLUGIN, PluginError, SegbenchError

CHECK_BATCH = (1, 3, 32, 64)  # small, and a multiple of the usual output strides (8, 16, 32)


def _device(model: torch.nn.Module) -> torch.device:
    first = next(iter(model.parameters()), None)
    return first.device if first is not None else torch.device("cpu")


def _problem(output, expected: tuple[int, ...], num_classes: int) -> str | None:
    if isinstance(output, dict):
        return (f"returned a dict with keys {sorted(map(str, output))}; return the logits tensor itself"
                " (for torchvision's segmentation models, `model(x)['out']`)")
    if not isinstance(output, torch.Tensor):
        return f"returned a {type(output).__name__}; return one tensor of logits"
    if not output.is_floating_point():
        return f"returned a {output.dtype} tensor; logits are floating point"
    if tuple(output.shape) == expected:
        if not bool(torch.isfinite(output).all()):
            return ("returned NaN or infinite logits for an all-zero image (at its initial weights); look for a"
                    " division by zero, a log of zero or uninitialised parameters (torch.empty)")
        return None
    if output.ndim != 4:
        return f"returned shape {tuple(output.shape)}; logits have 4 dimensions (N, C, H, W)"
    if output.shape[1] != num_classes:
        return (f"returned {output.shape[1]} channels for {num_classes} classes (shape {tuple(output.shape)});"
                " give the classifier exactly the factory's num_classes outputs")
    return (f"returned logits of {output.shape[-2]}x{output.shape[-1]} for a {expected[-2]}x{expected[-1]} image;"
            " up-sample them to the input size, e.g. F.interpolate(logits, size=x.shape[-2:], mode='bilinear')")


def check_model_output(model: torch.nn.Module, component, *, num_classes: int) -> None:
    """Run ``model`` once on zeros ``CHECK_BATCH`` (eval mode, no gradients; its mode is restored).

    Raises ``PluginError`` naming the model, its plugin and distribution, and what it must return.
    """
    entry = component.entry
    expected = (CHECK_BATCH[0], num_classes, *CHECK_BATCH[2:])
    what = (f"{component.path}: model {entry.name!r} ({entry.origin}) must map a float image batch (N, 3, H, W)"
            f" to one tensor of logits (N, num_classes, H, W); for a {tuple(CHECK_BATCH)} batch and"
            f" {num_classes} classes that is {expected}")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            output = model(torch.zeros(CHECK_BATCH, device=_device(model)))
    except SegbenchError:
        raise
    except Exception as exc:
        raise PluginError(f"{what}, but it failed: {type(exc).__name__}: {exc}") from exc
    finally:
        model.train(was_training)
    problem = _problem(output, expected, num_classes)
    if problem is not None:
        raise PluginError(f"{what}, but it {problem}. {FIX_PLUGIN}.")
