"""``segbench emit-slurm``: stage DAG, job scripts, shell safety, preemption glue (with fake Slurm tools)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segbench.cli import build_parser
from segbench.engine.preflight import preflight
from segbench.process import command_invocation
from segbench.errors import ConfigError, SegbenchError
from segbench.recipe.load import load_recipe
from segbench.recipe.plan import build_plan
from segbench.recipe.stages import resolve_stages
from segbench.records import write_record
from segbench_jobs.emit import emit, split_paths_and_overrides
from segbench_jobs.script import PREEMPTED_EXIT_CODE
from segbench_jobs.stages import find_recipes
from segbench_jobs.slurm_config import SlurmConfig, slurm_config, time_limit_seconds
from tests.conftest import MINIMAL_RECIPE, REPO, results_record

FAKE_SBATCH = """#!/bin/bash
# Records its argv (NUL-separated, one file per call) and prints a job id like sbatch --parsable.
n=$(( $(cat "$FAKE_DIR/count" 2>/dev/null || echo 0) + 1 ))
echo "$n" > "$FAKE_DIR/count"
printf '%s\\0' "$@" > "$FAKE_DIR/sbatch.$n"
echo $(( 1000 + n ))
"""
FAKE_SRUN = """#!/bin/bash
# Records its argv; exits 75 on USR1 (as segbench does after writing last.pt) or with $FAKE_STATUS.
printf '%s\\0' "$@" > "$FAKE_DIR/srun"
# FAKE_HOLDER: the run is locked by that job (segbench names it for the job script, then exits 75)
[ -z "${FAKE_HOLDER:-}" ] || echo "$FAKE_HOLDER" > "$SEGBENCH_WAIT_FILE"
trap 'exit 75' USR1
for _ in $(seq 100); do sleep 0.05; [ -n "${FAKE_SLOW:-}" ] || break; done
exit "${FAKE_STATUS:-0}"
"""
FAKE_SCONTROL = """#!/bin/bash
printf '%s\\0' "$@" > "$FAKE_DIR/scontrol"
# A requeued job ends: Slurm sends TERM to each of its processes, the job script and this command included
if [ -e "$FAKE_DIR/requeued" ]; then kill -TERM "$PPID" $$; fi
case "$1" in requeue*) touch "$FAKE_DIR/requeued";; esac
echo "$*" >> "$FAKE_DIR/scontrol.log"
"""


@pytest.fixture
def fake_slurm(tmp_path):
    """A folder with fake sbatch/srun/scontrol that record their argv; returns (env, folder)."""
    folder = tmp_path / "fake"
    (folder / "bin").mkdir(parents=True)
    for name, text in (("sbatch", FAKE_SBATCH), ("srun", FAKE_SRUN), ("scontrol", FAKE_SCONTROL)):
        tool = folder / "bin" / name
        tool.write_text(text)
        tool.chmod(0o755)
    env = {**os.environ, "PATH": f"{folder / 'bin'}:{os.environ['PATH']}", "FAKE_DIR": str(folder)}
    return env, folder


def read_argv(path: Path) -> list[str]:
    return path.read_bytes().decode().split("\0")[:-1]


def sbatch_calls(folder: Path) -> list[list[str]]:
    count = int((folder / "count").read_text()) if (folder / "count").exists() else 0
    return [read_argv(folder / f"sbatch.{n}") for n in range(1, count + 1)]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def stages_dir(recipe_dir):
    """coarse <- fine_a, coarse <- fine_b (both finetune from coarse), and an independent other."""
    write(recipe_dir / "coarse.yaml", "base: _base/default.yaml\n")
    write(recipe_dir / "fine_a.yaml", "base: coarse.yaml\nstrategy: {name: finetune}\nseed: 1\n")
    write(recipe_dir / "fine_b.yaml", "base: coarse.yaml\nstrategy: {name: finetune}\nseed: 2\n")
    write(recipe_dir / "other.yaml", "base: _base/default.yaml\nseed: 5\n")
    return recipe_dir


def finish(plan, root: Path, *, checkpoints: bool = True) -> Path:
    """A finished run of ``plan`` under ``root/runs`` as far as its results.json and checkpoint files go (nothing
    trained: a stage starting from it would find placeholder weights)."""
    results = results_record(recipe=plan.recipe.name, recipe_hash=plan.hash)
    path = root / "runs" / plan.run_name / "results.json"
    (path.parent / "checkpoints").mkdir(parents=True, exist_ok=True)
    for name in ("best.pt", "last.pt") if checkpoints else ():
        (path.parent / "checkpoints" / name).write_bytes(b"placeholder")
    write_record(path, results)
    return path


def do_emit(paths, overrides=(), *, registries, root: Path, **kwargs):
    return emit([Path(p) for p in paths], list(overrides), registries=registries, out_dir=root / "out",
                runs_dir=root / "runs", workdir=root, **kwargs)


def run_submit(script: str, env, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", script], env=env, cwd=cwd, capture_output=True, text=True, timeout=60)


def option(argv: list[str], name: str) -> str | None:
    return next((a.split("=", 1)[1] for a in argv if a.startswith(name + "=")), None)


# -- the stage DAG ---------------------------------------------------------------------------------------

def test_a_run_started_with_another_process_count_is_refused_before_submitting(stages_dir, registries, tmp_path):
    import torch

    other = build_plan(load_recipe(stages_dir / "other.yaml"), registries)
    last = tmp_path / "runs" / other.run_name / "checkpoints" / "last.pt"
    last.parent.mkdir(parents=True)
    torch.save({"model": {"w": torch.zeros(3)}, "world_size": 1, "format_version": 1}, last)
    with pytest.raises(SegbenchError) as info:
        do_emit([stages_dir / "other.yaml"], ["slurm.ntasks_per_node=2"], registries=registries, root=tmp_path)
    message = str(info.value)
    assert "was started with 1 process(es) and its job would resume it with 2" in message
    assert "slurm.ntasks_per_node=1" in message and "segbench run --restart" in message
    assert not (tmp_path / "out").exists()  # nothing written
    (job, _, _), = do_emit([stages_dir / "other.yaml"], registries=registries, root=tmp_path).submissions
    assert job.name == other.run_name  # as it started: resumed


FAKE_SQUEUE = """#!/bin/bash
# The queued jobs named as --name asks ($FAKE_QUEUED: lines of NAME ID SCRIPT), as squeue -h -o '%F %o' prints them.
for arg in "$@"; do case "$arg" in --name=*) wanted=${arg#--name=} ;; esac; done
printf '%s\\n' "${FAKE_QUEUED:-}" | while read -r name rest; do [ "$name" = "$wanted" ] && echo "$rest"; done; true
"""


def test_a_job_still_queued_is_not_submitted_again_and_its_dependents_wait_for_it(stages_dir, registries, tmp_path,
                                                                                 fake_slurm):
    env, folder = fake_slurm
    (folder / "bin" / "squeue").write_text(FAKE_SQUEUE)
    (folder / "bin" / "squeue").chmod(0o755)
    emitted = do_emit([stages_dir], registries=registries, root=tmp_path)
    (coarse, coarse_file, _), = [s for s in emitted.submissions if s[0].recipe.name == "coarse"]
    other = next(job for job, _, _ in emitted.submissions if job.recipe.name == "other")
    queue = (f"{coarse.name} 777 {coarse_file}\n"  # this emit's job, still waiting
             f"{other.name} 778 {tmp_path / 'elsewhere' / 'other.sbatch'}")  # the same run, emitted with another --out
    result = run_submit(emitted.script, {**env, "FAKE_QUEUED": queue}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"{coarse.name} is already queued or running as job 777: not submitted again" in result.stderr
    calls = sbatch_calls(folder)
    by_name = {Path(argv[-1]).name.rsplit("-", 1)[0]: argv for argv in calls}
    assert sorted(by_name) == ["fine_a", "fine_b", "other"]
    assert option(by_name["fine_a"], "--dependency") == option(by_name["fine_b"], "--dependency") == "afterok:777"


def test_stages_are_ordered_and_a_shared_upstream_is_submitted_once(stages_dir, registries, tmp_path, fake_slurm):
    emitted = do_emit([stages_dir], registries=registries, root=tmp_path)
    names = [stage.recipe.name for stage, _, _ in emitted.submissions]
    assert sorted(names) == ["coarse", "fine_a", "fine_b", "other"]
    assert names.index("coarse") < names.index("fine_a") and names.index("coarse") < names.index("fine_b")

    env, folder = fake_slurm
    result = run_submit(emitted.script, env, tmp_path)
    assert result.returncode == 0, result.stderr
    calls = sbatch_calls(folder)
    assert len(calls) == 4  # coarse once, although two stages start from it
    ids = {Path(argv[-1]).name.rsplit("-", 1)[0]: str(1000 + n) for n, argv in enumerate(calls, start=1)}
    by_name = {Path(argv[-1]).name.rsplit("-", 1)[0]: argv for argv in calls}
    for fine in ("fine_a", "fine_b"):
        assert option(by_name[fine], "--dependency") == f"afterok:{ids['coarse']}"
        assert "--kill-on-invalid-dep=yes" in by_name[fine]
    for independent in ("coarse", "other"):
        assert option(by_name[independent], "--dependency") is None
    assert all(argv[0] == "--parsable" for argv in calls)
    assert "submitted coarse-" in result.stderr and f"after job {ids['coarse']}" in result.stderr


def test_complete_stages_are_skipped_and_dependents_lose_the_dependency(stages_dir, registries, tmp_path,
                                                                          fake_slurm):
    coarse = build_plan(load_recipe(stages_dir / "coarse.yaml"), registries)
    finish(coarse, tmp_path)
    emitted = do_emit([stages_dir], registries=registries, root=tmp_path)
    assert [s.recipe.name for s in emitted.stages if s.complete] == ["coarse"]
    env, folder = fake_slurm
    assert run_submit(emitted.script, env, tmp_path).returncode == 0
    calls = sbatch_calls(folder)
    assert len(calls) == 3 and all(option(argv, "--dependency") is None for argv in calls)


@pytest.mark.parametrize("damage", ["{}", "{cut sho", "\xff\xfe not text"])
def test_a_damaged_results_file_is_an_error_naming_it_not_a_finished_stage(stages_dir, registries, tmp_path, cli,
                                                                            damage):
    """Counted as finished, a stage with a damaged results.json was never submitted and its job would stop at
    once on the file; nothing is submitted and the message says which file and how to write it again."""
    coarse = build_plan(load_recipe(stages_dir / "coarse.yaml"), registries)
    results = finish(coarse, tmp_path, checkpoints=False)
    results.write_bytes(damage.encode("latin-1"))
    status, out, err = cli("emit-slurm", stages_dir, "--runs-dir", tmp_path / "runs", "--out", tmp_path / "out")
    assert status == 2 and out == "" and "Traceback" not in err
    assert str(results) in err and "coarse" in err and "move it away" in err
    assert "it trains again" in err  # no last.pt here: nothing claims the training is complete


def test_nothing_left_to_submit_prints_a_harmless_script(recipe_dir, registries, tmp_path, fake_slurm):
    write(recipe_dir / "only.yaml", "base: _base/default.yaml\n")
    finish(build_plan(load_recipe(recipe_dir / "only.yaml"), registries), tmp_path)
    emitted = do_emit([recipe_dir], registries=registries, root=tmp_path)
    env, folder = fake_slurm
    result = run_submit(emitted.script, env, tmp_path)
    assert result.returncode == 0 and "nothing to submit" in result.stderr
    assert sbatch_calls(folder) == [] and not (tmp_path / "out").exists()


def test_an_upstream_stage_outside_the_given_paths_is_pulled_in(tmp_path, registries):
    base = write(tmp_path / "stages" / "_base" / "default.yaml", MINIMAL_RECIPE)
    write(base.parent.parent / "coarse.yaml", "base: _base/default.yaml\n")
    fine = write(base.parent.parent / "fine.yaml", "base: coarse.yaml\nstrategy: {name: finetune}\n")
    emitted = do_emit([fine], registries=registries, root=tmp_path)
    assert [(s.recipe.name, s.requested, s.upstream is not None) for s in emitted.stages] == [
        ("coarse", False, False), ("fine", True, True)]


def test_overrides_reach_upstream_stages_so_hashes_match_the_runner(stages_dir, registries, tmp_path):
    emitted = do_emit([stages_dir / "fine_a.yaml"], ["trainer.epochs=3"], registries=registries, root=tmp_path)
    coarse, fine = emitted.stages
    assert coarse.recipe.hash == load_recipe(stages_dir / "coarse.yaml", ["trainer.epochs=3"]).hash
    assert fine.upstream == coarse.name


def test_a_recipe_folder_skips_base_and_needs_recipes(recipe_dir, registries, tmp_path):
    with pytest.raises(SegbenchError, match="no recipes"):
        do_emit([recipe_dir], registries=registries, root=tmp_path)


@pytest.mark.parametrize("run_files", [["results.json"], ["metrics.jsonl"], ["checkpoints/"], ["run.lock"]])
def test_a_project_folder_skips_the_run_directories_in_it(stages_dir, registries, tmp_path, run_files):
    """``emit-slurm .`` from a project: the recipe.yaml a run keeps (even one that only started) is no recipe."""
    run = stages_dir / "runs" / "other-0123abcd"
    run.mkdir(parents=True)
    (run / "recipe.yaml").write_text("seed: 5\n")
    for name in run_files:
        (run / name).mkdir() if name.endswith("/") else (run / name).write_text("")
    assert [p.name for p in find_recipes(stages_dir)] == ["coarse.yaml", "fine_a.yaml", "fine_b.yaml", "other.yaml"]
    with pytest.raises(SegbenchError, match="is a run directory: its recipe.yaml records what the run did"):
        find_recipes(run)
    (run / "notes").mkdir()
    (run / "notes" / "a folder of recipes.yaml").write_text("seed: 0\n")  # a recipes folder named like a run
    (run / "recipe.yaml").unlink()
    assert "a folder of recipes.yaml" in [p.name for p in find_recipes(stages_dir)]


def test_paths_and_overrides_are_told_apart(tmp_path):
    recipe = write(tmp_path / "a=b.yaml", "seed: 0\n")
    paths, overrides = split_paths_and_overrides([str(recipe), "trainer.epochs=2", str(tmp_path)])
    assert paths == [recipe, tmp_path] and overrides == ["trainer.epochs=2"]
    with pytest.raises(SegbenchError, match="neither a recipe"):
        split_paths_and_overrides([str(tmp_path / "missing.yaml")])


# -- the slurm: section ----------------------------------------------------------------------------------

def test_defaults_request_no_gpu_and_set_up_preemption(stages_dir, registries, tmp_path):
    emitted = do_emit([stages_dir / "coarse.yaml"], registries=registries, root=tmp_path)
    (stage, job_file, _), = emitted.submissions
    text = job_file.read_text()
    sbatch_lines = [line for line in text.splitlines() if line.startswith("#SBATCH")]
    assert not any("gres" in line or "gpu" in line for line in sbatch_lines)
    for line in ("#SBATCH --requeue", "#SBATCH --signal=B:USR1@300", "#SBATCH --time=04:00:00",
                 "#SBATCH --ntasks-per-node=1", "export MALLOC_MMAP_MAX_=0",
                 "export MALLOC_TRIM_THRESHOLD_=68719476736", "trap 'forward USR1' USR1"):
        assert line in text
    assert stage.slurm == SlurmConfig()


def test_recipe_section_then_command_line_overrides(stages_dir, registries, tmp_path):
    write(stages_dir / "big.yaml", "base: _base/default.yaml\nslurm:\n  partition: gpu\n  gpus_per_node: 2\n"
          "  time: '10:00:00'\n  mem: 64G\n  extra: ['--mail-type=END']\n  setup: ['module load cuda']\n"
          "  env: {MALLOC_MMAP_MAX_: null, OMP_PROC_BIND: 'true'}\n")
    emitted = do_emit([stages_dir / "big.yaml"], ["slurm.time=00:10:00", "slurm.signal_lead=60"],
                      registries=registries, root=tmp_path)
    text = emitted.submissions[0][1].read_text()
    for line in ("#SBATCH --partition=gpu", "#SBATCH --gres=gpu:2", "#SBATCH --ntasks-per-node=2",
                 "#SBATCH --time=00:10:00", "#SBATCH --signal=B:USR1@60", "#SBATCH --mem=64G",
                 "#SBATCH --mail-type=END", "\nmodule load cuda\n", "export OMP_PROC_BIND=true"):
        assert line in text
    assert "MALLOC_MMAP_MAX_" not in text and "MALLOC_TRIM_THRESHOLD_" in text
    # slurm.* settings do not change what is computed: same hash, and they are not passed to the job.
    assert emitted.stages[0].recipe.hash == load_recipe(stages_dir / "big.yaml").hash
    assert "slurm." not in text.split("srun ", 1)[1]


@pytest.mark.parametrize("section, path, message", [
    ({"partiton": "gpu"}, "slurm", "unknown key(s) partiton"),
    ({"time": "ten hours"}, "slurm.time", "not a Slurm time limit"),
    ({"time": 36000}, "slurm.time", "base-60"),
    ({"partition": "a\nb"}, "slurm.partition", "not a value sbatch can take"),
    ({"account": "x y"}, "slurm.account", "not a value sbatch can take"),
    ({"mem": "lots"}, "slurm.mem", "memory size"),
    ({"gpus_per_node": -1}, "slurm.gpus_per_node", ""),
    ({"extra": ["--comment=a\n rm -rf /"]}, "slurm.extra", "one option on one line"),
    ({"extra": ["mail-type=END"]}, "slurm.extra", "not an sbatch option"),
    ({"extra": ["--comment=nightly run"]}, "slurm.extra", "write the value without spaces"),
    ({"extra": ["--time=1:00:00"]}, "slurm.extra", "set slurm.time instead"),
    ({"extra": ["-pdebug"]}, "slurm.extra", "set slurm.partition instead"),
    ({"extra": ["--array=0-1"]}, "slurm.extra", "--array is segbench's to set"),
    ({"extra": ["--output=/tmp/x.log"]}, "slurm.extra", "--output is segbench's to set"),
    ({"extra": ["-D", "/elsewhere"]}, "slurm.extra", "-D is segbench's to set"),
    ({"env": {"BAD NAME": "1"}}, "slurm.env", "not an environment variable name"),
    ({"time": "00:02:00", "signal_lead": 300}, "slurm", "must be shorter than slurm.time"),
])
def test_values_sbatch_cannot_take_are_errors_with_their_key(section, path, message):
    with pytest.raises(ConfigError) as info:
        slurm_config({"slurm": section}, files=["r.yaml"])
    assert [p for p, _ in info.value.problems] == [path]
    assert message in str(info.value) and "r.yaml" in str(info.value)


def test_text_settings_on_the_command_line_are_taken_as_typed():
    config = slurm_config({}, ["slurm.time=10:00:00", "slurm.partition=batch", "slurm.setup=[a, b]"])
    assert (config.time, config.partition, config.setup) == ("10:00:00", "batch", ("a", "b"))


def test_cli_reports_a_bad_slurm_value_with_exit_2(stages_dir, tmp_path, cli):
    status, out, err = cli("emit-slurm", stages_dir / "coarse.yaml", "slurm.partition=a;b c", "--out",
                           tmp_path / "out", "--runs-dir", tmp_path / "runs")
    assert status == 2 and out == ""
    assert "slurm.partition" in err and "coarse.yaml" in err


def test_every_broken_recipe_of_a_folder_is_reported_at_once_and_nothing_is_written(recipe_dir, tmp_path, cli):
    write(recipe_dir / "good.yaml", "base: _base/default.yaml\n")
    write(recipe_dir / "a.yaml", "base: _base/default.yaml\ntrainer: {epochs: many}\n")
    write(recipe_dir / "b.yaml", "- not a mapping\n")
    write(recipe_dir / "c.yaml", "base: a.yaml\nstrategy: {name: finetune}\n")  # starts from a broken stage
    status, out, err = cli("emit-slurm", recipe_dir, "--out", tmp_path / "out", "--runs-dir", tmp_path / "runs")
    assert status == 2 and out == "", err
    assert "3 recipes have problems; nothing was submitted" in err, err
    assert "a.yaml <- " in err and "b.yaml holds a YAML list" in err and "c.yaml <- " in err, err
    assert err.count("expected an integer, got the string 'many'") == 2, err  # a's own, and c's upstream
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_cli_prints_the_script_and_a_summary(stages_dir, tmp_path, cli):
    status, out, err = cli("emit-slurm", stages_dir, "trainer.epochs=2", "--out", tmp_path / "out",
                           "--runs-dir", tmp_path / "runs")
    assert status == 0
    assert out.startswith("#!/usr/bin/env bash") and out.count("$(submit ") == 4
    assert "4 to submit" in err and "after coarse-" in err
    assert len(list((tmp_path / "out").glob("*.sbatch"))) == 4


# -- the job script --------------------------------------------------------------------------------------

def run_job(job_file: Path, env, *, signal_after: float | None = None, **extra_env) -> int:
    job_env = {**env, "SLURM_JOB_ID": "4242", **extra_env}
    process = subprocess.Popen(["bash", str(job_file)], env=job_env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    if signal_after is not None:
        time.sleep(signal_after)
        process.send_signal(signal.SIGUSR1)
    process.communicate(timeout=60)
    return process.returncode


def test_the_job_runs_segbench_with_the_same_recipe_hash(stages_dir, registries, tmp_path, fake_slurm):
    emitted = do_emit([stages_dir / "fine_a.yaml"], ["trainer.epochs=2"], registries=registries, root=tmp_path,
                      smoke=True)
    env, folder = fake_slurm
    for stage, job_file, _ in emitted.submissions:
        assert run_job(job_file, env) == 0
        argv = read_argv(folder / "srun")
        start = argv.index(sys.executable)
        assert argv[start:start + 3] == command_invocation(sys.executable)
        args = build_parser().parse_args(argv[start + 3:])
        assert args.smoke and args.runs_dir == (tmp_path / "runs").resolve()
        job_recipe = load_recipe(args.recipe, args.overrides, smoke=args.smoke)
        assert resolve_stages(job_recipe, registries)[-1].name == stage.stages[0].run.path.name
    assert not (folder / "scontrol").exists()


def test_usr1_is_forwarded_and_the_preempted_job_requeues_itself(stages_dir, registries, tmp_path, fake_slurm):
    emitted = do_emit([stages_dir / "coarse.yaml"], registries=registries, root=tmp_path)
    job_file = emitted.submissions[0][1]
    env, folder = fake_slurm
    assert run_job(job_file, env, signal_after=1.0, FAKE_SLOW="1") == PREEMPTED_EXIT_CODE
    assert read_argv(folder / "scontrol") == ["requeue", "4242"]


def test_a_job_whose_run_another_job_trains_goes_back_to_the_queue_after_that_job(stages_dir, registries, tmp_path,
                                                                                  fake_slurm):
    emitted = do_emit([stages_dir / "coarse.yaml"], registries=registries, root=tmp_path)
    job_file = emitted.submissions[0][1]
    env, folder = fake_slurm
    stale = job_file.parent / f".{job_file.stem}.wait-4242"
    stale.write_text("999\n")  # left by an attempt killed before reading it: no reason to wait now
    assert run_job(job_file, env) == 0 and not stale.exists() and not (folder / "scontrol.log").exists()
    assert run_job(job_file, env, FAKE_HOLDER="123_4", FAKE_STATUS=str(PREEMPTED_EXIT_CODE)) == PREEMPTED_EXIT_CODE
    # requeued, then made to wait for the holder once pending (a running job's dependency cannot be changed),
    # although Slurm sends TERM to every process of a requeued job
    assert (folder / "scontrol.log").read_text().splitlines() == [
        "requeue 4242", "update JobId=4242 Dependency=afterany:123_4"]
    assert not stale.exists()


@pytest.mark.parametrize("status", [0, 3])
def test_a_finished_or_failed_job_is_not_requeued(stages_dir, registries, tmp_path, fake_slurm, status):
    emitted = do_emit([stages_dir / "coarse.yaml"], registries=registries, root=tmp_path)
    env, folder = fake_slurm
    assert run_job(emitted.submissions[0][1], env, FAKE_STATUS=str(status)) == status
    assert not (folder / "scontrol").exists()


# -- shell safety ----------------------------------------------------------------------------------------

PAYLOADS = ["$(touch pwned)", "`touch pwned`", "; touch pwned", "' ; touch pwned #", '" ; touch pwned #',
            "\n touch pwned \n", "&& touch pwned", "| touch pwned", "$HOME", "${PATH}", "\\", "%j", "%%",
            "*", "?", "~", "!", "#", "=", ">pwned", "<x", " ", "\t", "{a,b}", "é", "'", '"']
CHUNK = st.one_of(st.sampled_from(PAYLOADS), st.text("abc XYZ09_-.", min_size=1, max_size=4))
NAME = st.lists(CHUNK, min_size=1, max_size=4).map("".join).filter(
    lambda s: not s.startswith((".", "-", "~")) and "/" not in s and len(s.encode()) < 80)


@settings(max_examples=25)
@given(folder=NAME, name=NAME, value=st.lists(CHUNK, max_size=5).map("".join))
def test_names_paths_and_values_pass_through_literally(registries, folder, name, value):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / folder
        recipes = root / "recipes"
        write(recipes / "_base" / "default.yaml", MINIMAL_RECIPE)
        write(recipes / f"{name}.yaml", "base: _base/default.yaml\n")
        write(recipes / f"{name} fine.yaml", f"base: {json.dumps(name + '.yaml')}\nstrategy: {{name: finetune}}\n")
        override = f"description={json.dumps(value)}"
        workdir = Path(tmp) / "cwd"
        workdir.mkdir()
        emitted = emit([recipes], [override], registries=registries, out_dir=root / "out",
                       runs_dir=root / "runs", workdir=workdir)

        fake = Path(tmp) / "fake"
        (fake / "bin").mkdir(parents=True)
        for tool, text in (("sbatch", FAKE_SBATCH), ("srun", FAKE_SRUN), ("scontrol", FAKE_SCONTROL)):
            (fake / "bin" / tool).write_text(text)
            (fake / "bin" / tool).chmod(0o755)
        env = {**os.environ, "PATH": f"{fake / 'bin'}:{os.environ['PATH']}", "FAKE_DIR": str(fake)}
        result = run_submit(emitted.script, env, workdir)
        assert result.returncode == 0, result.stderr

        (coarse, coarse_file, coarse_log), (fine, fine_file, fine_log) = emitted.submissions
        assert [s.recipe.path.name for s in (coarse, fine)] == [f"{name}.yaml", f"{name} fine.yaml"]
        first, second = sbatch_calls(fake)
        assert first[-1] == str(coarse_file) and second[-1] == str(fine_file)
        for argv, log in ((first, coarse_log), (second, fine_log)):
            pattern = option(argv, "--output")
            assert pattern == (str(log) if "\\" in str(log) else str(log).replace("%", "%%"))
        assert option(second, "--dependency") == "afterok:1001"

        for stage, job_file, _ in emitted.submissions:
            assert run_job(job_file, env) == 0
            argv = read_argv(fake / "srun")
            assert argv[argv.index(sys.executable):] == [
                *command_invocation(sys.executable), "run", "--runs-dir", str((root / "runs").resolve()),
                str(stage.recipe.path), override]
        assert not any(path.name == "pwned" for path in Path(tmp).rglob("*"))
        assert not (fake / "scontrol").exists()


def test_the_shared_slurm_base_spells_out_the_defaults():
    data = load_recipe(REPO / "recipes" / "_base" / "slurm.yaml").data
    assert slurm_config(data) == SlurmConfig()


@pytest.mark.parametrize("text, seconds", [("30", 1800), ("1:30", 90), ("02:00:00", 7200), ("1-0", 86400),
                                           ("1-2:03", 93780), ("1-0:0:5", 86405), ("UNLIMITED", None)])
def test_slurm_time_formats(text, seconds):
    assert time_limit_seconds(text) == seconds


# -- what the job would refuse once it reads its data ------------------------------------------------------------

def test_a_warm_up_the_jobs_processes_leave_no_room_for_is_refused_before_submitting(stages_dir, registries,
                                                                                     tmp_path):
    # 2 processes x 2 images per batch: MINIMAL_RECIPE's train split gives each process fewer steps than 1000
    overrides = ["scheduler.warmup_iterations=1000", "slurm.nodes=2"]
    with pytest.raises(ConfigError, match=r"scheduler.warmup_iterations: 1000 warm-up iterations leave nothing of"
                                          r" the run's \d+ iterations") as info:
        do_emit([stages_dir / "other.yaml"], overrides, registries=registries, root=tmp_path, check_stage=preflight)
    assert str(stages_dir / "other.yaml") in str(info.value)
    assert not (tmp_path / "out").exists(), "nothing is written for a recipe its job would refuse"
    do_emit([stages_dir / "other.yaml"], ["scheduler.warmup_iterations=10"], registries=registries, root=tmp_path,
            check_stage=preflight)


def test_a_recipe_whose_data_cannot_be_read_here_is_submitted_and_says_so(recipe_dir, registries, tmp_path):
    from segbench_jobs.emit import summary

    text = (REPO / "recipes" / "_base" / "cityscapes.yaml").read_text()
    write(recipe_dir / "city.yaml", text.replace("root: data/cityscapes", f"root: {tmp_path / 'elsewhere'}") +
          "model: {name: unet, width: 8}\noptimizer: {name: adam}\n")
    emitted = do_emit([recipe_dir / "city.yaml"], registries=registries, root=tmp_path, check_stage=preflight)
    assert len(emitted.submissions) == 1
    said = summary(emitted)
    assert "its data is not checked here" in said and f"the Cityscapes folder {tmp_path / 'elsewhere'} does not" \
        " exist" in said and "the job checks it when it starts" in said


def test_a_data_mistake_about_data_that_is_here_is_refused_naming_the_recipe(stages_dir, registries, tmp_path):
    with pytest.raises(SegbenchError, match=r"other.yaml <- .*default.yaml: data.select: dataset 'synthetic_city': subset.first is 100000 but split"):
        do_emit([stages_dir / "other.yaml"], ["data.select.subset.first=100000"], registries=registries,
                root=tmp_path, check_stage=preflight)
    assert not (tmp_path / "out").exists()
