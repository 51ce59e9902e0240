"""``compare``, ``report`` and ``plot`` on damaged, odd or mixed run folders: a bad run is skipped with a warning
naming it (or the command exits 2 saying what to fix), never a traceback; the good runs are still shown."""
from __future__ import annotations

import json

import attrs
import numpy as np
import pytest

from segbench.records import TrainStepRecord, metrics_line
from tests.test_compare_seeds import fake_run, predictions


@pytest.fixture
def two_runs(tmp_path):
    """``good`` and ``other``, one seed each, on the same 6 images of 3 classes."""
    rng = np.random.default_rng(0)
    target = rng.integers(0, 3, size=(6, 4, 4))
    runs = tmp_path / "my runs ü"  # a space and a non-ASCII letter in the path
    good = fake_run(runs, "good", 0, predictions(rng, target, 0.2))
    other = fake_run(runs, "other", 0, predictions(rng, target, 0.4), lr=1.0e-5)
    return runs, good, other


def _edit_results(run, **changes):
    data = json.loads((run / "results.json").read_text())
    for key, value in changes.items():
        if key == "road":
            data["per_class_iou"]["road"] = value
        else:
            data[key] = value
    (run / "results.json").write_text(json.dumps(data))  # json writes NaN as the bare word NaN


@pytest.mark.parametrize("damage", [
    pytest.param(lambda run: (run / "results.json").write_bytes(b"\xf2\x81 not text \xff"), id="not-utf8"),
    pytest.param(lambda run: _edit_results(run, mIoU=float("nan")), id="nan-miou"),
    pytest.param(lambda run: _edit_results(run, road=float("nan")), id="nan-class-iou"),
    pytest.param(lambda run: _edit_results(run, pixel_accuracy=1.5), id="accuracy-over-1"),
    pytest.param(lambda run: _edit_results(run, confusion_matrix=[[-1, 0, 0, 0]] * 3), id="negative-count"),
])
def test_a_damaged_results_file_is_skipped_naming_it(two_runs, cli, damage):
    runs, good, other = two_runs
    damage(good)
    for args in (["compare", runs], ["compare", runs, "--format", "csv"]):
        status, out, err = cli(*args)
        assert status == 0, err
        assert f"warning: skipping run {good}: {good / 'results.json'}" in err and "Traceback" not in err
        assert "results.json unusable" in out and "other" in out  # the good run is still in the table
        assert ".." not in err.replace(str(runs), "")


def test_damaged_results_do_not_stop_the_html_report(two_runs, cli, tmp_path):
    runs, good, other = two_runs
    (good / "results.json").write_bytes(b"\x89PNG\r\n\x1a\n")
    status, _, err = cli("report", runs, "--out", tmp_path / "report")
    assert status == 0 and f"skipping run {good}: {good / 'results.json'}" in err
    assert "other" in (tmp_path / "report" / "index.html").read_text(encoding="utf-8")


@pytest.mark.parametrize("content", [b"\xff\xfe\x00garbage", b"model: [unclosed\n"])
def test_an_unreadable_recipe_is_a_warning_and_the_results_still_show(two_runs, cli, content):
    runs, good, _ = two_runs
    (good / "recipe.yaml").write_bytes(content)
    status, out, err = cli("compare", runs)
    assert status == 0 and f"warning: {good / 'recipe.yaml'} is unreadable" in err and "Traceback" not in err
    assert "| good |" in out


def test_a_damaged_metrics_log_is_a_clear_error_for_plot(two_runs, cli, tmp_path):
    runs, good, _ = two_runs
    (good / "metrics.jsonl").write_bytes(b"\xf2\x81\x00" * 50)
    status, _, err = cli("plot", good, "--out", tmp_path / "curves.png")
    assert status == 2 and "no training metrics" in err and "Traceback" not in err


def test_a_column_the_runs_record_as_null_is_shown_not_refused(two_runs, cli):
    runs, *_ = two_runs  # class_weights is null in both runs: the key exists
    status, out, err = cli("compare", runs, "--columns", "class_weights", "--format", "csv")
    assert status == 0, err
    assert out.splitlines()[0].split(",").count("class_weights") == 1
    status, _, err = cli("compare", runs, "--columns", "class_weight")
    assert status == 2 and "no run's results.json has it" in err


def test_a_single_run_directory_is_a_table_of_that_run(two_runs, cli, tmp_path):
    runs, good, _ = two_runs
    status, out, err = cli("compare", good)
    assert status == 0, err
    assert "| good |" in out and "| other |" not in out
    status, _, err = cli("report", good, "--out", tmp_path / "one")
    assert status == 0, err
    assert "good" in (tmp_path / "one" / "index.html").read_text(encoding="utf-8")


def test_experiments_of_different_class_sets_label_each_class_by_its_own_name(tmp_path, cli):
    rng = np.random.default_rng(3)
    target = rng.integers(0, 3, size=(6, 4, 4))
    for seed in (0, 1):
        fake_run(tmp_path, "city", seed, predictions(rng, target, 0.1))
        fake_run(tmp_path, "indoor", seed, predictions(rng, target, 0.1), lr=0.5, classes=("wall", "floor", "bed"))
    status, out, err = cli("compare", tmp_path)
    assert status == 0, err
    table = out[out.index("Per-class IoU (%), mean"):].splitlines()
    rows = {line.split(" | ")[0].strip("| "): line for line in table if line.startswith("| ")}
    assert set(rows) >= {"road", "car", "sky", "wall", "floor", "bed"}
    header = [cell.strip() for cell in rows["class"].strip("|").split("|")]
    city, indoor = header.index("city"), header.index("indoor")
    for name in ("road", "car", "sky"):
        cells = [cell.strip() for cell in rows[name].strip("|").split("|")]
        assert cells[city] != "–" and cells[indoor] == "–"
    for name in ("wall", "floor", "bed"):
        cells = [cell.strip() for cell in rows[name].strip("|").split("|")]
        assert cells[indoor] != "–" and cells[city] == "–"
    status, _, err = cli("compare", "city", "indoor", "--runs-dir", tmp_path)
    assert status == 2 and "score different classes" in err


def test_plot_of_a_runs_folder_draws_its_runs(two_runs, cli):
    runs, good, other = two_runs
    for run in (good, other):
        (run / "metrics.jsonl").write_text("".join(metrics_line(TrainStepRecord(
            epoch=0, iteration=step, loss=1.0 / step, lr=0.1, images_per_s=1.0)) for step in (1, 2)))
    status, out, err = cli("plot", runs)
    assert status == 0, err
    assert out.strip() == str(runs / "curves.png") and (runs / "curves.png").stat().st_size > 0


def test_report_says_why_a_finished_run_has_no_prediction_panels(two_runs, cli, tmp_path):
    runs, good, _ = two_runs  # fake runs have results but no checkpoints
    status, _, err = cli("report", runs, "--out", tmp_path / "report")
    assert status == 0, err
    page = (tmp_path / "report" / "index.html").read_text(encoding="utf-8")
    assert f"no prediction panels: {good / 'checkpoints'} holds no best.pt or last.pt" in page


def test_a_folder_where_the_page_goes_is_named_not_the_temp_file(two_runs, cli, tmp_path):
    runs, *_ = two_runs
    (tmp_path / "report" / "index.html").mkdir(parents=True)
    status, _, err = cli("report", runs, "--out", tmp_path / "report", "--images", "0")
    assert status == 2 and f"{tmp_path / 'report' / 'index.html'}: Is a directory" in err
    assert ".tmp" not in err and "Traceback" not in err


def test_a_damaged_results_file_says_how_to_write_it_again_and_a_newer_one_does_not(two_runs, cli):
    runs, good, other = two_runs
    (good / "results.json").write_text("{cut sho")
    _edit_results(other, schema_version=99)
    status, _, err = cli("compare", runs)
    assert status == 0
    damaged = next(line for line in err.splitlines() if str(good) in line)
    newer = next(line for line in err.splitlines() if str(other) in line)
    assert "move it away and run the same `segbench run` command" in damaged
    assert "Upgrade segbench" in newer and "move it away" not in newer


def test_a_damaged_metrics_line_is_skipped_naming_it_and_the_tables_still_show(two_runs, cli, tmp_path):
    runs, good, _ = two_runs
    lines = [metrics_line(TrainStepRecord(epoch=0, iteration=step, loss=1.0, lr=0.1, images_per_s=1.0))
             for step in (1, 2)]
    lines.insert(1, '{"type": "train", "epoch": "x", "iteration": 5, "loss": 1, "lr": 1, "images_per_s": 1}\n')
    (good / "metrics.jsonl").write_text("".join(lines))
    (good / "results.json").unlink()  # an unfinished run: its progress comes from metrics.jsonl
    status, out, err = cli("compare", runs)
    assert status == 0, err
    assert f"skipped 1 damaged line(s) of {good / 'metrics.jsonl'} (line 2;" in err
    assert "incomplete (iteration 2, 0 epoch(s) done)" in out
    status, _, err = cli("plot", good, "--out", tmp_path / "curves.png")
    assert status == 0 and "damaged line" in err


def test_report_shows_benchmarked_latency_like_compare(two_runs, cli, tmp_path):
    from segbench.report.latency import LatencyRecord, result_file_name
    from segbench.report.timing import Timing

    runs, good, other = two_runs
    timing = Timing(p50_ms=12.5, p90_ms=14.0, mean_ms=13.0, min_ms=12.0, repeats=20, images_per_s=80.0)
    record = LatencyRecord(
        target=str(good), model="unet", backend="onnxruntime", device="cpu", precision="fp32", channels_last=False,
        batch=1, input_size=(4, 4), num_classes=3, threads=1, cpu="a CPU", instruction_set="AVX2", gpu=None,
        warmup=3, model_only=timing, end_to_end=Timing(**{**attrs.asdict(timing), "images_per_s": 64.0}),
        timed_model_only="", timed_end_to_end="", not_timed="", torch_version="", onnxruntime_version="",
        measured_at="")
    (good / result_file_name("onnxruntime")).write_text(json.dumps(record.to_dict()))
    status, _, err = cli("report", runs, "--out", tmp_path / "report", "--images", "0")
    assert status == 0, err
    page = (tmp_path / "report" / "index.html").read_text(encoding="utf-8")
    assert "onnxruntime ms (model, p50)" in page and "onnxruntime FPS (end to end)" in page
    assert '<td class="num" data-value="12.5">12.50</td><td class="num" data-value="64.0">64.0</td>' in page


def test_an_output_path_never_replaces_a_file_the_run_keeps(two_runs, cli, tmp_path):
    runs, good, other = two_runs
    kept = {name: (good / name).read_bytes() for name in ("results.json", "recipe.yaml")}
    (good / "metrics.jsonl").write_text(metrics_line(TrainStepRecord(epoch=0, iteration=1, loss=1.0, lr=0.1,
                                                                     images_per_s=1.0)))
    for args in (["plot", good, "--out", good / "results.json"],
                 ["plot", "--pareto", runs, "--out", good / "recipe.yaml"],
                 ["compare", good, other, "--forest", good / "results.json"]):
        status, out, err = cli(*args)
        assert status == 2 and "would overwrite the run's own" in err and "choose another file name" in err, args
        assert "B − A" not in out  # refused before the work, not after it
    assert {name: (good / name).read_bytes() for name in kept} == kept
    status, _, err = cli("plot", good, "--out", good / "my curves.png")  # a new file in the run folder is fine
    assert status == 0, err


def test_an_output_file_under_a_file_or_naming_a_folder_is_refused_before_the_work(two_runs, cli, tmp_path):
    runs, good, other = two_runs
    (good / "metrics.jsonl").write_text(metrics_line(TrainStepRecord(epoch=0, iteration=1, loss=1.0, lr=0.1,
                                                                     images_per_s=1.0)))
    a_file = tmp_path / "afile"
    a_file.write_text("kept")
    for args in (["export", good, "--out", a_file / "sub" / "x.onnx"],
                 ["plot", good, "--out", a_file / "curves.png"],
                 ["compare", good, other, "--forest", a_file / "forest.png"]):
        status, out, err = cli(*args)
        assert status == 2 and f"{a_file} is a file, so no folder can be made there" in err, (args, err)
        assert "B − A" not in out
    a_folder = tmp_path / "figures.png"
    a_folder.mkdir()
    for args in (["export", good, "--out", a_folder], ["plot", good, "--out", a_folder]):
        status, _, err = cli(*args)
        assert status == 2 and f"{a_folder} is a folder; give a file path in it" in err, (args, err)
    assert a_file.read_text() == "kept"


def test_a_folder_named_results_json_is_a_warning(two_runs, cli):
    runs, good, _ = two_runs
    (good / "results.json").unlink()
    (good / "results.json").mkdir()
    status, out, err = cli("compare", runs)
    assert status == 0 and f"warning: {good / 'results.json'} is not a file" in err and "| other |" in out
