"""Writing a synthetic city as a real Cityscapes directory tree.

```
<root>/leftImg8bit/{train,val,train_extra}/<city>/<city>_<seq>_<frame>_leftImg8bit.png
<root>/gtFine/{train,val}/<city>/<city>_<seq>_<frame>_gtFine_{labelIds,instanceIds,color}.png
<root>/gtCoarse/{train,val,train_extra}/<city>/<city>_<seq>_<frame>_gtCoarse_{labelIds,instanceIds,color}.png
```

Image ``i`` of a split is drawn from its own random stream, seeded from ``(seed, split, i)``, so it does not
depend on how many images are generated, and the same parameters give byte-identical files. A ``.complete``
file holding the parameters is written last; a tree without it (an interrupted generation) is incomplete.
"""
from __future__ import annotations

import json
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import attrs
import numpy as np
from PIL import Image

from segbench.atomic import atomic_write_text
from segbench.errors import SegbenchError
from segbench.limits import SEED_MAX, SYNTH_DEFAULT_COUNTS, SYNTH_MAX_IMAGES, SYNTH_MAX_SIZE, SYNTH_MIN_SIZE

# The drawing and the label table (torchvision's, which takes a second to import) are imported by the functions
# that write or summarise a tree, so that loading the synthetic_city plugin (every command does) stays cheap.

#: Bumped whenever the drawing changes, so cached trees of an older generator are regenerated.
GENERATOR_VERSION = 4
COMPLETE_MARKER = ".complete"
_IN_PROGRESS = ".generating"

SPLITS = ("train", "val", "train_extra")
#: Real Cityscapes city names per split.
CITIES: dict[str, tuple[str, ...]] = {
    "train": ("aachen", "bochum", "bremen", "cologne", "darmstadt", "dusseldorf", "erfurt", "hamburg", "hanover",
              "jena", "krefeld", "monchengladbach", "strasbourg", "stuttgart", "tubingen", "ulm", "weimar",
              "zurich"),
    "val": ("frankfurt", "lindau", "munster"),
    "train_extra": ("augsburg", "bad-honnef", "bamberg", "bayreuth", "dortmund", "dresden", "duisburg", "erlangen",
                    "freiburg", "heidelberg", "heilbronn", "karlsruhe", "konigswinter", "konstanz", "mannheim",
                    "muhlheim-ruhr", "nuremberg", "oberhausen", "saarbrucken", "schweinfurt", "troisdorf",
                    "wuppertal", "wurzburg"),
}
_STREAM = {"train": 1, "val": 2, "train_extra": 3}
_FRAME = 19  # Cityscapes annotates the 20th frame of each 30-frame snippet
MIN_SIZE, MAX_SIZE, MAX_IMAGES, MAX_SEED = SYNTH_MIN_SIZE, SYNTH_MAX_SIZE, SYNTH_MAX_IMAGES, SEED_MAX
_PNG = {"format": "PNG", "compress_level": 1}  # fixed settings: same pixels, same bytes


def image_stem(split: str, index: int) -> tuple[str, str]:
    """``(city, stem)`` of image ``index`` of ``split``, e.g. ``("aachen", "aachen_000000_000019")``."""
    cities = CITIES[split]
    city = cities[index % len(cities)]
    return city, f"{city}_{index // len(cities):06d}_{_FRAME:06d}"


def image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, _STREAM[split], index])


@attrs.frozen
class GenerationReport:
    """What :func:`generate_city` wrote and how fast.

    ``label_pixels`` maps ``"gtFine/train"``, ``"gtCoarse/train_extra"``, ... to the pixel count of every
    labelId 0..33 over that annotation.
    """

    root: Path
    size: tuple[int, int]
    seed: int
    counts: dict[str, int]
    seconds: float
    label_pixels: dict[str, tuple[int, ...]]

    @property
    def images(self) -> int:
        return sum(self.counts.values())

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else float("inf")

    def class_pixels(self, annotation: str = "gtFine/train") -> dict[str, int]:
        """Pixels per evaluated class (19 names, train-id order) plus ``"ignored"``, for one annotation."""
        from segbench.synth.labels import TRAIN_ID, TRAIN_NAMES

        counts = np.asarray(self.label_pixels[annotation], dtype=np.int64)
        per_train_id = np.bincount(TRAIN_ID[: len(counts)], weights=counts, minlength=256).astype(np.int64)
        result = {name: int(per_train_id[k]) for k, name in enumerate(TRAIN_NAMES)}
        result["ignored"] = int(per_train_id[255])
        return result

    def class_shares(self, annotation: str = "gtFine/train") -> dict[str, float]:
        pixels = self.class_pixels(annotation)
        total = sum(pixels.values()) or 1
        return {name: count / total for name, count in pixels.items()}

    def present_classes(self, annotation: str = "gtFine/train") -> list[str]:
        return [name for name, count in self.class_pixels(annotation).items() if count and name != "ignored"]

    def histogram(self, annotation: str = "gtFine/train") -> str:
        """A text table: class, pixel share."""
        rows = [f"  {name:<14} {share * 100:6.2f} %" for name, share in self.class_shares(annotation).items()]
        return "\n".join([f"class pixel shares, {annotation}:"] + rows)

    def __str__(self) -> str:
        from segbench.synth.labels import TRAIN_NAMES

        h, w = self.size
        split_counts = ", ".join(f"{split} {n}" for split, n in self.counts.items())
        text = (f"{split_counts} images of {h}x{w} (seed {self.seed}) in {self.seconds:.1f} s"
                f" ({self.images_per_second:.1f} images/s)")
        if "gtFine/train" in self.label_pixels:
            present = self.present_classes("gtFine/train")
            missing = [n for n in TRAIN_NAMES if n not in present]
            text += f"; {len(present)} of {len(TRAIN_NAMES)} classes in gtFine/train"
            if missing:
                text += f" (absent: {', '.join(missing)})"
        return text


def generate_city(root: Path, *, train: int = SYNTH_DEFAULT_COUNTS["train"], val: int = SYNTH_DEFAULT_COUNTS["val"],
                  train_extra: int = SYNTH_DEFAULT_COUNTS["train_extra"],
                  size: tuple[int, int] = (128, 256), seed: int = 0, progress: bool = False,
                  workers: int = 1) -> GenerationReport:
    """Write a synthetic street-scene dataset to ``root`` in the Cityscapes layout; see the module docstring.

    ``size`` is (height, width). ``root`` must be empty, missing, or a tree this function wrote before (it is
    replaced). ``workers`` > 1 draws images in that many processes; the files do not depend on it.
    """
    from segbench.synth.labels import NUM_LABEL_IDS

    root = Path(root)
    counts = {"train": train, "val": val, "train_extra": train_extra}
    _check_arguments(counts, size, seed, workers)
    height, width = int(size[0]), int(size[1])
    _claim(root)
    jobs = [(split, index) for split in SPLITS for index in range(counts[split])]
    totals = {f"{kind}/{split}": np.zeros(NUM_LABEL_IDS, dtype=np.int64)
              for split in SPLITS for kind in ("gtFine", "gtCoarse")
              if counts[split] and not (kind == "gtFine" and split == "train_extra")}

    start = time.perf_counter()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), unit="img", desc=f"synth {root}")
    args = [(str(root), split, index, height, width, seed) for split, index in jobs]
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("fork")) as pool:
            results = pool.map(_write_one, args, chunksize=max(1, len(args) // (8 * workers)))
            _collect(results, totals, bar)
    else:
        _collect(map(_write_one, args), totals, bar)
    if bar is not None:
        bar.close()
    seconds = time.perf_counter() - start

    marker = {"generator": "segbench.synth", "version": GENERATOR_VERSION, **counts,
              "size": [height, width], "seed": seed}
    atomic_write_text(root / COMPLETE_MARKER, json.dumps(marker, indent=1) + "\n")
    (root / _IN_PROGRESS).unlink(missing_ok=True)
    return GenerationReport(root=root, size=(height, width), seed=seed, counts=counts, seconds=seconds,
                            label_pixels={k: tuple(int(v) for v in t) for k, t in totals.items()})


def read_marker(root: Path) -> dict | None:
    """The parameters of the complete tree at ``root``, or None if there is none (or it was interrupted)."""
    try:
        marker = json.loads((Path(root) / COMPLETE_MARKER).read_text())
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) and marker.get("generator") == "segbench.synth" else None


def is_complete(root: Path, *, train: int = 120, val: int = 30, train_extra: int = 60,
                size: tuple[int, int] = (128, 256), seed: int = 0) -> bool:
    """True when ``root`` holds a finished tree generated with exactly these parameters by this generator."""
    expected = {"generator": "segbench.synth", "version": GENERATOR_VERSION, "train": train, "val": val,
                "train_extra": train_extra, "size": [int(size[0]), int(size[1])], "seed": seed}
    return read_marker(root) == expected


def _check_arguments(counts: dict[str, int], size, seed: int, workers: int) -> None:
    problems = [f"--{split.replace('_', '-')} {n}: the number of images must be between 0 and {MAX_IMAGES}"
                for split, n in counts.items() if not isinstance(n, int) or not 0 <= n <= MAX_IMAGES]
    try:
        height, width = (int(v) for v in size)
    except (TypeError, ValueError):
        problems.append(f"size {size!r}: give (height, width), e.g. (128, 256)")
    else:
        if height < MIN_SIZE[0] or width < MIN_SIZE[1]:
            problems.append(f"size {height}x{width}: images must be at least {MIN_SIZE[0]}x{MIN_SIZE[1]}"
                            " (height x width); Cityscapes' aspect is 1:2, e.g. 128x256")
        elif height > MAX_SIZE[0] or width > MAX_SIZE[1]:
            problems.append(f"size {height}x{width}: images can be at most {MAX_SIZE[0]}x{MAX_SIZE[1]}"
                            " (height x width), e.g. 128x256 or 1024x2048")
    if not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        problems.append(f"seed {seed!r}: use a whole number from 0 to {MAX_SEED}")
    if not isinstance(workers, int) or workers < 1:
        problems.append(f"workers {workers!r}: use 1 or more processes")
    if problems:
        raise SegbenchError("cannot generate the synthetic city: " + "; ".join(problems))


def _claim(root: Path) -> None:
    """Make ``root`` ours: refuse a foreign non-empty folder, clear an earlier generated tree."""
    if root.exists() and not root.is_dir():
        raise SegbenchError(f"{root} is a file; give a directory for the synthetic city")
    if root.is_dir() and any(root.iterdir()):
        ours = read_marker(root) is not None or (root / _IN_PROGRESS).exists()
        if not ours:
            raise SegbenchError(
                f"{root} is not empty and was not written by `segbench synth`; refusing to write into it"
                " (it might hold a real dataset). Choose a new or empty directory.")
    root.mkdir(parents=True, exist_ok=True)
    (root / _IN_PROGRESS).write_text("generation started; this tree is incomplete until .complete exists\n")
    (root / COMPLETE_MARKER).unlink(missing_ok=True)
    for folder in ("leftImg8bit", "gtFine", "gtCoarse"):
        shutil.rmtree(root / folder, ignore_errors=True)


def _collect(results, totals: dict[str, np.ndarray], bar) -> None:
    for split, fine, coarse in results:
        if fine is not None:
            totals[f"gtFine/{split}"] += fine
        totals[f"gtCoarse/{split}"] += coarse
        if bar is not None:
            bar.update(1)


def _write_one(job: tuple[str, str, int, int, int, int]):
    """Draw and write image ``index`` of ``split``; returns its fine and coarse labelId histograms."""
    from segbench.synth.coarse import coarsen
    from segbench.synth.labels import NUM_LABEL_IDS
    from segbench.synth.scene import render_scene

    root, split, index, height, width, seed = job
    rng = image_rng(seed, split, index)
    scene = render_scene(rng, height, width)
    coarse_labels, coarse_instances = coarsen(scene, rng)
    city, stem = image_stem(split, index)

    image_dir = Path(root, "leftImg8bit", split, city)
    image_dir.mkdir(parents=True, exist_ok=True)
    Image.fromarray(scene.image).save(image_dir / f"{stem}_leftImg8bit.png", **_PNG)
    fine_counts = None
    if split != "train_extra":
        _write_annotation(Path(root, "gtFine", split, city), f"{stem}_gtFine", scene.label_ids, scene.instance_ids)
        fine_counts = np.bincount(scene.label_ids.ravel(), minlength=NUM_LABEL_IDS)
    _write_annotation(Path(root, "gtCoarse", split, city), f"{stem}_gtCoarse", coarse_labels, coarse_instances)
    return split, fine_counts, np.bincount(coarse_labels.ravel(), minlength=NUM_LABEL_IDS)


def _write_annotation(folder: Path, prefix: str, label_ids: np.ndarray, instance_ids: np.ndarray) -> None:
    from segbench.synth.labels import COLOR

    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(label_ids).save(folder / f"{prefix}_labelIds.png", **_PNG)  # 8-bit grey ("L")
    # 16-bit grey, as in Cityscapes (ids up to 33999); Pillow opens it as mode "I;16".
    Image.fromarray(instance_ids.astype(np.uint16)).save(folder / f"{prefix}_instanceIds.png", **_PNG)
    Image.fromarray(COLOR[label_ids]).save(folder / f"{prefix}_color.png", **_PNG)
