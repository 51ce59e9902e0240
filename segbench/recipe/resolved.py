"""The resolved recipe: every component under its registered name with its full config, defaults filled in.

Its content hash identifies a run, so an alias, a spelled-out default or a different key order does not
start a new run, and a plugin version that changes a default does not resume an old run under new
settings. Sections the core does not structure (``description``, ``slurm``, ...) are kept as written.
"""
from __future__ import annotations


from segbench.config import unstructure_plain
from segbench.functional.merge import content_hash
from segbench.recipe.load import REPLICATE_KEYS, UNHASHED_SECTIONS
from segbench.recipe.schema import UPSTREAM_KEY


def _component(component) -> dict:
    return {"name": component.name, **unstructure_plain(component.config)}


def _pipeline(pipeline) -> list[dict]:
    return [{"name": step.name, **unstructure_plain(step.config)} for step in pipeline.steps]


def resolved_data(plan) -> dict:
    """``plan``'s recipe as data, each structured section replaced by its canonical, complete form."""
    data = dict(plan.recipe.data)
    data["seed"] = plan.seed
    for key in ("model", "loss", "optimizer", "scheduler", "strategy"):
        data[key] = _component(getattr(plan, key))
    data.pop("class_weighting", None)
    if plan.class_weighting is not None:
        data["class_weighting"] = _component(plan.class_weighting)
    data["data"] = {**{role: _component(component) for role, component in plan.datasets.items()},
                    "train_transforms": _pipeline(plan.train_transforms),
                    "eval_transforms": _pipeline(plan.eval_transforms)}
    data["trainer"] = unstructure_plain(plan.trainer)
    data["evaluation"] = unstructure_plain(plan.evaluation)
    data["logging"] = [_component(component) for component in plan.loggers]  # not hashed (UNHASHED_SECTIONS)
    return data


def run_hash(plan) -> str:
    """The SHA-256 of the resolved recipe (without the sections that only say where a run executes)."""
    return content_hash(resolved_data(plan), exclude=UNHASHED_SECTIONS)


def experiment_hash(plan) -> str:
    """The same for every replicate of one experiment: the run hash without the seed, and for a stage that starts
    from another, with that stage's experiment instead of its run (seed k starts from the upstream's seed k)."""
    data = resolved_data(plan)
    if isinstance(data.get(UPSTREAM_KEY), dict):
        data[UPSTREAM_KEY] = data[UPSTREAM_KEY]["experiment"]
    return content_hash(data, exclude=(*UNHASHED_SECTIONS, *REPLICATE_KEYS))
