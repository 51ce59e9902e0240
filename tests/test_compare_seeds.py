"""``segbench compare`` across seeds and ``compare A B``, on run directories written without training."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import yaml
from hypothesis import given
from hypothesis import strategies as st

from segbench.engine.image_scores import FILE_NAME, load_image_scores, save_image_scores
from segbench.errors import SegbenchError
from segbench.functional.merge import content_hash
from segbench.functional.metrics import confusion_matrix, summarize
from segbench.records import ResultsRecord, write_record
from tests.conftest import results_record

CLASSES = ("road", "car", "sky")


def fake_run(runs, recipe: str, seed: int, matrices: np.ndarray, *, lr: float = 1.0e-3, classes=CLASSES,
             per_seed: dict | None = None):
    """A complete run directory as ``segbench run`` writes it: recipe.yaml, per-image matrices, results.
    ``per_seed``: more of its recipe.yaml, which varies with the seed as the seed does (left out of the hashes)."""
    data = {"seed": seed, "model": {"name": "unet"}, "optimizer": {"name": "adamw", "lr": lr}}
    digest = content_hash(data)
    folder = runs / f"{recipe}-{digest[:8]}"
    folder.mkdir(parents=True)
    (folder / "recipe.yaml").write_text(yaml.safe_dump({**data, **(per_seed or {})}))
    ids = [f"img{i:03d}" for i in range(len(matrices))]
    save_image_scores(folder / FILE_NAME, torch.from_numpy(matrices), ids, classes)
    total = torch.from_numpy(matrices.sum(axis=0))
    results = results_record(
        recipe=recipe, recipe_hash=digest, **summarize(total, classes), confusion_matrix=total.tolist(),
        report_split={"split": "val"}, selection_split={"split": "train"}, report_images=len(matrices),
        checkpoint=str(folder / "checkpoints" / "best.pt"), seed=seed,
        experiment_hash=content_hash(data, exclude=("seed", "slurm")), per_image_confusion=FILE_NAME)
    write_record(folder / "results.json", results)
    return folder


def predictions(rng, target, error_rate):
    flip = rng.random(target.shape) < error_rate
    pred = np.where(flip, rng.integers(0, len(CLASSES), size=target.shape), target)
    return np.stack([confusion_matrix(torch.from_numpy(p), torch.from_numpy(t), num_classes=len(CLASSES)).numpy()
                     for p, t in zip(pred, target)])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """good (seeds 0-5, 20% wrong pixels), worse (seeds 0-2, 45% wrong pixels), on the same 40 images."""
    rng = np.random.default_rng(0)
    target = rng.integers(0, len(CLASSES), size=(40, 8, 8))
    folder = tmp_path_factory.mktemp("runs")
    for seed in range(6):
        fake_run(folder, "good", seed, predictions(rng, target, 0.2))
    for seed in range(3):
        fake_run(folder, "worse", seed, predictions(rng, target, 0.45), lr=1.0e-5)
    return folder


def test_runs_of_one_experiment_are_grouped_with_mean_std_and_interval(runs, cli):
    status, out, _ = cli("compare", runs, "--resamples", "300")
    assert status == 0
    table = out.split("Experiments:")[1]
    good = next(line for line in table.splitlines() if line.startswith("| good |"))
    assert "0, 1, 2, 3, 4, 5" in good and "±" in good and good.count("[") == 1
    assert "Per-class IoU (%), mean ± standard deviation across seeds" in table


def test_experiments_as_csv_match_the_runs_and_the_markdown_table(runs, cli):
    import csv
    import io

    status, out, err = cli("compare", runs, "--experiments", "--format", "csv", "--resamples", "300")
    assert status == 0, err
    rows = {row["experiment"]: row for row in csv.DictReader(io.StringIO(out))}
    assert set(rows) == {"good", "worse"} and rows["good"]["seeds"] == "0 1 2 3 4 5"
    records = [ResultsRecord.from_json(f.read_text()) for f in runs.glob("*/results.json")]
    for label, row in rows.items():
        mious = [r.mIoU for r in records if r.recipe == label]
        assert float(row["mIoU_mean"]) == pytest.approx(np.mean(mious))
        assert float(row["mIoU_std"]) == pytest.approx(np.std(mious, ddof=1))
        assert float(row["mIoU_low"]) <= float(row["mIoU_mean"]) <= float(row["mIoU_high"])
        for index, name in enumerate(CLASSES):
            ious = [r.per_class_iou[name] for r in records if r.recipe == label]
            assert float(row[f"iou_{name}_mean"]) == pytest.approx(np.mean(ious))
    status, markdown, _ = cli("compare", runs, "--experiments", "--resamples", "300")
    good = next(line for line in markdown.splitlines() if line.startswith("| good |"))
    assert status == 0 and markdown.lstrip().startswith("Experiments:")
    low, high = (100 * float(rows["good"][key]) for key in ("mIoU_low", "mIoU_high"))
    assert f"[{low:.2f}, {high:.2f}]" in good


def test_a_one_seed_experiment_is_marked_as_image_sampling_only(runs, cli, tmp_path):
    import shutil

    shutil.copytree(runs, tmp_path / "runs")
    for folder in (tmp_path / "runs").glob("worse-*"):
        if '"seed": 0' not in (folder / "results.json").read_text():
            shutil.rmtree(folder)
    status, out, _ = cli("compare", tmp_path / "runs", "--resamples", "100")
    table = out.split("Experiments:")[1]
    worse = next(line for line in table.splitlines() if line.startswith("| worse |"))
    good = next(line for line in table.splitlines() if line.startswith("| good |"))
    assert status == 0 and "] ‡ |" in worse and "‡" not in good
    assert "‡ one seed: the interval covers image sampling only" in table


def test_a_clearly_worse_experiment_excludes_zero(runs, cli):
    status, out, _ = cli("compare", "good:0,1,2", "worse", "--runs-dir", runs, "--resamples", "500")
    assert status == 0
    miou = next(line for line in out.splitlines() if line.startswith("| mIoU |"))
    assert "excludes 0" in miou and "seeds paired" in out
    assert "B scores lower than A" in out and "excludes zero" in out
    assert all(f"| {name} |" in out for name in CLASSES)


def test_the_difference_as_csv_matches_the_markdown_table_and_the_runs(runs, cli):
    import csv
    import io

    args = ("compare", "good:0,1,2", "worse", "--runs-dir", runs, "--resamples", "300")
    status, out, err = cli(*args, "--format", "csv")
    assert status == 0, err
    rows = {row["metric"]: row for row in csv.DictReader(io.StringIO(out))}
    assert set(rows) == {"mIoU", "pixel_accuracy", *(f"iou_{name}" for name in CLASSES)}
    miou = rows["mIoU"]
    assert (miou["a"], miou["b"], miou["a_seeds"], miou["b_seeds"]) == ("good:0,1,2", "worse", "0 1 2", "0 1 2")
    records = [ResultsRecord.from_json(f.read_text()) for f in runs.glob("*/results.json")]
    mean = {label: np.mean([r.mIoU for r in records if r.recipe == label and r.seed in (0, 1, 2)])
            for label in ("good", "worse")}
    assert float(miou["a_mean"]) == pytest.approx(mean["good"])
    assert float(miou["b_mean"]) == pytest.approx(mean["worse"])
    assert float(miou["difference"]) == pytest.approx(mean["worse"] - mean["good"])
    assert float(miou["low"]) <= float(miou["difference"]) <= float(miou["high"]) < 0
    assert miou["excludes_zero"] == "True"
    markdown = cli(*args)[1]
    line = next(line for line in markdown.splitlines() if line.startswith("| mIoU |"))
    assert f"[{100 * float(miou['low']):+.2f}, {100 * float(miou['high']):+.2f}]" in line
    status, _, err = cli("compare", "good", "worse", "--runs-dir", runs, "--columns", "torch")
    assert status == 2 and "--columns" in err and "runs directory" in err


def test_the_same_experiment_with_other_seeds_includes_zero(runs, cli, tmp_path):
    forest = tmp_path / "forest.png"
    status, out, _ = cli("compare", "good:0,1,2", "good:3,4,5", "--runs-dir", runs, "--resamples", "500",
                         "--forest", forest)
    assert status == 0 and "includes zero" in out and "resampled independently" in out
    assert forest.read_bytes().startswith(b"\x89PNG")


def test_identical_experiments_differ_by_exactly_zero(runs, cli):
    status, out, _ = cli("compare", "good", "good", "--runs-dir", runs, "--resamples", "100")
    miou = next(line for line in out.splitlines() if line.startswith("| mIoU |"))
    assert status == 0 and "| +0.00 | [+0.00, +0.00] | includes 0 |" in miou


def test_the_same_bootstrap_seed_gives_the_same_table(runs, cli):
    outs = [cli("compare", "good", "worse", "--runs-dir", runs, "--resamples", "200", "--bootstrap-seed", seed)[1]
            for seed in ("1", "1", "2")]
    assert outs[0] == outs[1] != outs[2]


def test_two_run_directories_can_be_compared(runs, cli):
    good = sorted(runs.glob("good-*"))[0]
    worse = sorted(runs.glob("worse-*"))[0]
    status, out, _ = cli("compare", good, worse, "--resamples", "100")
    assert status == 0 and "single seed" in out


@pytest.mark.parametrize("args, message", [
    (["nothing", "good"], "experiments: good, worse"),
    (["good:7", "worse"], "no complete run of seed(s) [7]"),
    (["good:", "worse"], "no seeds after the colon"),
    (["good", "worse", "--confidence", "2"], "between 0 and 1"),
])
def test_bad_targets_exit_2_with_what_exists(runs, cli, args, message):
    status, _, err = cli("compare", *args, "--runs-dir", runs)
    assert status == 2 and message in err


def test_experiments_of_one_recipe_say_which_settings_tell_them_apart(cli, tmp_path):
    rng = np.random.default_rng(0)
    target = rng.integers(0, len(CLASSES), size=(10, 8, 8))
    for lr, seeds in ((1.0e-3, (0, 1)), (1.0e-2, (1, 2))):  # two grid points of one recipe, two seeds each
        for seed in seeds:
            # images chosen with the run's seed, as --smoke does: alike in no experiment, so not what sets one apart
            fake_run(tmp_path, "sweep", seed, predictions(rng, target, 0.3), lr=lr,
                     per_seed={"data": {"report": {"subset": {"random": 4, "seed": seed}}}})
    status, out, err = cli("compare", tmp_path, "--resamples", "100")
    assert status == 0, err
    labels = sorted({line.split(" | ")[0].lstrip("| ") for line in out.splitlines() if line.startswith("| sweep~")})
    assert len(labels) == 2
    said = {line.split(": ")[0]: line.split(": ")[1] for line in out.splitlines() if line.startswith("sweep~")}
    assert sorted(said.values()) == ["optimizer.lr=0.001", "optimizer.lr=0.01"] and sorted(said) == labels


def test_a_runs_folder_given_twice_differently_is_refused_and_once_is_tabulated(runs, cli, tmp_path):
    status, _, err = cli("compare", runs, "--runs-dir", tmp_path)
    assert status == 2 and "give one of them" in err
    status, out, _ = cli("compare", runs, "--runs-dir", runs)
    assert status == 0 and "good" in out and "worse" in out


def test_runs_without_per_image_matrices_are_listed_without_an_interval(tmp_path, cli):
    rng = np.random.default_rng(1)
    target = rng.integers(0, len(CLASSES), size=(5, 4, 4))
    for seed in (0, 1):
        folder = fake_run(tmp_path, "old", seed, predictions(rng, target, 0.3))
        (folder / FILE_NAME).unlink()
    status, out, _ = cli("compare", tmp_path)
    assert status == 0 and "| old | 0, 1 |" in out and "† old:" in out and "does not exist" in out


def test_a_damaged_per_image_file_is_an_error_naming_it(tmp_path):
    (tmp_path / FILE_NAME).write_bytes(b"not a zip")
    with pytest.raises(SegbenchError, match=r"not a readable per-image confusion file \(not a NumPy .npz") as info:
        load_image_scores(tmp_path / FILE_NAME)
    assert "unsafely" not in str(info.value)  # NumPy's advice to load it as a pickle is not passed on
    save_image_scores(tmp_path / FILE_NAME, -torch.ones(1, 3, 4, dtype=torch.int64), ["a"], CLASSES)
    with pytest.raises(SegbenchError, match="negative pixel counts"):
        load_image_scores(tmp_path / FILE_NAME)


@given(st.integers(1, 6), st.integers(0, 2**32 - 1))
def test_per_image_matrices_sum_to_the_global_one(images, seed):
    rng = np.random.default_rng(seed)
    target = torch.from_numpy(rng.integers(0, 5, size=(images, 6, 7)))  # 4: ignored (not a class)
    pred = torch.from_numpy(rng.integers(-1, 6, size=(images, 6, 7)))  # out-of-range predictions too
    per_image = [confusion_matrix(p, t, num_classes=4, ignore_index=4) for p, t in zip(pred, target)]
    assert torch.equal(torch.stack(per_image).sum(0), confusion_matrix(pred, target, num_classes=4, ignore_index=4))


def test_evaluation_keeps_one_matrix_per_image_in_dataset_order():
    from segbench.engine.evaluate import evaluate_per_image
    from segbench.engine.runtime import Runtime
    from segbench.recipe.schema import EvaluationConfig

    class Items(torch.utils.data.Dataset):
        def __init__(self):
            g = torch.Generator().manual_seed(0)
            self.images = torch.rand(5, 3, 4, 6, generator=g)
            self.masks = torch.randint(0, 3, (5, 4, 6), generator=g, dtype=torch.int64).to(torch.uint8)

        def __len__(self):
            return 5

        def __getitem__(self, i):
            return self.images[i], self.masks[i]

    model = torch.nn.Conv2d(3, 3, 1)
    data = Items()
    per_image = evaluate_per_image(model, data, lambda image, mask, g: (image, mask),
                                   config=EvaluationConfig(batch_size=2), num_classes=3, ignore_index=255,
                                   runtime=Runtime(torch.device("cpu")), progress=False)
    with torch.no_grad():
        preds = model(data.images).argmax(1)
    for i in range(5):
        assert torch.equal(per_image[i], confusion_matrix(preds[i], data.masks[i], num_classes=3))
    assert not math.isnan(float(per_image.sum()))


def test_a_per_image_file_from_another_run_is_not_taken_for_this_runs(runs, cli, tmp_path):
    import shutil

    shutil.copytree(runs, tmp_path / "runs")
    good = sorted((tmp_path / "runs").glob("good-*"))
    worse = sorted((tmp_path / "runs").glob("worse-*"))
    shutil.copy(worse[0] / FILE_NAME, good[1] / FILE_NAME)  # results.json still holds good's own scores
    status, out, _ = cli("compare", tmp_path / "runs", "--resamples", "100")
    table = out.split("Experiments:")[1]
    row = next(line for line in table.splitlines() if line.startswith("| good |"))
    assert status == 0 and row.count("†") == 1
    assert row.count(" ± ") == 2, "no interval, but mean ± std of mIoU and pixel accuracy from the runs' results"
    assert f"{good[1] / FILE_NAME} gives mIoU" in table and "the file belongs to another run or is damaged" in table
    status, _, err = cli("compare", good[0], good[1])
    assert status == 2 and "belongs to another run" in err and "Traceback" not in err


def test_a_copied_run_folder_counts_its_seed_once(runs, cli, tmp_path):
    import shutil

    shutil.copytree(runs, tmp_path / "runs")
    original = sorted((tmp_path / "runs").glob("worse-*"))[0]
    shutil.copytree(original, tmp_path / "runs" / "a-copy")  # sorts first, named unlike a run
    status, out, err = cli("compare", tmp_path / "runs", "--resamples", "100")
    row = next(line for line in out.split("Experiments:")[1].splitlines() if line.startswith("| worse |"))
    assert status == 0 and "| 0, 1, 2 |" in row, row
    assert f"compare: left out {tmp_path / 'runs' / 'a-copy'}: the same run" in err and str(original) in err


def test_too_few_resamples_for_an_interval_are_refused(runs, cli):
    status, _, err = cli("compare", runs, "--resamples", "10")
    assert status == 2 and "--resamples: 10 is out of range: give 100 to" in err
