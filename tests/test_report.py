"""Result inspection: ``segbench compare``, ``predict`` and ``plot`` on runs trained in seconds."""
import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segbench.cli import build_parser
from segbench.engine.checkpoint import load_checkpoint
from segbench.engine.rundir import RunDir
from segbench.errors import DataError, SegbenchError
from segbench.report.compare import collect_runs, compare_command, csv_table, markdown_tables
from segbench.report.loading import load_run
from segbench.palette import PanelLayout
from segbench.report.plot import plot_runs
from segbench.report.predict import cityscapes_label_for, predict_files, predict_image, read_image
from tests import engine_plugin
from tests.test_evaluate_cli import CITY, CITY_RECIPE, CityBlobs, city_registries, train_toy


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A runs folder: the toy run, the same recipe with another lr, and an interrupted copy."""
    folder = tmp_path_factory.mktemp("report")
    registries = engine_plugin.registries()
    first = train_toy(folder, registries, engine_plugin.RECIPE.replace("epochs: 3", "epochs: 2"))
    second = train_toy(folder, registries, engine_plugin.RECIPE.replace("epochs: 3", "epochs: 1"), name="short.yaml")
    interrupted = RunDir(first.path.parent / "interrupted-0123abcd")
    shutil.copytree(first.path, interrupted.path)
    interrupted.results.unlink()
    lines = interrupted.metrics.read_text().splitlines()
    interrupted.metrics.write_text("\n".join(lines[:4]) + "\n")  # the first four train records
    return folder / "runs", first, second, interrupted, registries


@pytest.fixture(scope="module")
def city_run(tmp_path_factory):
    registries = city_registries()
    return train_toy(tmp_path_factory.mktemp("city"), registries, CITY_RECIPE), registries


def parse(args):
    return build_parser().parse_args([str(a) for a in args])


# ---- compare ----------------------------------------------------------------------------------------

def _markdown_row(text, recipe):
    return next(line for line in text.splitlines() if line.startswith(f"| {recipe} |"))


def test_markdown_rows_show_results_json_rounded_as_percentages(runs):
    folder, first, second, interrupted, _ = runs
    text = markdown_tables(collect_runs(folder))
    for run in (first, second):
        results = run.read_results()
        row = _markdown_row(text, results.recipe)
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[:5] == [results.recipe, "nobn", "scratch", f"{100 * results.mIoU:.2f}%",
                             f"{100 * results.pixel_accuracy:.2f}%"]
        assert cells[5] == f"{results.params:,}" and cells[7] == "–"  # speed not measured
        assert cells[-1].startswith("complete")
        for name, iou in results.per_class_iou.items():
            assert any(line.startswith(f"| {name} |") and f"{100 * iou:.2f}" in line for line in text.splitlines())


def test_finished_runs_best_first_then_the_incomplete_one(runs):
    folder, first, second, interrupted, _ = runs
    rows = collect_runs(folder)
    complete = [r for r in rows if r.complete]
    assert [r.miou for r in complete] == sorted((r.miou for r in complete), reverse=True)
    assert rows[-1].run.path == interrupted.path and not rows[-1].complete
    row = _markdown_row(markdown_tables(rows), "interrupted")
    first_records = [json.loads(line) for line in interrupted.metrics.read_text().splitlines()]
    assert f"incomplete (iteration {first_records[-1]['iteration']}" in row
    assert "| – | – |" in row  # no mIoU, no pixel accuracy


def test_incomplete_progress_falls_back_to_last_checkpoint(runs, tmp_path):
    folder, first, *_ = runs
    run = RunDir(tmp_path / "runs" / "toy-deadbeef")
    shutil.copytree(first.path, run.path)
    run.results.unlink()
    run.metrics.unlink()
    state = load_checkpoint(run.last)["train_state"]
    (row,) = collect_runs(tmp_path / "runs")
    assert (row.epochs, row.iterations) == (state["epoch"], state["iteration"])
    assert row.status.startswith("incomplete") and row.model == "nobn"


@pytest.mark.parametrize("content", ["[1, 2, 3]", '"text"', '{"mIoU": "high"}', '{"per_class_iou": [0.5]}',
                                     "{not json", '{"recipe": 5, "mIoU": 0.5}'])
def test_compare_skips_a_results_file_that_is_not_the_expected_object(runs, tmp_path, capsys, content):
    folder, first, *_ = runs
    shutil.copytree(folder, tmp_path / "runs")
    broken = RunDir(tmp_path / "runs" / first.path.name)
    broken.results.write_text(content)
    rows = {row.name: row for row in collect_runs(tmp_path / "runs")}
    assert not rows[first.path.name].complete and rows[first.path.name].status == "results.json unusable"
    assert sum(row.complete for row in rows.values()) == 1  # the other finished run is still listed
    assert "results.json unusable" in markdown_tables(list(rows.values()))
    warning = capsys.readouterr().err
    assert f"warning: skipping run {broken.path}: {broken.results}" in warning
    assert "move it away and run the same `segbench run` command" in warning


def test_csv_parses_back_to_the_same_numbers(runs):
    folder, first, second, interrupted, _ = runs
    table = list(csv.DictReader(io.StringIO(csv_table(collect_runs(folder)))))
    assert len(table) == 3
    by_run = {row["run"]: row for row in table}
    for run in (first, second):
        results, row = run.read_results(), by_run[run.path.name]
        assert float(row["mIoU"]) == results.mIoU
        assert float(row["pixel_accuracy"]) == results.pixel_accuracy
        assert int(row["params"]) == results.params and float(row["checkpoint_mb"]) == results.checkpoint_mb
        for name, iou in results.per_class_iou.items():
            assert float(row[f"iou_{name}"]) == iou
    assert by_run[interrupted.path.name]["mIoU"] == "" and by_run[interrupted.path.name]["complete"] == "False"


def test_speed_is_measured_on_request(runs, capsys):
    folder, first, *_, registries = runs
    compare_command(parse(["compare", folder, "--speed", "--format", "csv"]), registries=registries)
    table = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert all(float(row["inference_images_per_s"]) > 0 and row["speed_device"] == "cpu" for row in table)
    assert {row["speed_size"] for row in table} == {"16x16"}  # the report images' size


def test_a_damaged_checkpoint_leaves_only_its_own_speed_blank(runs, tmp_path, capsys):
    folder, first, second, *_, registries = runs
    shutil.copytree(folder, tmp_path / "runs")
    for name in ("best.pt", "last.pt"):
        checkpoint = tmp_path / "runs" / first.path.name / "checkpoints" / name
        if checkpoint.is_file():
            checkpoint.write_bytes(checkpoint.read_bytes()[:100])
    compare_command(parse(["compare", tmp_path / "runs", "--speed", "--format", "csv"]), registries=registries)
    out, err = capsys.readouterr()
    assert f"warning: no speed for {first.path.name}: checkpoint" in err and "Traceback" not in err
    assert "high likelihood" not in err  # torch's advice after its first sentence is left out
    speeds = {row["run"]: row["inference_images_per_s"] for row in csv.DictReader(io.StringIO(out))}
    assert speeds[first.path.name] == "" and float(speeds[second.path.name]) > 0


def test_missing_or_empty_runs_folder_is_a_clear_error(cli, tmp_path, monkeypatch):
    status, _, err = cli("compare", tmp_path / "absent")
    assert status == 2 and "absent does not exist" in err
    (tmp_path / "empty").mkdir()
    status, _, err = cli("compare", tmp_path / "empty")
    assert status == 2 and "no runs in" in err
    monkeypatch.setenv("SEGBENCH_RUNS", str(tmp_path / "elsewhere"))
    with pytest.raises(SegbenchError, match="elsewhere does not exist"):
        collect_runs(None)


# ---- predict ----------------------------------------------------------------------------------------

def _save_rgb(path, image_chw):
    Image.fromarray(image_chw.permute(1, 2, 0).numpy()).save(path)
    return path


def test_predict_writes_palette_png_overlay_and_panel(runs, tmp_path):
    _, first, *_, registries = runs
    dataset = engine_plugin.Blobs(engine_plugin.BlobsConfig(split="val", count=2, size=16))
    image, mask = dataset[0]
    image_path = _save_rgb(tmp_path / "street.png", image)
    label_path = tmp_path / "street_label.png"
    Image.fromarray(mask.numpy()).save(label_path)
    wide = tmp_path / "wide.png"  # another size: predictions follow each input's size
    Image.fromarray(np.full((12, 20, 3), 200, np.uint8)).save(wide)

    files = predict_files(first.path, [image_path], tmp_path / "out", labels=[label_path], registries=registries)
    (written,) = files
    loaded, _ = load_run(first.path, registries, checkpoint="best")
    palette = {tuple(c) for c in engine_plugin.INFO.palette}

    pred = Image.open(written.pred)
    assert pred.mode == "P" and pred.size == (16, 16)
    assert np.array_equal(np.array(pred), predict_image(loaded, read_image(image_path)))  # values: train ids
    colours = {tuple(c) for c in np.array(pred.convert("RGB")).reshape(-1, 3)}
    assert colours <= palette
    overlay = Image.open(written.overlay)
    assert overlay.mode == "RGB" and overlay.size == (16, 16)
    panel = Image.open(written.panel)
    layout = PanelLayout.for_image(16, 16)
    assert panel.size[0] == 3 * 16 + 4 * layout.margin and panel.size[1] > 16 + 2 * layout.margin
    x, y = layout.tile_origin(0)
    assert np.array_equal(np.array(panel)[y:y + 16, x:x + 16], image.permute(1, 2, 0).numpy())

    (other,) = predict_files(first.path, [wide], tmp_path / "out", registries=registries)
    assert Image.open(other.pred).size == (20, 12) and other.panel is None


def test_panel_draws_ignored_ground_truth_black(city_run, tmp_path):
    run, registries = city_run
    dataset = CityBlobs(engine_plugin.BlobsConfig(split="val", count=1, size=16))
    image, mask = dataset[0]
    label_ids = np.asarray(CITY.train_to_label_id, dtype=np.uint8)[np.minimum(mask.numpy(), 18)]
    label_ids[mask.numpy() == 255] = 0  # unlabeled
    root = tmp_path / "cs"
    image_path = root / "leftImg8bit" / "val" / "aachen" / "aachen_000000_000019_leftImg8bit.png"
    label_path = root / "gtFine" / "val" / "aachen" / "aachen_000000_000019_gtFine_labelIds.png"
    image_path.parent.mkdir(parents=True)
    label_path.parent.mkdir(parents=True)
    _save_rgb(image_path, image)
    Image.fromarray(label_ids).save(label_path)
    assert cityscapes_label_for(image_path) == label_path

    (written,) = predict_files(run.path, [image_path], tmp_path / "out", registries=registries)
    assert written.panel.name == "aachen_000000_000019_panel.png" and written.label == label_path
    panel = np.array(Image.open(written.panel))
    x, y = PanelLayout.for_image(16, 16).tile_origin(1)
    truth_tile = panel[y:y + 16, x:x + 16]
    ignored = mask.numpy() == 255
    assert ignored.any() and (truth_tile[ignored] == 0).all()
    palette = np.asarray(CITY.palette, dtype=np.uint8)
    assert np.array_equal(truth_tile[~ignored], palette[mask.numpy()[~ignored]])
    colours = {tuple(c) for c in np.array(Image.open(written.pred).convert("RGB")).reshape(-1, 3)}
    assert colours <= {tuple(c) for c in CITY.palette}


def test_predict_errors_name_the_bad_path(runs, tmp_path, capsys):
    _, first, *_, registries = runs
    with pytest.raises(DataError, match="nowhere.png does not exist"):
        predict_files(first.path, [tmp_path / "nowhere.png"], tmp_path / "out", registries=registries)
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("hello")
    with pytest.raises(DataError, match="notes.png cannot be read"):
        predict_files(first.path, [not_an_image], tmp_path / "out", registries=registries)
    image = _save_rgb(tmp_path / "a.png", engine_plugin.Blobs(engine_plugin.BlobsConfig(count=1))[0][0])
    with pytest.raises(SegbenchError, match="1 label file"):
        predict_files(first.path, [image, image.with_name("b.png")], tmp_path / "out", labels=[image],
                      registries=registries)


# ---- plot -------------------------------------------------------------------------------------------

def test_plot_writes_a_png_of_the_configured_size(runs, tmp_path):
    _, first, second, *_ = runs
    own = plot_runs([first.path])
    assert own == first.path / "curves.png"
    before = own.read_bytes()
    out = plot_runs([first.path, second.path])
    assert out == first.path.parent / "curves.png", "the folder holding them, not one run's own figure"
    assert own.read_bytes() == before
    with Image.open(out) as image:
        assert image.size == (1200, 450) and out.stat().st_size > 10_000
    custom = plot_runs([first.path], tmp_path / "small.png", size=(640, 320))
    with Image.open(custom) as image:
        assert image.size == (640, 320)


def test_plot_command_prints_the_path_and_refuses_runs_without_metrics(cli, runs, tmp_path):
    _, first, *_ = runs
    status, out, _ = cli("plot", first.path, "--out", tmp_path / "c.png")
    assert status == 0 and out.strip() == str(tmp_path / "c.png") and (tmp_path / "c.png").is_file()
    (tmp_path / "fresh").mkdir()
    status, _, err = cli("plot", first.path, tmp_path / "fresh")
    assert status == 2 and "no runs in" in err and "fresh" in err
    shutil.copytree(first.path, tmp_path / "started")  # a run that has not logged a step yet
    (tmp_path / "started" / "metrics.jsonl").unlink()
    status, _, err = cli("plot", first.path, tmp_path / "started")
    assert status == 2 and "started has no training metrics" in err


def test_plot_of_a_runs_folder_leaves_out_a_run_that_has_logged_nothing_yet(cli, runs, tmp_path):
    folder = tmp_path / "runs"
    shutil.copytree(runs[0], folder)
    fresh = folder / "fresh-89abcdef"  # started, stopped before its first logged step
    shutil.copytree(runs[1].path, fresh)
    fresh.joinpath("results.json").unlink()
    fresh.joinpath("metrics.jsonl").write_text("")
    status, out, err = cli("plot", folder)
    assert status == 0, err
    assert Path(out.strip()) == folder / "curves.png" and (folder / "curves.png").is_file()
    assert "plot: left out fresh" in err and "has no training metrics yet" in err


def test_a_run_set_aside_by_an_interrupted_restart_is_named_with_how_to_get_it_back(cli, runs, tmp_path):
    from segbench.engine.rundir import PreviousAttempt

    folder = tmp_path / "runs"
    shutil.copytree(runs[0], folder)
    run = RunDir(folder / runs[1].path.name)
    run.lock_file.write_text("")
    assert PreviousAttempt(run).set_aside()  # what `run --restart` does first; then the process was killed
    expected = f"{run.path} was set aside by a `segbench run --restart` that stopped before its first checkpoint"
    for args in (["compare", run.path], ["evaluate", run.path], ["plot", run.path], ["export", run.path]):
        status, _, err = cli(*args)
        assert status == 2 and expected in err and "The next `segbench run` of its recipe puts them back" in err
    status, out, err = cli("compare", folder)
    assert status == 0 and "| short |" in out and f"compare: left out {expected}" in err
    other = next(path for path in folder.iterdir() if path.is_dir() and path != run.path)
    status, _, err = cli("compare", other, run.path)  # two experiments, one of them a run set aside
    assert status == 2 and expected in err


def test_the_printed_next_commands_can_be_pasted_for_a_path_with_spaces(runs, tmp_path, capsys):
    import shlex

    from segbench.engine.runner import _print_summary

    run = RunDir(tmp_path / "my runs ü" / runs[1].path.name)
    shutil.copytree(runs[1].path, run.path)
    _print_summary(run)
    out = capsys.readouterr().out
    command = out.split("curves: ", 1)[1].splitlines()[0]
    assert shlex.split(command) == ["segbench", "plot", str(run.path)]


# ---- end to end on the synthetic Cityscapes tree ------------------------------------------------------

@pytest.mark.slow
def test_inspection_commands_on_a_smoke_run(cli, tmp_path):
    """run --smoke, then evaluate (with labelIds export), predict (labels found in the tree), compare, plot."""
    from segbench.report.evaluate_cli import EXPORT_SUFFIX
    from tests.conftest import REPO

    runs = tmp_path / "runs"
    status, _, err = cli("run", REPO / "recipes" / "quickstart.yaml", "--smoke", "--runs-dir", runs)
    assert status == 0, err
    (run_path,) = runs.iterdir()
    results = json.loads((run_path / "results.json").read_text())

    status, out, err = cli("evaluate", run_path, "--export-labelids", tmp_path / "export")
    assert status == 0, err
    evaluation = json.loads((run_path / "evaluation-report.json").read_text())
    assert evaluation["confusion_matrix"] == results["confusion_matrix"]
    exported = sorted((tmp_path / "export").rglob(f"*{EXPORT_SUFFIX}"))
    assert len(exported) == results["report_images"]

    dataset = load_run(run_path, registries=None)[1]
    image = dataset.image_path(0)
    status, out, err = cli("predict", run_path, image, "--out", tmp_path / "pred")
    assert status == 0, err
    stem = dataset.sample_id(0)
    with Image.open(tmp_path / "pred" / f"{stem}_panel.png") as panel, Image.open(image) as source:
        assert panel.size[0] == 3 * source.size[0] + 4 * PanelLayout.for_image(*source.size).margin

    status, out, _ = cli("compare", runs, "--include-smoke")
    assert status == 0 and f"{100 * results['mIoU']:.2f}%" in out
    status, out, _ = cli("plot", run_path)
    assert status == 0 and Path(out.strip()).is_file()


# ---- provenance -------------------------------------------------------------------------------------

def test_results_record_what_produced_the_run(runs):
    import socket
    import subprocess

    import torch

    from segbench import __version__
    from segbench.cpuinfo import read_cpuinfo

    _, first, _, _, _ = runs
    origin = json.loads(first.results.read_text())["provenance"]
    assert origin["segbench_version"] == __version__
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parents[1], capture_output=True,
                          text=True).stdout.strip()
    assert origin["git_commit"] == head and isinstance(origin["git_dirty"], bool)
    assert {"name": "segbench_plugins.losses", "distribution": "segbench (built-in)",
            "version": __version__} in origin["plugins"]
    assert origin["torch"] == torch.__version__ and origin["cuda"] == torch.version.cuda
    assert origin["cpu_capability"] == torch.backends.cpu.get_cpu_capability() and origin["cpu_model"]
    assert origin["cpu_family_model"] == read_cpuinfo().family_model  # tells apart CPUs sharing a name
    assert origin["host"] == socket.gethostname() and origin["command"]
    assert origin["started_at"] <= origin["finished_at"]  # ISO 8601 in UTC: text order is time order


def test_git_state_of_a_checkout_clean_dirty_and_foreign(tmp_path):
    import subprocess

    from segbench.provenance import git_state

    package = tmp_path / "project" / "segbench"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], cwd=package.parent, check=True)
    subprocess.run([*git, "add", "."], cwd=package.parent, check=True)
    subprocess.run([*git, "commit", "-qm", "x"], cwd=package.parent, check=True)
    commit, dirty = git_state(package)
    assert len(commit) == 40 and dirty is False
    (package / "__init__.py").write_text("changed = True\n")
    assert git_state(package) == (commit, True)
    nested = package / "vendored" / "segbench"  # a copy of segbench inside someone else's repository
    nested.mkdir(parents=True)
    assert git_state(nested) == (None, None)


def test_compare_shows_provenance_fields_as_columns(runs, cli):
    folder, first, _, _, _ = runs
    origin = json.loads(first.results.read_text())["provenance"]
    status, out, err = cli("compare", folder, "--columns", "git_commit,torch", "--columns", "provenance.host")
    assert status == 0, err
    assert out.splitlines()[0].endswith("| git_commit | torch | provenance.host |")
    row = _markdown_row(out, first.read_results().recipe)
    assert row.endswith(f"| {origin['git_commit']} | {origin['torch']} | {origin['host']} |")
    status, out, _ = cli("compare", folder, "--format", "csv", "--columns", "cpu_capability,plugins")
    rows = list(csv.DictReader(io.StringIO(out)))
    finished = [r for r in rows if r["complete"] == "True"]
    assert all(r["cpu_capability"] == origin["cpu_capability"] for r in finished)
    assert "segbench_plugins.losses (segbench (built-in)" in finished[0]["plugins"]
    status, _, err = cli("compare", folder, "--columns", "torhc")
    assert status == 2 and "torhc" in err and "provenance.torch" in err


@pytest.mark.parametrize("error", [PermissionError(1, "Operation not permitted"), OSError(28, "No space left")])
def test_a_figure_that_cannot_be_written_says_why_and_where_else_it_can_go(tmp_path, monkeypatch, error):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    from segbench.report import figure_file

    def refuse(path, write):
        raise error

    monkeypatch.setattr(figure_file, "atomic_write_bytes", refuse)
    figure = pyplot.figure()
    with pytest.raises(SegbenchError) as info:
        figure_file.save_figure(figure, tmp_path / "curves.png", dpi=50)
    pyplot.close(figure)
    message = str(info.value)
    assert message.startswith(f"cannot write {tmp_path / 'curves.png'}: {error.strerror};")
    assert message.endswith("(--out chooses where it goes).")
