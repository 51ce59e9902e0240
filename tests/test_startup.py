"""Commands that draw no image do not load torchvision (a second of start-up, most of a `segbench list`)."""
from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO

# One process runs the commands in turn (a process each would cost a start-up each) and names the first that
# imported torchvision.
PROBE = """
import contextlib, io, sys
from segbench.cli import main
recipes = sys.argv[1]
for command in (["list", "models"], ["show", recipes + "/quickstart.yaml"],
                ["emit-slurm", recipes + "/deeplab_coarse_fine.yaml", "--runs-dir", "runs"],
                ["run", recipes + "/no_such_recipe.yaml", "--runs-dir", "runs"]):  # the last one a recipe error
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        main(command)
    if "torchvision" in sys.modules:
        print("torchvision imported by", command[0])
        break
else:
    print("no torchvision")
"""


def test_commands_that_draw_no_image_do_not_import_torchvision(tmp_path):
    result = subprocess.run([sys.executable, "-c", PROBE, str(REPO / "recipes")], capture_output=True, text=True,
                            cwd=tmp_path, timeout=120)
    assert result.stdout.strip() == "no torchvision", result.stderr


def test_the_lazy_imports_reach_torchvision_when_an_image_is_drawn(tmp_path):
    import numpy as np
    import torch
    from PIL import Image

    from segbench.data import png
    from segbench.functional import augment
    from segbench.lazy_torchvision import cityscapes_classes

    image, mask = augment.apply_hflip(torch.arange(6, dtype=torch.uint8).reshape(1, 2, 3),
                                      torch.arange(6, dtype=torch.uint8).reshape(2, 3), True)
    assert image[0, 0].tolist() == [2, 1, 0] and mask[1].tolist() == [5, 4, 3]
    grey = tmp_path / "grey.png"
    Image.fromarray(np.arange(12, dtype=np.uint8).reshape(3, 4)).save(grey)
    by_name = png.read_png(grey, mode="RGB")  # a mode's name, or the enum itself, as before
    by_enum = png.read_png(grey, mode=png.torchvision_io().ImageReadMode.RGB)
    assert by_name.shape == (3, 3, 4) and torch.equal(by_name, by_enum)
    assert torch.equal(png.read_png(grey)[0], torch.from_numpy(np.arange(12, dtype=np.uint8).reshape(3, 4)))
    assert sum(1 for c in cityscapes_classes() if 0 <= c.train_id < 255) == 19


def test_python_dash_m_segbench_is_the_command(tmp_path):
    """What `torchrun -m segbench run R` starts: the command's own errors and exit status, from any folder."""
    result = subprocess.run([sys.executable, "-m", "segbench", "show", str(tmp_path / "missing.yaml")],
                            capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.returncode == 2 and "missing.yaml" in result.stderr and "Traceback" not in result.stderr
