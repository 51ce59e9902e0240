"""Dataset ``synthetic_city``: a generated Cityscapes-layout tree (``segbench.synth``), read by the
``cityscapes`` reader.

The tree is generated on first use into ``<cache_dir>/synthetic_city/<params-hash>/``
(``cache_dir`` defaults to segbench's cache folder, ``segbench.cache.cache_dir()``) and reused afterwards.
It is generated in a temporary folder under a file lock and renamed into place only when
complete, so concurrent processes (distributed ranks, several jobs) generate it once and never
read half a tree.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Literal

import attrs
from attrs.validators import in_
from filelock import FileLock

from segbench import hookimpl
from segbench.cache import cache_dir
from segbench.config_paths import absolute_path
from segbench.config import in_range
from segbench.errors import DataError
from segbench.limits import SEED_MAX, SYNTH_MAX_IMAGES, SYNTH_MAX_SIZE, SYNTH_MIN_SIZE
from segbench.synth import GENERATOR_VERSION, generate_city, is_complete
from segbench.registry import Substitute
from segbench_plugins.cityscapes import (
    SPLITS,
    CityscapesDataset,
    Subset,
    check_split_annotation,
    smoke_subset,
    validate_split,
)

_GENERATOR_DEFAULTS = {name: p.default for name, p in inspect.signature(generate_city).parameters.items()
                       if p.default is not inspect.Parameter.empty}


def _check_size(instance, attribute, value):
    bounds = zip(value, SYNTH_MIN_SIZE, SYNTH_MAX_SIZE)
    if len(value) != 2 or not all(low <= side <= high for side, low, high in bounds):
        raise ValueError(f"must be [height, width] in pixels, from {list(SYNTH_MIN_SIZE)} to"
                         f" {list(SYNTH_MAX_SIZE)};"
                         f" got {list(value)}")


@attrs.frozen
class SyntheticCityConfig:
    """``split``, ``annotation``, ``subset``, ``check_sizes``: as for ``cityscapes`` (there is no test split).
    ``train``, ``val``, ``train_extra``: how many images each split gets (train_extra has coarse labels
    only); ``size``: ``[height, width]`` of every image; ``seed``: the generator's seed; ``cache_dir``:
    where generated trees are kept (default ``$SEGBENCH_CACHE``, else ``$XDG_CACHE_HOME/segbench``, else
    ``~/.cache/segbench``).
    """

    split: str = attrs.field(default="train", validator=validate_split)
    annotation: Literal["fine", "coarse"] = attrs.field(default="fine", validator=in_(("fine", "coarse")))
    subset: Subset | None = None
    check_sizes: bool = True
    train: int = attrs.field(default=_GENERATOR_DEFAULTS["train"], validator=in_range(0, SYNTH_MAX_IMAGES))
    val: int = attrs.field(default=_GENERATOR_DEFAULTS["val"], validator=in_range(0, SYNTH_MAX_IMAGES))
    train_extra: int = attrs.field(default=_GENERATOR_DEFAULTS["train_extra"],
                                   validator=in_range(0, SYNTH_MAX_IMAGES))
    size: tuple[int, int] = attrs.field(default=tuple(_GENERATOR_DEFAULTS["size"]), validator=_check_size)
    seed: int = attrs.field(default=_GENERATOR_DEFAULTS["seed"], validator=in_range(0, SEED_MAX))
    cache_dir: str | None = attrs.field(default=None, converter=absolute_path)  # relative: to where segbench runs

    def __attrs_post_init__(self):
        check_split_annotation(self.split, self.annotation)
        for part in self.split.split("+"):
            if part == "test":
                raise ValueError("synthetic_city has no test split; use train, val or train_extra")
            if part in SPLITS and getattr(self, part) == 0:
                raise ValueError(f"split {part} is requested but `{part}: 0` generates no images for it")


def generation_params(config: SyntheticCityConfig) -> dict:
    """The arguments of ``generate_city`` that determine the tree (not which part of it is read)."""
    return {"train": config.train, "val": config.val, "train_extra": config.train_extra,
            "size": (int(config.size[0]), int(config.size[1])), "seed": config.seed}


def tree_root(config: SyntheticCityConfig) -> Path:
    """``<cache_dir>/synthetic_city/<hash of the parameters and the generator version>``."""
    base = config.cache_dir or cache_dir()
    key_data = {**generation_params(config), "generator_version": GENERATOR_VERSION}
    key = hashlib.sha256(json.dumps(key_data, sort_keys=True).encode("utf-8")).hexdigest()
    return Path(os.path.expanduser(os.fspath(base))).absolute() / "synthetic_city" / key[:16]


def _available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))  # what a Slurm allocation or taskset grants, not the whole node
    except AttributeError:
        return os.cpu_count() or 1


def ensure_generated(root: Path, params: dict, *, progress: bool = True) -> Path:
    """Generate the tree at ``root`` unless a complete one with ``params`` is there; safe under races."""
    if is_complete(root, **params):
        return root
    try:
        root.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create {root.parent} for the generated synthetic_city images ({exc.strerror});"
                        " set the dataset's `cache_dir` (or $SEGBENCH_CACHE) to a writable folder") from None
    with FileLock(f"{root}.lock"):
        if is_complete(root, **params):  # another process finished it while this one waited
            return root
        if root.exists():  # an interrupted or foreign tree: never read it
            shutil.rmtree(root)
        for stale in root.parent.glob(f"{root.name}.partial-*"):
            # left by a generation that was killed: only the lock's holder generates this tree
            shutil.rmtree(stale, ignore_errors=True)
        print(f"synthetic_city: generating {params} into {root}", file=sys.stderr, flush=True)
        partial = Path(tempfile.mkdtemp(dir=root.parent, prefix=f"{root.name}.partial-"))
        try:
            report = generate_city(partial, **params, progress=progress, workers=_available_cpus())
            try:
                os.rename(partial, root)
            except OSError:
                if not is_complete(root, **params):  # a process that ignored the lock won the race: fine
                    raise
            print(f"synthetic_city: {report}", file=sys.stderr, flush=True)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
    return root


def build_synthetic_city(config: SyntheticCityConfig, *, progress: bool = True) -> CityscapesDataset:
    root = ensure_generated(tree_root(config), generation_params(config), progress=progress)
    repair = f"These files were generated: delete {root} and the next run generates it again."
    return CityscapesDataset(root, split=config.split, annotation=config.annotation, subset=config.subset,
                             check_sizes=config.check_sizes, repair=repair)


# The tree of --smoke runs: small images, generated in seconds and kept in the cache. Enough training images
# for the process layouts recipes declare (up to 8 processes with 2 images each, beside a held-out
# selection subset), so a recipe's --smoke check runs under its own Slurm resources.
SMOKE_TREE = {"train": 20, "val": 4, "train_extra": 20, "size": (64, 128), "seed": 0}


def smoke_synthetic_city(config: SyntheticCityConfig) -> SyntheticCityConfig:
    return attrs.evolve(config, subset=smoke_subset(config.subset), **SMOKE_TREE)


def smoke_tree(*, split: str, annotation: str, subset: Subset | None, check_sizes: bool) -> Substitute:
    """The smoke variant of a dataset in the Cityscapes layout: the same split of the smoke tree."""
    config = SyntheticCityConfig(split=split, annotation=annotation, subset=smoke_subset(subset),
                                 check_sizes=check_sizes, **SMOKE_TREE)
    return Substitute("synthetic_city", config)


@hookimpl
def segbench_register_datasets(register):
    register("synthetic_city", build_synthetic_city, config=SyntheticCityConfig, smoke=smoke_synthetic_city)
