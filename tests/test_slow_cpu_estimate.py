"""The slow-CPU estimate's arithmetic: the first recipe's two lengths extrapolated to its 38 epochs, and the
quickstart scaled by the one measurement on the slow CPU over that prediction."""
import sys

import pytest

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import bench_slow_cpu_estimate as estimate  # noqa: E402


def test_the_quickstart_is_scaled_by_the_anchor_over_the_first_recipes_extrapolated_time(monkeypatch):
    calls = []

    def fake_run(recipe, overrides, log, *, arithmetic=True):
        calls.append((recipe.name, overrides))
        if recipe == estimate.QUICKSTART:
            seconds = {"seed=0": 100.0, "seed=1": 110.0}[overrides[0]]
        else:  # 7 s of start-up and data, 15 s per epoch
            assert recipe.read_text() == estimate.FIRST_RECIPE
            seconds = 7.0 + 15.0 * int(overrides[0].split("=")[1])
        return {"wall_time_s": seconds, "training_time_s": seconds - 5, "mIoU": 0.6, "precision": "fp32"}

    monkeypatch.setattr(estimate, "time_run", fake_run)
    monkeypatch.setattr(estimate.common, "machine", lambda: {"cpu_model": "test"})
    result = estimate.measure("conv", [0, 1], (2, 6), log=lambda message: None)

    assert [name for name, _ in calls] == ["first_quickstart.yaml"] * 2 + ["quickstart.yaml"] * 2
    assert result["first_recipe_seconds_per_epoch"] == pytest.approx(15.0)
    assert result["first_recipe_predicted_s"] == pytest.approx(7.0 + 15.0 * 38)
    scale = 854.0 / (7.0 + 15.0 * 38)
    assert result["scale_to_slow_cpu"] == pytest.approx(scale)
    assert result["quickstart"]["0"]["estimate_s"] == pytest.approx(100.0 * scale)
    assert result["quickstart"]["1"]["estimate_s"] == pytest.approx(110.0 * scale)
    assert "| conv |" in estimate.markdown({"anchor": estimate.ANCHOR, "epochs": [2, 6],
                                           "limits": {"conv": result}})
