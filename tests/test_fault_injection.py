"""Faults injected into real ``segbench run`` processes: kills, signals, a full disk, NaN, broken data,
and two processes on one run directory.

The guarantees checked: after SIGKILL at any point (even inside a checkpoint write) the same command
finishes the run bitwise-identical to an uninterrupted one (weights and every metrics.jsonl value);
SIGTERM/SIGUSR1 write ``last.pt`` at the next step and exit 75 (a Ctrl-C: 130); a failed checkpoint write leaves
the previous checkpoint valid and exits 2; a NaN loss stops with the last good checkpoint; a broken
image read by a DataLoader worker is named; a second process on a busy run directory is refused and
a dead process's lock is taken over. Training uses the toy plugin (``tests/bad_inputs/toy_plugin.py``)
installed through a real entry point; its faults are switched on by environment variables.
"""
from __future__ import annotations

import json
import os
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from segbench.engine.checkpoint import load_checkpoint
from tests.bad_inputs.harness import (CITYSCAPES_RECIPE, TOY_RECIPE, cli_env, run_cli, segbench_command,
                                      snapshot, toy_site, tree_label, write_cityscapes_tree)
from tests.bad_inputs.toy_plugin import AT_READ_ENV, IN_SAVE_ENV, PAUSE_AT_READ_ENV, READ_DELAY_ENV
from tests.conftest import ctrl_c_as_in_a_terminal

RUN = ("run", "toy.yaml", "--runs-dir", "runs")
# The toy run reads items in this order (with num_workers: 0, in the training process): per epoch 12
# training and 4 selection items, then 6 report items. One seeded kill point per phase:
READ_PHASES = {
    "before-the-first-checkpoint": (1, 16),
    "selection-of-epoch-2": (29, 32),
    "training-of-epoch-3": (33, 44),
    "report": (49, 54),
}
KILL_SEED = 20240611
_rng = random.Random(KILL_SEED)
READ_KILL_POINTS = {phase: _rng.randint(*span) for phase, span in READ_PHASES.items()}
TIME_KILL_POINTS = [round(_rng.uniform(0.0, 1.2), 3) for _ in range(2)]  # seconds after training starts
SIGNAL_TO_CHECKPOINT_LIMIT_S = 10.0  # generous: the machine may be busy; the measured time is printed


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return toy_site(tmp_path_factory.mktemp("fault-site"))


def _folder(tmp_path: Path) -> Path:
    (tmp_path / "toy.yaml").write_text(TOY_RECIPE)
    return tmp_path


def _train(folder: Path, site: Path, *args, timeout=300, **env) -> subprocess.CompletedProcess:
    return run_cli([*RUN, *args], cwd=folder, env=cli_env(site, **env), timeout=timeout)


def _start(folder: Path, site: Path, *args, preexec_fn=None, **env) -> subprocess.Popen:
    return subprocess.Popen(segbench_command(*RUN, *args), cwd=folder, env=cli_env(site, **env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=preexec_fn)


def _run_dir(folder: Path) -> Path:
    (run,) = (folder / "runs").iterdir()
    return run


def _metrics(run: Path) -> list[dict]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in record.items() if k != "images_per_s"} for record in records]  # a timing


def _fingerprint(run: Path) -> dict:
    """What must be bitwise-identical between an interrupted-and-resumed run and an uninterrupted one."""
    result = {"metrics": _metrics(run)}
    for name in ("last", "best"):
        state = load_checkpoint(run / "checkpoints" / f"{name}.pt")
        result[name] = state["model"]
        result[f"{name}_optimizer"] = state["optimizer"]["state"]
        # elapsed is a timing
        result[f"{name}_train_state"] = {k: v for k, v in state["train_state"].items() if k != "elapsed"}
    results = json.loads((run / "results.json").read_text())
    result["results"] = {k: results[k] for k in ("mIoU", "per_class_iou", "confusion_matrix", "best_epoch",
                                                 "best_selection_mIoU", "iterations")}
    return result


def _assert_identical(run: Path, reference: dict) -> None:
    resumed = _fingerprint(run)
    assert resumed["metrics"] == reference["metrics"]
    assert resumed["results"] == reference["results"]
    for name in ("last", "best"):
        assert resumed[f"{name}_train_state"] == reference[f"{name}_train_state"]
        assert resumed[name].keys() == reference[name].keys()
        for key, tensor in reference[name].items():
            assert torch.equal(resumed[name][key], tensor), f"{name}.pt {key} differs"
        torch.testing.assert_close(resumed[f"{name}_optimizer"], reference[f"{name}_optimizer"], rtol=0, atol=0)
    assert not list((run / "checkpoints").glob(".*.tmp")), "a partial checkpoint was left behind"
    assert not (run / "run.lock").exists()


@pytest.fixture(scope="module")
def reference(tmp_path_factory, site) -> dict:
    """An uninterrupted run: the result every interrupted run must reproduce exactly."""
    folder = _folder(tmp_path_factory.mktemp("reference"))
    result = _train(folder, site)
    assert result.returncode == 0, result.stderr[-3000:]
    return _fingerprint(_run_dir(folder))


def _partial_checkpoints(run: Path) -> list[Path]:
    return sorted((run / "checkpoints").glob(".*.pt.*.tmp"))


# ---- SIGKILL ------------------------------------------------------------------------------------

def _assert_killed_then_resumed(folder, site, killed, reference):
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    run = _run_dir(folder)
    assert not (run / "results.json").exists()
    lock = json.loads((run / "run.lock").read_text())  # left behind by the dead process: stale
    assert lock["host"] == socket.gethostname()
    resumed = _train(folder, site)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _assert_identical(run, reference)
    return resumed


@pytest.mark.slow
def test_kill_inside_a_checkpoint_write_keeps_the_previous_one_and_the_rerun_is_identical(tmp_path, site,
                                                                                         reference):
    folder = _folder(tmp_path)
    # Saves: best.pt then last.pt after epoch 1; the third save (epoch 2's best.pt or last.pt) is cut
    # short after 4 KiB of its temporary file and the process is SIGKILLed.
    killed = _train(folder, site, **{IN_SAVE_ENV: "3:kill"})
    run = _run_dir(folder)
    assert _partial_checkpoints(run), "the kill did not happen during a checkpoint write"
    assert load_checkpoint(run / "checkpoints" / "last.pt")["train_state"]["epoch"] == 1
    _assert_killed_then_resumed(folder, site, killed, reference)


@pytest.mark.parametrize("phase", [
    pytest.param(phase, marks=[] if phase == "before-the-first-checkpoint" else [pytest.mark.slow])
    for phase in READ_KILL_POINTS])
def test_sigkill_at_seeded_points_then_the_rerun_is_identical(tmp_path, site, reference, phase):
    read = READ_KILL_POINTS[phase]
    folder = _folder(tmp_path)
    killed = _train(folder, site, **{AT_READ_ENV: f"{read}:SIGKILL"})
    _assert_killed_then_resumed(folder, site, killed, reference)


@pytest.mark.slow
@pytest.mark.parametrize("delay", TIME_KILL_POINTS, ids=lambda s: f"{s}s-into-training")
def test_sigkill_at_seeded_times_then_the_rerun_is_identical(tmp_path, site, reference, delay):
    folder = _folder(tmp_path)
    process = _start(folder, site, **{READ_DELAY_ENV: "0.03"})
    _wait_for(lambda: (folder / "runs").is_dir() and any((folder / "runs").glob("*/metrics.jsonl")), process)
    time.sleep(delay)
    process.kill()
    out, err = process.communicate(timeout=120)
    killed = subprocess.CompletedProcess(process.args, process.returncode, out, err)
    _assert_killed_then_resumed(folder, site, killed, reference)


def _wait_for(condition, process: subprocess.Popen, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"the process ended ({process.returncode}) first:\n{process.stderr.read()[-3000:]}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("timed out")
        time.sleep(0.01)


# ---- SIGTERM / SIGUSR1 --------------------------------------------------------------------------

def _train_records(run_parent: Path) -> int:
    files = list(run_parent.glob("*/metrics.jsonl"))
    return sum('"type": "train"' in line for line in files[0].read_text().splitlines()) if files else 0


@pytest.mark.parametrize("signum", [
    signal.SIGTERM,
    pytest.param(signal.SIGUSR1, marks=pytest.mark.slow),
    signal.SIGINT,  # Ctrl-C: the steps since the last checkpoint are kept too, with the shell's status for it
], ids=lambda s: signal.Signals(s).name)
def test_signal_writes_last_checkpoint_promptly_exits_and_the_rerun_is_identical(tmp_path, site, reference,
                                                                                signum):
    folder = _folder(tmp_path)
    process = _start(folder, site, preexec_fn=ctrl_c_as_in_a_terminal,
                     **{READ_DELAY_ENV: "0.05"})  # about 0.1 s per training step
    _wait_for(lambda: (folder / "runs").is_dir() and _train_records(folder / "runs") >= 2, process)
    sent = time.time()
    process.send_signal(signum)
    out, err = process.communicate(timeout=120)
    exited = time.time() - sent
    assert process.returncode == (130 if signum == signal.SIGINT else 75), err[-3000:]
    assert ("interrupted" if signum == signal.SIGINT else f"received signal {int(signum)}") in err
    assert "checkpoint written. Run the same command to resume." in err
    run = _run_dir(folder)
    last = run / "checkpoints" / "last.pt"
    to_checkpoint = last.stat().st_mtime - sent
    print(f"\n{signal.Signals(signum).name}: last.pt written {to_checkpoint:.3f} s after the signal,"
          f" process exited after {exited:.3f} s")
    assert to_checkpoint < SIGNAL_TO_CHECKPOINT_LIMIT_S and exited < SIGNAL_TO_CHECKPOINT_LIMIT_S
    state = load_checkpoint(last)["train_state"]
    assert state["iteration"] >= 2 and state["window_in_epoch"] >= 1  # mid-epoch: the step after the signal
    assert not (run / "results.json").exists() and not (run / "run.lock").exists()

    resumed = _train(folder, site)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from" in resumed.stderr
    _assert_identical(run, reference)


# A signal during an evaluation: the toy run pauses at a read inside it, the test signals and lets it go on.
EVALUATION_READS = {"selection": 30, "report": 50}  # 2nd of the 4 selection reads of epoch 2; 2nd report read
# A responsiveness bound, generous for a loaded machine (the process's own exit can take seconds there), far
# below Slurm's 300 s warning and the time an evaluation of a full-size split takes.
SIGNAL_TO_EXIT_LIMIT_S = 20.0


@pytest.mark.slow  # the stopping logic itself is covered in-process by test_evaluation_stop.py
@pytest.mark.parametrize("phase", EVALUATION_READS)
def test_signal_during_an_evaluation_stops_it_at_the_next_batch_and_the_rerun_is_identical(tmp_path, site,
                                                                                          reference, phase):
    folder = _folder(tmp_path)
    release = tmp_path / "release"
    # Each read takes 0.3 s: finishing the evaluation instead of stopping would add a second or more.
    process = _start(folder, site, **{PAUSE_AT_READ_ENV: f"{EVALUATION_READS[phase]}:{release}",
                                      READ_DELAY_ENV: "0.3"})
    _wait_for(lambda: Path(f"{release}.paused").exists(), process)
    run = _run_dir(folder)
    before = (run / "checkpoints" / "last.pt").stat().st_mtime_ns
    sent = time.time()
    process.send_signal(signal.SIGTERM)
    release.touch()
    out, err = process.communicate(timeout=120)
    exited = time.time() - sent
    print(f"\nSIGTERM during the {phase} evaluation: exit {process.returncode} after {exited:.3f} s")
    assert process.returncode == 75, err[-3000:]
    assert "checkpoint written. Run the same command to resume." in err and "Traceback" not in err
    assert exited < SIGNAL_TO_EXIT_LIMIT_S
    state = load_checkpoint(run / "checkpoints" / "last.pt")["train_state"]
    evaluations = [r["epoch"] for r in _metrics(run) if r["type"] == "eval"]
    if phase == "selection":  # stopped inside epoch 2's selection: last.pt says to redo it
        assert (run / "checkpoints" / "last.pt").stat().st_mtime - sent < SIGNAL_TO_CHECKPOINT_LIMIT_S
        assert state["epoch"] == 2 and state["window_in_epoch"] == 0 and state["pending_selection"]
        assert evaluations == [1]
    else:  # training was complete: last.pt stays as the last selection wrote it
        assert (run / "checkpoints" / "last.pt").stat().st_mtime_ns == before
        assert state["epoch"] == 3 and not state["pending_selection"] and evaluations == [1, 2, 3]
    assert not (run / "results.json").exists() and not (run / "run.lock").exists()

    resumed = _train(folder, site)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from" in resumed.stderr
    _assert_identical(run, reference)


def test_a_sliding_window_that_makes_an_evaluation_batch_take_minutes_is_refused_before_training(tmp_path, site):
    folder = _folder(tmp_path)
    result = _train(folder, site, "data.dataset.size=64", "evaluation={mode: slide, window: [2, 2], stride: [2, 2]}")
    assert result.returncode == 2, result.stderr[-3000:]
    assert "evaluation.window: window [2, 2] with stride [2, 2] cuts each 64x64 selection image into 32x32 = 1024" \
        " windows" in result.stderr
    assert "Use a larger window" in result.stderr and "Traceback" not in result.stderr
    assert not list(folder.glob("runs/*/checkpoints"))


# ---- --restart ----------------------------------------------------------------------------------

def _files(run: Path) -> dict:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("failure", [pytest.param(f, marks=[] if f == "bad-recipe" else [pytest.mark.slow])
                                     for f in ("killed-in-set-up", "checkpoint-write-fails", "bad-recipe")])
def test_a_restart_that_fails_before_its_first_checkpoint_leaves_the_completed_run_as_it_was(tmp_path, site,
                                                                                              failure):
    folder = _folder(tmp_path)
    assert _train(folder, site).returncode == 0
    run = _run_dir(folder)
    before = _files(run)
    if failure == "killed-in-set-up":  # SIGKILL at the first image read: nothing can clean up
        failed = _train(folder, site, "--restart", **{AT_READ_ENV: "1:SIGKILL"})
        assert failed.returncode == -signal.SIGKILL
        assert (run / ".previous").is_dir()  # until the next command settles it
    elif failure == "checkpoint-write-fails":
        failed = _train(folder, site, "--restart", **{IN_SAVE_ENV: "1:enospc"})
        assert failed.returncode == 2 and "could not write checkpoint" in failed.stderr, failed.stderr[-3000:]
        assert "the previous run in" in failed.stderr and "is back as it was" in failed.stderr
    else:
        bad = TOY_RECIPE.replace("trainer: {epochs: 3,", "trainer: {epochs: -1,")
        assert bad != TOY_RECIPE
        (folder / "toy.yaml").write_text(bad)
        failed = _train(folder, site, "--restart")
        assert failed.returncode == 2 and "trainer.epochs" in failed.stderr, failed.stderr[-3000:]
        (folder / "toy.yaml").write_text(TOY_RECIPE)
    again = _train(folder, site)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "already complete" in again.stderr
    assert _files(run) == before and not (run / ".previous").exists()


def test_a_restart_that_fails_takes_its_own_new_files_with_it_and_nothing_else(tmp_path):
    from segbench.engine.rundir import PreviousAttempt
    from segbench.runs import RunDir

    run = RunDir(tmp_path / "toy-0123abcd")
    (run.path / "checkpoints").mkdir(parents=True)
    for name, text in (("results.json", "{}"), ("events.out.tfevents.1.host", "old"), ("checkpoints/last.pt", "w")):
        (run.path / name).write_text(text)
    before = _files(run.path)
    attempt = PreviousAttempt(run)
    assert attempt.set_aside()
    (run.path / "recipe.yaml").write_text("new")  # what the restarted attempt wrote before it failed
    (run.path / "events.out.tfevents.2.host").write_text("new curves")
    assert attempt.settle(this_attempt=True) == "restored"
    assert _files(run.path) == before
    # a set-aside interrupted half-way (a later command settles it): what is beside .previous is the run's own
    assert attempt.set_aside()
    (run.path / ".previous" / "results.json").rename(run.path / "results.json")
    assert attempt.settle() == "restored" and _files(run.path) == before


@pytest.mark.slow
def test_a_restart_with_an_unusable_cache_folder_leaves_the_completed_run_as_it_was(tmp_path):
    from tests.test_seeding import SYNTH

    (tmp_path / "r.yaml").write_text(SYNTH.format(workers=0))
    command = ["run", "r.yaml", "--runs-dir", "runs"]
    first = run_cli(command, cwd=tmp_path, env=cli_env(SEGBENCH_CACHE=str(tmp_path / "cache")), timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    run = _run_dir(tmp_path)
    before = _files(run)
    (tmp_path / "a-file").write_text("")
    failed = run_cli([*command, "--restart"], cwd=tmp_path, env=cli_env(SEGBENCH_CACHE=str(tmp_path / "a-file")))
    assert failed.returncode == 2 and "Traceback" not in failed.stderr, failed.stderr[-3000:]
    assert "a-file" in failed.stderr and "is back as it was" in failed.stderr
    assert _files(run) == before and not (run / ".previous").exists()


@pytest.mark.slow
def test_a_restart_deletes_the_previous_run_once_it_has_its_first_checkpoint(tmp_path, site):
    folder = _folder(tmp_path)
    assert _train(folder, site).returncode == 0
    run = _run_dir(folder)
    old_results = (run / "results.json").read_text()
    # Interrupted after its first checkpoint: the old run is gone, the new one resumes.
    stopped = _train(folder, site, "--restart", **{AT_READ_ENV: "20:SIGTERM"})
    assert stopped.returncode == 75, stopped.stderr[-3000:]
    assert not (run / ".previous").exists() and not (run / "results.json").exists()
    assert _train(folder, site).returncode == 0
    assert json.loads((run / "results.json").read_text())["mIoU"] == json.loads(old_results)["mIoU"]


# ---- a full disk --------------------------------------------------------------------------------

FREE_BYTES_LEFT = 12 * 1024  # room for the lock file and metrics lines, not for a ~20 KB checkpoint
FILE_SIZE_LIMIT = 12 * 1024  # larger than metrics.jsonl and recipe.yaml, smaller than a checkpoint


def _mount_tmpfs(folder: Path) -> bool:
    folder.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(folder)],
                            capture_output=True)
    return result.returncode == 0


def _fill(folder: Path, leave: int) -> Path:
    stat = os.statvfs(folder)
    filler = folder / "filler"
    filler.write_bytes(b"\0" * max(0, stat.f_bavail * stat.f_frsize - leave))
    return filler


def _limit_file_size():
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE_LIMIT, resource.RLIM_INFINITY))


@pytest.mark.slow
@pytest.mark.parametrize("how", ["tmpfs", "file_size_limit"])
def test_full_disk_during_a_checkpoint_write_keeps_the_previous_checkpoint(tmp_path, site, reference, how):
    """A real failed write: a full tmpfs (ENOSPC), or where mounting is not allowed, a file-size limit (EFBIG)."""
    folder = _folder(tmp_path)
    runs = folder / "runs"
    if how == "tmpfs" and not _mount_tmpfs(runs):
        pytest.skip("cannot mount a tmpfs here (needs root); the file_size_limit variant covers this")
    try:
        # First attempt: preempted in epoch 2, so last.pt holds a mid-epoch state.
        first = _train(folder, site, **{AT_READ_ENV: "20:SIGTERM"})
        assert first.returncode == 75, first.stderr[-3000:]
        run = _run_dir(folder)
        last = run / "checkpoints" / "last.pt"
        kept = last.read_bytes()

        filler = None
        if how == "tmpfs":
            filler = _fill(runs, FREE_BYTES_LEFT)
            failed = _train(folder, site)
        else:
            command = segbench_command(*RUN)
            failed = subprocess.run(command, cwd=folder, env=cli_env(site), capture_output=True, text=True,
                                    timeout=300, preexec_fn=_limit_file_size)
        assert failed.returncode == 2, failed.stderr[-3000:]
        assert "Traceback" not in failed.stderr
        reason = "No space left on device" if how == "tmpfs" else "File too large"
        assert f"could not write checkpoint runs/{run.name}/checkpoints/" in failed.stderr
        assert reason in failed.stderr
        assert "The previous checkpoint there (if any) is intact" in failed.stderr
        assert last.read_bytes() == kept
        assert load_checkpoint(last)["train_state"]["epoch"] == 1
        assert not _partial_checkpoints(run) and not (run / "run.lock").exists()
        assert not (run / "results.json").exists()

        if filler is not None:
            filler.unlink()
            # Not a byte left: whatever write fails first (lock, recipe, metrics, checkpoint) is a clear error.
            filler = _fill(runs, 0)
            full = _train(folder, site)
            assert full.returncode == 2, full.stderr[-3000:]
            assert "No space left on device" in full.stderr and "Free disk space" in full.stderr
            assert "Traceback" not in full.stderr
            assert last.read_bytes() == kept and not (run / "run.lock").exists()
            filler.unlink()
        finished = _train(folder, site)
        assert finished.returncode == 0, finished.stderr[-3000:]
        _assert_identical(run, reference)
    finally:
        if how == "tmpfs":
            subprocess.run(["umount", "-l", str(runs)], capture_output=True)


# ---- NaN, broken data ---------------------------------------------------------------------------

def test_nan_loss_stops_clearly_and_keeps_the_last_good_checkpoint(tmp_path, site):
    folder = _folder(tmp_path)
    result = _train(folder, site, "loss={name: nan_after, step: 9}")  # NaN from iteration 9 (epoch 2)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    run = _run_dir(folder)
    last = run / "checkpoints" / "last.pt"
    assert "the training loss was not a finite number (nan) in iteration 9," in result.stderr
    assert f"the last good checkpoint is runs/{run.name}/checkpoints/last.pt" in result.stderr
    assert "lower optimizer.lr" in result.stderr
    state = load_checkpoint(last)
    assert state["train_state"]["epoch"] == 1 and state["train_state"]["iteration"] == 6
    assert all(torch.isfinite(tensor).all() for tensor in state["model"].values())
    assert not (run / "results.json").exists() and not (run / "run.lock").exists()


@pytest.mark.slow  # the corpus case corrupt_png_read_by_a_worker checks the same in the default run
def test_a_crash_in_a_dataloader_worker_names_the_file(tmp_path, site):
    root = write_cityscapes_tree(tmp_path / "cityscapes")
    broken = tree_label(root, index=2)
    data = broken.read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    (tmp_path / "city.yaml").write_text(CITYSCAPES_RECIPE.format(root=root, num_workers=2))
    started = time.monotonic()
    result = run_cli(["run", "city.yaml", "--runs-dir", "runs"], cwd=tmp_path, env=cli_env(site), timeout=300)
    assert result.returncode == 2, result.stderr[-3000:]
    assert f"{broken} is not a readable PNG" in result.stderr and "re-extract it" in result.stderr
    assert "in DataLoader worker process" in result.stderr
    assert "Traceback" not in result.stderr and 'File "' not in result.stderr
    print(f"\nworker failure reported in {time.monotonic() - started:.1f} s (including start-up)")


# ---- two processes, one run directory -----------------------------------------------------------

@pytest.mark.slow
def test_a_second_run_of_the_same_recipe_is_refused_while_the_first_holds_it(tmp_path, site, reference):
    folder = _folder(tmp_path)
    release = tmp_path / "release"
    first = _start(folder, site, **{PAUSE_AT_READ_ENV: f"5:{release}"})  # pauses in its first epoch
    _wait_for(lambda: Path(f"{release}.paused").exists(), first)
    run = _run_dir(folder)
    assert json.loads((run / "run.lock").read_text()) == {"host": socket.gethostname(), "pid": first.pid}
    before = snapshot(run)

    second = _train(folder, site)
    assert second.returncode == 2, second.stderr[-3000:]
    assert f"run directory runs/{run.name} is in use by process {first.pid} on host {socket.gethostname()}" \
        in second.stderr
    assert "delete the lock file" in second.stderr and "Traceback" not in second.stderr
    assert snapshot(run) == before

    release.touch()
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err[-3000:]
    _assert_identical(run, reference)


_CONTENDER = """
import json, os, sys, time
from pathlib import Path
from segbench.engine.rundir import RunDir, RunLock
from segbench.errors import RunLockedError
run, rounds = RunDir(Path(sys.argv[1])), int(sys.argv[2])
for r in range(rounds):
    go = run.path.parent / f"go{r}"
    while not go.exists():
        time.sleep(0.0005)
    lock = RunLock(run)
    try:
        lock.acquire()
        outcome = "won"
    except RunLockedError:
        outcome = "lost"
    # written whole, then named: the test reads an outcome as soon as its file appears
    (run.path.parent / f".r{r}-{os.getpid()}").write_text(outcome)
    os.rename(run.path.parent / f".r{r}-{os.getpid()}", run.path.parent / f"r{r}-{os.getpid()}")
"""


@pytest.mark.slow
def test_processes_racing_to_take_over_a_stale_lock_leave_exactly_one_owner(tmp_path):
    run = tmp_path / "runs" / "toy-00000000"
    run.mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = json.dumps({"host": socket.gethostname(), "pid": int(dead.stdout)})
    rounds, contenders = 30, 4
    env = cli_env()
    processes = [subprocess.Popen([sys.executable, "-c", _CONTENDER, str(run), str(rounds)], env=env)
                 for _ in range(contenders)]
    try:
        for r in range(rounds):
            (run / "run.lock").write_text(stale)
            (run.parent / f"go{r}").touch()
            deadline = time.monotonic() + 300
            while len(list(run.parent.glob(f"r{r}-*"))) < contenders:
                assert time.monotonic() < deadline and all(p.poll() in (None, 0) for p in processes)
                time.sleep(0.005)
            outcomes = sorted(p.read_text() for p in run.parent.glob(f"r{r}-*"))
            assert outcomes == ["lost"] * (contenders - 1) + ["won"], f"round {r}: {outcomes}"
    finally:
        for process in processes:
            process.kill()
            process.wait()
