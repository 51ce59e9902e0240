"""Commands that draw no image do not load torchvision (a second of start-up, most of a `segbench list`)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO

PROBE = """
import sys
from segbench.cli import main
status = main(sys.argv[1:])
print("torchvision" in sys.modules)
"""


@pytest.mark.parametrize("command", [
    ["list", "models"],
    ["show", str(REPO / "recipes" / "quickstart.yaml")],
    ["emit-slurm", str(REPO / "recipes" / "deeplab_coarse_fine.yaml"), "--runs-dir", "runs"],
    ["run", str(REPO / "recipes" / "no_such_recipe.yaml"), "--runs-dir", "runs"],  # a recipe error
], ids=lambda command: command[0])
def test_a_command_that_draws_no_image_does_not_import_torchvision(command, tmp_path):
    result = subprocess.run([sys.executable, "-c", PROBE, *command], capture_output=True, text=True, cwd=tmp_path,
                            timeout=120)
    assert result.stdout.strip().splitlines()[-1] == "False", result.stderr


def test_the_lazy_imports_reach_torchvision_when_an_image_is_drawn():
    import torch

    from segbench.data import png
    from segbench.functional import augment
    from segbench.lazy_torchvision import cityscapes_classes

    image, mask = augment.apply_hflip(torch.arange(6, dtype=torch.uint8).reshape(1, 2, 3),
                                      torch.arange(6, dtype=torch.uint8).reshape(2, 3), True)
    assert image[0, 0].tolist() == [2, 1, 0] and mask[1].tolist() == [5, 4, 3]
    assert png.torchvision_io().ImageReadMode["RGB"] is png.torchvision_io().ImageReadMode.RGB
    assert sum(1 for c in cityscapes_classes() if 0 <= c.train_id < 255) == 19
