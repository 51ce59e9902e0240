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


def test_a_stage_is_a_new_run_when_the_stage_it_starts_from_changes(recipe_dir, registries):
    coarse = write(recipe_dir / "coarse.yaml", "base: _base/default.yaml\ntrainer: {epochs: 3}\n")
    fine = write(recipe_dir / "fine.yaml", "base: _base/default.yaml\nstrategy: {name: finetune, source: coarse.yaml}\n")
    before = resolve_stages(load_recipe(fine), registries)
    assert before[1].recipe.data["upstream"]["run"] == before[0].plan.hash
    write(coarse, "base: _base/default.yaml\ntrainer: {epochs: 4}\n")  # the fine recipe itself is unchanged
    after = resolve_stages(load_recipe(fine), registries)
    assert after[1].name != before[1].name and after[0].name != before[0].name
    # a fine run is found complete only under the new name: the old one was fine-tuned from the old coarse run
    done = resolve_stages(load_recipe(fine), registries, is_complete=lambda plan: plan.run_name == before[1].name)
    assert [stage.complete for stage in done] == [False, False]


def test_the_seeds_of_a_fine_tuning_experiment_are_one_experiment(recipe_dir, registries):
    write(recipe_dir / "coarse.yaml", "base: _base/default.yaml\n")
    fine = write(recipe_dir / "fine.yaml", "base: coarse.yaml\nstrategy: {name: finetune}\n")
    runs = [resolve_stages(load_recipe(fine, seed=seed), registries) for seed in (0, 1)]
    assert runs[0][1].plan.hash != runs[1][1].plan.hash  # each starts from its own seed of the coarse stage
    assert runs[0][1].plan.experiment_hash == runs[1][1].plan.experiment_hash
    assert runs[0][1].recipe.data["upstream"]["run"] != runs[1][1].recipe.data["upstream"]["run"]


def test_an_upstream_key_written_in_a_recipe_is_refused(recipe_dir, cli):
    write(recipe_dir / "coarse.yaml", "base: _base/default.yaml\n")
    write(recipe_dir / "fine.yaml", "base: coarse.yaml\nstrategy: {name: finetune}\n")
    for text in ("base: fine.yaml\nupstream: {run: abc, experiment: def}\n", "base: coarse.yaml\nupstream: 3\n"):
        status, _, err = cli("show", write(recipe_dir / "forged.yaml", text))
        assert status == 2 and "`upstream:` is written by segbench" in err and "forged.yaml" in err


def test_what_a_fine_stage_or_grid_point_gets_wrong_is_refused_before_anything_trains(recipe_dir, cli):
    """Its warm-up against its training split, its batch size, its model's weights against the stage it starts
    from: an error when the command starts, not after the coarse stage or the first grid points trained."""
    write(recipe_dir / "coarse.yaml", "base: _base/default.yaml\n")
    cases = [
        ("base: coarse.yaml\nstrategy: {name: finetune}\nscheduler: {warmup_iterations: 100000}\n", (),
         "scheduler.warmup_iterations: 100000 warm-up iterations leave nothing"),
        ("base: coarse.yaml\nstrategy: {name: finetune}\nmodel: {width: 4}\n", (),
         "whose 'unet' has other settings: its weights would not load into this recipe's"),
        ("base: coarse.yaml\n", ("--grid", "trainer.batch_size=2,4000"), "fewer than one batch of 4000"),
    ]
    for text, options, message in cases:
        status, _, err = cli("run", write(recipe_dir / "fine.yaml", text), *options, "--runs-dir", recipe_dir / "runs")
        assert status == 2 and message in err and "Traceback" not in err, err
        assert not (recipe_dir / "runs").exists()


def test_an_override_that_only_the_fine_stage_takes_says_it_reached_the_coarse_one(recipe_dir, cli):
    write(recipe_dir / "coarse.yaml", "base: _base/default.yaml\nstrategy: {name: scratch}\n")
    fine = write(recipe_dir / "fine.yaml", "base: coarse.yaml\nstrategy: {name: finetune}\n")
    status, _, err = cli("show", fine, "strategy.checkpoint=last")
    assert status == 2 and "strategy: unknown key(s) checkpoint" in err
    assert "The command line's strategy.checkpoint=last applies to every stage, so also to stage coarse" in err
    status, _, err = cli("show", fine, "trainer.epochs=0")  # a mistake in every stage: the usual message
    assert status == 2 and "applies to every stage" not in err


def test_show_lists_the_stages_in_training_order_and_the_recipe_of_a_seed_that_runs(recipe_dir, cli):
    write(recipe_dir / "coarse.yaml", "base: _base/default.yaml\n")
    fine = write(recipe_dir / "fine.yaml", "base: coarse.yaml\nstrategy: {name: finetune}\nseeds: [7, 8]\n")
    status, out, err = cli("show", fine)
    assert status == 0, err
    assert "# stages, trained in this order: coarse (coarse.yaml, run coarse-" in out
    assert ": to train in runs) -> fine (fine.yaml, run fine-" in out
    assert "this is the recipe of seed: 7" in out and "\nseed: 7\n" in out  # seed 0 is no run of this recipe
    status, out, _ = cli("show", fine, "--seed", "8")
    assert status == 0 and "this is the recipe of seed: 8" in out and "\nseed: 8\n" in out
    status, _, err = cli("show", fine, "seed=3")  # as `run` refuses it: each of the seeds would replace it
    assert status == 2 and "the override seed=... would be replaced by each of the seeds [7, 8]" in err
