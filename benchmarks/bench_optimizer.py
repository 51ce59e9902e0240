"""The optimizer step on CPU: segbench's fused SGD and AdamW against torch's default implementation (a
loop over the parameters on CPU) and its ``foreach`` one, on the quickstart model's parameters.

Each optimizer as its recipe section builds it (the quickstart's SGD section; AdamW at lr 3e-3), every
parameter with a random gradient; the variants interleaved in one process, medians over rounds of
``--steps`` steps. Also checks that the fused step computes the same update as the default one (the
largest difference after ``--steps`` steps, relative to the parameters' size).

    python benchmarks/bench_optimizer.py [--steps 50] [--repetitions 5]

Writes ``benchmarks/results/optimizer.json`` and ``.md``.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


def optimizers(plan, registries, params):
    """name -> (segbench's optimizer, torch's class and keyword arguments for the same settings)."""
    import torch

    section = plan.optimizer.config
    sgd = {"lr": section.lr, "momentum": section.momentum, "nesterov": section.nesterov,
           "weight_decay": section.weight_decay}
    adamw_entry = registries.optimizers.get("adamw")
    adamw_config = adamw_entry.config(lr=3e-3)
    adamw = {"lr": adamw_config.lr, "betas": adamw_config.betas, "eps": adamw_config.eps,
             "weight_decay": adamw_config.weight_decay}
    return {"sgd": (plan.optimizer.build(param_groups=[{"params": params()}]), torch.optim.SGD, sgd),
            "adamw": (adamw_entry.factory(adamw_config, param_groups=[{"params": params()}]), torch.optim.AdamW,
                      adamw)}


def main() -> None:
    parser = common.argument_parser(__doc__)
    parser.add_argument("--steps", type=common.count(1), default=50)
    parser.add_argument("--repetitions", type=common.count(1), default=5)
    args = parser.parse_args()
    common.ensure_allocator_env()
    common.import_segbench()
    import torch

    plan, registries = common.quickstart_plan()
    model = plan.model.build(num_classes=19)
    reference = [p.detach().clone() for p in model.parameters()]
    gradients = [torch.randn_like(p) for p in reference]

    def params():
        copies = [torch.nn.Parameter(p.clone()) for p in reference]
        for copy, gradient in zip(copies, gradients):
            copy.grad = gradient.clone()
        return copies

    report = {"machine": common.machine(), "parameters": sum(p.numel() for p in reference),
              "tensors": len(reference), "steps": args.steps, "repetitions": args.repetitions, "optimizers": {}}
    for name, (ours, torch_class, settings) in optimizers(plan, registries, params).items():
        variants = {"segbench (fused)": ours, "torch default (loop)": torch_class(params(), **settings),
                    "torch foreach": torch_class(params(), foreach=True, **settings)}
        assert ours.defaults.get("fused"), f"segbench's {name} is not fused"

        def steps(optimizer):
            return lambda: [optimizer.step() for _ in range(args.steps)]

        times = common.interleaved({label: steps(opt) for label, opt in variants.items()},
                                   device=torch.device("cpu"), repetitions=args.repetitions)
        fused_params = ours.param_groups[0]["params"]
        loop_params = variants["torch default (loop)"].param_groups[0]["params"]
        difference = max(float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))
                         for a, b in zip(fused_params, loop_params))
        report["optimizers"][name] = {"settings": settings, "times": times,
                                      "max_relative_difference_fused_vs_loop": difference}
    common.write_results("optimizer", report, markdown(report))
    print(markdown(report))


def markdown(report: dict) -> str:
    lines = ["# Optimizer step on CPU: segbench's fused optimizers vs torch's defaults", "",
             f"The quickstart model's {report['parameters']:,} parameters in {report['tensors']} tensors, each with a"
             f" random gradient; medians of {report['repetitions']} interleaved rounds of {report['steps']} steps.",
             "", "| optimizer | variant | ms/step | segbench's speed-up |", "|---|---|---:|---:|"]
    for name, entry in report["optimizers"].items():
        times = entry["times"]
        ours = times["segbench (fused)"]["median_s"]
        for label, t in times.items():
            ratio = "" if label.startswith("segbench") else f"{t['median_s'] / ours:.2f}x"
            lines.append(f"| {name} | {label} | {t['median_s'] / report['steps'] * 1e3:.3f} | {ratio} |")
    lines += ["", "Largest difference between the fused and the default step's parameters after all rounds,"
              " relative to the parameter's largest value: " + ", ".join(
                  f"{name} {entry['max_relative_difference_fused_vs_loop']:.1e}"
                  for name, entry in report["optimizers"].items()) + ".", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
