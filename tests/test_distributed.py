"""Distributed runs with 2 gloo processes on the CPU: exact evaluation, rank-0-only writes, launch styles."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from segbench.engine.distributed import DistEnv, env_from_environment, first_host
from segbench.engine.evaluate import evaluate_confusion
from segbench.engine.runtime import Runtime
from segbench.engine.trainer import INTERRUPTED_EXIT_CODE, PREEMPTED_EXIT_CODE
from segbench.recipe.schema import EvaluationConfig
from tests.conftest import MINIMAL_RECIPE, REPO, ctrl_c_as_in_a_terminal

NUM_CLASSES = 5
LAUNCH_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "SLURM_PROCID",
                    "SLURM_NTASKS", "SLURM_LOCALID", "SLURM_NODELIST", "SLURM_JOB_ID")


def free_port(low: int = 20000, high: int = 34000) -> int:
    for port in range(low + os.getpid() % 997, high):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port")


def clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in LAUNCH_VARIABLES}
    return {**env, "OMP_NUM_THREADS": "1", **extra}


# -- the evaluation fixture shared by the worker processes and the single-process reference ----------

class TinyImages(torch.utils.data.Dataset):
    """``count`` random images with masks that include the ignore index."""

    def __init__(self, count: int = 7):
        generator = torch.Generator().manual_seed(0)
        self.images = torch.rand((count, 3, 6, 10), generator=generator)
        self.masks = torch.randint(0, NUM_CLASSES, (count, 6, 10), generator=generator)
        self.masks[torch.rand((count, 6, 10), generator=generator) < 0.2] = 255

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        return self.images[index], self.masks[index]


def tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                                torch.nn.Conv2d(8, NUM_CLASSES, 1))
    with torch.no_grad():  # running statistics that matter in eval mode
        model[1].running_mean.uniform_(-0.5, 0.5)
        model[1].running_var.uniform_(0.5, 2.0)
    return model


def identity_pipeline(image, mask, generator):
    return image, mask


def tiny_confusion(model, env: DistEnv = DistEnv(), count: int = 7) -> torch.Tensor:
    return evaluate_confusion(model, TinyImages(count), identity_pipeline, config=EvaluationConfig(batch_size=2),
                              num_classes=NUM_CLASSES, ignore_index=255,
                              runtime=Runtime(torch.device("cpu"), dist=env), progress=False)


WORKER = """
import json, sys, torch
from segbench.engine.distributed import init_distributed, shutdown
from tests.test_distributed import tiny_confusion, tiny_model
env = init_distributed("cpu")
for scenario in sys.argv[2].split(","):
    wrapper, count = scenario.split(":")
    model = tiny_model()
    if wrapper == "ddp":  # as the trainer evaluates: through the DistributedDataParallel wrapper
        model = torch.nn.parallel.DistributedDataParallel(model)
    matrix = tiny_confusion(model, env, int(count))
    with open(f"{sys.argv[1]}/rank{env.rank}-{wrapper}-{count}.json", "w") as handle:
        json.dump({"rank": env.rank, "world_size": env.world_size, "matrix": matrix.tolist()}, handle)
shutdown(env, finished=True)  # as the runner ends a run that succeeded
"""


def launch_env(style: str, rank: int, port: int) -> dict:
    if style == "torchrun":
        return clean_env(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                         MASTER_PORT=str(port))
    # srun --ntasks=2: the port is derived from the job id
    return clean_env(SLURM_PROCID=str(rank), SLURM_NTASKS="2", SLURM_LOCALID=str(rank),
                     SLURM_NODELIST="localhost", SLURM_JOB_ID=str(port - 15000))


@pytest.mark.parametrize("style, scenarios", ids=["torchrun", "slurm"], argvalues=[
    # 7 images: 4 on rank 0, 3 on rank 1 (batches of 2); 1 image: rank 1 has nothing to evaluate
    ("torchrun", [("ddp", 7), ("ddp", 1), ("plain", 7)]),
    ("slurm", [("plain", 7)]),
])
def test_two_process_evaluation_equals_the_single_process_matrix(tmp_path, style, scenarios):
    port = free_port()
    spec = ",".join(f"{wrapper}:{count}" for wrapper, count in scenarios)
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, str(tmp_path), spec], cwd=REPO,
                                env=launch_env(style, rank, port), stderr=subprocess.PIPE, text=True)
               for rank in range(2)]
    try:
        errors = [worker.communicate(timeout=120)[1] for worker in workers]
    finally:
        for worker in workers:  # a deadlocked process group must not outlive the test
            worker.kill()
    assert [w.returncode for w in workers] == [0, 0], errors
    for wrapper, count in scenarios:
        expected = tiny_confusion(tiny_model(), count=count)
        assert int(expected.sum()) == int((TinyImages(count).masks != 255).sum())
        for rank in range(2):  # all-reduced: every rank holds the exact global matrix
            result = json.loads((tmp_path / f"rank{rank}-{wrapper}-{count}.json").read_text())
            assert (result["rank"], result["world_size"]) == (rank, 2)
            assert torch.equal(torch.tensor(result["matrix"]), expected), (wrapper, count)


NUMERICS_WORKER = """
import json, sys, torch
from segbench.engine.distributed import init_distributed, shutdown
from segbench.engine.runtime import Runtime
env = init_distributed("cpu")
# as two machines whose own timings disagree: rank 0 found bf16 faster, rank 1 did not
own = Runtime(torch.device("cpu"), "bf16" if env.rank == 0 else "fp32", env.rank == 0, env)
followed = own.following_rank_0()
with open(f"{sys.argv[1]}/rank{env.rank}.json", "w") as handle:
    json.dump([followed.precision, followed.channels_last], handle)
shutdown(env, finished=True)
"""


def test_every_rank_computes_in_rank_0s_precision_and_memory_format(tmp_path):
    port = free_port()
    workers = [subprocess.Popen([sys.executable, "-c", NUMERICS_WORKER, str(tmp_path)], cwd=REPO,
                                env=launch_env("torchrun", rank, port), stderr=subprocess.PIPE, text=True)
               for rank in range(2)]
    try:
        errors = [worker.communicate(timeout=120)[1] for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
    assert [w.returncode for w in workers] == [0, 0], errors
    assert [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in range(2)] == [["bf16", True]] * 2


def test_a_single_process_keeps_its_own_numerics():
    own = Runtime(torch.device("cpu"), "fp32", True)
    assert own.following_rank_0() == own


def test_launch_variables_are_read_from_torchrun_or_slurm():
    assert env_from_environment({}) == DistEnv(0, 1, 0)
    assert env_from_environment({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}) == DistEnv(3, 4, 1)
    assert env_from_environment({"SLURM_PROCID": "1", "SLURM_NTASKS": "2", "SLURM_LOCALID": "1"}) == DistEnv(1, 2, 1)
    # a one-task Slurm job that runs torchrun inside: torchrun's variables win
    assert env_from_environment({"SLURM_PROCID": "0", "SLURM_NTASKS": "1", "RANK": "1", "WORLD_SIZE": "2"}) \
        == DistEnv(1, 2, 0)
    assert env_from_environment({"SLURM_PROCID": "0", "SLURM_NTASKS": "1"}) == DistEnv(0, 1, 0)
    # alone, a plain or one-task Slurm process trains without a process group; one started by torchrun joins
    # one (a single GPU can try the DDP/nccl path)
    assert not env_from_environment({}).enabled
    assert not env_from_environment({"SLURM_PROCID": "0", "SLURM_NTASKS": "1"}).enabled
    assert env_from_environment({"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0"}).enabled
    assert first_host("node[01-04,07],gpu5") == "node01" and first_host("localhost") == "localhost"


def test_two_process_run_trains_completes_and_only_rank_0_writes(tmp_path):
    recipe = tmp_path / "recipes" / "tiny.yaml"
    recipe.parent.mkdir()
    recipe.write_text(MINIMAL_RECIPE + "description: two processes\n")
    runs = tmp_path / "runs"
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc-per-node=2",
               f"--master-port={free_port()}", "-m", "segbench.cli", "run", "--smoke", "--runs-dir", str(runs),
               str(recipe), "trainer.max_iterations=3", "trainer.log_every=1"]
    result = subprocess.run(command, cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]

    run_dir, = runs.iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    assert results["iterations"] == 3
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    # one record per step: a second writer would duplicate them
    assert [r["iteration"] for r in records if r["type"] == "train"] == [1, 2, 3]
    names = sorted(p.name for p in run_dir.iterdir())
    assert {"checkpoints", "metrics.jsonl", "recipe.yaml", "results.json"} <= set(names)
    assert sum(name.startswith("events.out.tfevents") for name in names) <= 1  # one logger: rank 0's
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["best.pt", "last.pt"]
    assert result.stdout.count("results for tiny") == 1


END_PROCESS = """
import atexit, pathlib, sys, threading, time
from segbench.engine.distributed import end_process
marker = pathlib.Path(sys.argv[1])
atexit.register(lambda: marker.write_text(marker.read_text() + ", exit handlers ran"))
threading.Thread(target=lambda: (time.sleep(0.5), marker.write_text("thread finished"))).start()
sys.stdout.write("buffered, no newline")
end_process(75)
"""


def test_a_process_that_ran_a_process_group_ends_with_its_status_output_and_exit_handlers(tmp_path):
    """It skips the teardown in which the process group's leftover threads can abort it, and nothing else:
    Python threads are waited for, exit handlers run, buffered output is written."""
    marker = tmp_path / "marker"
    result = subprocess.run([sys.executable, "-c", END_PROCESS, str(marker)], capture_output=True, text=True,
                            cwd=REPO, timeout=120)
    assert result.returncode == 75 and result.stdout == "buffered, no newline", result.stderr
    assert marker.read_text() == "thread finished, exit handlers ran"  # in the order a normal exit has


SHIPPED_RECIPES = sorted(p for p in (REPO / "recipes").rglob("*.yaml")
                         if "_base" not in p.relative_to(REPO / "recipes").parts)


@pytest.mark.slow
@pytest.mark.parametrize("recipe", SHIPPED_RECIPES,
                         ids=lambda p: p.relative_to(REPO / "recipes").with_suffix("").as_posix())
def test_every_shipped_recipe_runs_its_smoke_variant_as_two_gloo_processes(recipe, tmp_path):
    """As ``emit-slurm --smoke`` runs it on a CPU node: torchrun, 2 ranks, gloo; SyncBN falls back with a note."""
    runs = tmp_path / "runs"
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc-per-node=2",
               f"--master-port={free_port()}", "-m", "segbench.cli", "run", "--smoke", "--runs-dir", str(runs),
               str(recipe)]
    result = subprocess.run(command, cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    complete = [run for run in runs.iterdir() if (run / "results.json").is_file()]  # every stage and seed
    assert complete and all(0.0 <= json.loads((run / "results.json").read_text())["mIoU"] <= 1.0
                            for run in complete)
    assert result.stdout.count("results for ") == len(complete)  # each run shared by the two ranks, once
    if "sync_batchnorm: true" in recipe.read_text():
        notes = result.stderr.count("trainer.sync_batchnorm needs CUDA; this cpu run normalises each process's"
                                    " batch on its own")
        assert 1 <= notes <= len(complete)  # rank 0 says it, once per run


def launch_run(recipe: Path, runs: Path, port: int, *overrides: str) -> list[subprocess.Popen]:
    """``segbench run`` as 2 processes launched with torchrun's variables (no agent in between)."""
    command = [sys.executable, "-m", "segbench.cli", "run", "--smoke", "--runs-dir", str(runs), str(recipe),
               *overrides]
    return [subprocess.Popen(command, cwd=recipe.parent, env=launch_env("torchrun", rank, port),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                             preexec_fn=ctrl_c_as_in_a_terminal)
            for rank in range(2)]


def finish(processes, timeout=300) -> list[int]:
    try:
        errors = [p.communicate(timeout=timeout)[1] for p in processes]
    finally:
        for p in processes:
            p.kill()
    return [p.returncode for p in processes], errors


def _wait_for_step(run_root: Path, processes, step: int) -> Path:
    """The run's metrics file, once it records ``step``."""
    deadline = time.monotonic() + 240
    while True:
        metrics = next(run_root.glob("*/metrics.jsonl"), None)
        if metrics and any(json.loads(line).get("iteration", 0) >= step for line in metrics.read_text().splitlines()):
            return metrics
        assert time.monotonic() < deadline and all(p.poll() is None for p in processes)
        time.sleep(0.2)


def test_ctrl_c_on_one_rank_ends_every_rank_as_interrupted(tmp_path):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(MINIMAL_RECIPE)
    processes = launch_run(recipe, tmp_path / "runs", free_port(23000), "trainer.max_iterations=400",
                           "trainer.eval_every=1000")
    _wait_for_step(tmp_path / "runs", processes, 2)
    processes[1].send_signal(signal.SIGINT)
    codes, errors = finish(processes)
    assert codes == [INTERRUPTED_EXIT_CODE, INTERRUPTED_EXIT_CODE], errors
    assert "segbench: interrupted; checkpoint written" in errors[0]


@pytest.mark.slow
def test_a_signal_to_one_rank_stops_every_rank_at_the_same_step_and_resumes_exactly(tmp_path):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(MINIMAL_RECIPE)
    longer = ["trainer.max_iterations=16", "trainer.eval_every=1000"]
    reference = launch_run(recipe, tmp_path / "reference", free_port(), *longer)
    assert finish(reference)[0] == [0, 0]

    interrupted = launch_run(recipe, tmp_path / "interrupted", free_port(21000), *longer)
    metrics = _wait_for_step(tmp_path / "interrupted", interrupted, 2)  # then only rank 1 gets the signal
    interrupted[1].send_signal(signal.SIGUSR1)
    codes, errors = finish(interrupted)
    assert codes == [PREEMPTED_EXIT_CODE, PREEMPTED_EXIT_CODE], errors
    run_dir = metrics.parent
    assert (run_dir / "checkpoints" / "last.pt").exists() and not (run_dir / "results.json").exists()

    codes, errors = finish(launch_run(recipe, tmp_path / "interrupted", free_port(22000), *longer))
    assert codes == [0, 0], errors
    assert json.loads((run_dir / "results.json").read_text())["resumed"] is True
    final = [torch.load(next(tmp_path.glob(f"{variant}/*/checkpoints/last.pt")), weights_only=True)["model"]
             for variant in ("reference", "interrupted")]
    assert all(torch.equal(final[0][k], final[1][k]) for k in final[0])
