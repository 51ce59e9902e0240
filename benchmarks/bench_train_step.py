"""Training-step speed and peak memory: segbench's default training path vs a plain fp32 PyTorch loop.

One step = forward, loss, backward, optimizer step, on a batch of 2 x 512x1024 (19 classes, ignore
index 255, random images and labels; the speed of these models does not depend on the values).

* ``segbench``: the model built from the registry and trained through the engine's own code:
  ``Trainer._micro_step`` + ``Trainer._optimizer_step`` with the defaults a recipe gets without
  asking (``precision: auto`` -> bf16 autocast on AVX-512-bf16 CPUs and on GPUs, channels-last
  with reduced precision, the registry's ``adam`` = fused Adam, ``cross_entropy`` loss, poly
  schedule);
* ``plain fp32``: the same model in the loop most projects write (fp32, contiguous memory,
  ``torch.optim.Adam`` with its defaults, ``nn.CrossEntropyLoss(ignore_index=255)``, ``loss.item()``
  every step);
* for DeepLabV3+, segmentation_models_pytorch's ``DeepLabV3Plus(encoder_name="resnet50",
  encoder_weights=None)`` in the same plain loop, and in segbench's precision/memory settings.

Speed: every variant of a model runs in one process, interleaved, after a warm-up step; medians.
Achieved FLOP/s = 3 x forward FLOPs (``torch.utils.flop_counter`` on the meta device) / step time,
compared with the ``torch.mm`` 4096^2 throughput of the precision it trains in, measured in the same run
(bf16 only where the hardware has it: a CPU without native bf16 emulates it, minutes per product). Peak memory: a child
process per variant runs two steps and reports its peak RSS (CPU) or ``torch.cuda.max_memory_allocated``.
The script re-executes itself with segbench's allocator settings (see ``common.ensure_allocator_env``).

    python benchmarks/bench_train_step.py [--models deeplabv3plus unet deeplabv3] [--repetitions 3]
        [--profile] [--no-memory]

Writes ``benchmarks/results/train_step.json`` and ``.md``; ``--profile`` adds the top operators of
one step of each variant (``torch.profiler``) to the report.
segmentation-models-pytorch is needed only here (``benchmarks/requirements.txt``).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

NUM_CLASSES, IGNORE_INDEX = 19, 255
BATCH, CROP = 2, (512, 1024)
MODELS = {  # segbench registry name -> model section of a recipe (defaults otherwise)
    "deeplabv3plus": {"name": "deeplabv3plus"},
    "unet": {"name": "unet"},
    "deeplabv3": {"name": "deeplabv3"},
}
VARIANTS = ("segbench", "plain fp32")
SMP_VARIANTS = ("smp plain fp32", "smp in segbench's settings")
TARGET_SPEEDUP, TARGET_PEAK_FRACTION = 2.3, 0.65


def parse_crop(text: str) -> tuple[int, int]:
    height, width = text.lower().split("x")
    return int(height), int(width)


def crop_name(crop) -> str:
    return f"{crop[0]}x{crop[1]}"


# ---- inputs and models --------------------------------------------------------------------------

def make_batch(batch: int, crop: tuple[int, int]):
    """Random normalised images ``(N, 3, H, W)`` and int64 labels ``(N, H, W)`` with ~10% ignored."""
    import torch

    generator = torch.Generator().manual_seed(0)
    images = torch.randn(batch, 3, *crop, generator=generator)
    masks = torch.randint(0, NUM_CLASSES, (batch, *crop), generator=generator)
    masks[torch.rand(batch, *crop, generator=generator) < 0.1] = IGNORE_INDEX
    return images, masks


def benchmark_plan(model_section: dict, *, batch: int, crop: tuple[int, int], device: str = "auto",
                   precision: str = "auto", channels_last: bool | None = None):
    """A validated segbench plan with the defaults a recipe gets (the dataset is declared, never built)."""
    common.import_segbench()
    from segbench.plugins import make_plugin_manager
    from segbench.recipe.load import ResolvedRecipe
    from segbench.recipe.plan import build_plan
    from segbench.registry import build_registries

    data = {
        "seed": 0,
        "model": dict(model_section),
        "data": {"dataset": {"name": "synthetic_city", "size": list(crop)},
                 "train": {"split": "train"}, "report": {"split": "val"}},
        "loss": {"name": "cross_entropy"},
        "optimizer": {"name": "adam"},
        "scheduler": {"name": "poly"},
        "trainer": {"batch_size": batch, "max_iterations": 1000, "precision": precision, "device": device,
                    "channels_last": channels_last, "select_on": "report"},
    }
    recipe = ResolvedRecipe(path=Path("benchmark.yaml"), data=data, chain=())
    return build_plan(recipe, build_registries(make_plugin_manager()))


class SegbenchStep:
    """One optimizer step through ``Trainer._micro_step`` and ``Trainer._optimizer_step``.

    Objects are built as ``segbench.engine.build.build_components`` builds them (model from the
    registry, moved to the device, channels-last when chosen; loss, optimizer with its parameter
    groups, scheduler from the registries); the device, precision and memory format come from
    ``segbench.engine.runtime.Runtime.resolve``, i.e. the defaults.
    """

    def __init__(self, model_section: dict, *, batch: int, crop: tuple[int, int], device: str = "auto",
                 model=None, precision: str = "auto", channels_last: bool | None = None):
        from types import SimpleNamespace

        from segbench.engine.param_groups import split_param_groups
        from segbench.engine.runtime import Runtime
        from segbench.engine.trainer import Trainer

        plan = benchmark_plan(model_section, batch=batch, crop=crop, device=device, precision=precision,
                              channels_last=channels_last)
        runtime = Runtime.resolve(plan.trainer)
        self.device, self.precision, self.channels_last = runtime.device, runtime.precision, runtime.channels_last
        raw_model = plan.model.build(num_classes=NUM_CLASSES) if model is None else model
        self.model = runtime.model(raw_model)
        criterion = plan.loss.build(ignore_index=IGNORE_INDEX, class_weights=None)
        optimizer = plan.optimizer.build(param_groups=split_param_groups(raw_model, {}))
        scheduler = plan.scheduler.build(optimizer=optimizer, total_iterations=plan.trainer.max_iterations,
                                         iterations_per_epoch=1)
        parts = SimpleNamespace(model=self.model, train_data=range(batch), select_data=None, criterion=criterion,
                                optimizer=optimizer, scheduler=scheduler, num_classes=NUM_CLASSES,
                                ignore_index=IGNORE_INDEX)
        self.trainer = Trainer(plan, None, parts, runtime, progress=False, log=lambda m: None)
        self.model.train()
        self.images, self.masks = make_batch(batch, crop)

    @property
    def settings(self) -> str:
        fused = self.trainer.optimizer.defaults.get("fused")
        return (f"{self.precision} autocast" if self.precision != "fp32" else "fp32") + \
            (", channels-last" if self.channels_last else ", contiguous") + (", fused Adam" if fused else ", Adam")

    def run(self, images, masks):
        loss = self.trainer._micro_step(images, masks, 1.0)
        self.trainer._optimizer_step()
        return loss

    def __call__(self):
        return self.run(self.images, self.masks)


class PlainStep:
    """The usual hand-written loop: fp32, contiguous, default Adam, ``loss.item()`` every step."""

    settings = "fp32, contiguous, Adam (defaults), loss.item() each step"

    def __init__(self, model, *, batch: int, crop: tuple[int, int], device):
        import torch

        self.device = device
        self.model = model.to(device).train()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-4)
        self.criterion = torch.nn.CrossEntropyLoss(ignore_index=IGNORE_INDEX)
        self.images, self.masks = make_batch(batch, crop)

    def __call__(self):
        images, masks = self.images.to(self.device), self.masks.to(self.device)
        self.optimizer.zero_grad()
        loss = self.criterion(self.model(images), masks)
        loss.backward()
        self.optimizer.step()
        return loss.item()


def build_registry_model(name: str, *, meta: bool = False):
    import torch

    plan = benchmark_plan(MODELS[name], batch=BATCH, crop=CROP)
    if meta:
        with torch.device("meta"):
            return plan.model.build(num_classes=NUM_CLASSES)
    return plan.model.build(num_classes=NUM_CLASSES)


def build_smp(meta: bool = False):
    import segmentation_models_pytorch as smp
    import torch

    def make():
        return smp.DeepLabV3Plus(encoder_name="resnet50", encoder_weights=None, classes=NUM_CLASSES)

    if meta:
        with torch.device("meta"):
            return make()
    return make()


def make_step(model_name: str, variant: str, *, batch: int = BATCH, crop=CROP, device="auto"):
    torch_device = common.pick_device(device)
    if variant == "segbench":
        return SegbenchStep(MODELS[model_name], batch=batch, crop=crop, device=device)
    if variant == "plain fp32":
        return PlainStep(build_registry_model(model_name), batch=batch, crop=crop, device=torch_device)
    if variant == "smp plain fp32":
        return PlainStep(build_smp(), batch=batch, crop=crop, device=torch_device)
    if variant == "smp in segbench's settings":
        return SegbenchStep(MODELS["deeplabv3plus"], batch=batch, crop=crop, device=device, model=build_smp())
    raise ValueError(variant)


def variants_for(model_name: str, with_smp: bool) -> tuple[str, ...]:
    return VARIANTS + (SMP_VARIANTS if model_name == "deeplabv3plus" and with_smp else ())


# ---- measurements -------------------------------------------------------------------------------

def forward_flops(model, batch: int, crop: tuple[int, int]) -> int:
    """Forward FLOPs counted on the meta device (no computation); a train step is taken as 3x this."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    model.eval()  # batch-norm refuses a training batch of one; the FLOPs are the same
    with torch.device("meta"), torch.no_grad():
        images = torch.empty(batch, 3, *crop)
        counter = FlopCounterMode(display=False)
        with counter:
            model(images)
    return counter.get_total_flops()


def model_flops(model_name: str, variant: str, batch: int = BATCH, crop=CROP) -> int:
    model = build_smp(meta=True) if variant.startswith("smp") else build_registry_model(model_name, meta=True)
    return forward_flops(model, batch, crop)


def profile_table(step, *, rows: int = 15) -> str:
    """The top operators of one step by self CPU (or CUDA) time."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=activities) as prof:
        step()
        common.synchronize(common.pick_device())
    key = "self_device_time_total" if torch.cuda.is_available() else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=key, row_limit=rows, max_name_column_width=48)


def memory_child(model_name: str, variant: str, batch: int, crop, device: str) -> dict:
    """Peak memory of two steps in this process."""
    return common.two_step_memory(lambda: make_step(model_name, variant, batch=batch, crop=crop, device=device),
                                  device)


def measure_model(model_name: str, *, batch: int, crop, with_smp: bool, warmup: int, repetitions: int,
                  memory: bool, profile: bool, device: str, log) -> dict:
    import gc

    torch_device = common.pick_device(device)
    names = variants_for(model_name, with_smp)
    steps = {name: make_step(model_name, name, batch=batch, crop=crop, device=device) for name in names}
    log(f"{model_name}: " + "; ".join(f"{name} = {step.settings}" for name, step in steps.items()))
    timings = common.interleaved(steps, device=torch_device, warmup=warmup, repetitions=repetitions, log=log)
    profiles = {name: profile_table(step) for name, step in steps.items()} if profile else {}
    settings = {name: step.settings for name, step in steps.items()}
    del steps
    gc.collect()
    result = {"variants": {}}
    for name in names:
        flops = model_flops(model_name, name, batch, crop)
        seconds = timings[name]["median_s"]
        entry = {**timings[name], "settings": settings[name], "forward_flops": flops,
                 "train_step_flops": 3 * flops, "images_per_s": batch / seconds,
                 "achieved_flops_per_s": 3 * flops / seconds}
        if memory:
            log(f"  peak memory of {model_name} / {name} (child process)")
            entry.update(common.run_child(Path(__file__), ["--memory", model_name, name, "--device", device,
                                                            "--batch", str(batch), "--crop", crop_name(crop)]))
        if name in profiles:
            entry["profile"] = profiles[name]
        result["variants"][name] = entry
    return result


# ---- report -------------------------------------------------------------------------------------

def markdown(report: dict) -> str:
    peaks = "; ".join(f"{name} " + ", ".join(f"{v / 1e9:.0f} {k}" for k, v in r["gemm_flops_per_s"].items())
                      for name, r in report["models"].items())
    lines = [
        "# Training step: segbench's default path vs a plain fp32 loop",
        "",
        f"Batch {report['batch']} x {report['crop'][0]}x{report['crop'][1]}, {NUM_CLASSES} classes;"
        " forward + loss + backward + optimizer step."
        f" Medians of {report['repetitions']} interleaved steps after {report['warmup']} warm-up step(s);"
        f" {report['machine']['device']}; {common.machine_line(report['machine'])}."
        " GEMM peak: `torch.mm` 4096^2 measured before and after each model's steps, the faster of the"
        f" two (GFLOP/s; bf16 only where the hardware has it): {peaks}.",
        "",
        "| model | variant | settings | s/step (median) | images/s | speed-up vs plain fp32 | GFLOP/s"
        " | % of GEMM peak | peak memory GiB (before steps) | load avg |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for model_name, result in report["models"].items():
        variants, peak = result["variants"], result["gemm_flops_per_s"]
        for name, v in variants.items():
            baseline = variants["smp plain fp32" if name.startswith("smp") else "plain fp32"]
            speedup = baseline["median_s"] / v["median_s"]
            memory = common.memory_cell(v)
            load = max(v["load_average"])
            precision = v["settings"].split()[0].rstrip(",")
            fraction = (f"{100 * v['achieved_flops_per_s'] / peak[precision]:.0f}% of {precision}"
                        if precision in peak else f"- ({precision} is emulated here)")
            lines.append(f"| {model_name} | {name} | {v['settings']} | {v['median_s']:.2f} | {v['images_per_s']:.2f}"
                         f" | {speedup:.2f}x | {v['achieved_flops_per_s'] / 1e9:.0f} | {fraction} | {memory}"
                         f" | {load:.1f} |")
    if "deeplabv3plus" in report["models"] and "bf16" in report["models"]["deeplabv3plus"]["gemm_flops_per_s"]:
        variants = report["models"]["deeplabv3plus"]["variants"]
        peak = report["models"]["deeplabv3plus"]["gemm_flops_per_s"]
        ours = variants["segbench"]
        lines += ["", f"DeepLabV3+ targets: speed-up >= {TARGET_SPEEDUP}x (measured"
                  f" {variants['plain fp32']['median_s'] / ours['median_s']:.2f}x), achieved FLOP/s >="
                  f" {TARGET_PEAK_FRACTION:.0%} of the bf16 GEMM (measured"
                  f" {ours['achieved_flops_per_s'] / peak['bf16']:.0%})."]
        at_peak = ours["train_step_flops"] / peak["bf16"]
        lines.append(f"Bound: a step at 100% of the bf16 GEMM peak would take {at_peak:.2f} s, i.e."
                     f" {variants['plain fp32']['median_s'] / at_peak:.2f}x the plain fp32 loop, which itself runs"
                     f" at {variants['plain fp32']['achieved_flops_per_s'] / peak['fp32']:.0%} of the fp32 GEMM peak"
                     f" (bf16/fp32 GEMM ratio here: {peak['bf16'] / peak['fp32']:.2f}).")
        if "smp plain fp32" in variants:
            smp = variants["smp plain fp32"]
            lines.append(f"segbench's DeepLabV3+ (full 3x3 convolutions in ASPP and decoder,"
                         f" {ours['forward_flops'] / 1e9:.0f} GFLOP forward) trains at {ours['images_per_s']:.2f}"
                         f" images/s; smp's DeepLabV3Plus (depthwise-separable ASPP and decoder,"
                         f" {smp['forward_flops'] / 1e9:.0f} GFLOP) at {smp['images_per_s']:.2f} images/s in a"
                         f" plain fp32 loop and {variants[SMP_VARIANTS[1]]['images_per_s']:.2f} images/s in"
                         " segbench's settings.")
    lines += ["", "Achieved FLOP/s counts a train step as 3x the forward FLOPs of `torch.utils.flop_counter`"
              " (its backward count over-counts grouped convolutions). Peak memory: a child process per"
              " variant runs two steps; peak RSS of the whole process (model, optimizer state, activations,"
              " the Python runtime) on the CPU, `torch.cuda.max_memory_allocated` on CUDA; in brackets the"
              " same process before its first step (runtime, model, inputs).", ""]
    for model_name, result in report["models"].items():
        for name, v in result["variants"].items():
            if "profile" in v:
                lines += [f"Top operators, {model_name} / {name} (one step, self time):", "", "```",
                          v["profile"], "```", ""]
    return "\n".join(lines)


def main() -> None:
    parser = common.argument_parser(__doc__)
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=list(MODELS))
    parser.add_argument("--warmup", type=common.count(0), default=1)
    parser.add_argument("--repetitions", type=common.count(1), default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch", type=common.count(1), default=BATCH)
    parser.add_argument("--crop", type=parse_crop, default=CROP, help="HxW, default 512x1024")
    parser.add_argument("--no-smp", action="store_true", help="skip segmentation_models_pytorch")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory child processes")
    parser.add_argument("--profile", action="store_true", help="add a torch.profiler top-operator table")
    parser.add_argument("--merge", action="store_true",
                        help="keep the other models' results already in results/train_step.json")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--memory", nargs=2, metavar=("MODEL", "VARIANT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    common.ensure_allocator_env()
    if args.child:
        print(json.dumps(memory_child(*args.memory, args.batch, args.crop, args.device)))
        return

    def log(message):
        print(message, flush=True)

    torch_device = common.pick_device(args.device)
    with_smp = not args.no_smp
    if with_smp:
        try:
            import segmentation_models_pytorch  # noqa: F401
        except ImportError:
            log("segmentation_models_pytorch is not installed (pip install -r benchmarks/requirements.txt);"
                " skipping the smp comparison")
            with_smp = False
    report = {"machine": {**common.machine(), "device": str(torch_device)}, "batch": args.batch,
              "crop": list(args.crop), "warmup": args.warmup, "repetitions": args.repetitions, "models": {}}
    previous = common.RESULTS / "train_step.json"
    if args.merge and previous.exists():
        earlier = json.loads(previous.read_text())
        if (earlier["batch"], earlier["crop"]) == (report["batch"], report["crop"]):
            report["models"] = {name: r for name, r in earlier["models"].items() if name not in args.models}
    for model_name in args.models:
        before = common.gemm_peak(torch_device)
        log("torch.mm 4096^2: " + ", ".join(f"{v / 1e9:.0f} GFLOP/s {k}" for k, v in before.items())
            + ("" if "bf16" in before else " (bf16 not measured: no native bf16 here; segbench trains in fp32)"))
        result = measure_model(
            model_name, batch=args.batch, crop=args.crop, with_smp=with_smp, warmup=args.warmup,
            repetitions=args.repetitions, memory=not args.no_memory, profile=args.profile, device=args.device,
            log=log)
        after = common.gemm_peak(torch_device)
        # Other processes can only slow a measurement down: the faster of the two is the machine's peak.
        result["gemm_flops_per_s"] = {key: max(before[key], after[key]) for key in before}
        result["gemm_flops_per_s_measured"] = {"before": before, "after": after}
        report["models"][model_name] = result
        report["models"] = {name: report["models"][name] for name in MODELS if name in report["models"]}
        common.write_results("train_step", report, markdown(report))  # partial results survive an interruption
    print(markdown(report))


if __name__ == "__main__":
    main()
