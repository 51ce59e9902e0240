"""Turning a resolved recipe into validated components, reporting every problem at once."""
from __future__ import annotations

from typing import Any

import attrs

from segbench.config import SEED_MAX, structure_problems
from segbench.errors import BlockedNameError, ConfigError, DataError, SegbenchError, UnknownNameError, shown
from segbench.recipe.load import ResolvedRecipe
from segbench.recipe.resolved import experiment_hash, run_hash
from segbench.recipe.schema import TOP_LEVEL_KEYS, UPSTREAM_KEY, EvaluationConfig, TrainerConfig
from segbench.registry import Entry, Registries

DATA_ROLES = ("train", "select", "report")
DATA_KEYS = ("dataset", *DATA_ROLES, "train_transforms", "eval_transforms")


@attrs.frozen
class Component:
    """A registered component chosen by a recipe section, with its validated config."""

    entry: Entry
    config: Any
    path: str

    @property
    def name(self) -> str:
        return self.entry.name

    def build(self, **context):
        from segbench.component_contract import check_built

        try:
            built = self.entry.factory(self.config, **context)
        except DataError as exc:  # its message names what is missing; say which section and plugin looked
            if len(exc.args) == 1 and isinstance(exc.args[0], str) and not exc.args[0].startswith(self.path):
                origin = "" if self.entry.builtin else f" ({self.entry.origin})"
                exc.args = (f"{self.path}: {self.entry.noun} {self.entry.name!r}{origin}: {exc.args[0]}",)
            raise
        except SegbenchError:
            raise
        except Exception as exc:
            raise SegbenchError(
                f"{self.path}: {self.entry.noun} {self.entry.name!r} ({self.entry.origin})"
                f" failed to build: {type(exc).__name__}: {exc}. Check the values under {self.path} or"
                " report the problem to the plugin's authors."
            ) from exc
        return check_built(self.entry, built, path=self.path)


@attrs.frozen
class Plan:
    recipe: ResolvedRecipe
    seed: int
    model: Component
    datasets: dict  # role -> Component (select may be absent)
    train_transforms: Any
    eval_transforms: Any
    # None only in a plan built with training=False whose plugin for it is not installed:
    loss: Component | None
    class_weighting: Component | None
    optimizer: Component | None
    scheduler: Component | None
    strategy: Component | None
    trainer: TrainerConfig
    evaluation: EvaluationConfig
    loggers: tuple = ()  # Components; the registered defaults when the recipe has no `logging:` list

    @property
    def complete(self) -> bool:
        """Every section resolved, as a run needs (one built with ``training=False`` may lack training's)."""
        return None not in (self.loss, self.optimizer, self.scheduler, self.strategy, self.train_transforms) and \
            (self.class_weighting is not None or self.recipe.data.get("class_weighting") is None)

    @property
    def hash(self) -> str:
        """The run's identity: the hash of the resolved recipe (see :mod:`segbench.recipe.resolved`)."""
        return run_hash(self)

    @property
    def experiment_hash(self) -> str:
        """The same for the runs of one experiment, which differ only in their seed."""
        return experiment_hash(self)

    @property
    def run_name(self) -> str:
        """The run directory's name, ``<recipe>-<hash8>``."""
        return f"{self.recipe.name}-{self.hash[:8]}"


def _pipeline(specs, path, transforms):
    from segbench.transforms import default_specs, parse_pipeline

    try:
        if specs is None or specs == []:  # left out, or an empty list: the default pipeline
            specs = default_specs(transforms, path=path)
        if not isinstance(specs, list):
            return None, [(path, f"expected a list of transforms like [{{name: hflip, p: 0.5}}], got {specs!r}")]
        return parse_pipeline(specs, path=path, transforms=transforms), []
    except ConfigError as exc:
        return None, exc.problems


def _section_or_default(data: dict, key: str, registry) -> Any:
    """The recipe's section, or (when it leaves the section out) the component registered as the default."""
    if key in data:
        return data[key]
    defaults = [entry.name for entry in registry.in_order() if entry.default]
    return {"name": defaults[0]} if defaults else None


class _Collector:
    def __init__(self):
        self.problems: list[tuple[str, str]] = []

    def component(self, registries: Registries, kind: str, section: Any, path: str,
                  shared: dict | None = None) -> Component | None:
        if section is None and path in ("scheduler", "strategy"):
            self.problems.append((path, f"missing section, and no {kind} is registered as the default; choose one"
                                        f" of: {', '.join(registries[kind].names()) or '(none installed)'}"))
            return None
        if not isinstance(section, dict):
            self.problems.append((path, f"expected a mapping with a `name:` key, got {section!r}"))
            return None
        merged = {**(shared or {}), **section}
        name = merged.pop("name", None)
        # A name from `data.dataset` is reported once, there, not once per role.
        name_path = "data.dataset.name" if shared and "name" in shared and "name" not in section else f"{path}.name"
        if name is None:
            self.problems.append((f"{path}.name", f"missing; choose one of: {', '.join(registries[kind].names())}"))
            return None
        try:
            entry = registries[kind].get(name)
        except (UnknownNameError, BlockedNameError) as exc:
            if (name_path, str(exc)) not in self.problems:
                self.problems.append((name_path, str(exc)))
            return None
        own = set(section)
        inherited = {key for key in shared or {} if key not in own and key != "name"}
        if inherited:  # keys from `data.dataset`: report their problems once, under data.dataset
            valid = {field.name for field in attrs.fields(entry.config)}
            unknown = sorted(inherited - valid)
            if unknown:
                problem = ("data.dataset", f"unknown key(s) {', '.join(unknown)} for dataset {name!r};"
                                           f" valid keys: {', '.join(sorted(valid))}")
                if problem not in self.problems:
                    self.problems.append(problem)
                merged = {key: value for key, value in merged.items() if key not in unknown}
        config, problems = structure_problems(entry.config, merged, path=path)
        for where, message in problems:
            key = where[len(path) + 1:].split(".")[0].split("[")[0] if where.startswith(f"{path}.") else None
            if key in inherited:
                where = "data.dataset" + where[len(path):]
            if (where, message) not in self.problems:
                self.problems.append((where, message))
        return Component(entry, config, path) if config is not None else None

    def config(self, cls, section, path):
        instance, problems = structure_problems(cls, section, path=path)
        self.problems += problems
        return instance


def build_plan(recipe: ResolvedRecipe, registries: Registries, *, training: bool = True) -> Plan:
    """Validate every section of ``recipe`` against the registries; raise one ``ConfigError``.

    ``training=False`` (evaluating, predicting, exporting a model): the sections only training reads (loss,
    class weighting, optimizer, scheduler, strategy, loggers, training transforms) are resolved where their
    plugins are installed and otherwise left ``None``, so a model is used without the plugins it was trained
    with.
    """
    data = recipe.data
    c = _Collector()
    for_training = c if training else _Collector()  # its problems are not raised when not training
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            written_by_recipes = [name for name in TOP_LEVEL_KEYS if name != UPSTREAM_KEY]
            c.problems.append((key, f"unknown top-level key; valid keys: {', '.join(written_by_recipes)}"))
    for required in ("model", "data", "loss", "optimizer") if training else ("model", "data"):
        if required not in data:
            c.problems.append((required, "missing section (add it, or inherit it with `base:`)"))

    upstream = data.get(UPSTREAM_KEY)
    if upstream is not None and not (isinstance(upstream, dict) and set(upstream) == {"run", "experiment"}
                                     and all(isinstance(v, str) for v in upstream.values())):
        c.problems.append((UPSTREAM_KEY, "is written by segbench (the run a fine-tuning stage starts from) and"
                                         " holds `run` and `experiment` hashes; remove it from the recipe"))

    seed = data.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX:
        c.problems.append(("seed", f"must be an integer from 0 to {SEED_MAX}, got {seed!r}"))

    description = data.get("description")
    if description is not None and not isinstance(description, str):
        c.problems.append(("description", f"expected text, got {shown(description)}; write one line of text, or"
                                          " several under `description: |`"))

    model = c.component(registries, "models", data["model"], "model") if "model" in data else None
    loss = for_training.component(registries, "losses", data["loss"], "loss") if "loss" in data else None
    optimizer = (for_training.component(registries, "optimizers", data["optimizer"], "optimizer")
                 if "optimizer" in data else None)
    scheduler = for_training.component(registries, "schedulers",
                                       _section_or_default(data, "scheduler", registries.schedulers), "scheduler")
    strategy = for_training.component(registries, "strategies",
                                      _section_or_default(data, "strategy", registries.strategies), "strategy")
    weighting = None
    if data.get("class_weighting") is not None:
        weighting = for_training.component(registries, "class_weightings", data["class_weighting"],
                                           "class_weighting")
    loggers = _loggers(for_training, registries, data.get("logging"))
    for key in ("trainer", "evaluation"):
        # A bare `trainer:` line is a YAML slip, not a wish for the defaults; a run trained with one still opens.
        if training and key in data and data[key] is None:
            c.problems.append((key, f"is empty (null), which would drop every {key} setting, the base recipes'"
                                    f" too; remove the line or write settings under it (`{key}: {{_replace_: true}}`"
                                    " resets them all to their defaults)"))
    trainer = c.config(TrainerConfig, data.get("trainer"), "trainer")
    evaluation = c.config(EvaluationConfig, data.get("evaluation"), "evaluation")

    datasets, train_tf, eval_tf = {}, None, None
    data_section = data.get("data")
    if isinstance(data_section, dict):
        for key in data_section:
            if key not in DATA_KEYS:
                c.problems.append((f"data.{key}", f"unknown key; valid keys: {', '.join(DATA_KEYS)}"))
        shared = data_section.get("dataset") or {}
        if not isinstance(shared, dict):
            c.problems.append(("data.dataset", f"expected a mapping with `name:`, got {shared!r}"))
            shared = {}
        for role in DATA_ROLES:
            if data_section.get(role) is None:
                if role != "select":
                    c.problems.append((f"data.{role}", "missing (e.g. `{split: val}`)"))
                continue
            component = c.component(registries, "datasets", data_section[role], f"data.{role}", shared)
            if component is not None:
                datasets[role] = component
        for key in ("train_transforms", "eval_transforms"):
            pipeline, problems = _pipeline(data_section.get(key), f"data.{key}", registries.transforms)
            (for_training if key == "train_transforms" else c).problems += problems
            if key == "train_transforms":
                train_tf = pipeline
            else:
                eval_tf = pipeline
    elif "data" in data:  # a list, a text, or null (which would leave nothing to train on)
        c.problems.append(("data", f"expected a mapping with the keys {', '.join(DATA_KEYS)},"
                                   f" got {shown(data_section)}"))

    if trainer is not None and trainer.select_on == "select" and "data" in data and "select" not in datasets:
        if isinstance(data_section, dict) and data_section.get("select") is None:
            c.problems.append(("data.select", "missing, but trainer.select_on is 'select': declare the split"
                               " that picks the best checkpoint, or set trainer.select_on: report"))

    if c.problems:
        raise ConfigError(c.problems, files=recipe.files)
    return Plan(recipe, seed, model, datasets, train_tf, eval_tf, loss, weighting, optimizer, scheduler,
                strategy, trainer, evaluation, loggers)


def _loggers(c: _Collector, registries: Registries, section) -> tuple:
    """``logging: [{name: tensorboard}, {name: csv}]``; absent (or null): the loggers registered as defaults."""
    if section is None:
        return tuple(Component(entry, entry.default_config(), f"logging[{entry.name}]")
                     for entry in registries["loggers"].defaults())
    if not isinstance(section, list):
        c.problems.append(("logging", f"expected a list of loggers like [{{name: jsonl}}, {{name: tensorboard}}],"
                                      f" got {section!r}"))
        return ()
    chosen = [c.component(registries, "loggers", item, f"logging[{index}]") for index, item in enumerate(section)]
    names = [component.name for component in chosen if component is not None]
    for name in sorted({n for n in names if names.count(n) > 1}):
        c.problems.append(("logging", f"logger {name!r} is listed twice; list each logger once"))
    return tuple(component for component in chosen if component is not None)
