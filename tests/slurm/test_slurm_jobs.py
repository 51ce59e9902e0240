"""``segbench emit-slurm ... | bash`` against a real single-node Slurm cluster on localhost."""
from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
import torch

from segbench.process import command_invocation
from segbench_jobs.stages import find_recipes
from segbench_plugins.synthetic_city import SMOKE_TREE
from tests.conftest import MINIMAL_RECIPE, REPO

pytestmark = pytest.mark.slurm

# Tests of the job mechanics give each stage one CPU and no GPU (two such jobs share the two real cores);
# the shipped recipes run with the resources they ask for (the node advertises them: see conftest.py).
CPU_NODE = ["slurm.gpus_per_node=0", "slurm.ntasks_per_node=1", "slurm.cpus_per_task=1", "slurm.nodes=1",
            "slurm.time=00:30:00", "slurm.signal_lead=60"]
SUBMITTED = re.compile(r"submitted (\S+) as job (\d+)(?: after job (\d+))?")


def emit_and_submit(cluster, *args, cwd: Path) -> tuple[list[tuple[str, str, str | None]], str]:
    """Run ``segbench emit-slurm ARGS | bash``; returns ``[(stage, job id, upstream job id)]`` and stderr."""
    segbench = shlex.join(command_invocation(sys.executable))
    pipeline = f"set -o pipefail; {segbench} emit-slurm {shlex.join(map(str, args))} | bash"
    result = subprocess.run(["bash", "-c", pipeline], env=cluster.env, cwd=cwd, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    return [(name, job, after or None) for name, job, after in SUBMITTED.findall(result.stderr)], result.stderr


def when(fields: dict, key: str) -> datetime:
    return datetime.fromisoformat(fields[key])


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def job_log(path) -> str:
    """A job's log as text. The batch shell and the training process write to the same file, so a line of the
    shell's ("got SIGUSR1") can land between the bytes of a progress bar's multi-byte character."""
    return path.read_text(errors="replace")


def test_a_failing_stage_cancels_its_dependents(slurm, tmp_path):
    recipes = tmp_path / "recipes"
    write(recipes / "_base" / "default.yaml", MINIMAL_RECIPE)
    write(recipes / "base.yaml", "base: _base/default.yaml\nslurm: {setup: ['exit 3']}\n")
    write(recipes / "fine.yaml", "base: base.yaml\nstrategy: {name: finetune}\nslurm: {setup: []}\n")
    write(recipes / "finer.yaml", "base: fine.yaml\nstrategy: {name: finetune}\n")
    jobs, _ = emit_and_submit(slurm, recipes, *CPU_NODE, "--smoke", "--out", tmp_path / "out",
                              "--runs-dir", tmp_path / "runs", cwd=tmp_path)
    assert [name.rsplit("-", 1)[0] for name, _, _ in jobs] == ["base", "fine", "finer"]
    states = slurm.wait_for([job for _, job, _ in jobs], timeout=120)  # nothing may pend forever
    base, fine, finer = (states[job] for _, job, _ in jobs)
    assert (base["JobState"], base["ExitCode"]) == ("FAILED", "3:0")
    assert fine["JobState"] == finer["JobState"] == "CANCELLED"


def test_usr1_mid_training_requeues_and_resumes_to_the_same_weights(slurm, tmp_path):
    recipes = tmp_path / "recipes"
    write(recipes / "_base" / "default.yaml", MINIMAL_RECIPE)
    recipe = write(recipes / "long.yaml", "base: _base/default.yaml\n")
    longer = ["trainer.max_iterations=30", "trainer.eval_every=1000"]
    runs = {}
    for variant in ("reference", "interrupted"):  # the interrupted one last: watched as soon as it is queued
        jobs, _ = emit_and_submit(slurm, recipe, *longer, *CPU_NODE, "--smoke", "--out", tmp_path / f"out-{variant}",
                                  "--runs-dir", tmp_path / variant, cwd=tmp_path)
        (name, job_id, _), = jobs
        runs[variant] = (tmp_path / variant / name, job_id)

    run_dir, job_id = runs["interrupted"]
    deadline = time.monotonic() + 300
    while True:  # signal once a few steps are done, well before the last
        records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()] \
            if (run_dir / "metrics.jsonl").exists() else []
        if any(r["type"] == "train" and r["iteration"] >= 3 for r in records):
            break
        assert time.monotonic() < deadline, "training did not start"
        time.sleep(0.3)
    slurm.run("scancel", "--signal=USR1", "--batch", job_id)

    states = slurm.wait_for([job_id for _, job_id in runs.values()], timeout=600)
    interrupted, reference = states[runs["interrupted"][1]], states[runs["reference"][1]]
    assert interrupted["JobState"] == reference["JobState"] == "COMPLETED"
    assert int(interrupted["Restarts"]) >= 1 and reference["Restarts"] == "0"
    results = json.loads((run_dir / "results.json").read_text())
    assert results["resumed"] is True and results["iterations"] == 30
    log = job_log(tmp_path / "out-interrupted" / f"{run_dir.name}.log")
    assert "requeueing job" in log

    weights = [torch.load(path / "checkpoints" / "last.pt", weights_only=True)["model"]
               for path, _ in runs.values()]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_a_two_task_job_trains_one_run_with_ddp(slurm, tmp_path):
    recipe = write(tmp_path / "recipes" / "pair.yaml", MINIMAL_RECIPE)
    jobs, _ = emit_and_submit(slurm, recipe, "trainer.max_iterations=3", *CPU_NODE, "slurm.ntasks_per_node=2",
                              "--smoke", "--out", tmp_path / "out", "--runs-dir", tmp_path / "runs", cwd=tmp_path)
    (name, job, _), = jobs
    state = slurm.wait_for([job], timeout=300)[job]
    assert (state["JobState"], state["NumTasks"]) == ("COMPLETED", "2")
    log = job_log(tmp_path / "out" / f"{name}.log")
    # one run shared by two ranks: half the batches per epoch, one summary (two separate runs would print
    # two, and one of them would find the run directory locked)
    per_rank_batches = SMOKE_TREE["train"] // 2 // 2  # 2 ranks, batch_size 2
    assert f"3 iteration(s) (trainer.max_iterations; {per_rank_batches} per epoch)" in log
    assert log.count("results for pair") == 1
    records = [json.loads(line) for line in (tmp_path / "runs" / name / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in records if r["type"] == "train"] == [1, 2, 3]


def test_a_three_seed_coarse_fine_pair_runs_as_two_arrays_paired_task_by_task(slurm, tmp_path):
    recipes = tmp_path / "recipes"
    write(recipes / "_base" / "default.yaml", MINIMAL_RECIPE)
    write(recipes / "coarse.yaml", "base: _base/default.yaml\nseeds: [0, 1, 2]\n")
    fine = write(recipes / "fine.yaml", "base: coarse.yaml\nstrategy: {name: finetune}\n")
    jobs, stderr = emit_and_submit(slurm, fine, *CPU_NODE, "--smoke", "--out", tmp_path / "out",
                                   "--runs-dir", tmp_path / "runs", cwd=tmp_path)
    (coarse_name, coarse_job, _), (fine_name, fine_job, after) = jobs
    assert after == coarse_job and "task by task (aftercorr)" in stderr
    assert slurm.job(fine_job)["Dependency"].startswith(f"aftercorr:{coarse_job}")
    slurm.wait_for([coarse_job, fine_job], timeout=900)
    coarse_tasks, fine_tasks = slurm.array_tasks(coarse_job), slurm.array_tasks(fine_job)
    assert sorted(coarse_tasks) == sorted(fine_tasks) == [0, 1, 2]
    for task in range(3):
        assert coarse_tasks[task]["JobState"] == fine_tasks[task]["JobState"] == "COMPLETED"
        assert when(fine_tasks[task], "StartTime") >= when(coarse_tasks[task], "EndTime")
    runs = [json.loads(path.read_text()) for path in sorted((tmp_path / "runs").glob("*/results.json"))]
    assert all((path / "confusion_per_image.npz").is_file() for path in (tmp_path / "runs").iterdir())
    assert sorted((r["recipe"], r["seed"]) for r in runs) == [(n, s) for n in ("coarse", "fine") for s in range(3)]
    for result in runs:  # seed k of the fine stage started from seed k of the coarse stage
        if result["recipe"] == "fine":
            source = Path(result["initialisation"].split("initialised from ", 1)[1]).parent.parent
            assert json.loads((source / "results.json").read_text())["seed"] == result["seed"]
    print(f"\narrays: coarse #{coarse_job} tasks 0-2, fine #{fine_job} tasks 0-2 (aftercorr)")


def test_a_run_in_the_jobs_of_two_emits_is_trained_once_and_both_jobs_complete(slurm, tmp_path):
    """Seed 0 alone, then seeds 0 and 1 into another --out while seed 0 still trains: the array's task for seed 0
    goes back to the queue until the first job has ended instead of failing on the run's lock."""
    recipe = write(tmp_path / "recipes" / "twice.yaml", MINIMAL_RECIPE)
    longer = ["trainer.max_iterations=400", "trainer.eval_every=1000", "trainer.log_every=10"]
    common = [recipe, *longer, *CPU_NODE, "--smoke", "--runs-dir", tmp_path / "runs"]
    (name, first, _), = emit_and_submit(slurm, *common, "--seeds", "0", "--out", tmp_path / "out-a", cwd=tmp_path)[0]
    metrics = tmp_path / "runs" / name / "metrics.jsonl"
    deadline = time.monotonic() + 300
    while not (metrics.exists() and '"train"' in metrics.read_text()):  # it holds the run's lock
        assert time.monotonic() < deadline, "the first job did not start training"
        time.sleep(0.3)
    (_, array, _), = emit_and_submit(slurm, *common, "--seeds", "0,1", "--out", tmp_path / "out-b", cwd=tmp_path)[0]
    slurm.wait_for([first, array], timeout=900)
    tasks = slurm.array_tasks(array)
    assert slurm.job(first)["JobState"] == tasks[0]["JobState"] == tasks[1]["JobState"] == "COMPLETED"
    assert int(tasks[0]["Restarts"]) >= 1 and when(tasks[0], "StartTime") >= when(slurm.job(first), "EndTime")
    log = job_log(next((tmp_path / "out-b").glob("*_0.log")))
    assert "requeueing job" in log and "to start after it" in log and "already complete" in log, log[-3000:]
    assert f"is queued to start when job {first} has ended" in log, log[-3000:]  # set while TERM ends the job
    results = json.loads((tmp_path / "runs" / name / "results.json").read_text())
    assert results["resumed"] is False and results["iterations"] == 400  # trained once, by the first job
    assert not list((tmp_path / "out-b").glob(".*.wait-*"))


@pytest.fixture(scope="module")
def recipes_submitted(slurm, tmp_path_factory):
    """``segbench emit-slurm recipes/ --smoke | bash`` with each recipe's own resources, every job waited for."""
    root = tmp_path_factory.mktemp("recipes-on-slurm")
    started = time.monotonic()
    jobs, stderr = emit_and_submit(slurm, REPO / "recipes", "--smoke", "--out", root / "out",
                                   "--runs-dir", root / "runs", cwd=REPO)
    states = slurm.wait_for([job for _, job, _ in jobs], timeout=3600)
    yield {"root": root, "jobs": jobs, "states": states, "stderr": stderr, "seconds": time.monotonic() - started,
           "slurm": slurm}
    for checkpoints in (root / "runs").glob("*/checkpoints"):  # ~20 GB of ResNet50 smoke checkpoints
        shutil.rmtree(checkpoints, ignore_errors=True)


def test_every_recipe_is_submitted_and_completes(recipes_submitted):
    jobs, states = recipes_submitted["jobs"], recipes_submitted["states"]
    assert len(jobs) == len(find_recipes(REPO / "recipes"))
    failed = {name: (states[job]["JobState"], states[job]["ExitCode"]) for name, job, _ in jobs
              if states[job]["JobState"] != "COMPLETED"}
    assert not failed, failed
    runs = recipes_submitted["root"] / "runs"
    assert all((run / "results.json").is_file() for run in runs.iterdir())
    for name, job, _ in jobs:
        if "-array-" in name:
            continue
        assert (runs / name / "results.json").is_file()
        log = job_log(recipes_submitted["root"] / "out" / f"{name}.log")
        assert "Traceback" not in log, log[-3000:]
        if int(states[job]["NumTasks"]) > 1:  # one run shared by the ranks
            assert log.count(f"results for {name.rsplit('-', 1)[0]}") == 1, log[-3000:]
    arrays = [job for name, job, _ in jobs if "-array-" in name]
    assert arrays, "the multi-seed recipes are submitted as job arrays"
    for job in arrays:
        tasks = recipes_submitted["slurm"].array_tasks(job)
        assert len(tasks) == 3 and all(t["JobState"] == "COMPLETED" for t in tasks.values())
    print(f"\n{len(jobs)} jobs in {recipes_submitted['seconds']:.0f} s: "
          + ", ".join(f"{name} #{job}" + (f" after #{after}" if after else "") for name, job, after in jobs))


def test_fine_stages_start_after_their_coarse_stage_ended(recipes_submitted):
    jobs, states = recipes_submitted["jobs"], recipes_submitted["states"]
    chained = [(job, after) for _, job, after in jobs if after]
    assert chained, "the recipes should hold at least one coarse -> fine pair"
    slurm = recipes_submitted["slurm"]
    for job, after in chained:
        fine, coarse = slurm.array_tasks(job), slurm.array_tasks(after)
        if fine:  # arrays: task k after task k
            for task, fields in fine.items():
                assert when(fields, "StartTime") >= when(coarse[task], "EndTime")
        else:
            assert states[job]["Dependency"] == "(null)"  # satisfied
            assert when(states[job], "StartTime") >= when(states[after], "EndTime")


def test_a_second_emit_skips_every_completed_stage(recipes_submitted, slurm):
    root = recipes_submitted["root"]
    jobs, stderr = emit_and_submit(slurm, REPO / "recipes", "--smoke", "--out", root / "out",
                                   "--runs-dir", root / "runs", cwd=REPO)
    assert jobs == [] and "nothing to submit" in stderr and "0 to submit" in stderr
