"""How a backbone's weights start: random, ImageNet from the local torch hub cache, or a file.

Nothing here downloads. ``"none"`` touches no file at all; ``"imagenet"`` reads torchvision's
ImageNet weights file (``ResNet50_Weights.IMAGENET1K_V1`` unless a :class:`Backbone` names another)
only if it is already in the torch hub cache. A ``--smoke`` run, which cannot assume ImageNet weights
are present, reads a random stand-in ResNet50 state dict instead (:func:`standin_weights`): the
loading path is exercised, not the accuracy.
"""
from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path
from urllib.parse import urlparse

import attrs
import torch
from torch import nn

from segbench.atomic import atomic_write_bytes
from segbench.config_paths import absolute_path
from segbench.errors import CheckpointError

RANDOM = "none"
IMAGENET = "imagenet"


def _weights_choice(value):
    """``none``, ``imagenet``, or a weights file's absolute path (see ``segbench.config_paths``)."""
    return value if value in (RANDOM, IMAGENET) else absolute_path(value)


def pretrained_field():
    """A model config's ``pretrained``: ``none`` (random), ``imagenet`` (torchvision's file in the torch cache)
    or the path of a state dict."""
    return attrs.field(default=RANDOM, converter=_weights_choice,
                       validator=[attrs.validators.instance_of(str), attrs.validators.min_len(1)])


MAX_LISTED = 10


def _resnet50_imagenet_url() -> str:
    from torchvision.models import ResNet50_Weights

    return ResNet50_Weights.IMAGENET1K_V1.url


@attrs.frozen
class Backbone:
    """What a backbone's weight files look like.

    ``name``: how messages call it (``ResNet50``); ``builder``: torchvision's function, for messages
    (``resnet50``); ``imagenet_url``: returns the URL torchvision downloads its ImageNet weights from
    (the cache file is named after it); ``strip_prefixes``: key prefixes removed before matching
    (``backbone.`` from segbench's own state dicts, ``features.`` from torchvision's MobileNets);
    ``ignored_prefixes``: keys of the ImageNet classifier, which a segmentation backbone lacks;
    ``example_keys``: what a fitting file's keys look like, for messages.
    """

    name: str
    builder: str
    imagenet_url: object  # () -> str
    strip_prefixes: tuple[str, ...] = ("backbone.",)
    ignored_prefixes: tuple[str, ...] = ("fc.",)
    example_keys: str = "conv1.weight, layer1.0.conv1.weight"


RESNET50 = Backbone("ResNet50", "resnet50", _resnet50_imagenet_url)


def imagenet_weights_path(spec: Backbone = RESNET50) -> Path:
    """Where torchvision would cache the ImageNet weights: ``<torch hub>/checkpoints/<file>``."""
    filename = os.path.basename(urlparse(spec.imagenet_url()).path)
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


def init_backbone(backbone: nn.Module, pretrained: str, spec: Backbone = RESNET50) -> str:
    """Initialise ``backbone`` (e.g. a ResNet50 without ``fc`` in an ``IntermediateLayerGetter``) in place.

    ``pretrained`` is ``"none"`` (keep the random initialisation), ``"imagenet"`` or a path to a
    state dict of ``spec``'s network. Returns the string to store as ``module.segbench_init``:
    ``"random"``, ``"imagenet:<path> sha256:<16 hex>"`` or ``"file:<path> sha256:<16 hex>"``: the run hash
    covers the path, this records the content (a file replaced at the same path shows in ``results.json``).
    """
    if pretrained == RANDOM:
        return "random"
    if pretrained == IMAGENET:
        path = imagenet_weights_path(spec)
        if not path.is_file():
            raise CheckpointError(
                f"model.pretrained: imagenet needs torchvision's {spec.name} ImageNet weights at {path}, which"
                f" does not exist (segbench never downloads). Download {spec.imagenet_url()}"
                f" and place it at {path} (the torch hub cache; TORCH_HOME moves it), or set"
                f" model.pretrained to the path of a {spec.name} state dict."
            )
        load_backbone_state(backbone, path, spec)
        return f"imagenet:{path} sha256:{_digest(path)}"
    path = Path(pretrained).expanduser().resolve()
    load_backbone_state(backbone, path, spec)
    return f"file:{path} sha256:{_digest(path)}"


def _digest(path: Path) -> str:
    """The first 16 hex digits of the file's SHA-256 (about 0.2 s for ResNet50's 100 MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def load_backbone_state(backbone: nn.Module, path: Path, spec: Backbone = RESNET50) -> None:
    """Load a state dict of ``spec``'s network from ``path`` into ``backbone``, strictly.

    Keys may carry one of ``spec.strip_prefixes``; ``spec.ignored_prefixes`` (the ImageNet classifier)
    are ignored. Missing or unexpected keys and shape mismatches raise ``CheckpointError`` naming the file.
    """
    if not path.is_file():
        problem = "is a folder" if path.is_dir() else "does not exist"
        raise CheckpointError(
            f"model.pretrained: backbone weights file {path} {problem}. Give the path of a {spec.name}"
            f" state dict (torch.save({spec.builder}.state_dict(), path)), or use `imagenet` or `none`."
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"could not read backbone weights {path} ({_reason(exc)}). The file must be a {spec.name} state"
            " dict written by torch.save(model.state_dict(), path)."
        ) from exc
    state = _backbone_entries(state, path, spec)
    not_finite = [key for key, value in state.items()
                  if value.is_floating_point() and not bool(torch.isfinite(value).all())]
    if not_finite:  # found here, they would be blamed on the model at the first forward pass
        raise CheckpointError(
            f"backbone weights {path} hold NaN or infinite values in {_first(not_finite)}: the file was saved from"
            " a model whose training diverged, or it is damaged. Give a state dict of finite weights.")
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
            f"backbone weights {path} do not fit a {spec.name} backbone ({details}). Give a state dict of"
            f" torchvision's {spec.builder} (keys like {spec.example_keys};"
            f" {', '.join(p for p in spec.strip_prefixes)} prefixes are accepted,"
            f" {', '.join(p + '*' for p in spec.ignored_prefixes)} ignored)."
        )
    backbone.load_state_dict(state, strict=True)


def _backbone_entries(state, path: Path, spec: Backbone) -> dict[str, torch.Tensor]:
    if not isinstance(state, dict) or not state:
        raise CheckpointError(
            f"backbone weights {path} hold {type(state).__name__}"
            f"{' (empty)' if isinstance(state, dict) else ''}, not a state dict of tensors."
            f" Save one with torch.save({spec.builder}.state_dict(), path)."
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
        for prefix in spec.strip_prefixes:
            key = key.removeprefix(prefix)
        if not key.startswith(spec.ignored_prefixes):
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
