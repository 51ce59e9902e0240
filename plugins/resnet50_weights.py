"""How a ResNet50 backbone's weights start: random, ImageNet from the local torch hub cache, or a file.

Nothing here downloads. ``"none"`` touches no file at all; ``"imagenet"`` reads torchvision's
``ResNet50_Weights.IMAGENET1K_V1`` file only if it is already in the torch hub cache. A ``--smoke``
run, which cannot assume ImageNet weights are present, reads a random stand-in state dict instead
(:func:`standin_weights`): the loading path is exercised, not the accuracy.
"""
from __future__ import annotations

import os
import pickle
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

from segbench.atomic import atomic_write_bytes
from segbench.errors import CheckpointError

RANDOM = "none"
IMAGENET = "imagenet"
MAX_LISTED = 10


def imagenet_weights_path() -> Path:
    """Where torchvision would cache the ResNet50 ImageNet weights: ``<torch hub>/checkpoints/<file>``."""
    from torchvision.models import ResNet50_Weights

    filename = os.path.basename(urlparse(ResNet50_Weights.IMAGENET1K_V1.url).path)
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def standin_weights() -> Path:
    """A randomly initialised ResNet50 state dict in the cache, standing in for ImageNet weights."""
    from segbench.cache import cache_dir

    path = cache_dir() / "smoke" / "resnet50-standin.pth"
    if not path.exists():
        import torchvision

        generator_state = torch.get_rng_state()
        torch.manual_seed(0)
        state = torchvision.models.resnet50(weights=None).state_dict()
        torch.set_rng_state(generator_state)
        atomic_write_bytes(path, lambda handle: torch.save(state, handle))
    return path


def init_backbone(backbone: nn.Module, pretrained: str) -> str:
    """Initialise ``backbone`` (a ResNet50 without ``fc``, e.g. an ``IntermediateLayerGetter``) in place.

    ``pretrained`` is ``"none"`` (keep the random initialisation), ``"imagenet"`` or a path to a
    ResNet50 state dict. Returns the string to store as ``module.segbench_init``: ``"random"``,
    ``"imagenet:<path>"`` or ``"file:<path>"``.
    """
    if pretrained == RANDOM:
        return "random"
    if pretrained == IMAGENET:
        path = imagenet_weights_path()
        if not path.is_file():
            from torchvision.models import ResNet50_Weights

            raise CheckpointError(
                f"model.pretrained: imagenet needs torchvision's ResNet50 ImageNet weights at {path}, which"
                f" does not exist (segbench never downloads). Download {ResNet50_Weights.IMAGENET1K_V1.url}"
                f" and place it at {path} (the torch hub cache; TORCH_HOME moves it), or set"
                " model.pretrained to the path of a ResNet50 state dict."
            )
        load_backbone_state(backbone, path)
        return f"imagenet:{path}"
    path = Path(pretrained).expanduser().resolve()
    load_backbone_state(backbone, path)
    return f"file:{path}"


def load_backbone_state(backbone: nn.Module, path: Path) -> None:
    """Load a ResNet50 state dict from ``path`` into ``backbone``, strictly.

    Keys may carry a ``backbone.`` prefix; ``fc.*`` (the ImageNet classifier) is ignored. Missing
    or unexpected keys and shape mismatches raise ``CheckpointError`` naming the file.
    """
    if not path.is_file():
        problem = "is a folder" if path.is_dir() else "does not exist"
        raise CheckpointError(
            f"model.pretrained: backbone weights file {path} {problem}. Give the path of a ResNet50"
            " state dict (torch.save(resnet50.state_dict(), path)), or use `imagenet` or `none`."
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"could not read backbone weights {path} ({_reason(exc)}). The file must be a ResNet50 state"
            " dict written by torch.save(model.state_dict(), path)."
        ) from exc
    state = _backbone_entries(state, path)
    expected = backbone.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [f"{k}: file {tuple(state[k].shape)}, model {tuple(expected[k].shape)}"
                  for k in expected if k in state and state[k].shape != expected[k].shape]
    problems = [(label, items) for label, items in
                (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", mismatched))
                if items]
    if problems:
        details = "; ".join(f"{len(items)} {label}: {_first(items)}" for label, items in problems)
        raise CheckpointError(
            f"backbone weights {path} do not fit a ResNet50 backbone ({details}). Give a state dict of"
            " torchvision's resnet50 (keys like conv1.weight, layer1.0.conv1.weight; a backbone. prefix"
            " is accepted, fc.* is ignored)."
        )
    backbone.load_state_dict(state, strict=True)


def _backbone_entries(state, path: Path) -> dict[str, torch.Tensor]:
    if not isinstance(state, dict) or not state:
        raise CheckpointError(
            f"backbone weights {path} hold {type(state).__name__}"
            f"{' (empty)' if isinstance(state, dict) else ''}, not a state dict of tensors."
            " Save one with torch.save(resnet50.state_dict(), path)."
        )
    not_tensors = [str(k) for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise CheckpointError(
            f"backbone weights {path} are not a state dict: entries {_first(not_tensors)} are not tensors."
            " If this is a training checkpoint, save its model state dict alone, e.g."
            " torch.save(checkpoint['model'], path)."
        )
    entries = {}
    for key, value in state.items():
        key = key.removeprefix("backbone.")
        if not key.startswith("fc."):
            entries[key] = value
    return entries


def _reason(exc: Exception) -> str:
    if isinstance(exc, pickle.UnpicklingError):
        # torch's message here suggests weights_only=False, which would run code from the file.
        return "not a torch.save file of tensors only"
    first_sentence = (str(exc).splitlines() or [""])[0].split(". ")[0]
    return f"{type(exc).__name__}: {first_sentence[:200]}"


def _first(items: list[str]) -> str:
    shown = ", ".join(items[:MAX_LISTED])
    return shown + (f", ... ({len(items) - MAX_LISTED} more)" if len(items) > MAX_LISTED else "")
