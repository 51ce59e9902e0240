"""Augmentation pipelines described in a recipe as a list of ``{name: ..., <options>}`` mappings::

    train_transforms:
      - {name: random_scale_crop, scale: [0.75, 1.25], size: [512, 1024], pad: true}
      - {name: hflip, p: 0.5}
      - {name: normalize}

Each name is a registered transform (``segbench_register_transforms``); every list ends with a
step registered as ``final`` (uint8 -> float32 model input); the steps before it work on uint8.
"""
from __future__ import annotations

import difflib
from typing import Any, Callable

import attrs
import torch

from segbench.component_contract import check_built
from segbench.config import structure_config
from segbench.errors import (BlockedNameError, ConfigError, DataError, FIX_PLUGIN, LabelValueError, PluginError,
                             SegbenchError, UnknownNameError)


@attrs.frozen
class Step:
    """One configured transform; ``path`` is where the recipe declares it (for error messages)."""

    name: str
    config: Any
    path: str
    apply: Callable = attrs.field(eq=False, repr=False)
    origin: str = attrs.field(default="", eq=False, repr=False)  # its plugin, for messages about its output
    final: bool = attrs.field(default=False, eq=False, repr=False)

    def __call__(self, image, mask, generator, ignore_index):
        return self.apply(image, mask, generator, ignore_index)

    @property
    def who(self) -> str:
        """``data.train_transforms[0]: transform 'x' (plugin ...)``: how messages about this step begin."""
        return f"{self.path}: transform {self.name!r}" + (f" ({self.origin})" if self.origin else "")


def _kind(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"{value.dtype} {tuple(value.shape)}"
    return f"a {type(value).__module__}.{type(value).__qualname__}"


def _check_inputs(image, mask) -> None:
    if not isinstance(image, torch.Tensor) or not isinstance(mask, torch.Tensor):
        raise DataError(f"expected torch tensors (image, mask), got {_kind(image)} and {_kind(mask)}; the dataset"
                        " must return torch tensors (torch.from_numpy(array) converts a numpy array)")
    if image.dtype != torch.uint8 or image.ndim != 3 or image.shape[0] != 3:
        raise DataError(f"expected a uint8 RGB image of shape (3, H, W), got {image.dtype} {tuple(image.shape)};"
                        " the dataset must return images as decoded, before any normalisation")
    if mask.dtype != torch.uint8 or mask.ndim != 2:
        raise DataError(f"expected a uint8 label of shape (H, W), got {mask.dtype} {tuple(mask.shape)};"
                        " the dataset must return train ids as uint8 (mask.to(torch.uint8))")
    if tuple(mask.shape) != tuple(image.shape[-2:]):
        raise DataError(f"image ({image.shape[-2]}x{image.shape[-1]}) and label ({mask.shape[0]}x{mask.shape[1]})"
                        " differ in size; check that each label file belongs to its image")


def stray_label_values(mask: torch.Tensor, *, num_classes: int, ignore_index: int) -> list[int]:
    """The values of ``mask`` that are neither a class (``0..num_classes - 1``) nor ``ignore_index``, ascending."""
    if mask.dtype != torch.uint8:  # a final step's int64 mask: rare, and may hold negative values
        stray = (mask < 0) | ((mask >= num_classes) & (mask != ignore_index))
        return sorted(set(mask[stray][:10_000].tolist()))
    # One pass over the pixels (a histogram of the uint8 mask) rather than comparisons and a boolean mask (0.6 ms
    # against 23-37 ms for a 512x1024 crop on a 2-core EPYC): this runs on every item read and every step.
    counts = torch.bincount(mask.flatten(), minlength=256)
    counts[ignore_index] = 0
    return (counts[num_classes:].nonzero().flatten() + num_classes).tolist()


def check_label_values(mask: torch.Tensor, *, num_classes: int, ignore_index: int) -> None:
    """Refuse train ids that are neither a class nor ``ignore_index``: the loss would fail on them with an
    index error, and the scores would count them nowhere (silently wrong)."""
    values = stray_label_values(mask, num_classes=num_classes, ignore_index=ignore_index)
    if values:
        raise LabelValueError.of(values, num_classes=num_classes, ignore_index=ignore_index)


def _check_step_output(step: Step, result, *, size: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """The contract of one step's output; a violation is the step's plugin's bug, named with its recipe path."""
    who = step.who
    if not (isinstance(result, tuple) and len(result) == 2
            and all(isinstance(part, torch.Tensor) for part in result)):
        shown = _kind(result) if not isinstance(result, tuple) else f"a tuple of {len(result)}"
        raise PluginError(f"{who} must return the pair (image, mask) of tensors, but returned {shown}."
                          f" {FIX_PLUGIN}.")
    image, mask = result
    problem = None
    if image.ndim != 3 or image.shape[0] != 3:
        problem = f"an image of shape {tuple(image.shape)} (expected (3, H, W))"
    elif mask.ndim != 2:
        problem = f"a mask of shape {tuple(mask.shape)} (expected (H, W))"
    elif tuple(mask.shape) != tuple(image.shape[-2:]):
        problem = (f"an image of {image.shape[-2]}x{image.shape[-1]} with a mask of {mask.shape[0]}x{mask.shape[1]}"
                   f" (from {size[0]}x{size[1]}): a step that changes the image's size must change the mask's"
                   " the same way (nearest-neighbour for the mask)")
    elif not step.final and image.dtype != torch.uint8:
        problem = (f"a {image.dtype} image; steps before the list's final step work on uint8 images:"
                   " keep the dtype (clamp and .to(torch.uint8))")
    elif not step.final and mask.dtype != torch.uint8:
        problem = f"a {mask.dtype} mask; masks stay uint8 train ids until the pipeline ends"
    elif step.final and not image.is_floating_point():
        problem = (f"a {image.dtype} image; the list's final step returns the model's input as float32"
                   " (normalize does)")
    if problem is not None:
        raise PluginError(f"{who} returned {problem}. {FIX_PLUGIN}.")
    return image, mask


def _check_step_labels(step: Step, mask: torch.Tensor, *, num_classes: int, ignore_index: int) -> None:
    """A step moves label values (flips, crops, resamples) but never makes new ones: a value that is neither a
    class nor the ignore index would otherwise fail inside the loss, which would be blamed for it."""
    values = stray_label_values(mask, num_classes=num_classes, ignore_index=ignore_index)
    if values:
        shown = ", ".join(map(str, values[:10]))
        raise PluginError(f"{step.who} returned a mask holding train id(s) {shown}, neither a"
                          f" class (0..{num_classes - 1}) nor the ignore index {ignore_index}: resample masks with"
                          " nearest-neighbour and pad them with the ignore_index the step is given."
                          f" {FIX_PLUGIN}.")


@attrs.frozen
class Pipeline:
    """Callable ``(image uint8 (3, H, W), mask uint8 (H, W), generator) -> (float32 (3, h, w), int64 (h, w))``.

    All randomness comes from ``generator``: the same generator state gives the same output.
    """

    steps: tuple[Step, ...]
    ignore_index: int = attrs.field(default=255, validator=[attrs.validators.ge(0), attrs.validators.le(255)])
    # When set, input masks must hold only train ids below it or ``ignore_index``.
    num_classes: int | None = None

    def for_dataset(self, dataset) -> "Pipeline":
        """This pipeline checking ``dataset``'s masks against its ``info`` (classes and ignore index)."""
        info = getattr(dataset, "info", None)
        if info is None:
            return self
        names = getattr(info, "class_names", None)
        return attrs.evolve(self, ignore_index=info.ignore_index,
                            num_classes=len(names) if names is not None else self.num_classes)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(step.name for step in self.steps)

    def __call__(self, image: torch.Tensor, mask: torch.Tensor,
                 generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        _check_inputs(image, mask)
        if self.num_classes is not None:
            check_label_values(mask, num_classes=self.num_classes, ignore_index=self.ignore_index)
        for step in self.steps:
            size = tuple(image.shape[-2:])
            try:
                result = step(image, mask, generator, self.ignore_index)
            except ConfigError as exc:  # about one of the step's own keys
                raise ConfigError([(f"{step.path}.{key}" if key else step.path, message)
                                   for key, message in exc.problems]) from exc
            except SegbenchError:
                raise
            except Exception as exc:
                raise PluginError(f"{step.who} failed: {type(exc).__name__}: {exc}. {FIX_PLUGIN} (--debug shows"
                                  " where).") from exc
            image, mask = _check_step_output(step, result, size=size)
            if self.num_classes is not None:  # in place or not, a step may have written any value
                _check_step_labels(step, mask, num_classes=self.num_classes, ignore_index=self.ignore_index)
        return image, mask.to(torch.int64)


def for_dataset(pipeline, dataset):
    """``pipeline`` checking ``dataset``'s label values when it is a :class:`Pipeline` (any other callable as is)."""
    return pipeline.for_dataset(dataset) if isinstance(pipeline, Pipeline) else pipeline


def final_steps(registry) -> list[str]:
    """Names of the transforms registered as a list's last step, in registration order."""
    return [entry.name for entry in registry.in_order() if entry.final]


def default_specs(registry, *, path: str) -> list[dict]:
    """The list a recipe leaves out: the first-registered final step with its defaults."""
    finals = final_steps(registry)
    if not finals:
        raise ConfigError([(path, "no transform is registered as a final step (uint8 -> model input); install"
                                  " or unblock the plugin that provides one, or list the steps")])
    return [{"name": finals[0]}]


def _ending(finals: list[str]) -> str:
    return " or ".join(f"{{name: {name}}}" for name in finals) or "a final step (none is registered)"


def parse_pipeline(specs: list, *, path: str, transforms) -> Pipeline:
    """Build a :class:`Pipeline` from recipe ``specs`` declared at ``path`` (e.g. ``data.train_transforms``),
    looking names up in the ``transforms`` registry.

    Raises ``ConfigError`` listing every problem: unknown names, unknown keys, bad values, and a
    list that does not end with a final step.
    """
    problems: list[tuple[str, str]] = []
    steps: list[Step] = []
    if not isinstance(specs, (list, tuple)):
        raise ConfigError([(path, f"expected a list of transforms like [{{name: hflip, p: 0.5}}], got {specs!r}")])
    available = ", ".join(transforms.names())
    finals = final_steps(transforms)
    final_positions = []
    for index, spec in enumerate(specs):
        where = f"{path}[{index}]"
        if not isinstance(spec, dict) or "name" not in spec:
            problems.append((where, f"expected a mapping with a `name:` key (one of {available}), got {spec!r}"))
            continue
        name = spec["name"]
        if not isinstance(name, str) or name not in transforms:
            try:
                transforms.get(name)
            except BlockedNameError as exc:
                problems.append((f"{where}.name", str(exc)))
                continue
            except UnknownNameError:
                pass
            close = difflib.get_close_matches(str(name), transforms.names(), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append((f"{where}.name", f"unknown transform {name!r}{hint}; available: {available}"
                                              f" (`segbench list transforms` shows them with their plugins)."
                                              f"{transforms.blocked_note()}"))
            continue
        entry = transforms.get(name)
        if entry.final:
            final_positions.append(index)
        options = {key: value for key, value in spec.items() if key != "name"}
        try:
            config = structure_config(entry.config, options, path=where)
        except ConfigError as exc:
            problems += exc.problems
            continue
        try:
            apply = entry.factory(config)
        except Exception as exc:
            raise PluginError(f"{where}: transform {entry.name!r} ({entry.origin}) failed to build:"
                              f" {type(exc).__name__}: {exc}") from exc
        steps.append(Step(entry.name, config, where, check_built(entry, apply, path=where), origin=entry.origin,
                          final=entry.final))

    last = len(specs) - 1
    for position in final_positions:
        if position != last:
            problems.append((f"{path}[{position}]", f"{specs[position]['name']} must be the last transform, and"
                                                    " appear once"))
    if last not in final_positions:
        problems.append((path, f"must end with {_ending(finals)} (the model takes normalised float images;"
                               " the transforms before it work on uint8)"))
    if problems:
        raise ConfigError(problems)
    return Pipeline(tuple(steps))
