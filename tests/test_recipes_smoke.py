"""Every shipped recipe validates, and runs end to end in its --smoke variant."""
from pathlib import Path

import pytest

from segbench.engine.rundir import RunDir
from segbench.engine.runner import run_recipe_file
from segbench.recipe.load import load_recipe
from segbench.recipe.plan import build_plan

RECIPES = sorted((Path(__file__).resolve().parents[1] / "recipes").glob("*.yaml"))


def test_the_recipe_set_is_complete():
    names = {p.stem for p in RECIPES}
    assert {"quickstart", "unet_scratch", "unet_coarse", "unet_coarse_fine", "deeplab_scratch", "deeplab_coarse",
            "deeplab_coarse_fine", "deeplab_pretrained", "deeplabv3plus_r50_poly_80k"} <= names
    assert any(name.startswith("seed_deeplabv3_") for name in names)


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_validates_and_has_a_header(path, registries):
    build_plan(load_recipe(path), registries)
    header = path.read_text().splitlines()[0]
    assert header.startswith("# "), "each recipe starts with a comment saying what it is"


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_runs_in_smoke_mode(path, tmp_path):
    run, = run_recipe_file(path, runs_dir=tmp_path, smoke=True, progress=False, seeds=(0,))
    results = run.read_results()
    assert 0.0 <= results.mIoU <= 1.0
    upstream = load_recipe(path).data.get("strategy", {}).get("name") == "finetune"
    if upstream:  # both stages ran: the coarse one first, then this one
        assert len([d for d in tmp_path.iterdir() if RunDir(d).is_complete()]) == 2
