"""Several seeds per experiment: recipe seeds, --seeds, --grid, seed pairing of stages, Slurm job arrays."""
from __future__ import annotations

import sys

import pytest

from segbench.cli import build_parser
from segbench.recipe.load import load_recipe
from segbench.recipe.plan import build_plan
from segbench.recipe.stages import resolve_stages
from segbench.recipe.variants import load_variants, parse_grid
from segbench_jobs.emit import summary
from tests.test_emit_slurm import (do_emit, fake_slurm, finish, option, read_argv, run_job, run_submit,  # noqa: F401
                                   sbatch_calls, write)


@pytest.fixture
def seeded(recipe_dir):
    """coarse (seeds 0, 1, 2) <- fine (finetune, the same seeds)."""
    write(recipe_dir / "coarse.yaml", "base: _base/default.yaml\nseeds: [0, 1, 2]\n")
    write(recipe_dir / "fine.yaml", "base: coarse.yaml\nstrategy: {name: finetune}\noptimizer: {lr: 1.0e-4}\n")
    return recipe_dir


def plans(runs, registries):
    return [build_plan(recipe, registries) for _, recipe in runs]


def test_each_seed_is_its_own_run_and_adding_seeds_keeps_existing_hashes(seeded, registries):
    runs = load_variants(seeded / "coarse.yaml")
    assert [(v.index, v.seed, r.data["seed"]) for v, r in runs] == [(0, 0, 0), (1, 1, 1), (2, 2, 2)]
    seeds = plans(runs, registries)
    assert len({p.hash for p in seeds}) == 3 and len({p.experiment_hash for p in seeds}) == 1
    write(seeded / "single.yaml", "base: _base/default.yaml\n")  # seed: 0, no seed list
    assert build_plan(load_recipe(seeded / "single.yaml"), registries).hash == seeds[0].hash
    assert [v.seed for v, _ in load_variants(seeded / "coarse.yaml", seeds=(7, 3))] == [7, 3]


def test_a_grid_is_the_product_of_its_values_times_the_seeds(seeded, registries):
    grid = parse_grid(["optimizer.lr=1.0e-3,1.0e-4", "trainer.batch_size=2,4"])
    runs = load_variants(seeded / "coarse.yaml", seeds=(0, 1), grid=grid)
    assert [v.index for v, _ in runs] == list(range(8))
    assert {(r.data["optimizer"]["lr"], r.data["trainer"]["batch_size"], r.data["seed"]) for _, r in runs} == {
        (lr, bs, s) for lr in (1.0e-3, 1.0e-4) for bs in (2, 4) for s in (0, 1)}
    assert len({p.experiment_hash for p in plans(runs, registries)}) == 4


def test_seed_k_of_a_fine_stage_starts_from_seed_k_of_its_upstream(seeded, registries):
    for variant, fine in load_variants(seeded / "fine.yaml"):
        upstream = build_plan(fine, registries).strategy.build().upstream(fine)
        assert upstream.data["seed"] == variant.seed == fine.data["seed"]
        (_, coarse), = load_variants(seeded / "coarse.yaml", seeds=(variant.seed,))
        assert build_plan(upstream, registries).hash == build_plan(coarse, registries).hash


@pytest.mark.parametrize("recipe, args, message", [
    ("seeds: [0, 0]\n", [], "names a seed twice"),
    ("seeds: [a]\n", [], "`seeds:` must be a list of up to"),
    ("", ["--seeds", "1,x"], "--seeds '1,x'"),
    ("", ["--seeds", "0_1"], "--seeds '0_1'"),  # Python would read 1: another seed than the user meant
    ("", ["--seeds", "\uff11"], "--seeds"),  # a full-width 1
    ("", ["--grid", "optimizer.lr=" + ",".join(f"{i}.0e-5" for i in range(1, 41)),
          "--grid", "trainer.log_every=" + ",".join(map(str, range(1, 31)))],
     "--grid 40 (optimizer.lr) x 30 (trainer.log_every) grid points make 1,200 runs"),
    ("", ["--grid", "optimizer.lr=1.0e-3,1.0e-4", "--seeds", ",".join(map(str, range(600)))],
     "grid points x 600 seeds make 1,200 runs"),
    ("", ["--grid", "optimizer.lr="], "--grid key=value1,value2"),
    ("", ["--grid", "seed=1,2"], "use --seeds"),
    ("", ["--grid", "slurm.time=1,2"], "slurm settings"),
    ("seeds: [0, 1]\n", ["seed=5"], "choose seeds with --seeds"),
])
def test_bad_seeds_and_grids_exit_2_saying_what_to_write(recipe_dir, cli, recipe, args, message):
    path = write(recipe_dir / "bad.yaml", "base: _base/default.yaml\n" + recipe)
    status, _, err = cli("run", path, *args, "--runs-dir", recipe_dir / "runs")
    assert status == 2 and message in err and "Traceback" not in err


def test_a_multi_seed_pair_becomes_two_arrays_paired_task_by_task(seeded, registries, tmp_path, fake_slurm):
    emitted = do_emit([seeded / "fine.yaml"], registries=registries, root=tmp_path, smoke=True)
    (coarse, coarse_file, coarse_log), (fine, fine_file, _) = emitted.submissions
    assert (coarse.array, coarse.array_spec, fine.array_spec) == (True, "0,1,2", "0,1,2")
    assert fine.dependency.kind == "aftercorr" and fine.dependency.on == ((coarse.name, None),)
    env, folder = fake_slurm
    result = run_submit(emitted.script, env, tmp_path)
    assert result.returncode == 0, result.stderr
    first, second = sbatch_calls(folder)
    assert option(first, "--array") == option(second, "--array") == "0,1,2"
    assert option(second, "--dependency") == "aftercorr:1001" and option(first, "--dependency") is None
    assert option(first, "--output") == str(coarse_log.with_suffix("")) + "_%a.log"
    assert "task by task (aftercorr)" in result.stderr

    # each array task runs exactly its own run: the same hash as the stage emitted for that task id
    for job, job_file in ((coarse, coarse_file), (fine, fine_file)):
        for stage in job.stages:
            assert run_job(job_file, env, SLURM_ARRAY_TASK_ID=str(stage.variant.index)) == 0
            argv = read_argv(folder / "srun")
            args = build_parser().parse_args(argv[argv.index(sys.executable) + 3:])
            (_, recipe), = load_variants(args.recipe, args.overrides, seeds=(int(args.seeds),), smoke=args.smoke)
            job_plan = resolve_stages(recipe, registries)[-1].plan  # with the run its stage starts from
            assert job_plan.hash == build_plan(stage.recipe, registries).hash
            assert recipe.data["seed"] == stage.variant.seed and stage.name.endswith(job_plan.hash[:8])
    assert run_job(fine_file, env, SLURM_ARRAY_TASK_ID="9") == 2


def test_complete_seeds_are_left_out_of_the_array(seeded, registries, tmp_path):
    done = build_plan(load_variants(seeded / "coarse.yaml", seeds=(1,))[0][1], registries)
    finish(done, tmp_path)
    emitted = do_emit([seeded / "fine.yaml"], registries=registries, root=tmp_path)
    (coarse, _, _), (fine, _, _) = emitted.submissions
    assert (coarse.array_spec, fine.array_spec, fine.dependency.kind) == ("0,2", "0,1,2", "aftercorr")
    assert [s.name for s in emitted.stages if s.complete] == [done.run_name]
    assert "5 to submit in 2 job(s), 1 already complete" in summary(emitted)


def test_arrays_of_other_runs_get_their_own_job_script_and_logs(seeded, registries, tmp_path):
    def array_files(**options):
        (job, job_file, log_file), = do_emit([seeded / "coarse.yaml"], registries=registries, root=tmp_path,
                                             **options).submissions
        return job.name, job_file, log_file

    first, other_seeds, again = array_files(), array_files(seeds=(3, 4)), array_files()
    assert first[0].startswith("coarse-array-") and first == again  # the same runs: the same files
    assert len({first[1], other_seeds[1]}) == 2 and len({first[2], other_seeds[2]}) == 2


def test_a_grid_sweep_is_one_array(seeded, registries, tmp_path):
    emitted = do_emit([seeded / "coarse.yaml"], registries=registries, root=tmp_path, seeds=(0, 1),
                      grid=parse_grid(["optimizer.lr=1.0e-3,1.0e-4"]))
    (job, job_file, _), = emitted.submissions
    assert job.array_spec == "0,1,2,3" and job.dependency is None
    commands = [line for line in job_file.read_text().splitlines() if line.strip().startswith("set -- ")]
    assert len(commands) == 4
    assert [("optimizer.lr=1.0e-3" in c, c.endswith("--seeds 1 ;;")) for c in commands] == [
        (True, False), (True, True), (False, False), (False, True)]


def test_a_single_run_recipe_whose_upstream_has_seeds_runs_that_one_upstream_run(recipe_dir, registries, tmp_path):
    write(recipe_dir / "coarse.yaml", "base: _base/default.yaml\nseeds: [0, 1, 2]\n")
    write(recipe_dir / "fine.yaml", "base: coarse.yaml\nstrategy: {name: finetune}\nseeds: null\n")
    emitted = do_emit([recipe_dir / "fine.yaml"], registries=registries, root=tmp_path)
    (coarse, coarse_file, _), (fine, _, _) = emitted.submissions
    assert not coarse.array and not fine.array and fine.dependency.kind == "afterok"
    assert "seeds=null" in coarse_file.read_text()  # not the coarse recipe's three seeds
