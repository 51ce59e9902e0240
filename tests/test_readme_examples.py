"""The README's examples work as printed: its recipe-format example is a valid recipe, its plugin installs."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

from tests.conftest import REPO


def _block(section: str, language: str) -> str:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    text = readme.split(section, 1)[1]
    return re.search(rf"```{language}\n(.*?)```", text, re.S).group(1)


def test_the_recipe_format_example_is_a_valid_recipe(cli, tmp_path):
    text = _block("## Recipe format", "yaml")
    assert text.startswith("base: _base/cityscapes.yaml")
    shutil.copytree(REPO / "recipes" / "_base", tmp_path / "_base")  # its base:, beside it as in recipes/
    recipe = tmp_path / "example.yaml"
    recipe.write_text(text, encoding="utf-8")
    status, out, err = cli("show", recipe)
    assert status == 0, err
    assert "random: 300" in out and "cities" not in out.split("train:", 1)[1].split("select:", 1)[0]


def test_the_plugin_example_installs_as_written_and_its_model_trains_from_a_recipe(tmp_path):
    """The module and pyproject.toml of "Writing a plugin", installed by pip: listed, and usable by a recipe."""
    from tests.conftest import MINIMAL_RECIPE

    package = tmp_path / "package"
    package.mkdir()
    (package / "my_segbench_models.py").write_text(_block("## Writing a plugin", "python"))
    (package / "pyproject.toml").write_text(_block("## Writing a plugin", "toml"))
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(site), str(package)], check=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    env.pop("SEGBENCH_DISABLE_PLUGIN_AUTOLOAD", None)

    def segbench(*args):
        return subprocess.run([sys.executable, "-m", "segbench.cli", *map(str, args)], capture_output=True,
                              text=True, env=env, cwd=tmp_path, timeout=300)

    listed = segbench("list", "models")
    assert listed.returncode == 0 and "my_fcn" in listed.stdout and "my_models" in listed.stdout, listed.stderr
    recipe = tmp_path / "mine.yaml"
    recipe.write_text(MINIMAL_RECIPE.replace("{name: unet, width: 8}", "{name: my_fcn, channels: 16}"))
    trained = segbench("run", "--smoke", recipe, "--runs-dir", tmp_path / "runs", "trainer.max_iterations=2")
    assert trained.returncode == 0, trained.stderr[-2000:]
