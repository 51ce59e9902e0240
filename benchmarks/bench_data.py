"""Data pipeline speed per CPU core: PNG decode + training augmentation of a 2048x1024 image/label pair.

Compared, in the same process, interleaved over several repetitions (medians reported), with
``torch.set_num_threads(1)`` (and ``cv2.setNumThreads(1)``) for per-core figures:

* decode + augmentation: segbench (``torchvision.io.decode_png`` + the recipe pipeline) vs the
  classic PIL + ``torchvision.transforms.functional`` pipeline (PIL open, resize bilinear / nearest,
  pad, crop, hflip, ``ColorJitter``, ``to_tensor``, ``normalize``);
* augmentation alone, on decoded arrays: segbench vs albumentations (RandomScale + PadIfNeeded +
  RandomCrop + HorizontalFlip + ColorJitter + Normalize + ToTensorV2, the same settings);
* images/s sustained by a ``DataLoader`` with 0, 1 and 2 workers over ``TransformedDataset``.

Training augmentation everywhere: scale 0.75-1.25, 512x1024 crop (padding image 0 / label 255),
horizontal flip p=0.5, colour jitter brightness/contrast/saturation 0.25 (no hue), ImageNet
normalisation; the label ends as int64. The test images are generated (smooth gradients, shapes,
mild noise: PNG decode time depends on content) in a temporary folder. Each allocator setting is
measured in its own child process: ``plain`` and ``glibc-tuned`` (``MALLOC_MMAP_MAX_=0
MALLOC_TRIM_THRESHOLD_=68719476736``).

    python benchmarks/bench_data.py [--repetitions 7] [--allocators plain glibc-tuned]

Writes ``benchmarks/results/data.json`` and ``benchmarks/results/data.md``.
albumentations is needed only here: ``pip install albumentations``.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

HEIGHT, WIDTH, CROP = 1024, 2048, (512, 1024)
SCALE, JITTER, IGNORE = (0.75, 1.25), 0.25, 255
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
ALLOCATORS = {
    "plain": {},
    "glibc-tuned": {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "68719476736"},
}
RESULTS = common.RESULTS
RECIPE = [
    {"name": "random_scale_crop", "scale": list(SCALE), "size": list(CROP), "pad": True},
    {"name": "hflip", "p": 0.5},
    {"name": "color_jitter", "brightness": JITTER, "contrast": JITTER, "saturation": JITTER, "hue": 0.0},
    {"name": "normalize"},
]
SCENES = 4


# ---- test data ----------------------------------------------------------------------------------

def make_scene(folder: Path, index: int) -> tuple[Path, Path]:
    """A street-like RGB PNG and its train-id label PNG: sky, buildings with windows, trees, road,
    cars, poles, an ignored ego-vehicle strip; low-frequency shading and sensor-like noise."""
    import numpy as np
    from PIL import ImageDraw

    rng = np.random.default_rng(index)
    image = Image.new("RGB", (WIDTH, HEIGHT))
    label = Image.new("L", (WIDTH, HEIGHT), IGNORE)
    paint, mark = ImageDraw.Draw(image), ImageDraw.Draw(label)

    def shape(kind, box, colour, train_id):
        getattr(paint, kind)(box, fill=tuple(int(c) for c in colour))
        getattr(mark, kind)(box, fill=train_id)

    horizon = int(HEIGHT * rng.uniform(0.38, 0.48))
    for y in range(horizon):  # sky: a vertical gradient
        t = y / horizon
        colour = (110 + 90 * t, 160 + 60 * t, 225 + 20 * t)
        shape("line", [(0, y), (WIDTH, y)], colour, 10)
    for y in range(horizon, HEIGHT):  # road, darker towards the camera
        t = (y - horizon) / (HEIGHT - horizon)
        shape("line", [(0, y), (WIDTH, y)], (120 - 40 * t, 118 - 38 * t, 125 - 40 * t), 0)
    shape("polygon", [(0, horizon + 40), (600, horizon + 10), (500, horizon + 60), (0, HEIGHT - 250)],
          (170, 160, 150), 1)  # sidewalk
    x = 0
    while x < WIDTH:  # buildings with window grids
        width = int(rng.integers(150, 420))
        top = int(rng.integers(horizon // 5, horizon - 60))
        colour = rng.integers(90, 200, 3)
        shape("rectangle", [x, top, x + width, horizon + 20], colour, 2)
        for wy in range(top + 20, horizon - 20, 45):
            for wx in range(x + 15, x + width - 30, 40):
                shape("rectangle", [wx, wy, wx + 20, wy + 28], colour * 0.45, 2)
        x += width + int(rng.integers(0, 60))
    for _ in range(6):  # trees
        cx, cy = int(rng.integers(0, WIDTH)), int(rng.integers(horizon - 250, horizon))
        rx, ry = int(rng.integers(60, 160)), int(rng.integers(80, 200))
        shape("ellipse", [cx - rx, cy - ry, cx + rx, cy + ry], (50 + rng.integers(0, 40), 110, 40), 8)
    for _ in range(5):  # poles
        px = int(rng.integers(0, WIDTH))
        shape("rectangle", [px, horizon - 300, px + 10, horizon + 120], (80, 80, 85), 5)
    for lane in range(0, WIDTH, 260):  # lane markings
        shape("rectangle", [lane, HEIGHT - 330, lane + 120, HEIGHT - 318], (235, 235, 235), 0)
    for _ in range(5):  # cars
        cx, cy = int(rng.integers(0, WIDTH - 400)), int(rng.integers(horizon + 20, HEIGHT - 350))
        size = int(rng.integers(180, 400))
        shape("rounded_rectangle", [cx, cy, cx + size, cy + size // 2], rng.integers(20, 230, 3), 13)
        shape("rectangle", [cx + size // 6, cy + 8, cx + size * 5 // 6, cy + size // 5], (40, 50, 60), 13)
    shape("rectangle", [0, HEIGHT - 120, WIDTH, HEIGHT], (30, 30, 32), IGNORE)  # ego vehicle

    pixels = np.asarray(image).astype(np.float32)
    coarse = rng.normal(0, 1, (HEIGHT // 128, WIDTH // 128, 1)).astype(np.float32)
    shading = np.asarray(Image.fromarray(coarse[..., 0]).resize((WIDTH, HEIGHT), Image.BICUBIC))[..., None]
    pixels = pixels * (1 + 0.06 * shading) + rng.normal(0, 2.5, pixels.shape)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    image_path, label_path = folder / f"scene{index}_image.png", folder / f"scene{index}_label.png"
    image.save(image_path)
    label.save(label_path)
    return image_path, label_path


class PngPairs:
    """A minimal dataset over (image, label) PNG paths, read the way segbench's datasets read them."""

    def __init__(self, pairs, length):
        self.pairs, self.length = pairs, length

    def __len__(self):
        return self.length

    def __getitem__(self, index):
        from segbench.data.png import read_label_png, read_rgb_png

        image_path, label_path = self.pairs[index % len(self.pairs)]
        return read_rgb_png(image_path), read_label_png(label_path)


# ---- the pipelines compared ---------------------------------------------------------------------

def pil_pipeline(image_path, label_path, rng: random.Random):
    """The classic pipeline: PIL images through ``torchvision.transforms.functional``."""
    import numpy as np
    import torch
    import torchvision.transforms as T
    import torchvision.transforms.functional as TF

    image = Image.open(image_path).convert("RGB")
    label = Image.open(label_path)
    label.load()
    scale = rng.uniform(*SCALE)
    size = [int(HEIGHT * scale), int(WIDTH * scale)]
    image = TF.resize(image, size, interpolation=T.InterpolationMode.BILINEAR)
    label = TF.resize(label, size, interpolation=T.InterpolationMode.NEAREST)
    pad_h, pad_w = max(CROP[0] - size[0], 0), max(CROP[1] - size[1], 0)
    if pad_h or pad_w:
        image = TF.pad(image, [0, 0, pad_w, pad_h], fill=0)
        label = TF.pad(label, [0, 0, pad_w, pad_h], fill=IGNORE)
    top = rng.randint(0, image.height - CROP[0])
    left = rng.randint(0, image.width - CROP[1])
    image, label = TF.crop(image, top, left, *CROP), TF.crop(label, top, left, *CROP)
    if rng.random() < 0.5:
        image, label = TF.hflip(image), TF.hflip(label)
    image = T.ColorJitter(JITTER, JITTER, JITTER, 0.0)(image)
    tensor = TF.normalize(TF.to_tensor(image), MEAN, STD)
    return tensor, torch.from_numpy(np.array(label, dtype=np.int64))


def albumentations_pipeline():
    import albumentations as A
    import cv2

    return A.Compose([
        A.RandomScale(scale_limit=(SCALE[0] - 1, SCALE[1] - 1), interpolation=cv2.INTER_LINEAR,
                      mask_interpolation=cv2.INTER_NEAREST, p=1.0),
        A.PadIfNeeded(*CROP, border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=IGNORE),
        A.RandomCrop(*CROP),
        A.HorizontalFlip(p=0.5),
        A.ColorJitter(brightness=JITTER, contrast=JITTER, saturation=JITTER, hue=0.0, p=1.0),
        A.Normalize(mean=MEAN, std=STD),
        A.ToTensorV2(),
    ], seed=0)


# ---- measurement --------------------------------------------------------------------------------

def interleaved(variants: dict, repetitions: int, iterations: int) -> dict:
    """Seconds per call of each variant: median and best over repetitions of ``iterations`` calls."""
    times = {name: [] for name in variants}
    for repetition in range(repetitions + 1):  # the first round warms up and is not counted
        for name, call in variants.items():
            start = time.perf_counter()
            for _ in range(iterations):
                call()
            if repetition:
                times[name].append((time.perf_counter() - start) / iterations)
    return {name: {"median_seconds": statistics.median(t), "best_seconds": min(t),
                   "images_per_second": 1 / statistics.median(t), "seconds": t} for name, t in times.items()}


def loader_throughput(dataset, workers: int, batch_size: int = 2, epochs: int = 2) -> float:
    """Images/s a DataLoader sustains (the first batch of each epoch, worker start-up, is excluded)."""
    from torch.utils.data import DataLoader

    from segbench.data.transformed import SeededShuffleSampler

    sampler = SeededShuffleSampler(len(dataset), seed=0)
    images, elapsed = 0, 0.0
    for epoch in range(epochs):
        dataset.set_epoch(epoch)
        sampler.set_epoch(epoch)
        loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers, drop_last=True)
        iterator = iter(loader)
        next(iterator)
        start = time.perf_counter()
        for batch_images, _ in iterator:
            images += batch_images.shape[0]
        elapsed += time.perf_counter() - start
    return images / elapsed


def measure(repetitions: int, iterations: int) -> dict:
    import cv2
    import numpy as np
    import PIL
    import torch
    import torchvision

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from segbench.data.png import read_label_png, read_rgb_png
    from segbench.data.transformed import TransformedDataset
    from segbench.plugins import make_plugin_manager
    from segbench.registry import build_registries
    from segbench.transforms import parse_pipeline

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    pipeline = parse_pipeline(RECIPE, path="train_transforms",
                              transforms=build_registries(make_plugin_manager()).transforms)
    report = {"torch": torch.__version__, "torchvision": torchvision.__version__, "pillow": PIL.__version__,
              "threads": torch.get_num_threads(), "repetitions": repetitions, "iterations": iterations}
    with tempfile.TemporaryDirectory() as tmp:
        pairs = [make_scene(Path(tmp), i) for i in range(SCENES)]
        image_path, label_path = pairs[0]
        report["png_bytes"] = {"image": image_path.stat().st_size, "label": label_path.stat().st_size}

        ours_image, ours_label = read_rgb_png(image_path), read_label_png(label_path)
        with Image.open(image_path) as pil_image, Image.open(label_path) as pil_label:
            report["decode_bit_identical_to_pil"] = bool(
                np.array_equal(ours_image.permute(1, 2, 0).numpy(), np.asarray(pil_image.convert("RGB")))
                and np.array_equal(ours_label.numpy(), np.asarray(pil_label)))

        def pil_decode():
            with Image.open(image_path) as image, Image.open(label_path) as label:
                image.convert("RGB"), label.load()

        report["decode"] = interleaved({
            "segbench (torchvision.io.decode_png)": lambda: (read_rgb_png(image_path), read_label_png(label_path)),
            "PIL": pil_decode,
        }, repetitions, iterations)

        generator, rng = torch.Generator().manual_seed(0), random.Random(0)
        report["decode_and_augment"] = interleaved({
            "segbench": lambda: pipeline(read_rgb_png(image_path), read_label_png(label_path), generator),
            "PIL + transforms.functional": lambda: pil_pipeline(image_path, label_path, rng),
        }, repetitions, iterations)

        transform = albumentations_pipeline()
        image_hwc, label_hw = ours_image.permute(1, 2, 0).numpy(), ours_label.numpy()
        assert image_hwc.flags.c_contiguous  # decode_png returns channels-last memory

        def albumentations_call():
            out = transform(image=image_hwc, mask=label_hw)
            return out["image"], out["mask"].to(torch.int64)

        report["augment"] = interleaved({
            "segbench": lambda: pipeline(ours_image, ours_label, generator),
            "albumentations": albumentations_call,
        }, repetitions, iterations)

        dataset = TransformedDataset(PngPairs(pairs, length=8 * SCENES), pipeline, seed=0)
        report["dataloader_images_per_second"] = {workers: loader_throughput(dataset, workers)
                                                  for workers in (0, 1, 2)}
    report["load_average_1min_at_end"] = os.getloadavg()[0]  # other processes compete for the cores
    return report


# ---- report -------------------------------------------------------------------------------------

def speedups(section: dict, ours: str, other: str) -> float:
    return section[other]["median_seconds"] / section[ours]["median_seconds"]


def markdown(report: dict) -> str:
    first = next(iter(report["allocators"].values()))
    lines = [
        "# Data pipeline per CPU core: decode + training augmentation",
        "",
        f"A generated {WIDTH}x{HEIGHT} street-like RGB PNG ({first['png_bytes']['image'] / 1e6:.1f} MB) and its"
        f" label PNG ({first['png_bytes']['label'] / 1e3:.0f} kB) -> scale {SCALE[0]}-{SCALE[1]}, {CROP[0]}x{CROP[1]}"
        f" crop, hflip, colour jitter {JITTER} (no hue), ImageNet normalisation, int64 label. Medians of"
        f" {report['repetitions']} interleaved repetitions of {report['iterations']} images each, 1 thread;"
        f" torch {first['torch']}, torchvision {first['torchvision']}, Pillow {first['pillow']},"
        f" albumentations {report.get('albumentations', '?')}; {common.machine_line(report['machine'])}.",
        "",
        "| allocator | stage | variant | median ms/image | best ms | images/s | segbench speed-up |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for allocator, run in report["allocators"].items():
        for stage in ("decode", "decode_and_augment", "augment"):
            variants = run[stage]
            ours = next(name for name in variants if name.startswith("segbench"))
            for name, v in variants.items():
                speedup = "" if name == ours else f"{speedups(variants, ours, name):.2f}x"
                lines.append(f"| {allocator} | {stage.replace('_', ' ')} | {name} | {v['median_seconds'] * 1e3:.1f}"
                             f" | {v['best_seconds'] * 1e3:.1f} | {v['images_per_second']:.1f} | {speedup} |")
    lines += ["", "DataLoader over `TransformedDataset` (PNG files, batch 2, sustained images/s after the first"
              " batch; each worker uses one thread):", "",
              "| allocator | workers | images/s |", "|---|---:|---:|"]
    for allocator, run in report["allocators"].items():
        for workers, rate in run["dataloader_images_per_second"].items():
            lines.append(f"| {allocator} | {workers} | {rate:.1f} |")
    identical = all(run["decode_bit_identical_to_pil"] for run in report["allocators"].values())
    loads = ", ".join(f"{name} {run['load_average_1min_at_end']:.1f}" for name, run in report["allocators"].items())
    lines += ["", f"torchvision.io.decode_png output bit-identical to PIL: {identical}.",
              f"1-minute load average when each run ended ({os.cpu_count()} CPUs): {loads}; above the CPU count,"
              " other processes shared the cores and absolute figures are low (ratios are of interleaved runs).",
              "`glibc-tuned`: `MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=68719476736` in the environment.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = common.argument_parser(__doc__)
    parser.add_argument("--repetitions", type=common.count(1), default=7)
    parser.add_argument("--iterations", type=common.count(1), default=4, help="images per repetition and variant")
    parser.add_argument("--allocators", nargs="+", choices=sorted(ALLOCATORS), default=list(ALLOCATORS))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    common.require(parser, "albumentations", "the augmentation comparison")
    if args.child:
        print(json.dumps(measure(args.repetitions, args.iterations)))
        return

    import albumentations

    runs = {}
    for allocator in args.allocators:
        env = {**os.environ, **ALLOCATORS[allocator]}
        runs[allocator] = common.run_child(Path(__file__), ["--repetitions", str(args.repetitions),
                                                            "--iterations", str(args.iterations)], env=env)
        run = runs[allocator]
        versus_pil = speedups(run["decode_and_augment"], "segbench", "PIL + transforms.functional")
        versus_albumentations = speedups(run["augment"], "segbench", "albumentations")
        print(f"{allocator}: decode+augment {versus_pil:.2f}x the PIL pipeline, augment"
              f" {versus_albumentations:.2f}x albumentations, DataLoader {run['dataloader_images_per_second']}",
              flush=True)
    report = {"machine": common.machine(), "repetitions": args.repetitions,
              "iterations": args.iterations, "albumentations": albumentations.__version__, "allocators": runs}
    common.write_results("data", report, markdown(report))
    print((RESULTS / "data.md").read_text())


if __name__ == "__main__":
    main()
