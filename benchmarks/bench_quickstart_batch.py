"""Seconds per training image of the quickstart's model at batch 4, 8 and 16 (fp32, channels-last), interleaved.

One step = forward, loss, backward, optimizer step through segbench's own training step (``bench_train_step``'s
``SegbenchStep``) on random 64x128 images; 64 images per timed call. Run it with AVX2 kernels to see the AVX2 class:

    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 \\
        python benchmarks/bench_quickstart_batch.py
"""
from __future__ import annotations

import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_train_step  # noqa: E402
import common  # noqa: E402

IMAGES_PER_CALL = 64


def main() -> None:
    common.ensure_allocator_env()
    section = yaml.safe_load((common.ROOT / "recipes" / "quickstart.yaml").read_text())["model"]
    steps, step = {}, None
    for batch in (4, 8, 16):
        step = bench_train_step.SegbenchStep(section, batch=batch, crop=(64, 128), precision="fp32",
                                             channels_last=True)
        steps[f"batch {batch}"] = lambda step=step, calls=IMAGES_PER_CALL // batch: [step() for _ in range(calls)]
    print(common.machine_line(common.machine(step.device)))
    timings = common.interleaved(steps, device=step.device, warmup=1, repetitions=5)
    for name, timing in timings.items():
        print(f"{name}: {timing['median_s'] / IMAGES_PER_CALL * 1000:.2f} ms per image"
              f" (best {timing['best_s'] / IMAGES_PER_CALL * 1000:.2f})")


if __name__ == "__main__":
    main()
