"""Running the real ``segbench`` command in a subprocess, with test plugins installed through entry points.

Also: the toy recipe, a tiny Cityscapes tree writer, and snapshots of folders (files, mtimes, hashes)
to prove that a failing command modified nothing.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import attrs
import numpy as np

from tests.engine_plugin import RECIPE as ENGINE_RECIPE

REPO = Path(__file__).resolve().parents[2]

# The engine tests' toy recipe, trained in a subprocess in about a second after start-up.
TOY_RECIPE = ENGINE_RECIPE

# The same model on a Cityscapes tree written by ``write_cityscapes_tree``; ``{root}`` is filled in.
CITYSCAPES_RECIPE = """\
seed: 0
model: {{name: nobn}}
data:
  dataset: {{name: cityscapes, root: {root}}}
  train: {{split: train}}
  select: {{split: val}}
  report: {{split: val}}
  train_transforms: [{{name: normalize}}]
loss: {{name: cross_entropy}}
optimizer: {{name: sgd, lr: 0.1, momentum: 0.0}}
trainer: {{epochs: 1, batch_size: 2, num_workers: {num_workers}, precision: fp32, log_every: 1}}
"""

TREE_SIZE = (16, 32)  # (H, W)
TREE_LAYOUT = {"train": {"aachen": 4}, "val": {"frankfurt": 2}}


def make_site(site: Path, distribution: str, entry_points: dict[str, str], modules: dict[str, str] = ()) -> Path:
    """A folder that, on ``PYTHONPATH``, looks like an installed distribution with ``segbench`` entry points.

    ``entry_points`` maps entry-point names to module paths; ``modules`` maps file names to source.
    """
    dist = site / f"{distribution.replace('-', '_')}-1.0.dist-info"
    dist.mkdir(parents=True, exist_ok=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 1.0\n")
    lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
    (dist / "entry_points.txt").write_text(f"[segbench]\n{lines}")
    for name, source in dict(modules).items():
        (site / name).write_text(source)
    return site


def toy_site(folder: Path) -> Path:
    """The site holding the toy plugin's distribution (``segbench-toy``, entry point ``toy``)."""
    return make_site(folder, "segbench-toy", {"toy": "tests.bad_inputs.toy_plugin"})


def cli_env(*sites: Path, **extra: str) -> dict[str, str]:
    """The environment for a CLI subprocess: the given sites and the repository importable, entry-point
    plugins on, the session's shared data cache (``SEGBENCH_CACHE`` set by ``tests/conftest.py``)."""
    env = dict(os.environ)
    env.pop("SEGBENCH_DISABLE_PLUGIN_AUTOLOAD", None)
    paths = [str(s) for s in sites] + [str(REPO)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.setdefault("OMP_NUM_THREADS", "1")  # several subprocesses share two cores
    env.update(extra)
    return env


def segbench_command(*args) -> list[str]:
    return [sys.executable, "-m", "segbench.cli", *map(str, args)]


def run_cli(args, *, cwd: Path, env: dict, timeout: float = 180, prefix=()) -> subprocess.CompletedProcess:
    return subprocess.run([*prefix, *segbench_command(*args)], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def write_cityscapes_tree(root: Path, layout=None, *, size=TREE_SIZE, seed: int = 0) -> Path:
    """A tiny Cityscapes tree: random RGB images and random labelIds (0..33), ``layout`` ``{split: {city: n}}``."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for split, cities in (layout or TREE_LAYOUT).items():
        for city, count in cities.items():
            for index in range(count):
                stem = f"{city}_{index:06d}_{19 + index:06d}"
                for folder, name, array in (
                        ("leftImg8bit", f"{stem}_leftImg8bit.png", rng.integers(0, 256, (*size, 3), dtype=np.uint8)),
                        ("gtFine", f"{stem}_gtFine_labelIds.png", rng.integers(0, 34, size, dtype=np.uint8))):
                    target = root / folder / split / city
                    target.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(array).save(target / name)
    return root


def tree_image(root: Path, split="train", city="aachen", index=0) -> Path:
    return root / "leftImg8bit" / split / city / f"{city}_{index:06d}_{19 + index:06d}_leftImg8bit.png"


def tree_label(root: Path, split="train", city="aachen", index=0) -> Path:
    return root / "gtFine" / split / city / f"{city}_{index:06d}_{19 + index:06d}_gtFine_labelIds.png"


@attrs.frozen
class FileState:
    size: int
    mtime_ns: int
    sha256: str


def snapshot(folder: Path) -> dict[str, FileState]:
    """Every file under ``folder`` (relative path -> size, mtime, content hash)."""
    state = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink():
            stat = path.stat()
            state[str(path.relative_to(folder))] = FileState(stat.st_size, stat.st_mtime_ns,
                                                             hashlib.sha256(path.read_bytes()).hexdigest())
    return state


def changes(before: dict[str, FileState], after: dict[str, FileState]) -> dict[str, list[str]]:
    """Files modified, removed and added between two snapshots."""
    return {
        "modified": sorted(p for p in before if p in after and after[p] != before[p]),
        "removed": sorted(p for p in before if p not in after),
        "added": sorted(p for p in after if p not in before),
    }
