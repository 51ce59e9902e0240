"""Every field of every config class a recipe can reach, and hostile values for each, generated from the
classes themselves (so a new plugin or a new field is covered without writing a case for it).

A ``FieldCase`` is one recipe (a valid built-in recipe with one value replaced) and the key path the
error must name. ``command`` says which subcommand validates that part of a recipe: ``show`` for what
``segbench run`` validates, ``emit-slurm`` for the ``slurm:`` section.
"""
from __future__ import annotations

import copy
import math
import types
import typing
from typing import Any, Iterator, Literal

import attrs

HUGE_INT = 10**12
HUGE_FLOAT = 1.0e12

BASE_RECIPE: dict[str, Any] = {
    "seed": 0,
    "model": {"name": "unet", "width": 8},
    "data": {
        "dataset": {"name": "synthetic_city", "train": 4, "val": 2, "train_extra": 0},
        "train": {"split": "train"},
        "select": {"split": "val"},
        "report": {"split": "val"},
        "train_transforms": [{"name": "hflip"}, {"name": "normalize"}],
    },
    "loss": {"name": "cross_entropy"},
    "optimizer": {"name": "sgd", "lr": 0.01},
    "trainer": {"epochs": 1, "batch_size": 2},
}

# registry kind -> (recipe path of its section, how the section sits there)
SECTIONS = {
    "models": "model",
    "losses": "loss",
    "optimizers": "optimizer",
    "schedulers": "scheduler",
    "strategies": "strategy",
    "class_weightings": "class_weighting",
    "datasets": "data.train",
}


@attrs.frozen
class FieldCase:
    id: str
    recipe: dict
    key: str  # the key path the message must name
    command: str = "show"  # show | emit-slurm


def _set(tree: dict, path: list, value) -> dict:
    tree = copy.deepcopy(tree)
    node = tree
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return tree


def _unwrap_optional(type_):
    if typing.get_origin(type_) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(type_) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return type_


def _label(value) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    text = repr(value)
    return text if len(text) <= 16 else text[:13] + "..."


def hostile_values(type_) -> list:
    """Values no field of ``type_`` may accept: non-finite, huge, negative, wrong types."""
    type_ = _unwrap_optional(type_)
    origin = typing.get_origin(type_)
    if type_ is bool:
        return ["maybe", 2, [True]]
    if type_ is int:
        return [math.nan, math.inf, HUGE_INT, 10**40, -1, 1.5, "abc", "1e3", [1], {"a": 1}, True]
    if type_ is float:
        return [math.nan, math.inf, -math.inf, HUGE_FLOAT, 1.0e300, -1.0, "abc", "6e-5", [1.0], {"a": 1}, True]
    if type_ is str:
        return [5, 1.5, ["a"], {"a": 1}, True]
    if origin is Literal:
        return ["no-such-choice", 5, ["a"]]
    if origin is tuple:
        args = typing.get_args(type_)
        element = args[0]
        length = None if (len(args) == 2 and args[1] is Ellipsis) else len(args)
        n = length or 2
        values: list = [5, {"a": 1}]
        if element is str:
            values += ["aachen", [5] * n]
        else:
            values += ["12", [math.nan] * n, [math.inf] * n, [HUGE_INT] * n, [-1] * n, ["a"] * n]
            if length is not None:
                values += [[1] * (length + 1), [1] * (length - 1)]
        return values
    if origin is dict:
        return ["text", [1], 5]
    if attrs.has(type_):
        return ["text", [1], 5]
    raise TypeError(f"no hostile values for {type_!r}: extend tests/bad_inputs/fields.py")


# Nested sections whose defaults alone are not valid: the mapping the field under test is set in (None: any
# other field), so that a choice of exactly one of several fields does not hide the field's own error.
VALID_NESTED = {"Subset": {"first": {}, "random": {}, "cities": {}, None: {"first": 1}}}


def _valid_mapping(cls, field: str) -> dict:
    if cls.__name__ in VALID_NESTED:
        choices = VALID_NESTED[cls.__name__]
        return dict(choices.get(field, choices[None]))
    try:
        cls()
    except (TypeError, ValueError) as exc:
        raise AssertionError(f"{cls.__qualname__} is not valid with its defaults ({exc}): add its smallest valid"
                             " mapping to VALID_NESTED in tests/bad_inputs/fields.py") from None
    return {}


def _walk(cls, recipe: dict, path: list, key: str, prefix: str, command: str,
          only: str | None = None) -> Iterator[FieldCase]:
    """Cases for every field (or field ``only``) of attrs class ``cls`` whose mapping sits at ``path``."""
    for field in attrs.fields(attrs.resolve_types(cls)):
        if only is not None and field.name != only:
            continue
        field_path, field_key = [*path, field.name], f"{key}.{field.name}"
        type_ = _unwrap_optional(field.type)
        for value in hostile_values(field.type):
            yield FieldCase(f"{prefix}.{field.name}={_label(value)}", _set(recipe, field_path, value), field_key,
                            command)
        if attrs.has(type_):  # a nested section (a dataset's subset): its fields, inside a valid mapping
            for inner in attrs.fields(attrs.resolve_types(type_)):
                nested = _set(recipe, field_path, _valid_mapping(type_, inner.name))
                yield from _walk(type_, nested, field_path, field_key, f"{prefix}.{field.name}", command,
                                 only=inner.name)
        elif typing.get_origin(type_) is dict and attrs.has(typing.get_args(type_)[1]):
            inner = typing.get_args(type_)[1]  # named sub-sections (optimizer groups)
            yield from _walk(inner, _set(recipe, field_path, {"backbone": {}}), [*field_path, "backbone"],
                             f"{field_key}.backbone", f"{prefix}.{field.name}", command)


def _section_recipe(section: str, name: str) -> tuple[dict, list]:
    """The base recipe with ``section`` replaced by ``{name: name}``; the section's path in it."""
    path = section.split(".")
    recipe = _set(BASE_RECIPE, path, {"name": name})
    if section == "data.train":  # the dataset's own keys go in the role, no shared keys to mix in
        recipe["data"] = {**recipe["data"], "dataset": {"name": name}}
        recipe["data"].pop("select")
        recipe["trainer"] = {**recipe["trainer"], "select_on": "report"}
    return recipe, path


def _transforms(registries) -> dict[str, type]:
    if "transforms" in getattr(registries, "by_kind", {}):
        return {entry.name: entry.config for entry in registries["transforms"]}
    from segbench.transforms import TRANSFORMS

    return {name: config for name, (config, _apply) in TRANSFORMS.items()}


def field_cases(registries) -> list[FieldCase]:
    """Every hostile value for every field of every registered config class and core section."""
    from segbench.recipe.schema import EvaluationConfig, TrainerConfig
    from segbench_jobs.slurm_config import SlurmConfig

    cases: list[FieldCase] = []
    for kind, section in SECTIONS.items():
        for entry in registries[kind]:
            recipe, path = _section_recipe(section, entry.name)
            cases += _walk(entry.config, recipe, path, section, f"{kind}:{entry.name}", "show")
    for name, config in _transforms(registries).items():
        steps = [{"name": name}] if name == "normalize" else [{"name": name}, {"name": "normalize"}]
        recipe = _set(BASE_RECIPE, ["data", "train_transforms"], steps)
        cases += _walk(config, recipe, ["data", "train_transforms", 0], "data.train_transforms[0]",
                       f"transforms:{name}", "show")
    if "loggers" in registries.by_kind:  # a list of components, like the transforms
        for entry in registries["loggers"]:
            recipe = _set(BASE_RECIPE, ["logging"], [{"name": entry.name}])
            cases += _walk(entry.config, recipe, ["logging", 0], "logging[0]", f"loggers:{entry.name}", "show")
    for section, config, command in (("trainer", TrainerConfig, "show"), ("evaluation", EvaluationConfig, "show"),
                                     ("slurm", SlurmConfig, "emit-slurm")):
        recipe = {**BASE_RECIPE, section: dict(BASE_RECIPE.get(section, {}))}
        cases += _walk(config, recipe, [section], section, section, command)
    for value in hostile_values(int):
        cases.append(FieldCase(f"seed={_label(value)}", _set(BASE_RECIPE, ["seed"], value), "seed"))
    seeds = [v for v in hostile_values(tuple[int, ...]) if v != 5]  # one integer is a valid `seeds:`
    for value in [*seeds, math.nan, -1, HUGE_INT, list(range(2000))]:
        cases.append(FieldCase(f"seeds={_label(value)}", _set(BASE_RECIPE, ["seeds"], value), "seeds"))
    return cases
