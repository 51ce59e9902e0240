"""Multi-seed experiments trained end to end (slow: several training runs)."""
from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from segbench.engine.image_scores import FILE_NAME, load_image_scores
from tests.conftest import MINIMAL_RECIPE, REPO

pytestmark = pytest.mark.slow


def test_run_trains_each_seed_in_turn_and_resumes_the_incomplete_one(tmp_path, cli):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(MINIMAL_RECIPE + "seeds: [0, 1]\n")
    runs = tmp_path / "runs"
    status, _, err = cli("run", recipe, "--smoke", "--runs-dir", runs)
    assert status == 0 and "run 2 of 2 (seed=1)" in err
    assert f"statistics across seeds: segbench compare {runs} --include-smoke" in err  # compare leaves smoke out
    folders = sorted(runs.iterdir())
    results = [json.loads((f / "results.json").read_text()) for f in folders]
    assert sorted(r["seed"] for r in results) == [0, 1] and len({r["experiment_hash"] for r in results}) == 1
    for folder, result in zip(folders, results):
        scores = load_image_scores(folder / FILE_NAME)
        assert np.array_equal(scores.global_matrix, np.array(result["confusion_matrix"]))
        assert len(scores.image_ids) == result["report_images"]

    interrupted = next(f for f, r in zip(folders, results) if r["seed"] == 1)
    (interrupted / "results.json").unlink()  # as if it stopped after its last checkpoint
    status, _, err = cli("run", recipe, "--smoke", "--runs-dir", runs)
    assert status == 0 and "already complete" in err
    assert json.loads((interrupted / "results.json").read_text())["resumed"] is True

    status, out, _ = cli("compare", runs, "--resamples", "100", "--include-smoke")
    assert status == 0 and "| r | 0, 1 |" in out
    status, out, _ = cli("plot", *folders, "--out", tmp_path / "curves.png", "--band", "std")
    assert status == 0 and (tmp_path / "curves.png").is_file()


def test_a_clearly_worse_setting_excludes_zero_and_other_seeds_include_it(tmp_path):
    """The quickstart (small schedule: 160 scenes, 10 epochs of batch 8) against a 100x smaller learning rate, and against
    itself with other seeds, 3 seeds each."""
    spec = importlib.util.spec_from_file_location("bench", REPO / "benchmarks" / "bench_seed_significance.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    record = bench.experiments("small", tmp_path)
    worse, again = (record["comparisons"][k] for k in ("worse_minus_quickstart", "other_seeds_minus_quickstart"))
    assert worse["excludes_zero"] and worse["interval"][1] < 0 and worse["seeds_paired"]
    assert not again["excludes_zero"] and not again["seeds_paired"]
