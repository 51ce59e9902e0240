"""Every shipped recipe validates, and runs end to end in its --smoke variant."""
from pathlib import Path

import pytest

from segbench.engine.rundir import RunDir
from segbench.engine.runner import run_recipe_file
from segbench.recipe.load import load_recipe
from segbench.recipe.plan import build_plan

RECIPES_DIR = Path(__file__).resolve().parents[1] / "recipes"
RECIPES = sorted(p for p in RECIPES_DIR.rglob("*.yaml") if "_base" not in p.relative_to(RECIPES_DIR).parts)
# The default run smokes the quickstart and a real-time model (stages with their upstream run in-process in
# test_engine.py; ResNet50 models' forward and backward in test_models.py); every recipe, ResNet50 with SyncBN
# included, runs with `pytest -m slow` (and as two processes in test_distributed).
DEFAULT_SMOKE = {"quickstart", "synthetic_city/fast_scnn"}


def _recipe_id(path: Path) -> str:
    return path.relative_to(RECIPES_DIR).with_suffix("").as_posix()


def _smoke_params():
    return [pytest.param(path, id=_recipe_id(path), marks=[] if _recipe_id(path) in DEFAULT_SMOKE
                         else [pytest.mark.slow]) for path in RECIPES]


def test_the_recipe_set_is_complete():
    assert DEFAULT_SMOKE <= {_recipe_id(p) for p in RECIPES}
    names = {p.stem for p in RECIPES}
    assert {"quickstart", "unet_scratch", "unet_coarse", "unet_coarse_fine", "deeplab_scratch", "deeplab_coarse",
            "deeplab_coarse_fine", "deeplab_pretrained", "deeplabv3plus_r50_poly_80k"} <= names
    assert any(name.startswith("seed_deeplabv3_") for name in names)


@pytest.mark.parametrize("path", RECIPES, ids=_recipe_id)
def test_recipe_validates_and_has_a_header(path, registries):
    build_plan(load_recipe(path), registries)
    header = path.read_text().splitlines()[0]
    assert header.startswith("# "), "each recipe starts with a comment saying what it is"


@pytest.mark.parametrize("path", _smoke_params())
def test_recipe_runs_in_smoke_mode(path, tmp_path):
    run, = run_recipe_file(path, runs_dir=tmp_path, smoke=True, progress=False, seeds=(0,))
    results = run.read_results()
    assert 0.0 <= results.mIoU <= 1.0
    upstream = load_recipe(path).data.get("strategy", {}).get("name") == "finetune"
    if upstream:  # both stages ran: the coarse one first, then this one
        assert len([d for d in tmp_path.iterdir() if RunDir(d).is_complete()]) == 2
