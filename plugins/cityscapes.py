"""Dataset ``cityscapes``: the Cityscapes tree exactly as distributed, labelIds mapped to the 19 train ids.

Layout read (``<root>`` is ``config.root``)::

    <root>/leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    <root>/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png      (annotation: fine)
    <root>/gtCoarse/<split>/<city>/<city>_<seq>_<frame>_gtCoarse_labelIds.png  (annotation: coarse)

The ``*_labelIds.png`` files are read (never ``*_labelTrainIds.png``, which exists only after running
the official converter) and mapped to train ids with torchvision's copy of the official table.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Literal, NamedTuple

import attrs
import torch
from attrs.validators import in_

from segbench import hookimpl
from segbench.config import SEED_MAX, in_range
from segbench.config_paths import absolute_path
from segbench.data.dataset import (
    CITYSCAPES_MAX_LABEL_ID,
    SegmentationDataset,
    cityscapes_info,
    cityscapes_label_to_train_lut,
    files_fingerprint,
)
from segbench.data.png import png_pair_problem, read_label_png, read_rgb_png, size_mismatch
from segbench.errors import DataError, DataUnavailableError

SPLITS = ("train", "val", "test", "train_extra")
LABEL_FOLDERS = {"fine": "gtFine", "coarse": "gtCoarse"}
SPLITS_WITH_LABELS = {"fine": ("train", "val", "test"), "coarse": ("train", "val", "train_extra")}
IMAGE_SUFFIX = "_leftImg8bit.png"
DOWNLOADS = "https://www.cityscapes-dataset.com/downloads/"
_SHOWN = 5  # how many offending files an error lists


# ---- configuration ------------------------------------------------------------------------------

@attrs.frozen
class Subset:
    """Which images of the split to keep: exactly one of ``first``, ``random`` or ``cities``.

    ``first: N`` keeps the first N in path order; ``random: N`` keeps N chosen by ``seed`` (each image
    is ranked by a hash of ``seed`` and its id, so the choice is the same on every machine and
    library version); ``cities`` keeps those cities. ``invert: true`` keeps the complement instead,
    so a selection split can be carved out of train and the rest trained on::

        select: {split: train, subset: {random: 100, seed: 0}}
        train:  {split: train, subset: {random: 100, seed: 0, invert: true}}
    """

    first: int | None = attrs.field(default=None, validator=in_range(1, 10**9))
    random: int | None = attrs.field(default=None, validator=in_range(1, 10**9))
    seed: int = attrs.field(default=0, validator=in_range(0, SEED_MAX))
    cities: tuple[str, ...] | None = None
    invert: bool = False

    def __attrs_post_init__(self):
        chosen = [name for name in ("first", "random", "cities") if getattr(self, name) is not None]
        if len(chosen) != 1:
            raise ValueError("subset needs exactly one of first, random, cities"
                             + (f" (got {', '.join(chosen)})" if chosen else ""))
        if self.cities is not None and not self.cities:
            raise ValueError("subset.cities is empty; list at least one city")


def validate_split(instance, attribute, value):
    parts = value.split("+")
    unknown = [p for p in parts if p not in SPLITS]
    if unknown:
        raise ValueError(f"unknown split {unknown[0]!r} in {value!r}; valid: {', '.join(SPLITS)},"
                         " or several joined with '+' (train+train_extra)")
    if len(set(parts)) != len(parts):
        raise ValueError(f"split {value!r} names a split twice")


def check_split_annotation(split: str, annotation: str) -> None:
    """Raise ``ValueError`` when ``annotation`` has no labels for a part of ``split``.

    Unknown split names pass here: the field validator reports them (this also runs while recipe
    values are structured, before validators).
    """
    for part in split.split("+"):
        if part not in SPLITS or part in SPLITS_WITH_LABELS.get(annotation, SPLITS):
            continue
        if part == "train_extra":
            raise ValueError("split train_extra has only coarse labels: set annotation: coarse")
        raise ValueError(f"gtCoarse has no {part} split: set annotation: fine"
                         " (the test labels are withheld anyway; they are all void)")


@attrs.frozen
class CityscapesConfig:
    """``root``: the folder holding ``leftImg8bit/`` and ``gtFine/`` (and ``gtCoarse/``); a relative path is taken
    from the folder segbench runs from.
    ``split``: train, val, test, train_extra, or several joined with ``+`` (``train+train_extra``).
    ``annotation``: ``fine`` (gtFine) or ``coarse`` (gtCoarse; train_extra has only coarse labels).
    ``subset``: keep part of the split (see ``Subset``). ``check_sizes``: every image must have its
    label's size (checked from the file headers before a run trains, and when an item is read).
    """

    root: str = attrs.field(default="data/cityscapes", converter=absolute_path)
    split: str = attrs.field(default="train", validator=validate_split)
    annotation: Literal["fine", "coarse"] = attrs.field(default="fine", validator=in_(("fine", "coarse")))
    subset: Subset | None = None
    check_sizes: bool = True

    def __attrs_post_init__(self):
        check_split_annotation(self.split, self.annotation)


# ---- the tree -----------------------------------------------------------------------------------

class Item(NamedTuple):
    image: str  # relative to the root
    label: str
    city: str
    sample_id: str


def _listing(folder: Path) -> str:
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return "(unreadable)"
    return ", ".join(names[:20]) + (", ..." if len(names) > 20 else "") if names else "(nothing)"


def _missing_root(root: Path) -> DataError:
    if root.exists():
        return DataError(f"the Cityscapes root {root} is a file, not a folder (the dataset's `root` key)")
    return DataUnavailableError(
        f"the Cityscapes folder {root} does not exist (the dataset's `root` key). Download"
        f" leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip (for coarse training also gtCoarse.zip"
        f" and leftImg8bit_trainextra.zip) from {DOWNLOADS} (free registration) and unzip them into {root},"
        f" so that {root / 'leftImg8bit' / 'train'} exists, or set `root` to where they are. To try segbench"
        " without Cityscapes, use the generated dataset instead: `name: synthetic_city`.")


def _archive(folder: str, split: str) -> str:
    if folder == "leftImg8bit":
        return "leftImg8bit_trainextra.zip" if split == "train_extra" else "leftImg8bit_trainvaltest.zip"
    return "gtCoarse.zip" if folder == "gtCoarse" else "gtFine_trainvaltest.zip"


def _split_folder(root: Path, folder: str, split: str) -> Path:
    path = root / folder / split
    if path.is_dir():
        return path
    if not root.is_dir():
        raise _missing_root(root)
    if not (root / folder).is_dir():
        raise DataError(f"{root} has no {folder}/ folder (it holds: {_listing(root)}). Unzip"
                        f" {_archive(folder, split)} from {DOWNLOADS} into {root}.")
    raise DataError(f"the split folder {path} does not exist; {root / folder} holds: {_listing(root / folder)}."
                    f" Unzip {_archive(folder, split)} from {DOWNLOADS} into {root}, or choose another split.")


def _check_name(path: str) -> None:
    """Names that are not UTF-8 (undecodable bytes, kept by Python as surrogates) cannot be listed or logged."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        shown = os.fsencode(path).decode("utf-8", errors="backslashreplace")
        raise DataError(f"the file name {shown} is not valid UTF-8 (written in another encoding, or damaged while"
                        " copying): rename it, or move it out of the dataset folder") from None


def _scan(folder: Path, suffix: str) -> dict[tuple[str, str], str]:
    """``{(city, sample_id): path relative to the root}`` for files ``<folder>/<city>/<id><suffix>``."""
    prefix = f"{folder.parent.name}/{folder.name}"
    found = {}
    try:
        with os.scandir(folder) as cities:
            for city in cities:
                _check_name(city.path)
                if not city.is_dir():
                    continue
                with os.scandir(city.path) as files:
                    for entry in files:
                        _check_name(entry.path)
                        if entry.name.endswith(suffix):
                            sample_id = entry.name[: -len(suffix)]
                            found[(city.name, sample_id)] = f"{prefix}/{city.name}/{entry.name}"
    except OSError as exc:
        raise DataError(f"cannot list {exc.filename or folder}: {exc.strerror or exc}") from None
    return found


def _unpaired_error(root: Path, keys, have: dict, want_folder: str, want_suffix: str, what: str, archive: str,
                    repair: str | None):
    keys = sorted(keys)
    shown = "\n".join(f"  {root / have[k]} (expected {root / want_folder / k[0] / (k[1] + want_suffix)})"
                      for k in keys[:_SHOWN])
    more = f"\n  ... and {len(keys) - _SHOWN} more" if len(keys) > _SHOWN else ""
    return DataError(f"{len(keys)} {what}, e.g.:\n{shown}{more}\n"
                     + (repair or f"Re-extract {archive} from {DOWNLOADS} into {root}, or remove the unpaired files."))


def find_items(root: Path, split: str, annotation: str, *, repair: str | None = None) -> list[Item]:
    """Every (image, labelIds) pair of one split, sorted by image path; missing partners are errors, which end
    with ``repair`` (default: re-extract the Cityscapes archive)."""
    label_folder = LABEL_FOLDERS[annotation]
    label_suffix = f"_{label_folder}_labelIds.png"
    image_dir = _split_folder(root, "leftImg8bit", split)
    label_dir = _split_folder(root, label_folder, split)
    images = _scan(image_dir, IMAGE_SUFFIX)
    labels = _scan(label_dir, label_suffix)
    lonely_images = images.keys() - labels.keys()
    if lonely_images:
        hint = "" if labels else f" ({label_dir} holds no *{label_suffix} files at all)"
        raise _unpaired_error(root, lonely_images, images, f"{label_folder}/{split}", label_suffix,
                              f"image(s) in {image_dir} have no label file{hint}",
                              _archive(label_folder, split), repair)
    lonely_labels = labels.keys() - images.keys()
    if lonely_labels:
        raise _unpaired_error(root, lonely_labels, labels, f"leftImg8bit/{split}", IMAGE_SUFFIX,
                              f"label file(s) in {label_dir} have no image", _archive("leftImg8bit", split),
                              repair)
    return sorted((Item(images[k], labels[k], k[0], k[1]) for k in images), key=lambda item: item.image)


def _random_rank(seed: int, sample_id: str) -> bytes:
    return hashlib.sha256(f"{seed}/{sample_id}".encode("utf-8")).digest()


def select_subset(items: list[Item], subset: Subset, *, where: str) -> list[Item]:
    """The items ``subset`` keeps, in their original order. ``where`` names the split in errors."""
    if subset.cities is not None:
        available = sorted({item.city for item in items})
        unknown = [c for c in subset.cities if c not in available]
        if unknown:
            raise DataError(f"subset.cities names {', '.join(unknown)}, not in {where}; its cities are:"
                            f" {', '.join(available)}")
        wanted = set(subset.cities)
        chosen = {i for i, item in enumerate(items) if item.city in wanted}
    else:
        count = subset.first if subset.first is not None else subset.random
        key = "first" if subset.first is not None else "random"
        if count > len(items):
            raise DataError(f"subset.{key} is {count} but {where} has only {len(items)} images")
        if subset.first is not None:
            chosen = set(range(count))
        else:
            ranked = sorted(range(len(items)), key=lambda i: _random_rank(subset.seed, items[i].sample_id))
            chosen = set(ranked[:count])
    return [item for i, item in enumerate(items) if (i in chosen) != subset.invert]


# ---- the dataset --------------------------------------------------------------------------------

class CityscapesDataset(SegmentationDataset):
    """Cityscapes ``(image, mask)`` pairs: RGB ``uint8 (3, H, W)`` and train ids ``uint8 (H, W)`` (255 = ignore).

    The folder structure (missing folders, images without labels and the reverse, an empty split or
    subset) is checked here; each file's content (readable PNG, single-channel labelIds, sizes) is
    checked when it is read. Items are sorted by image path, so the order is the same everywhere.
    The test split can be read, but its labels are withheld: every pixel is void (ignored), so it
    is good for predictions only, not for scoring or training.
    """

    def __init__(self, root: str | os.PathLike, *, split: str = "train", annotation: str = "fine",
                 subset: Subset | None = None, check_sizes: bool = True, repair: str | None = None):
        try:
            validate_split(None, None, split)
            check_split_annotation(split, annotation)
        except ValueError as exc:
            raise DataError(str(exc)) from None
        self.root = Path(os.path.expanduser(os.fspath(root))).absolute()
        self.split, self.annotation, self.subset, self.check_sizes = split, annotation, subset, check_sizes
        self.repair = repair  # how to mend damaged files: None is re-extracting the Cityscapes archives
        # the files first: a tree that is not here is said so before torchvision's label table is loaded
        items = sorted((item for part in split.split("+")
                        for item in find_items(self.root, part, annotation, repair=repair)),
                       key=lambda item: item.image)
        self.info = cityscapes_info()
        self._lut = torch.from_numpy(cityscapes_label_to_train_lut().copy())
        where = f"split {split!r} ({annotation} annotation) in {self.root}"
        if not items:
            raise DataError(f"{where} has no images (no *{IMAGE_SUFFIX} files under"
                            f" {self.root / 'leftImg8bit'}/<split>/<city>/)")
        if subset is not None:
            items = select_subset(items, subset, where=where)
            if not items:
                raise DataError(f"subset {attrs.asdict(subset)} keeps no images of {where}")
        self._images = [item.image for item in items]
        self._labels = [item.label for item in items]
        self._ids = [item.sample_id for item in items]

    def __len__(self) -> int:
        return len(self._images)

    def __repr__(self) -> str:
        return (f"CityscapesDataset(root={str(self.root)!r}, split={self.split!r}, annotation={self.annotation!r},"
                f" {len(self)} images)")

    def image_path(self, index: int) -> Path:
        return self.root / self._images[index]

    def label_path(self, index: int) -> Path:
        return self.root / self._labels[index]

    def sample_id(self, index: int) -> str:
        return self._ids[index]

    def read_mask(self, index: int) -> torch.Tensor:
        path = self.label_path(index)
        label_ids = read_label_png(path)
        if int(label_ids.max()) > CITYSCAPES_MAX_LABEL_ID:
            bad = torch.unique(label_ids[label_ids > CITYSCAPES_MAX_LABEL_ID]).tolist()
            raise DataError(
                f"{path} holds value(s) {', '.join(map(str, bad[:10]))} that are not Cityscapes labelIds"
                f" (0..{CITYSCAPES_MAX_LABEL_ID}). Train ids (*_labelTrainIds.png, 255 = ignore) or another"
                f" dataset's labels cannot be read as labelIds: restore the original *_labelIds.png file.")
        # index_select on int32 indices is the fastest exact lookup (~2 ms for 2048x1024)
        return self._lut.index_select(0, label_ids.reshape(-1).to(torch.int32)).reshape(label_ids.shape)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image_path = self.image_path(index)
        image = read_rgb_png(image_path)
        mask = self.read_mask(index)
        if self.check_sizes and (mismatch := size_mismatch(image_path, (image.shape[2], image.shape[1]),
                                                           self.label_path(index), (mask.shape[1], mask.shape[0]))):
            raise DataError(f"{mismatch}. Re-extract the pair; if the images were resized on purpose, set"
                            " check_sizes: false.")
        return image, mask

    def check_files(self) -> None:
        """Every image and label header: PNG, 8 bits, a single-channel label, the image's size (``check_sizes``).
        One 26-byte read per file: 15 us per pair from the page cache (0.3 s for train_extra's 20,000 pairs),
        plus a network file system's latency per file."""
        problems = [problem for index in range(len(self))
                    if (problem := png_pair_problem(self.image_path(index), self.label_path(index),
                                                    same_size=self.check_sizes))]
        if problems:
            shown = "\n".join(f"  {problem}" for problem in problems[:_SHOWN])
            more = f"\n  ... and {len(problems) - _SHOWN} more" if len(problems) > _SHOWN else ""
            raise DataError(
                f"{len(problems)} of the {len(self)} image/label pairs of split {self.split!r} ({self.annotation}"
                f" annotation) in {self.root} cannot be read:\n{shown}{more}\n"
                + (self.repair or f"Re-extract them from the Cityscapes archives ({DOWNLOADS}); if the images were"
                                  " resized on purpose, set check_sizes: false."))

    def fingerprint(self) -> str:
        config = {"dataset": "cityscapes labelIds->trainIds", "split": self.split, "annotation": self.annotation,
                  "subset": None if self.subset is None else attrs.asdict(self.subset)}
        return files_fingerprint(self.root, self._labels, config=config)


def build_cityscapes(config: CityscapesConfig) -> CityscapesDataset:
    return CityscapesDataset(config.root, split=config.split, annotation=config.annotation, subset=config.subset,
                             check_sizes=config.check_sizes)


SMOKE_SUBSET_CAP = 2  # images per role in a --smoke run


def smoke_subset(subset: Subset | None) -> Subset | None:
    """At most ``SMOKE_SUBSET_CAP`` images; chosen cities become the first images (real city names do
    not exist in the generated tree)."""
    if subset is None:
        return None
    if subset.cities is not None:
        return Subset(first=SMOKE_SUBSET_CAP, invert=subset.invert)
    if subset.first is not None:
        return attrs.evolve(subset, first=min(subset.first, SMOKE_SUBSET_CAP))
    return attrs.evolve(subset, random=min(subset.random, SMOKE_SUBSET_CAP))


def smoke_cityscapes(config: CityscapesConfig):
    """The Cityscapes tree is not where a smoke run goes: a small generated one in the same layout is."""
    from segbench_plugins.synthetic_city import smoke_tree

    return smoke_tree(split=config.split, annotation=config.annotation, subset=config.subset,
                      check_sizes=config.check_sizes)


@hookimpl
def segbench_register_datasets(register):
    register("cityscapes", build_cityscapes, config=CityscapesConfig, smoke=smoke_cityscapes)
