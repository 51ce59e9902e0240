"""Built-in training strategies: scratch, finetune (coarse -> fine), pretrained (ImageNet backbone)."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import attrs

from segbench import hookimpl
from segbench.errors import RecipeError
from segbench.recipe.load import ResolvedRecipe, load_recipe


@attrs.frozen
class ScratchConfig:
    pass


class Scratch:
    def __init__(self, config: ScratchConfig):
        self.config = config

    def upstream(self, recipe):
        return None

    def prepare(self, model, *, upstream_run):
        init = getattr(model, "segbench_init", "random")
        if init != "random":
            raise RecipeError(f"strategy scratch needs randomly initialised weights, but the model was"
                              f" initialised from {init}; set model.pretrained: none or use strategy pretrained.")
        return "scratch: random initialisation"


@attrs.frozen
class FinetuneConfig:
    """Start from another stage's checkpoint: ``source: base`` is the recipe's own ``base:``."""

    source: str = "base"  # "base", or a recipe path relative to this recipe
    checkpoint: Literal["best", "last"] = "best"


class Finetune:
    def __init__(self, config: FinetuneConfig):
        self.config = config

    def upstream(self, recipe: ResolvedRecipe) -> ResolvedRecipe:
        if self.config.source == "base":
            if recipe.base_path is None:
                raise RecipeError(f"{recipe.path}: strategy finetune with `source: base` needs a `base:` recipe"
                                  " to start from; add `base: <coarse recipe>.yaml` or set strategy.source.")
            source = recipe.base_path
        else:
            source = (recipe.path.parent / self.config.source).resolve()
            if not self.config.source.strip() or not source.is_file():
                what = "is empty" if not self.config.source.strip() else \
                    f"names {source}, which " + ("is a folder" if source.is_dir() else "is not a regular file"
                                                 if source.exists() else "does not exist")
                raise RecipeError(f"{recipe.path}: strategy.source {self.config.source!r} {what}. Give the recipe"
                                  " of the stage to start from, relative to this recipe (e.g. source:"
                                  " coarse.yaml), or `source: base` for this recipe's `base:`.")
        # The upstream stage sees the same command-line overrides, so smoke runs stay small end to end,
        # and seed k of a multi-seed experiment starts from seed k of its upstream stage.
        return load_recipe(source, recipe.overrides, smoke=recipe.smoke, seed=recipe.replicate_seed)

    def check_upstream(self, plan, upstream_plan) -> None:
        """The weights of another model would not load: say so before the upstream stage trains."""
        if plan.model.name != upstream_plan.model.name:
            raise RecipeError(
                f"{plan.recipe.path}: strategy finetune starts from {upstream_plan.recipe.path}, which trains"
                f" model {upstream_plan.model.name!r}, but this recipe's model is {plan.model.name!r}: its weights"
                " would not load. Fine-tune the same model (remove `model:` here, or set the same name), or"
                " use strategy scratch.")
        # the same settings build the same weights; only other ones are built to compare (without memory)
        mismatch = None if plan.model.config == upstream_plan.model.config else \
            _weights_mismatch(upstream_plan.model, plan.model)
        if mismatch:
            raise RecipeError(
                f"{plan.recipe.path}: strategy finetune starts from {upstream_plan.recipe.path}, whose"
                f" {plan.model.name!r} has other settings: its weights would not load into this recipe's ({mismatch})."
                " Give both stages the same model settings (e.g. set them in the upstream recipe only), or use"
                " strategy scratch.")

    def upstream_files(self, upstream_run: Path) -> list[Path]:
        """What :meth:`prepare` reads from the upstream run (checked before anything trains)."""
        return [upstream_run / "checkpoints" / f"{self.config.checkpoint}.pt"]

    def prepare(self, model, *, upstream_run: Path | None):
        from segbench.engine.checkpoint import load_model_weights

        (path,) = self.upstream_files(upstream_run)
        load_model_weights(model, path)
        return f"finetune: initialised from {path}"


def _weights_mismatch(upstream_model, model) -> str | None:
    """How the weights of ``upstream_model`` (a plan's model component) fail to fit ``model``, from both built
    without memory (the meta device); ``None`` when they fit, or when a model cannot be built that way (its own
    load then says what is wrong)."""
    import warnings

    import torch

    shapes = []
    for component in (upstream_model, model):
        try:
            with warnings.catch_warnings(), torch.device("meta"):
                warnings.simplefilter("ignore")
                built = component.build(num_classes=19)  # the same for both: the stages share a dataset's classes
        except Exception:
            return None
        shapes.append({key: tuple(value.shape) for key, value in built.state_dict().items()})
    before, after = shapes
    missing = sorted(after.keys() - before.keys())
    if missing:
        return f"it has no {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}"
    unexpected = sorted(before.keys() - after.keys())
    if unexpected:
        return f"this model has no {', '.join(unexpected[:3])}{' ...' if len(unexpected) > 3 else ''}"
    differ = [key for key in after if after[key] != before[key]]
    if differ:
        return f"{differ[0]} is {list(before[differ[0]])} there, {list(after[differ[0]])} here"
    return None


@attrs.frozen
class PretrainedConfig:
    pass


class Pretrained(Scratch):
    def prepare(self, model, *, upstream_run):
        init = getattr(model, "segbench_init", "random")
        if init == "random":
            raise RecipeError(f"strategy pretrained needs a model that starts from pretrained weights, and this"
                              f" {type(model).__name__} starts from random ones. For a model with a `pretrained`"
                              " option (deeplabv3, deeplabv3plus, lraspp_mobilenet_v3) set model.pretrained: imagenet"
                              " or the path of its backbone's state dict; for any other, use strategy: scratch.")
        return f"pretrained: backbone from {init}"


@hookimpl
def segbench_register_strategies(register):
    register("scratch", Scratch, config=ScratchConfig, default=True)
    register("finetune", Finetune, config=FinetuneConfig, aliases=("coarse_to_fine",))
    register("pretrained", Pretrained, config=PretrainedConfig)
