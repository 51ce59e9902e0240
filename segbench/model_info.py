"""Size and cost of a model: parameters, memory of its weights, forward FLOPs."""
from __future__ import annotations

import attrs
import torch
from torch import nn
from torch.func import functional_call
from torch.utils.flop_counter import FlopCounterMode

from segbench.component_contract import check_built
from segbench.errors import PluginError


@attrs.frozen
class ModelInfo:
    """``params``: all parameters (``trainable_params``: those with ``requires_grad``);
    ``size_mb``: bytes of parameters and buffers / 1e6 (MB, not MiB);
    ``gflops``: forward FLOPs / 1e9 for one ``input_size`` image, as
    ``torch.utils.flop_counter.FlopCounterMode`` counts them (a multiply-add is 2 FLOPs)."""

    params: int
    trainable_params: int
    size_mb: float
    gflops: float
    input_size: tuple[int, int]


@attrs.frozen
class EntryInfo:
    """:class:`ModelInfo` of a registered model built with its defaults, or why it could not be."""

    info: ModelInfo | None
    error: str | None = None
    needs: tuple[str, ...] = ()  # recipe keys without a default: the model is built only once a recipe sets them


def describe_entry(entry, *, input_size: tuple[int, int] = (512, 1024), num_classes: int = 19) -> EntryInfo:
    """Build a registered model with its default config and describe it; a model that fails to build,
    to run, or to return what ``segbench run`` requires is reported as an error (one line naming its plugin),
    not raised."""
    needs = tuple(f"model.{field.name}" for field in attrs.fields(entry.config)
                  if field.init and field.default is attrs.NOTHING)
    if needs:
        return EntryInfo(None, needs=needs)
    try:
        model = entry.factory(entry.default_config(), num_classes=num_classes)
    except Exception as exc:
        first_line = (str(exc).splitlines() or [""])[0][:300]
        return EntryInfo(None, f"{entry.origin} failed to build it: {type(exc).__name__}: {first_line}")
    from segbench.engine.model_contract import check_model_output
    from segbench.recipe.plan import Component

    try:
        check_built(entry, model, path="model")
        # the output contract `segbench run` checks first: a table of sizes must not vouch for a model it refuses
        check_model_output(model, Component(entry, entry.default_config(), "model"), num_classes=num_classes)
    except PluginError as exc:
        return EntryInfo(None, str(exc).split(": ", 1)[-1])
    try:
        return EntryInfo(describe_model(model, input_size=input_size))
    except Exception as exc:
        first_line = (str(exc).splitlines() or [""])[0][:300]
        return EntryInfo(None, f"{entry.origin} failed to build or run it: {type(exc).__name__}: {first_line}")


def describe_model(model: nn.Module, *, input_size: tuple[int, int] = (512, 1024)) -> ModelInfo:
    """Count ``model``'s parameters and the FLOPs of an eval-mode forward pass at batch 1.

    The forward runs on the meta device (shapes only, no arithmetic), so it is fast at any size; a
    model with an operation that the meta device cannot run is run for real on its own device.
    """
    params = list(model.parameters())
    tensors = params + list(model.buffers())
    size_bytes = sum(t.numel() * t.element_size() for t in tensors)
    return ModelInfo(
        params=sum(p.numel() for p in params),
        trainable_params=sum(p.numel() for p in params if p.requires_grad),
        size_mb=size_bytes / 1e6,
        gflops=_forward_flops(model, tuple(input_size)) / 1e9,
        input_size=tuple(input_size),
    )


def _forward_flops(model: nn.Module, input_size: tuple[int, int]) -> int:
    was_training = model.training
    model.eval()  # batch-norm in training mode rejects a batch of 1 after global pooling
    try:
        try:
            return _count_on_meta(model, input_size)
        except (NotImplementedError, RuntimeError):  # an operation without a meta kernel
            return _count(model, torch.zeros(1, 3, *input_size, device=_device(model)))
    finally:
        model.train(was_training)


def _count_on_meta(model: nn.Module, input_size: tuple[int, int]) -> int:
    state = {name: torch.empty_like(t, device="meta")
             for name, t in [*model.named_parameters(), *model.named_buffers()]}
    image = torch.empty(1, 3, *input_size, device="meta")
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        functional_call(model, state, (image,))
    return counter.get_total_flops()


def _count(model: nn.Module, image: torch.Tensor) -> int:
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(image)
    return counter.get_total_flops()


def _device(model: nn.Module) -> torch.device:
    first = next(iter(model.parameters()), None)
    return first.device if first is not None else torch.device("cpu")
