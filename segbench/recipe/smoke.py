"""``--smoke``: the same recipe on tiny generated data, a few iterations.

The recipe as written is validated first, so a recipe cannot pass ``--smoke`` and fail for real.
Then each component's own smoke variant (declared in its registration, see ``segbench.hookspecs``)
replaces its config, the core shortens training and evaluation, and the result is validated again.
"""
from __future__ import annotations

import copy
from collections.abc import Mapping

import attrs

from segbench.config import structure_config, unstructure_plain
from segbench.errors import BlockedNameError, ConfigError, PluginError, UnknownNameError
from segbench.recipe.load import ResolvedRecipe, apply_overrides
from segbench.recipe.plan import Component, build_plan
from segbench.registry import Substitute

SMOKE_TRAINER = {"max_iterations": 2, "epochs": 1, "num_workers": 0, "log_every": 1, "eval_every": 1,
                 "batch_size": 2}
SMOKE_ACCUMULATE = 2
SMOKE_WINDOW, SMOKE_STRIDE = [64, 128], [32, 64]  # fits the small images the dataset plugins' variants make
# Command-line overrides of these sections are applied again on top of the smoke variant, so that
# `run --smoke trainer.max_iterations=5` runs 5 iterations; the others are already in the components' configs.
CORE_SECTIONS = ("seed", "trainer", "evaluation", "slurm", "description")


def _fields(config) -> dict:
    return {field.name: getattr(config, field.name) for field in attrs.fields(type(config))}


def _changes(old, new) -> dict:
    return {name: unstructure_plain(value) for name, value in _fields(new).items()
            if getattr(old, name) != value}


def _non_default(config) -> dict:
    return _changes(type(config)(), config) if _has_defaults(type(config)) else \
        {name: unstructure_plain(value) for name, value in _fields(config).items()}


def _has_defaults(cls) -> bool:
    return all(field.default is not attrs.NOTHING for field in attrs.fields(cls))


class _Variant:
    """The smoke variant of one component: ``section`` to merge, or ``replacement`` for a substitute."""

    def __init__(self, component, registries):
        entry = component.entry
        try:
            result = entry.smoke_config(component.config)
        except Exception as exc:
            raise PluginError(f"{component.path}: the --smoke variant of {entry.noun} {entry.name!r}"
                              f" ({entry.origin}) failed: {type(exc).__name__}: {exc}") from exc
        self.replacement = None
        self.changes = {}
        if isinstance(result, Substitute):
            try:
                target = registries[entry.kind].get(result.name)
            except (UnknownNameError, BlockedNameError) as exc:
                raise PluginError(f"{component.path}: the --smoke variant of {entry.noun} {entry.name!r}"
                                  f" ({entry.origin}) substitutes {result.name!r}: {exc}") from None
            if isinstance(result.config, Mapping):  # the target's settings as a recipe would write them
                result = Substitute(result.name, self._structured(component, target, result.config))
            if not isinstance(result.config, target.config):
                raise PluginError(f"{component.path}: the --smoke variant of {entry.name!r} ({entry.origin})"
                                  f" substitutes {target.name!r} with a {type(result.config).__name__}, not its"
                                  f" config class {target.config.__name__}")
            self.replacement = {"name": target.name, **_non_default(result.config)}
            self.config = result.config
        elif isinstance(result, entry.config):
            self.changes = _changes(component.config, result)
            self.config = result
        else:
            raise PluginError(f"{component.path}: the --smoke variant of {entry.noun} {entry.name!r}"
                              f" ({entry.origin}) returned {result!r}; it must return a {entry.config.__name__}"
                              " or a segbench.registry.Substitute")

    @staticmethod
    def _structured(component, target, settings: Mapping):
        entry = component.entry
        try:
            return structure_config(target.config, dict(settings), path=f"{target.name}")
        except ConfigError as exc:
            problems = "; ".join(f"{key}: {message}" for key, message in exc.problems)
            raise PluginError(f"{component.path}: the --smoke variant of {entry.name!r} ({entry.origin}) substitutes"
                              f" {target.name!r} with settings it refuses: {problems}") from None

    def full_section(self, component) -> dict:
        return self.replacement or {"name": component.name, **_non_default(self.config)}


def _apply_section(data: dict, key: str, component, registries) -> None:
    variant = _Variant(component, registries)
    if variant.replacement is not None:
        data[key] = variant.replacement
    elif variant.changes:
        section = data.get(key)
        data[key] = {**(section if isinstance(section, dict) else {"name": component.name}), **variant.changes}


def _apply_datasets(section: dict, plan, registries) -> None:
    variants = {role: _Variant(component, registries) for role, component in plan.datasets.items()}
    if any(v.replacement is not None for v in variants.values()):
        section.pop("dataset", None)  # the shared keys belong to the replaced dataset
        for role, variant in variants.items():
            section[role] = variant.full_section(plan.datasets[role])
        return
    for role, variant in variants.items():
        section[role] = {**section[role], **variant.changes}


def _apply_transforms(section: dict, key: str, pipeline, registries) -> None:
    specs = section.get(key)
    if not isinstance(specs, list):
        return
    for index, step in enumerate(pipeline.steps):
        entry = registries.transforms.get(step.name)
        component = Component(entry, step.config, step.path)
        variant = _Variant(component, registries)
        specs[index] = variant.replacement or {**specs[index], **variant.changes}


def _shorten_training(data: dict) -> None:
    trainer = data.get("trainer")
    trainer = dict(trainer) if isinstance(trainer, dict) else {}
    accumulate = trainer.get("accumulate", 1)
    trainer.update(SMOKE_TRAINER)
    trainer["accumulate"] = min(accumulate if isinstance(accumulate, int) else 1, SMOKE_ACCUMULATE)
    data["trainer"] = trainer
    evaluation = data.get("evaluation")
    if isinstance(evaluation, dict) and evaluation.get("window") is not None:
        data["evaluation"] = {**evaluation, "window": list(SMOKE_WINDOW), "stride": list(SMOKE_STRIDE)}


def smoke_recipe(recipe: ResolvedRecipe, registries) -> ResolvedRecipe:
    """Validate ``recipe`` as written, then return its smoke variant (validated too)."""

    plan = build_plan(recipe, registries)  # the real recipe must be valid, whatever smoke changes
    data = copy.deepcopy(recipe.data)
    for key in ("model", "loss", "optimizer", "scheduler", "strategy", "class_weighting"):
        component = getattr(plan, key)
        if component is not None:
            _apply_section(data, key, component, registries)
    section = data["data"]
    _apply_datasets(section, plan, registries)
    _apply_transforms(section, "train_transforms", plan.train_transforms, registries)
    _apply_transforms(section, "eval_transforms", plan.eval_transforms, registries)
    _shorten_training(data)
    core = [text for text in recipe.overrides if text.partition("=")[0].split(".")[0] in CORE_SECTIONS]
    data = apply_overrides(data, core, files=recipe.files)
    smoke = attrs.evolve(recipe, data=data, smoke=True)
    try:
        build_plan(smoke, registries)
    except ConfigError as exc:
        raise PluginError(f"the --smoke variant of {recipe.path} is invalid although the recipe itself is valid;"
                          " the smoke variants declared by the plugins of its components produced:\n"
                          f"{exc}") from exc
    return smoke
