"""One stage graph: `segbench run` and `segbench emit-slurm` walk a recipe's upstream stages through resolve_stages."""
from segbench.recipe.load import load_recipe
from segbench.recipe.stages import resolve_stages


def write(path, text):
    path.write_text(text)
    return path


def test_chain_is_upstream_first_and_stops_at_a_complete_stage(recipe_dir, registries):
    write(recipe_dir / "coarse.yaml", "base: _base/default.yaml\n")
    write(recipe_dir / "fine.yaml", "base: coarse.yaml\nstrategy: {name: finetune}\n")
    write(recipe_dir / "finer.yaml", "base: fine.yaml\nstrategy: {name: finetune}\n")
    finer = load_recipe(recipe_dir / "finer.yaml")
    chain = resolve_stages(finer, registries)
    assert [stage.recipe.name for stage in chain] == ["coarse", "fine", "finer"]
    assert chain[0].upstream is None and chain[1].upstream == chain[0].plan
    assert [stage.complete for stage in chain] == [False, False, False]
    done = resolve_stages(finer, registries, is_complete=lambda plan: plan.recipe.name == "fine")
    assert [(stage.recipe.name, stage.complete, stage.upstream) for stage in done] == [
        ("fine", True, None), ("finer", False, done[1].upstream)]


def test_a_stage_cycle_is_the_same_error_for_run_and_emit_slurm(recipe_dir, cli):
    write(recipe_dir / "a.yaml", "base: _base/default.yaml\nstrategy: {name: finetune, source: b.yaml}\n")
    write(recipe_dir / "b.yaml", "base: _base/default.yaml\nstrategy: {name: finetune, source: a.yaml}\n")
    messages = []
    for command in (("run", recipe_dir / "a.yaml", "--runs-dir", recipe_dir / "runs"),
                    ("emit-slurm", recipe_dir / "a.yaml", "--runs-dir", recipe_dir / "runs")):
        status, _, err = cli(*command)
        assert status == 2 and "Traceback" not in err
        messages.append(err.strip())
    assert messages[0] == messages[1]
    a, b = str((recipe_dir / "a.yaml").resolve()), str((recipe_dir / "b.yaml").resolve())
    assert f"stage cycle: {a} -> {b} -> {a}" in messages[0]
    assert not (recipe_dir / "runs").exists()  # refused before anything trained
