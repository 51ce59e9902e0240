"""A training epoch of a small split's data: decoded once and kept (what segbench does for a split that
fits in memory, read by the training process) against decoded from its PNG files every epoch (what a
DataLoader over files does: torchvision's reference scripts, mmsegmentation).

The quickstart's data (its recipe's dataset, training split and transforms; the synthetic city is
generated into a temporary cache first), batches of the recipe's size, ``num_workers=0``; the two
variants interleaved epoch by epoch in one process, the first epoch of each not counted (it decodes in
both). Medians.

    python benchmarks/bench_decoded_cache.py [--epochs 7]

Writes ``benchmarks/results/decoded_cache.json`` and ``.md``.
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


def quickstart_datasets(decoded_kept: bool):
    from segbench.data.transformed import TransformedDataset
    from segbench.engine.build import build_datasets

    plan, _ = common.quickstart_plan()
    train, _, _ = build_datasets(plan)
    dataset = TransformedDataset(train, plan.train_transforms, seed=plan.seed, same_size=True,
                                 keep_decoded=decoded_kept)
    return dataset, plan.trainer.batch_size


def epoch_runner(dataset, batch_size: int):
    """One call: the next epoch of ``dataset`` through a DataLoader, as the trainer iterates it."""
    from segbench.data.loader import data_loader
    from segbench.data.transformed import SeededShuffleSampler

    sampler = SeededShuffleSampler(len(dataset), seed=0)
    epoch = iter(range(10**6))

    def run():
        current = next(epoch)
        dataset.set_epoch(current)
        sampler.set_epoch(current)
        for _ in data_loader(dataset, batch_size=batch_size, sampler=sampler, drop_last=True, num_workers=0):
            pass
    return run


def markdown(report: dict) -> str:
    rows = report["variants"]
    kept, decoded = rows["decoded once, kept"], rows["decoded every epoch"]
    return "\n".join([
        "# A small split's training epoch: decoded once and kept vs decoded every epoch",
        "",
        f"The quickstart's training split ({report['images']} synthetic-city images of {report['size']}, its"
        f" transforms, batch {report['batch_size']}, DataLoader num_workers 0). Medians of {report['epochs']}"
        " interleaved epochs after one warm-up epoch each; 1-minute load average"
        f" {report['load_average']}.",
        "",
        "| variant | median s/epoch | best s/epoch | speed-up |",
        "|---|---:|---:|---:|",
        f"| decoded every epoch | {decoded['median_s']:.3f} | {decoded['best_s']:.3f} | |",
        f"| decoded once, kept (segbench) | {kept['median_s']:.3f} | {kept['best_s']:.3f} |"
        f" {decoded['median_s'] / kept['median_s']:.2f}x |",
        "",
        f"Kept decoded: {report['kept_megabytes']:.1f} MB.",
        "",
    ])


def main() -> None:
    parser = common.argument_parser(__doc__)
    parser.add_argument("--epochs", type=common.count(1), default=7)
    args = parser.parse_args()
    common.ensure_allocator_env()
    common.import_segbench()
    with tempfile.TemporaryDirectory() as cache:
        os.environ["SEGBENCH_CACHE"] = cache
        kept, batch_size = quickstart_datasets(decoded_kept=True)
        decoded, _ = quickstart_datasets(decoded_kept=False)
        variants = {"decoded once, kept": epoch_runner(kept, batch_size),
                    "decoded every epoch": epoch_runner(decoded, batch_size)}
        times = common.interleaved(variants, device=common.pick_device("cpu"), repetitions=args.epochs)
        image, _ = kept[0]
        cache_bytes = len(kept.base) * sum(t.numel() * t.element_size() for t in kept.base[0])
    report = {
        "machine": common.machine(), "epochs": args.epochs, "images": len(kept), "batch_size": batch_size,
        "size": "x".join(map(str, image.shape[-2:])), "kept_megabytes": cache_bytes / 1e6,
        "load_average": common.load_average(), "variants": times,
    }
    common.write_results("decoded_cache", report, markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
