"""The arithmetic a finished run did: training and evaluation GFLOP, the same on every machine.

Counted with ``torch.utils.flop_counter.FlopCounterMode`` on the meta device (nothing is computed):
one training step (forward, loss, backward) of the run's model at its batch size and image size, and
one evaluation forward per image at the label size; then multiplied by what the run's
``results.json`` and ``metrics.jsonl`` say it did (iterations, selection evaluations, report images, flip
averaging doubling the forwards) and the sizes of its splits (read from the dataset cache). Optimizer
updates, the loss's own arithmetic and up-sampling are left out (well under 1% for convolutional
models). The flop counter over-counts the weight gradient of grouped convolutions by the number of
groups; the U-Net has none.

    python benchmarks/run_arithmetic.py RUN_DIR [RUN_DIR ...]
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


def _plan(run):
    from segbench.plugins import make_plugin_manager
    from segbench.registry import build_registries
    from segbench.report.loading import plan_for_run

    return plan_for_run(run, build_registries(make_plugin_manager()))


def step_flops(model, *, batch: int, size: tuple[int, int], num_classes: int, train: bool) -> int:
    """FLOPs of one forward (``train=False``) or forward + backward (``train=True``) on a batch."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from segbench.deep_supervision import split_training_output, supervised_loss

    counter = FlopCounterMode(display=False)
    with torch.device("meta"):
        images = torch.empty(batch, 3, *size)
        masks = torch.zeros(batch, *size, dtype=torch.long)
        model.train(train)
        with counter, torch.set_grad_enabled(train):
            output = model(images)
            if train:  # with the auxiliary classifiers of a deeply supervised model
                supervised_loss(torch.nn.functional.cross_entropy, split_training_output(output), masks).backward()
    return counter.get_total_flops()


def run_arithmetic(run_dir: Path) -> dict:
    """Training and evaluation FLOPs of the completed run in ``run_dir``."""
    import torch

    common.import_segbench()
    from segbench.errors import SegbenchError
    from segbench.report.loading import resolve_target

    run, checkpoint = resolve_target(run_dir)
    if checkpoint is not None:
        raise SegbenchError(f"{run_dir} is a checkpoint; give its run directory {run.path}")
    if not run.is_complete():
        raise SegbenchError(f"{run.path} has no results.json: the run is not finished (finish it with its"
                            " `segbench run` command), or this is not a run directory")
    results, events = run.read_results(), run.read_metrics()
    plan = _plan(run)
    size = tuple(plan.recipe.data["data"]["dataset"]["size"])
    num_classes = len(results.per_class_iou)
    batch = plan.trainer.batch_size
    with torch.device("meta"):
        model = plan.model.build(num_classes=num_classes)
    train_per_image = step_flops(model, batch=batch, size=size, num_classes=num_classes, train=True) / batch
    eval_per_image = step_flops(model, batch=1, size=size, num_classes=num_classes, train=False)
    from segbench.engine.build import build_datasets

    train, select, _ = build_datasets(plan)  # the run's own splits (from the dataset cache)
    images_trained = results.iterations * batch * plan.trainer.accumulate
    images_trained = min(images_trained, results.epochs * len(train))  # an epoch's last batch may be partial
    selections = sum(1 for e in events if getattr(e, "type", None) == "eval" and getattr(e, "split", None) == "select")
    forwards_per_image = 2 if results.evaluation.flip else 1
    eval_images = selections * len(select) + results.report_images
    train_flops = train_per_image * images_trained
    eval_flops = eval_per_image * forwards_per_image * eval_images
    return {"train_gflop": train_flops / 1e9, "eval_gflop": eval_flops / 1e9,
            "total_gflop": (train_flops + eval_flops) / 1e9,
            "train_gflop_per_image": train_per_image / 1e9, "eval_gflop_per_forward": eval_per_image / 1e9,
            "images_trained": images_trained, "selection_evaluations": selections,
            "evaluated_images": eval_images, "forwards_per_evaluated_image": forwards_per_image,
            "image_size": list(size), "params": results.params}


def main() -> None:
    parser = common.argument_parser(__doc__)
    parser.add_argument("runs", nargs="+", type=Path)
    args = parser.parse_args()
    common.import_segbench()
    from segbench.errors import SegbenchError

    for run_dir in args.runs:
        try:
            count = run_arithmetic(run_dir)
        except SegbenchError as exc:  # RecordError too: a damaged results.json or metrics.jsonl
            print(f"run_arithmetic: error: {exc}", file=sys.stderr)
            sys.exit(2)
        print(f"{run_dir}: {count['total_gflop']:.0f} GFLOP (training {count['train_gflop']:.0f}:"
              f" {count['images_trained']} images x {count['train_gflop_per_image']:.3f};"
              f" evaluation {count['eval_gflop']:.0f}: {count['evaluated_images']} images x"
              f" {count['forwards_per_evaluated_image']} x {count['eval_gflop_per_forward']:.3f})")


if __name__ == "__main__":
    main()
