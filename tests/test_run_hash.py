"""A run is named by its resolved recipe: aliases, spelled-out defaults and key order do not fork it; a
plugin that changes a default does."""
import attrs
from torch import nn

from segbench import hookimpl
from segbench.plugins import make_plugin_manager
from segbench.recipe.load import load_recipe
from segbench.recipe.plan import build_plan
from segbench.registry import build_registries
from segbench.runs import RunDir


def plan_of(folder, text, registries, overrides=()):
    (folder / "r.yaml").write_text(text)
    return build_plan(load_recipe(folder / "r.yaml", overrides), registries)


def test_a_spelled_out_default_or_an_alias_names_the_same_run(recipe_dir, registries):
    base = "base: _base/default.yaml\n"
    plain = plan_of(recipe_dir, base, registries)
    spelled = plan_of(recipe_dir, base + "scheduler: {name: poly, power: 0.9}\nstrategy: {name: scratch}\n"
                                         "evaluation: {mode: whole}\n", registries)
    assert spelled.recipe.hash != plain.recipe.hash  # the files differ ...
    assert spelled.hash == plain.hash and spelled.run_name == plain.run_name  # ... the runs do not
    other = plan_of(recipe_dir, base + "scheduler: {name: poly, power: 2.0}\n", registries)
    assert other.hash != plain.hash

    fine = "base: _base/default.yaml\nstrategy: {name: finetune, source: coarse.yaml}\n"
    (recipe_dir / "coarse.yaml").write_text(base)
    by_name = plan_of(recipe_dir, fine, registries)
    by_alias = plan_of(recipe_dir, fine.replace("finetune", "coarse_to_fine"), registries)
    assert by_alias.hash == by_name.hash and by_alias.strategy.name == "finetune"


def test_overrides_that_restate_the_recipe_do_not_fork_the_run(recipe_dir, registries, cli):
    plan = plan_of(recipe_dir, "base: _base/default.yaml\n", registries)
    same = plan_of(recipe_dir, "base: _base/default.yaml\n", registries, ["trainer.accumulate=1", "seed=0"])
    assert same.hash == plan.hash
    status, out, _ = cli("show", recipe_dir / "r.yaml", "trainer.accumulate=1")
    assert status == 0 and f"# hash {plan.hash}" in out.splitlines()


def _model_plugin(default_width, field_type=None):
    config = attrs.make_class("WidthConfig", {"width": attrs.field(default=default_width, type=field_type)},
                              frozen=True)

    class Plugin:
        @hookimpl
        def segbench_register_models(self, register):
            register("tiny", lambda cfg, *, num_classes: nn.Conv2d(3, num_classes, 1), config=config)

    manager = make_plugin_manager(load_entry_points=False)
    manager.register(Plugin(), name="tiny-models")
    return build_registries(manager)


def test_a_plugin_that_changes_a_default_starts_a_new_run(recipe_dir, tmp_path):
    text = "base: _base/default.yaml\nmodel: {name: tiny, _replace_: true}\n"
    before = plan_of(recipe_dir, text, _model_plugin(4))
    after = plan_of(recipe_dir, text, _model_plugin(8))
    assert before.recipe.hash == after.recipe.hash  # the recipe file did not change
    assert RunDir.for_plan(before, tmp_path) != RunDir.for_plan(after, tmp_path)
    assert plan_of(recipe_dir, text.replace("tiny,", "tiny, width: 8,"), _model_plugin(4)).hash == after.hash


def test_a_float_setting_whose_default_is_written_as_an_integer_is_the_same_run_when_spelled_out(recipe_dir):
    registries = _model_plugin(0, float)  # `width: float = 0`, as plugin authors write it
    text = "base: _base/default.yaml\nmodel: {name: tiny, _replace_: true}\n"
    plain = plan_of(recipe_dir, text, registries)
    assert type(plain.model.config.width) is float  # the factory sees what a recipe writing 0 would give it
    for spelled in ("width: 0.0,", "width: 0,"):
        assert plan_of(recipe_dir, text.replace("tiny,", f"tiny, {spelled}"), registries).hash == plain.hash


def test_the_resolved_form_of_every_shipped_recipe_resolves_to_itself(registries):
    from pathlib import Path

    from segbench.recipe.resolved import resolved_data

    for path in sorted((Path(__file__).parents[1] / "recipes").glob("*.yaml")):
        plan = build_plan(load_recipe(path), registries)
        again = build_plan(attrs.evolve(plan.recipe, data=resolved_data(plan)), registries)
        assert again.hash == plan.hash, path.name
