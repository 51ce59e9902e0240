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

from segbench.config import structure_config
from segbench.errors import ConfigError, DataError, PluginError


@attrs.frozen
class Step:
    """One configured transform; ``path`` is where the recipe declares it (for error messages)."""

    name: str
    config: Any
    path: str
    apply: Callable = attrs.field(eq=False, repr=False)

    def __call__(self, image, mask, generator, ignore_index):
        return self.apply(image, mask, generator, ignore_index)


def _check_inputs(image: torch.Tensor, mask: torch.Tensor) -> None:
    if image.dtype != torch.uint8 or image.ndim != 3 or image.shape[0] != 3:
        raise DataError(f"expected a uint8 RGB image of shape (3, H, W), got {image.dtype} {tuple(image.shape)};"
                        " the dataset must return images as decoded, before any normalisation")
    if mask.dtype != torch.uint8 or mask.ndim != 2:
        raise DataError(f"expected a uint8 label of shape (H, W), got {mask.dtype} {tuple(mask.shape)}")
    if tuple(mask.shape) != tuple(image.shape[-2:]):
        raise DataError(f"image ({image.shape[-2]}x{image.shape[-1]}) and label ({mask.shape[0]}x{mask.shape[1]})"
                        " differ in size; check that each label file belongs to its image")


@attrs.frozen
class Pipeline:
    """Callable ``(image uint8 (3, H, W), mask uint8 (H, W), generator) -> (float32 (3, h, w), int64 (h, w))``.

    All randomness comes from ``generator``: the same generator state gives the same output.
    """

    steps: tuple[Step, ...]
    ignore_index: int = attrs.field(default=255, validator=[attrs.validators.ge(0), attrs.validators.le(255)])

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(step.name for step in self.steps)

    def __call__(self, image: torch.Tensor, mask: torch.Tensor,
                 generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        _check_inputs(image, mask)
        for step in self.steps:
            try:
                image, mask = step(image, mask, generator, self.ignore_index)
            except ConfigError as exc:  # about one of the step's own keys
                raise ConfigError([(f"{step.path}.{key}" if key else step.path, message)
                                   for key, message in exc.problems]) from exc
        return image, mask.to(torch.int64)


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
            close = difflib.get_close_matches(str(name), transforms.names(), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append((f"{where}.name", f"unknown transform {name!r}{hint}; available: {available}"
                                              " (`segbench list transforms` shows them with their plugins)"))
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
        steps.append(Step(entry.name, config, where, apply))

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
