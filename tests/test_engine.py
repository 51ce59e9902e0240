"""The training engine end to end on an in-memory plugin: exactness, determinism, resume, failures."""
import json
import os
import signal
import stat

import attrs
import pytest
import torch

from segbench.engine.checkpoint import load_checkpoint
from segbench.engine.rundir import RunDir
from segbench.engine.runner import run_stage
from segbench.errors import CheckpointError, RunLockedError, SegbenchError, TrainingDivergedError
from segbench.recipe.load import load_recipe
from segbench.recipe.plan import build_plan
from tests import engine_plugin


@pytest.fixture(scope="module")
def registries():
    return engine_plugin.registries()


def write_recipe(folder, name="toy.yaml", text=engine_plugin.RECIPE):
    path = folder / name
    path.write_text(text)
    return path


def train(folder, registries, overrides=(), name="toy.yaml", runs="runs"):
    recipe = load_recipe(folder / name, overrides)
    return run_stage(recipe, registries, runs_dir=folder / runs, progress=False)


def weights(run: RunDir, which="last"):
    return load_checkpoint(run.checkpoints / f"{which}.pt")["model"]


def assert_same_weights(a, b, exact=True):
    assert a.keys() == b.keys()
    for key in a:
        if exact:
            assert torch.equal(a[key], b[key]), key
        else:
            torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)


def metric_records(run: RunDir):
    records = [json.loads(line) for line in run.metrics.read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "images_per_s"} for r in records]


def test_a_run_writes_its_directory_and_results(tmp_path, registries):
    write_recipe(tmp_path)
    run = train(tmp_path, registries)
    recipe = build_plan(load_recipe(tmp_path / "toy.yaml"), registries)  # named by the resolved recipe
    assert run.path.name == f"toy-{recipe.hash[:8]}"
    results = run.read_results()
    assert 0.0 <= results.mIoU <= 1.0 and 0.0 <= results.pixel_accuracy <= 1.0
    assert set(results.per_class_iou) == {"dark", "mid", "bright"}
    assert results.report_images == 6 and results.checkpoint.endswith("best.pt")
    assert results.selection_overlaps_report is True  # both are the toy's val images
    assert attrs.asdict(results.evaluation) == {"mode": "whole", "flip": False, "batch_size": 1, "scales": (1.0,)}
    assert (run.path / "recipe.yaml").read_text().count("nobn") == 1
    kinds = [r["type"] for r in metric_records(run)]
    assert kinds.count("eval") == 3 and kinds.count("train") == 3 * 6
    assert not run.lock_file.exists()


def test_a_recipe_refused_while_the_run_is_built_leaves_no_run_directory(tmp_path, registries):
    # 18 iterations in all, 100 of warm-up: refused once the data says how long the run is, after the class
    # weights are counted; nothing of the refused run stays (its directory would never be used again).
    write_recipe(tmp_path, text=engine_plugin.RECIPE.replace(
        "scheduler: {name: constant}", "scheduler: {name: poly, warmup_iterations: 100}\nclass_weighting: {name: enet}"))
    with pytest.raises(SegbenchError, match="scheduler.warmup_iterations"):
        train(tmp_path, registries)
    assert list((tmp_path / "runs").iterdir()) == []


def test_a_run_cut_short_by_max_iterations_says_so_and_stops_there(tmp_path, registries, capsys):
    write_recipe(tmp_path)
    run = train(tmp_path, registries, ["trainer.max_iterations=4"])  # 6 iterations per epoch, 3 epochs
    assert run.read_results().iterations == 4
    assert "4 iteration(s) (trainer.max_iterations; 6 per epoch)" in capsys.readouterr().err


def test_run_files_are_readable_like_any_file_the_user_writes(tmp_path, registries):
    """Atomic writes go through mkstemp (mode 0o600); results and checkpoints must still follow the umask, so a
    colleague on a shared cluster can compare and evaluate the runs."""
    previous = os.umask(0o022)
    try:
        write_recipe(tmp_path)
        run = train(tmp_path, registries)
    finally:
        os.umask(previous)
    modes = {p.relative_to(run.path).as_posix(): stat.S_IMODE(p.stat().st_mode)
             for p in run.path.rglob("*") if p.is_file()}
    assert {"results.json", "checkpoints/best.pt", "checkpoints/last.pt"} <= set(modes)
    assert set(modes.values()) == {0o644}, modes


def test_same_recipe_and_seed_give_identical_metrics_and_weights(tmp_path, registries):
    write_recipe(tmp_path)
    first = train(tmp_path, registries, runs="a")
    second = train(tmp_path, registries, runs="b")
    assert metric_records(first) == metric_records(second)
    assert_same_weights(weights(first), weights(second))


def test_deep_supervision_adds_each_auxiliary_loss_at_the_models_weight(tmp_path, registries):
    """The U-Net builds its auxiliary classifiers after the rest, so with one seed the networks start the same:
    the first step's loss is the main loss plus weight x the auxiliary losses."""
    write_recipe(tmp_path)

    def first_loss(model_settings, runs):
        run = train(tmp_path, registries, [f"model={{name: unet, channels: [4, 8, 8], {model_settings}}}",
                                           "trainer.max_iterations=1"], runs=runs)
        return next(r["loss"] for r in metric_records(run) if r["type"] == "train")

    plain = first_loss("block: residual", "plain")
    half = first_loss("block: residual, deep_supervision: 0.5", "half")
    full = first_loss("block: residual, deep_supervision: 1.0", "full")
    assert half > plain
    assert full - half == pytest.approx(half - plain, rel=1e-4)


@pytest.mark.parametrize("accumulate, batch, count", [(2, 2, 8), (4, 2, 6)])
def test_gradient_accumulation_equals_one_large_batch(tmp_path, registries, accumulate, batch, count):
    """k micro-batches of b images == one batch of k*b images; (4, 2, 6) ends on a partial window of 3."""
    write_recipe(tmp_path)
    common = [f"data.dataset.count={count}", "trainer.epochs=2", "data.train_transforms=[{name: normalize}]"]
    window = min(accumulate * batch, count)
    accumulated = train(tmp_path, registries, [*common, f"trainer.batch_size={batch}",
                                               f"trainer.accumulate={accumulate}"], runs="acc")
    single = train(tmp_path, registries, [*common, f"trainer.batch_size={window}"], runs="one")
    assert_same_weights(weights(accumulated), weights(single), exact=False)
    assert load_checkpoint(accumulated.last)["train_state"]["iteration"] == \
        load_checkpoint(single.last)["train_state"]["iteration"]


@pytest.mark.parametrize("log_every", [1, 4])  # 4: the signal falls inside a logged window of steps
def test_signal_mid_epoch_checkpoints_and_resume_is_bitwise_identical(tmp_path, registries, monkeypatch, log_every):
    write_recipe(tmp_path, text=engine_plugin.RECIPE.replace("log_every: 1", f"log_every: {log_every}"))
    reference = train(tmp_path, registries, runs="reference")

    from segbench.data.transformed import TransformedDataset
    from tests.engine_plugin import Blobs

    read, training_item = Blobs.__getitem__, TransformedDataset.__getitem__
    seen = {"evaluation": False, "signalled": False}

    def reading(self, index):
        # Evaluations (and their prediction panels) read the dataset itself, under no_grad.
        if not torch.is_grad_enabled():
            seen["evaluation"] = True
        return read(self, index)

    def interrupting(self, index):
        # The first training item after the first evaluation is in the first batch of the second epoch
        # (training reads the decoded items kept from the first epoch, not the dataset).
        if seen["evaluation"] and not seen["signalled"]:
            seen["signalled"] = True
            os.kill(os.getpid(), signal.SIGUSR1)
        return training_item(self, index)

    monkeypatch.setattr(Blobs, "__getitem__", reading)
    monkeypatch.setattr(TransformedDataset, "__getitem__", interrupting)
    from segbench.engine.trainer import Preempted

    with pytest.raises(Preempted):
        train(tmp_path, registries, runs="interrupted")
    monkeypatch.undo()
    run = RunDir((tmp_path / "interrupted") / reference.path.name)
    state = load_checkpoint(run.last)["train_state"]
    assert state["epoch"] == 1 and state["window_in_epoch"] > 0 and not run.results.exists()

    resumed = train(tmp_path, registries, runs="interrupted")
    assert_same_weights(weights(reference), weights(resumed))
    assert_same_weights(weights(reference, "best"), weights(resumed, "best"))
    assert metric_records(reference) == metric_records(resumed)
    assert resumed.read_results().mIoU == reference.read_results().mIoU


def test_completed_run_is_not_retrained(tmp_path, registries, capsys):
    write_recipe(tmp_path)
    run = train(tmp_path, registries)
    stamp = run.results.stat().st_mtime_ns
    train(tmp_path, registries)
    assert run.results.stat().st_mtime_ns == stamp
    assert "already complete" in capsys.readouterr().err


def test_nan_loss_stops_with_a_clear_error_and_keeps_the_last_good_checkpoint(tmp_path, registries):
    write_recipe(tmp_path)
    with pytest.raises(TrainingDivergedError, match=r"loss was not a finite number \(nan\) in iteration 9,"):
        train(tmp_path, registries, ["loss={name: nan_after, step: 9}"])
    recipe = load_recipe(tmp_path / "toy.yaml", ["loss={name: nan_after, step: 9}"])
    run = RunDir.for_plan(build_plan(recipe, registries), tmp_path / "runs")
    state = load_checkpoint(run.last)
    assert state["train_state"]["epoch"] == 1  # the checkpoint of the first, finite epoch
    assert all(torch.isfinite(t).all() for t in state["model"].values())
    assert not run.results.exists()


def test_corrupt_last_checkpoint_is_reported_not_silently_restarted(tmp_path, registries):
    write_recipe(tmp_path)
    run = train(tmp_path, registries)
    run.results.unlink()
    data = run.last.read_bytes()
    run.last.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated, corrupt"):
        train(tmp_path, registries)


def test_finetune_runs_its_base_stage_first_then_reuses_it(tmp_path, registries, capsys):
    write_recipe(tmp_path, "coarse.yaml")
    write_recipe(tmp_path, "fine.yaml", "base: coarse.yaml\nstrategy: {name: finetune}\n"
                                        "optimizer: {lr: 0.01}\ntrainer: {epochs: 1}\n")
    fine = train(tmp_path, registries, name="fine.yaml")
    err = capsys.readouterr().err
    assert "stage coarse: not complete yet, running it first" in err
    coarse = RunDir.for_plan(build_plan(load_recipe(tmp_path / "coarse.yaml"), registries), tmp_path / "runs")
    assert coarse.is_complete() and fine.is_complete()
    assert "finetune: initialised from" in fine.read_results().initialisation
    stamp = coarse.results.stat().st_mtime_ns
    fine.results.unlink()
    import shutil

    shutil.rmtree(fine.checkpoints)
    train(tmp_path, registries, name="fine.yaml")
    assert "stage coarse: complete" in capsys.readouterr().err
    assert coarse.results.stat().st_mtime_ns == stamp


@pytest.mark.parametrize("damage", ["{}", "{cut sho", "\xff\xfe not text"])
def test_a_base_stage_with_a_damaged_results_file_stops_the_run_before_it_trains(tmp_path, registries, damage):
    """Counted as finished, the fine stage trained from it and the damage surfaced only in compare; now the run
    stops at once, naming the file and how to write it again, and writes nothing for the fine stage."""
    write_recipe(tmp_path, "coarse.yaml")
    write_recipe(tmp_path, "fine.yaml", "base: coarse.yaml\nstrategy: {name: finetune}\n")
    coarse = train(tmp_path, registries, name="coarse.yaml")
    coarse.results.write_bytes(damage.encode("latin-1"))
    with pytest.raises(SegbenchError, match="results.json .*move it away and run the same `segbench run`"):
        train(tmp_path, registries, name="fine.yaml")
    assert [path.name for path in (tmp_path / "runs").iterdir()] == [coarse.path.name]
    assert coarse.results.read_bytes() == damage.encode("latin-1")


def test_a_second_process_on_the_same_run_is_refused_and_stale_locks_are_taken_over(tmp_path, registries):
    write_recipe(tmp_path)
    run = RunDir.for_plan(build_plan(load_recipe(tmp_path / "toy.yaml"), registries), tmp_path / "runs")
    run.path.mkdir(parents=True)
    run.lock_file.write_text(json.dumps({"host": __import__("socket").gethostname(), "pid": os.getppid()}))
    with pytest.raises(RunLockedError, match="in use by process"):
        train(tmp_path, registries)
    run.lock_file.write_text(json.dumps({"host": __import__("socket").gethostname(), "pid": 2 ** 22 + 12345}))
    train(tmp_path, registries)  # the dead owner's lock is taken over
    assert run.is_complete()


@pytest.mark.parametrize("content", ["", "{not json", "[1, 2]", '{"host": "h", "pid": "abc"}', "\x00\xff"])
def test_a_lock_file_that_names_no_process_is_a_clear_error(tmp_path, content):
    from segbench.engine.rundir import RunLock

    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.lock_file.write_text(content, errors="surrogateescape")
    with pytest.raises(RunLockedError, match="names no process .* delete the lock file"):
        RunLock(run).acquire()
    assert run.lock_file.read_text(errors="surrogateescape") == content  # not taken over: the owner is unknown


def test_a_checkpoint_path_that_is_a_folder_is_called_a_folder(tmp_path):
    from segbench.engine.checkpoint import load_checkpoint

    (tmp_path / "last.pt").mkdir()
    with pytest.raises(CheckpointError, match="last.pt is a folder, not a checkpoint file.*--restart"):
        load_checkpoint(tmp_path / "last.pt")
    with pytest.raises(CheckpointError, match="best.pt does not exist"):
        load_checkpoint(tmp_path / "best.pt")


@pytest.mark.parametrize("damage", ["results.json/", "metrics.jsonl/", "checkpoints", "checkpoints/last.pt/"])
def test_a_damaged_run_directory_is_refused_before_training_and_restart_repairs_it(tmp_path, registries, damage):
    write_recipe(tmp_path)
    run = RunDir.for_plan(build_plan(load_recipe(tmp_path / "toy.yaml"), registries), tmp_path / "runs")
    target = run.path / damage.rstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.mkdir() if damage.endswith("/") else target.write_text("x")
    with pytest.raises(SegbenchError, match=f"is damaged: {target} is a (folder|file) where a (file|folder) belongs"):
        train(tmp_path, registries)
    assert not run.lock_file.exists() and not run.last.is_file()  # nothing trained, the lock released
    recipe = load_recipe(tmp_path / "toy.yaml")
    assert run_stage(recipe, registries, runs_dir=tmp_path / "runs", restart=True, progress=False).is_complete()


def test_a_run_started_with_other_processes_is_not_resumed_with_a_changed_schedule(tmp_path, registries, capsys):
    from segbench.engine.checkpoint import save_checkpoint

    write_recipe(tmp_path)
    run = train(tmp_path, registries)
    assert run.read_results().world_size == 1 and load_checkpoint(run.last)["world_size"] == 1
    run.results.unlink()
    state = load_checkpoint(run.last)
    # a 2-process torchrun stopped mid-training would have left this
    mid_training = {**state, "world_size": 2, "train_state": {**state["train_state"], "iteration": 1}}
    save_checkpoint(run.last, mid_training)
    with pytest.raises(CheckpointError) as info:
        train(tmp_path, registries)
    assert "with 2 process(es), and this command starts 1" in str(info.value)
    assert "torchrun --nproc_per_node 2" in str(info.value) and "--restart" in str(info.value)
    save_checkpoint(run.last, {**state, "world_size": 2})  # training done, only the report left: any count
    train(tmp_path, registries)
    assert run.is_complete()
    run.results.unlink()
    save_checkpoint(run.last, {key: value for key, value in state.items() if key != "world_size"})  # older file
    train(tmp_path, registries)
    assert run.is_complete()
    results = json.loads(run.results.read_text())
    run.results.write_text(json.dumps({**results, "world_size": 4}))
    capsys.readouterr()
    train(tmp_path, registries)
    assert "was trained with 4 process(es)" in capsys.readouterr().err


def test_a_complete_base_stage_missing_the_checkpoint_the_fine_stage_reads_is_named_before_training(
        tmp_path, registries):
    write_recipe(tmp_path, "coarse.yaml")
    write_recipe(tmp_path, "fine.yaml", "base: coarse.yaml\nstrategy: {name: finetune}\n")
    coarse = train(tmp_path, registries, name="coarse.yaml")
    (coarse.checkpoints / "best.pt").unlink()
    with pytest.raises(SegbenchError) as info:
        train(tmp_path, registries, name="fine.yaml")
    message = str(info.value)
    assert f"starts from {coarse.checkpoints / 'best.pt'}, which does not exist" in message
    assert f"segbench run {tmp_path / 'coarse.yaml'} --runs-dir {tmp_path / 'runs'} --restart" in message
    assert sorted(path.name for path in (tmp_path / "runs").iterdir()) == [coarse.path.name]
    from segbench_jobs.stages import build_stages

    with pytest.raises(SegbenchError, match="best.pt, which does not exist"):  # emit-slurm submits nothing
        build_stages([tmp_path / "fine.yaml"], registries, runs_dir=tmp_path / "runs")
