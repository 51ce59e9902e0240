"""Loggers: TensorBoard events read back with TensorBoard's own reader, metrics.csv, a third-party
tracker plugin, a failing logger, recipe choices, and curves that survive a SIGKILL and a resume."""
from __future__ import annotations

import csv
import json
import math
import signal
from pathlib import Path

import numpy as np
import pytest

from segbench.engine.loggers import PredictionPanel, RunLoggers, RunStart, build_run_loggers
from segbench.errors import ConfigError
from segbench.recipe.load import load_recipe
from segbench.recipe.plan import build_plan
from segbench.records import SelectionRecord, TrainStepRecord
from tests.bad_inputs.harness import ENGINE_RECIPE, cli_env, make_site, run_cli, toy_site
from tests.bad_inputs.toy_plugin import AT_READ_ENV

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

ENGINE_LOGGING = "logging: [{name: jsonl}]\n"  # the toy recipe's: no panels, which read selection items
WITHOUT_LOGGING = ENGINE_RECIPE.replace(ENGINE_LOGGING, "")
LOGGED_RECIPE = WITHOUT_LOGGING + """\
logging:
  - {name: jsonl}
  - {name: csv}
  - {name: tensorboard, images: 2}
  - {name: tracker, project: toys}
  - {name: broken}
"""
# Per epoch the toy run reads 12 training items, 4 selection items and 2 more for the prediction
# panels: read 42 is in the third epoch's training, after the checkpoint at iteration 12 (6 per epoch).
KILL_AT_READ = 42
CHECKPOINT_ITERATION = 12
TOTAL_ITERATIONS = 18


def _accumulator(run: Path) -> EventAccumulator:
    events = EventAccumulator(str(run), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    events.Reload()
    return events


def _jsonl(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def killed_and_resumed(tmp_path_factory):
    """A toy run with every logger, SIGKILLed in its third epoch, then resumed to the end."""
    folder = tmp_path_factory.mktemp("logged")
    sites = [toy_site(folder / "toy-site"),
             make_site(folder / "tracker-site", "segbench-tracker", {"tracker": "tests.tracker_logger_plugin"})]
    (folder / "toy.yaml").write_text(LOGGED_RECIPE)
    args = ["run", "toy.yaml", "--runs-dir", "runs"]
    killed = run_cli(args, cwd=folder, env=cli_env(*sites, **{AT_READ_ENV: f"{KILL_AT_READ}:SIGKILL"}), timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    (run,) = (folder / "runs").iterdir()
    resumed = run_cli(args, cwd=folder, env=cli_env(*sites), timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from" in resumed.stderr
    return run, resumed


def test_tensorboard_curves_match_metrics_jsonl_across_a_kill_and_resume(killed_and_resumed):
    run, _ = killed_and_resumed
    records = _jsonl(run)
    train = [r for r in records if r["type"] == "train"]
    evals = [r for r in records if r["type"] == "eval"]
    assert [r["iteration"] for r in train] == list(range(1, TOTAL_ITERATIONS + 1))
    events = _accumulator(run)
    for tag, key in (("train/loss", "loss"), ("train/lr", "lr"), ("train/images_per_s", "images_per_s")):
        scalars = events.Scalars(tag)
        assert [s.step for s in scalars] == [r["iteration"] for r in train], tag  # each step once, none missing
        assert [s.value for s in scalars] == pytest.approx([r[key] for r in train], rel=1e-6), tag
    miou = events.Scalars("select/mIoU")
    assert [s.step for s in miou] == [r["iteration"] for r in evals] == [6, 12, 18]
    assert [s.value for s in miou] == pytest.approx([r["mIoU"] for r in evals], rel=1e-6)
    for name, iou in evals[-1]["per_class_iou"].items():
        if iou is not None:
            assert events.Scalars(f"select_iou/{name}")[-1].value == pytest.approx(iou, rel=1e-6)
    images = events.Images("predictions/0")
    assert [image.step for image in images] == [6, 12, 18]
    assert images[0].width >= 3 * 16  # image | ground truth | prediction of 16x16 images side by side
    assert events.Images("predictions/1") and "predictions/2" not in events.Tags()["images"]
    recipe = events.Tensors("recipe_text_summary" if "recipe_text_summary" in events.Tags()["tensors"]
                            else "recipe/text_summary")
    assert b"optimizer" in recipe[0].tensor_proto.string_val[0]
    assert len(recipe) == 1, "the recipe is logged once, not again on resume"


def test_csv_holds_the_same_records_as_metrics_jsonl(killed_and_resumed):
    run, _ = killed_and_resumed
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    records = _jsonl(run)
    assert [(r["type"], int(r["iteration"])) for r in rows] == [(r["type"], r["iteration"]) for r in records]
    for row, record in zip(rows, records):
        key = "loss" if record["type"] == "train" else "mIoU"
        assert float(row[key]) == record[key]
        if record["type"] == "eval":
            for name, iou in record["per_class_iou"].items():
                assert (row[f"iou_{name}"] == "") if iou is None else float(row[f"iou_{name}"]) == iou


def test_a_third_party_tracker_gets_the_recipe_the_metrics_and_the_panels(killed_and_resumed):
    run, _ = killed_and_resumed
    calls = [json.loads(line) for line in (run / "tracker_calls.jsonl").read_text().splitlines()]
    inits = [c for c in calls if c["call"] == "init"]
    assert [c["resume_from"] for c in inits] == [None, CHECKPOINT_ITERATION]
    assert inits[0]["project"] == "toys" and inits[0]["config"]["optimizer.lr"] == 0.1
    evals = [c for c in calls if c["call"] == "log" and "select/mIoU" in c["values"]]
    assert [c["step"] for c in evals][-2:] == [12, 18]
    assert evals[-1]["images"] and evals[-1]["images"][0]["caption"] == "val_0000"
    assert calls[-1]["call"] == "finish"


def test_a_failing_logger_warns_once_and_training_goes_on(killed_and_resumed):
    run, resumed = killed_and_resumed
    warning = "logger 'broken' (plugin 'tracker' (distribution segbench-tracker 1.0)) failed"  # who to tell
    assert resumed.stderr.count(warning) == 1, resumed.stderr[-3000:]
    assert "ConnectionError: tracker service unreachable" in resumed.stderr
    assert (run / "results.json").is_file()


# ---- in-process ---------------------------------------------------------------------------------

def _start(run_dir, iteration=0, resumed=False):
    return RunStart(run_dir, "toy", "seed: 0\n", {"seed": 0}, ("a", "b"), iteration, resumed)


def test_tensorboard_resume_purges_the_steps_an_interrupted_attempt_logged_after_its_checkpoint(tmp_path):
    from segbench_plugins.loggers_tensorboard import TensorBoardConfig, build_tensorboard

    first = build_tensorboard(TensorBoardConfig(), run_dir=tmp_path)
    first.start(_start(tmp_path))
    for step in range(1, 7):  # checkpoint at step 4; steps 5 and 6 reached the file before the crash
        first.train(TrainStepRecord(epoch=0, iteration=step, loss=1.0, lr=0.1, images_per_s=5.0))
    first.close()
    second = build_tensorboard(TensorBoardConfig(), run_dir=tmp_path)
    second.start(_start(tmp_path, iteration=4, resumed=True))
    for step in range(5, 9):
        second.train(TrainStepRecord(epoch=0, iteration=step, loss=2.0, lr=0.1, images_per_s=5.0))
    second.close()
    scalars = _accumulator(tmp_path).Scalars("train/loss")
    assert [(s.step, s.value) for s in scalars] == [(1, 1.0), (2, 1.0), (3, 1.0), (4, 1.0),
                                                    (5, 2.0), (6, 2.0), (7, 2.0), (8, 2.0)]


def test_a_logger_that_fails_is_switched_off_with_one_warning():
    class Failing:
        panels = 2

        def __init__(self):
            self.calls = 0

        def train(self, record):
            self.calls += 1
            raise OSError("disk gone")

        def evaluate(self, record, panels):
            raise AssertionError("switched-off logger called")

    warnings, failing = [], Failing()
    loggers = RunLoggers([("failing", failing)], warn=warnings.append)
    for step in (1, 2):
        loggers.train(TrainStepRecord(epoch=0, iteration=step, loss=1.0, lr=0.1, images_per_s=1.0))
    made = []
    loggers.evaluate(SelectionRecord(split="select", epoch=0, iteration=2, mIoU=0.5, best_mIoU=0.5, lr=0.1),
                     lambda count: made.append(count) or [])
    assert failing.calls == 1 and len(warnings) == 1 and "disk gone" in warnings[0]
    assert made == [], "no panels are rendered when no working logger wants them"


def test_only_the_main_process_logs(tmp_path):
    plan = build_plan(load_recipe(_recipe(tmp_path, "logging: [{name: jsonl}, {name: csv}]\n")),
                      _registries_with_toys())
    assert build_run_loggers(plan.loggers, tmp_path, is_main=True).names == ["jsonl", "csv"]
    assert build_run_loggers(plan.loggers, tmp_path, is_main=False).names == []


def _registries_with_toys():
    from tests.engine_plugin import registries

    return registries()


def _recipe(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "toy.yaml"
    path.write_text(WITHOUT_LOGGING + extra)
    return path


def test_without_a_logging_list_a_run_logs_to_jsonl_and_tensorboard_when_installed(tmp_path, monkeypatch):
    plan = build_plan(load_recipe(_recipe(tmp_path)), _registries_with_toys())
    assert sorted(c.name for c in plan.loggers) == ["jsonl", "tensorboard"]
    import segbench_plugins.loggers_tensorboard as tensorboard_plugin

    monkeypatch.setattr(tensorboard_plugin, "tensorboard_installed", lambda: False)
    plan = build_plan(load_recipe(_recipe(tmp_path)), _registries_with_toys())
    assert [c.name for c in plan.loggers] == ["jsonl"]
    plan = build_plan(load_recipe(_recipe(tmp_path, "logging: []\n")), _registries_with_toys())
    assert plan.loggers == ()
    # named in the recipe without tensorboard installed: the warning says what to install
    plan = build_plan(load_recipe(_recipe(tmp_path, "logging: [{name: tensorboard}]\n")), _registries_with_toys())
    warnings = []
    loggers = build_run_loggers(plan.loggers, tmp_path, is_main=True, warn=warnings.append)
    assert "pip install 'segbench[tensorboard]'" in warnings[0] and "Training goes on" in warnings[0]
    loggers.close()


@pytest.mark.parametrize("section, message", [
    ("logging: {name: csv}", "expected a list of loggers"),
    ("logging: [{name: tensorbord}]", "tensorboard"),
    ("logging: [{name: tensorboard, images: -1}]", "logging[0].images"),
    ("logging: [{name: csv}, {name: csv}]", "listed twice"),
])
def test_a_bad_logging_section_is_a_recipe_error(tmp_path, section, message):
    with pytest.raises(ConfigError) as error:
        build_plan(load_recipe(_recipe(tmp_path, section + "\n")), _registries_with_toys())
    assert message in str(error.value)


def test_prediction_panels_show_image_truth_and_prediction(tmp_path):
    import torch

    from segbench.engine.panels import prediction_panels
    from segbench.engine.runtime import Runtime
    from segbench.recipe.schema import EvaluationConfig
    from tests.engine_plugin import Blobs, BlobsConfig, NoBNConfig, build_nobn

    plan = build_plan(load_recipe(_recipe(tmp_path)), _registries_with_toys())
    dataset = Blobs(BlobsConfig(count=3, size=16, split="val"))
    panels = prediction_panels(build_nobn(NoBNConfig(), num_classes=3), dataset, plan.eval_transforms, count=2,
                               config=EvaluationConfig(), runtime=Runtime(torch.device("cpu")))
    assert [p.sample_id for p in panels] == ["val_0000", "val_0001"]
    assert isinstance(panels[0], PredictionPanel) and panels[0].prediction.shape == panels[0].truth.shape == (16, 16)
    assert np.array_equal(panels[0].truth, dataset[0][1].numpy())
    from segbench.report.panel_image import panel_image

    image = panel_image(panels[0])
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[1] >= 3 * 16  # three tiles side by side
    assert not math.isnan(float(image.mean()))


def _jsonl_line(iteration: int) -> bytes:
    return json.dumps({"type": "train", "epoch": 0, "iteration": iteration, "loss": 1.0}).encode() + b"\n"


def test_resuming_leaves_out_damaged_metrics_lines_keeps_the_file_as_it_was_and_says_so(tmp_path, capsys):
    from segbench_plugins.loggers import JsonlConfig, build_jsonl

    original = (_jsonl_line(1) + b"\xff\n" + _jsonl_line(2) + b"garbage\n" + _jsonl_line(3) + _jsonl_line(5)
                + b'{"type": "train", "iter')  # a non-UTF-8 byte, a stray line, a step after the checkpoint, a cut
    (tmp_path / "metrics.jsonl").write_bytes(original)
    logger = build_jsonl(JsonlConfig(), run_dir=tmp_path)
    logger.start(_start(tmp_path, iteration=4, resumed=True))
    logger.train(TrainStepRecord(epoch=0, iteration=5, loss=2.0, lr=0.1, images_per_s=5.0))
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(r["iteration"], r["loss"]) for r in records] == [(1, 1.0), (2, 1.0), (3, 1.0), (5, 2.0)]
    assert (tmp_path / "metrics.jsonl.damaged").read_bytes() == original
    assert "2 damaged line(s) left out when the run resumed" in capsys.readouterr().err
    # damaged again before the next resume: its copy goes beside the first one, which stays
    again = (tmp_path / "metrics.jsonl").read_bytes() + b"\xfe\n"
    (tmp_path / "metrics.jsonl").write_bytes(again)
    build_jsonl(JsonlConfig(), run_dir=tmp_path).start(_start(tmp_path, iteration=5, resumed=True))
    assert (tmp_path / "metrics.jsonl.damaged").read_bytes() == original
    assert (tmp_path / "metrics.jsonl.damaged.2").read_bytes() == again
    assert f"kept in {tmp_path / 'metrics.jsonl.damaged.2'}" in capsys.readouterr().err


def test_a_metrics_file_cut_short_by_a_crash_resumes_without_a_warning(tmp_path, capsys):
    from segbench_plugins.loggers import JsonlConfig, build_jsonl

    (tmp_path / "metrics.jsonl").write_bytes(_jsonl_line(1) + _jsonl_line(2) + b'{"type": "tr')
    build_jsonl(JsonlConfig(), run_dir=tmp_path).start(_start(tmp_path, iteration=2, resumed=True))
    assert (tmp_path / "metrics.jsonl").read_bytes() == _jsonl_line(1) + _jsonl_line(2)
    assert capsys.readouterr().err == "" and not (tmp_path / "metrics.jsonl.damaged").exists()


def test_a_metrics_file_missing_on_resume_is_said_to_start_there(tmp_path, capsys):
    from segbench_plugins.loggers import CsvConfig, JsonlConfig, build_csv, build_jsonl

    for logger in (build_jsonl(JsonlConfig(), run_dir=tmp_path), build_csv(CsvConfig(), run_dir=tmp_path)):
        logger.start(_start(tmp_path, iteration=4, resumed=True))
    err = capsys.readouterr().err
    assert err.count("was missing when the run resumed at iteration 4") == 2


def test_a_damaged_csv_row_is_left_out_on_resume(tmp_path, capsys):
    from segbench_plugins.loggers import CsvConfig, build_csv

    first = build_csv(CsvConfig(), run_dir=tmp_path)
    first.start(_start(tmp_path))
    for step in (1, 2):
        first.train(TrainStepRecord(epoch=0, iteration=step, loss=1.0, lr=0.1, images_per_s=5.0))
    with open(tmp_path / "metrics.csv", "ab") as handle:
        handle.write(b"\xff,\xfe\n")
    build_csv(CsvConfig(), run_dir=tmp_path).start(_start(tmp_path, iteration=2, resumed=True))
    rows = list(csv.reader((tmp_path / "metrics.csv").open()))
    assert [row[3] for row in rows[1:]] == ["1", "2"]
    assert "1 damaged line(s)" in capsys.readouterr().err
