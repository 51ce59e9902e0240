"""``segbench evaluate``: the same numbers as results.json, other splits, labelIds export for the official tools."""
import fnmatch
import json
from pathlib import Path

import attrs
import numpy as np
import pytest
import torch
from PIL import Image

from segbench import hookimpl
from segbench.cli import build_parser
from segbench.data.dataset import cityscapes_info, cityscapes_label_to_train_lut
from segbench.report.evaluate_cli import evaluate_command, evaluate_run, export_path
from segbench.engine.rundir import RunDir
from segbench.engine.runner import run_stage
from segbench.errors import CheckpointError, SegbenchError
from segbench.functional.metrics import confusion_matrix
from segbench.plugins import make_plugin_manager
from segbench.recipe.load import load_recipe
from segbench.registry import build_registries
from tests import engine_plugin

CITY = cityscapes_info()


class CityBlobs(engine_plugin.Blobs):
    """The toy blobs with the 19 Cityscapes classes (labelIds for export) and an ignored top row."""

    info = CITY

    def __init__(self, config):
        super().__init__(config)
        gray = self.images[:, 0].float() / 255
        self.masks = (gray * 19).clamp(max=18).to(torch.uint8)
        self.masks[:, 0, :] = 255


class CityBlobsPlugin:
    @hookimpl
    def segbench_register_datasets(self, register):
        register("city_blobs", CityBlobs, config=engine_plugin.BlobsConfig)


def city_registries():
    pm = make_plugin_manager(load_entry_points=False)
    pm.register(engine_plugin.EnginePlugin(), name="engine-test-plugin")
    pm.register(CityBlobsPlugin(), name="city-blobs-test-plugin")
    return build_registries(pm)


CITY_RECIPE = engine_plugin.RECIPE.replace("name: blobs,", "name: city_blobs,").replace("epochs: 3", "epochs: 2")


def train_toy(folder: Path, registries, text: str, name: str = "toy.yaml") -> RunDir:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
    return run_stage(load_recipe(folder / name), registries, runs_dir=folder / "runs", progress=False)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    registries = engine_plugin.registries()
    return train_toy(tmp_path_factory.mktemp("toy"), registries, engine_plugin.RECIPE), registries


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    registries = city_registries()
    return train_toy(tmp_path_factory.mktemp("city"), registries, CITY_RECIPE), registries


def test_evaluate_reproduces_results_json_and_leaves_it_alone(toy):
    run, registries = toy
    before = run.results.read_bytes()
    record = evaluate_run(run.path, registries=registries, progress=False)
    results = run.read_results()
    assert record.mIoU == results.mIoU and record.pixel_accuracy == results.pixel_accuracy
    assert record.per_class_iou == results.per_class_iou
    assert record.confusion_matrix == results.confusion_matrix
    assert record.images == results.report_images == 6
    assert Path(record.checkpoint).name == "best.pt"
    assert json.loads((run.path / "evaluation-report.json").read_text())["mIoU"] == results.mIoU
    assert run.results.read_bytes() == before


TRAINING_ONLY_PLUGINS = ("segbench_plugins.losses", "segbench_plugins.optimizers", "segbench_plugins.schedulers",
                         "segbench_plugins.strategies", "segbench_plugins.class_weightings", "segbench_plugins.loggers")


def test_a_run_is_evaluated_without_the_plugins_only_its_training_used(toy, tmp_path, capsys):
    run, _ = toy
    pm = make_plugin_manager(load_entry_points=False,
                             environ={"SEGBENCH_BLOCK_PLUGINS": ",".join(TRAINING_ONLY_PLUGINS)})
    pm.register(engine_plugin.EnginePlugin(), name="engine-test-plugin")
    without_training_plugins = build_registries(pm)
    record = evaluate_run(run.path, registries=without_training_plugins, progress=False)
    assert (record.mIoU, record.confusion_matrix) == (run.read_results().mIoU, run.read_results().confusion_matrix)
    assert "warning" not in capsys.readouterr().err  # the sections left as written still hash to the run's name
    # training the same recipe still needs them, and says which
    (tmp_path / "toy.yaml").write_text(engine_plugin.RECIPE)
    with pytest.raises(SegbenchError, match="loss.name.*blocked|blocked.*loss"):
        run_stage(load_recipe(tmp_path / "toy.yaml"), without_training_plugins, runs_dir=tmp_path / "runs",
                  progress=False)


def test_a_run_whose_plugin_is_gone_names_the_plugin_and_its_distribution(tmp_path):
    from segbench.plugins import PluginInfo

    pm = make_plugin_manager(load_entry_points=False)
    pm.register(engine_plugin.EnginePlugin(), name="engine-test-plugin")
    pm.segbench_distributions["engine-test-plugin"] = PluginInfo("engine-test-plugin", "engine-dist", "1.0")
    run = train_toy(tmp_path, build_registries(pm), engine_plugin.RECIPE.replace("epochs: 3", "epochs: 1"))
    without_it = build_registries(make_plugin_manager(load_entry_points=False))
    with pytest.raises(SegbenchError) as info:
        evaluate_run(run.path, registries=without_it, progress=False)
    message = str(info.value)
    assert "model.name: unknown models 'nobn'" in message
    assert ("the run was trained with plugin(s) 'engine-test-plugin' (distribution engine-dist 1.0), which this"
            " environment does not load: install them") in message


def test_a_checkpoint_copied_from_another_run_is_said_to_be_foreign(toy, tmp_path, capsys):
    import shutil

    run, registries = toy
    copy = tmp_path / run.path.name
    shutil.copytree(run.path, copy)
    evaluate_run(copy, registries=registries, progress=False)
    assert "written by run" not in capsys.readouterr().err  # its own weights: nothing to say
    state = torch.load(copy / "checkpoints" / "best.pt", weights_only=False)
    state["recipe_hash"] = "f" * 64  # as another run's checkpoint records its own hash
    torch.save(state, copy / "checkpoints" / "best.pt")
    evaluate_run(copy, registries=registries, progress=False)
    assert f"was written by run ffffffff, not by this one ({run.path.name[-8:]})" in capsys.readouterr().err


def test_a_run_still_training_is_said_to_be_a_snapshot(toy, tmp_path, capsys):
    import shutil
    import socket
    import subprocess
    import sys

    run, registries = toy
    copy = RunDir(tmp_path / run.path.name)
    shutil.copytree(run.path, copy.path)
    trainer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        copy.lock_file.write_text(json.dumps({"host": socket.gethostname(), "pid": trainer.pid}))
        evaluate_run(copy.path, checkpoint="last", registries=registries, progress=False)
        err = capsys.readouterr().err
        iteration = torch.load(copy.last, weights_only=False)["train_state"]["iteration"]
        assert f"is still training (process {trainer.pid} on host {socket.gethostname()})" in err
        assert f"last.pt (written at iteration {iteration}) is a snapshot" in err
    finally:
        trainer.kill()
        trainer.wait()
    evaluate_run(copy.path, registries=registries, progress=False)  # its process gone: a lock left by a crash
    assert "still training" not in capsys.readouterr().err


def test_a_checkpoint_path_names_its_run_and_weights(toy):
    run, registries = toy
    by_dir = evaluate_run(run.path, checkpoint="last", registries=registries, progress=False)
    by_file = evaluate_run(run.last, registries=registries, progress=False)
    assert Path(by_file.checkpoint).name == Path(by_dir.checkpoint).name == "last.pt"
    assert by_file.confusion_matrix == by_dir.confusion_matrix
    assert by_file.run == str(run.path.resolve())
    with pytest.raises(SegbenchError, match="give one of them"):
        evaluate_run(run.last, checkpoint="best", registries=registries, progress=False)


def test_other_splits(toy):
    run, registries = toy
    select = evaluate_run(run.path, split="select", registries=registries, progress=False)
    assert select.images == 4 and (run.path / "evaluation-select.json").is_file()
    train = evaluate_run(run.path, split="train", registries=registries, progress=False)
    assert train.dataset == {"split": "train", "count": 6}  # the report role, split replaced
    assert (run.path / "evaluation-train.json").is_file()


def test_an_unknown_split_is_blamed_on_the_option_not_on_the_runs_recipe(toy):
    run, registries = toy
    with pytest.raises(SegbenchError) as info:
        evaluate_run(run.path, split="nosuch", registries=registries, progress=False)
    message = str(info.value)
    assert message.startswith("--split 'nosuch': ") and "'train'" in message and "recipe.yaml" not in message


def test_inference_keeps_the_precision_an_auto_run_trained_with(tmp_path, monkeypatch):
    import attrs as _attrs

    from segbench.engine.device import choose_numerics, describe_cpu
    from segbench.recipe.plan import build_plan
    from segbench.report import loading

    (tmp_path / "auto.yaml").write_text(engine_plugin.RECIPE.replace("precision: fp32", "precision: auto"))
    plan = build_plan(load_recipe(tmp_path / "auto.yaml"), engine_plugin.registries())
    cpu = torch.device("cpu")
    today = choose_numerics("auto", None, cpu).precision  # what `auto` picks here now

    def settings(trained, native_bf16=True):
        monkeypatch.setattr(loading, "describe_cpu", lambda: _attrs.evolve(describe_cpu(), native_bf16=native_bf16))
        return loading.inference_settings(plan, "cpu", trained=trained).precision

    assert settings(("cpu", "fp32")) == "fp32"  # even where auto would now pick bf16
    assert settings(("cpu", "bf16")) == "bf16"
    assert settings(("cpu", "bf16"), native_bf16=False) == today  # emulated bf16 would be many times slower
    assert settings(("cuda", "fp16")) == settings(None) == today  # trained elsewhere, or no results yet
    fixed = _attrs.evolve(plan, trainer=_attrs.evolve(plan.trainer, precision="fp32"))
    assert loading.inference_settings(fixed, "cpu", trained=("cpu", "bf16")).precision == "fp32"  # the recipe's


def test_a_run_folder_that_cannot_be_written_is_refused_before_any_scoring(toy, monkeypatch):
    import errno
    import tempfile

    from segbench.report.latency import benchmark

    run, registries = toy
    real_mkstemp = tempfile.mkstemp

    def read_only(*args, prefix=None, dir=None, **kwargs):  # as on a read-only mount
        if Path(dir) == run.path:
            raise OSError(errno.EROFS, "Read-only file system")
        return real_mkstemp(*args, prefix=prefix, dir=dir, **kwargs)

    monkeypatch.setattr("segbench.atomic.tempfile.mkstemp", read_only)
    monkeypatch.setattr("segbench.report.evaluate_cli.load_run", lambda *a, **k: pytest.fail("scored anyway"))
    with pytest.raises(SegbenchError, match=r"cannot be written \(Read-only file system\), and evaluate keeps its"):
        evaluate_run(run.path, registries=registries, progress=False)
    monkeypatch.setattr("segbench.report.latency.time_calls", lambda *a, **k: pytest.fail("timed anyway"))
    with pytest.raises(SegbenchError, match=r"and benchmark keeps its timings there \(benchmark-torch\.json\)"):
        benchmark(run.path, registries=registries)


def test_an_onnx_file_without_the_onnxruntime_backend_is_refused_not_ignored(toy, tmp_path):
    run, registries = toy
    with pytest.raises(SegbenchError, match=r"--onnx .*model\.onnx is scored by onnxruntime: add --backend"):
        evaluate_run(run.path, registries=registries, progress=False, onnx_file=tmp_path / "model.onnx")


def test_clear_errors(toy, tmp_path):
    run, registries = toy
    with pytest.raises(SegbenchError, match="does not exist"):
        evaluate_run(tmp_path / "missing", registries=registries)
    with pytest.raises(SegbenchError, match="not a run directory"):
        evaluate_run(tmp_path, registries=registries)
    with pytest.raises(SegbenchError, match="declares no export ids"):
        evaluate_run(run.path, export_labelids=tmp_path / "export", registries=registries, progress=False)
    empty = RunDir(tmp_path / "fresh")
    empty.path.mkdir()
    (empty.recipe_file).write_text(run.recipe_file.read_text())
    with pytest.raises(CheckpointError, match="no checkpoint yet"):
        evaluate_run(empty.path, registries=registries, progress=False)


def test_command_prints_the_per_class_table(toy, capsys):
    run, registries = toy
    args = build_parser().parse_args(["evaluate", str(run.path)])
    record = evaluate_command(args, registries=registries)
    out = capsys.readouterr().out
    for name, iou in record.per_class_iou.items():
        assert f"{name}" in out and f"{100 * iou:.2f}" in out
    assert f"{100 * record.mIoU:.2f}%" in out and "evaluation-report.json" in out


def test_labelids_export_is_full_resolution_valid_and_scores_the_same(city, tmp_path):
    run, registries = city
    folder = tmp_path / "export"
    record = evaluate_run(run.path, export_labelids=folder, registries=registries, progress=False)
    results = run.read_results()
    assert record.confusion_matrix == results.confusion_matrix
    assert attrs.asdict(record.labelids_export) == {"folder": str(folder), "files": 6}

    dataset = CityBlobs(engine_plugin.BlobsConfig(split="val", count=6, size=16))
    files = sorted(folder.rglob("*.png"))
    assert len(files) == len(dataset) == 6
    valid_ids = set(CITY.train_to_label_id)
    lut = torch.from_numpy(cityscapes_label_to_train_lut().copy())
    matrix = torch.zeros((19, 20), dtype=torch.int64)
    for index in range(len(dataset)):
        path = export_path(folder, dataset, index)
        exported = Image.open(path)
        assert exported.mode == "L" and exported.size == (16, 16)  # the label's full size
        ids = np.array(exported)
        assert set(np.unique(ids).tolist()) <= valid_ids
        train_ids = lut[torch.from_numpy(ids).long()]
        matrix += confusion_matrix(train_ids, dataset.read_mask(index), num_classes=19, ignore_index=255)
    assert matrix.tolist() == results.confusion_matrix


def test_export_names_match_what_cityscapesscripts_searches_for():
    class Stub:
        def image_path(self, index):
            return Path("/data/leftImg8bit/val/frankfurt/frankfurt_000000_000294_leftImg8bit.png")

        def sample_id(self, index):
            return "frankfurt_000000_000294"

    path = export_path(Path("/results"), Stub(), 0)
    assert path == Path("/results/frankfurt/frankfurt_000000_000294_pred_labelIds.png")
    # evalPixelLevelSemanticLabeling.getPrediction: "{city}_{seq}_{frame}*.png", searched recursively
    assert fnmatch.fnmatch(path.name, "frankfurt_000000_000294*.png")
    assert not fnmatch.fnmatch(path.name, "frankfurt_000000_000293*.png")
