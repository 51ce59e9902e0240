"""``segbench benchmark``: forward latency of a model as it would be deployed.

Eval mode, batch 1 (``--batch``), no gradients, the run's precision and memory format on its device,
at the report images' full resolution unless ``--size`` says otherwise. Two things are timed, each
after a warm-up, each repeated until at least ``MIN_REPEATS`` runs and ``MIN_SECONDS`` of timing:

- **model only**: the forward pass on an image already normalised and on the device (for
  onnxruntime: ``session.run`` on a float32 array), i.e. what papers report as network latency;
- **end to end**: from a ``uint8`` image in memory to a ``uint8`` train-id mask on the CPU: the
  recipe's eval transforms (e.g. normalisation), the copy to the device, the forward pass, the
  up-sampling of the logits to the image size and the argmax.

Not timed in either: reading and decoding the image file, colouring or writing the prediction, and
the evaluation's test-time augmentation (flip, scales), which a deployed model does not run. The
image content does not change the cost of these networks: a fixed random image is used.

``--backend onnxruntime`` exports the model (fp32) for the measured size into a temporary file and
times it with onnxruntime's CPU provider. The result, with the CPU/GPU model, instruction set,
threads, backend and versions, goes to ``<run>/benchmark-<backend>.json`` (atomically), which
``segbench compare`` shows as latency and FPS columns. A recipe (not yet trained) is timed with
random weights and only printed.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import attrs
import torch
import torch.nn.functional as F

from segbench.atomic import atomic_write_text, check_writable
from segbench.data.reading import read_item
from segbench.engine.device import autocast
from segbench.errors import SegbenchError
from segbench.report.machine import describe_machine
from segbench.report.memory_guard import check_fits
from segbench.report.timing import Timing, time_calls

BACKENDS = ("torch", "onnxruntime")
MODEL_ONLY = "forward pass on a normalised image already on the device"
END_TO_END = ("uint8 image in memory -> eval transforms (normalisation) -> copy to the device -> forward ->"
              " logits up-sampled to the image size -> argmax -> uint8 mask on the CPU")
NOT_TIMED = ("reading/decoding the image file, colouring/writing the prediction, test-time augmentation"
             " (flip, scales)")


def result_file_name(backend: str) -> str:
    return f"benchmark-{backend}.json"


@attrs.frozen
class LatencyRecord:
    """One ``segbench benchmark`` measurement."""

    target: str
    model: str
    backend: str
    device: str
    precision: str
    channels_last: bool
    batch: int
    input_size: tuple[int, int]  # (H, W)
    num_classes: int
    threads: int
    cpu: str
    instruction_set: str
    gpu: str | None
    warmup: int
    model_only: Timing
    end_to_end: Timing
    timed_model_only: str
    timed_end_to_end: str
    not_timed: str
    torch_version: str
    onnxruntime_version: str | None
    measured_at: str

    def to_dict(self) -> dict:
        return attrs.asdict(self)


def read_latency(run_path: Path, backend: str) -> LatencyRecord | None:
    """The run's saved measurement for ``backend``, or ``None`` (absent or unreadable)."""
    path = Path(run_path) / result_file_name(backend)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        data["model_only"], data["end_to_end"] = Timing(**data["model_only"]), Timing(**data["end_to_end"])
        data["input_size"] = tuple(data["input_size"])
        return LatencyRecord(**data)
    except (OSError, ValueError, TypeError, KeyError):
        return None


@attrs.frozen
class _Subject:
    """What is timed: a model with its eval transforms and how it runs."""

    name: str
    model: torch.nn.Module
    eval_transforms: object
    num_classes: int
    size: tuple[int, int]
    device: torch.device
    precision: str
    channels_last: bool
    run_path: Path | None


def _subject(target: Path, size, device, registries) -> _Subject:
    from segbench.report.export import report_input_size
    from segbench.report.loading import default_registries, inference_settings, load_run

    registries = registries if registries is not None else default_registries()
    target = Path(target)
    if target.is_dir() or target.suffix == ".pt":
        loaded, dataset = load_run(target, registries, device=device)
        size = size or report_input_size(loaded, dataset)
        return _Subject(loaded.plan.model.name, loaded.model, loaded.plan.eval_transforms, loaded.info.num_classes,
                        tuple(size), loaded.inference.device, loaded.inference.precision,
                        loaded.inference.channels_last, loaded.run.path)
    if not target.is_file():
        raise SegbenchError(f"{target} does not exist; give a run directory (runs/<recipe>-<hash>/) or a recipe file")
    plan, dataset = _recipe_plan(target, registries, need_data=size is None)
    settings = inference_settings(plan, device)
    num_classes = dataset.info.num_classes if dataset is not None else None
    if dataset is not None and size is None:
        image, mask = read_item(dataset, 0)
        size = tuple(plan.eval_transforms(image, mask, torch.Generator().manual_seed(0))[0].shape[-2:])
    if num_classes is None:
        raise SegbenchError(f"{target}: its report dataset cannot be built here, so the number of classes is"
                            " unknown; benchmark a trained run directory instead")
    model = plan.model.build(num_classes=num_classes).to(settings.device)
    if settings.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return _Subject(plan.model.name, model.eval(), plan.eval_transforms, num_classes, tuple(size), settings.device,
                    settings.precision, settings.channels_last, None)


def _recipe_plan(path: Path, registries, *, need_data: bool):
    """The recipe's plan, its model built as for a checkpoint (random weights: no backbone file is read),
    and its report dataset (``None`` when it cannot be built and ``need_data`` is false)."""
    from segbench.recipe.load import load_recipe
    from segbench.recipe.plan import build_plan

    plan = build_plan(load_recipe(path), registries, training=False)
    plan = attrs.evolve(plan, model=attrs.evolve(plan.model,
                                                 config=plan.model.entry.checkpoint_config(plan.model.config)))
    try:
        return plan, plan.datasets["report"].build()
    except SegbenchError:
        if need_data:
            raise
        return plan, None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _torch_calls(subject: _Subject, image: torch.Tensor, batch: int):
    model, device = subject.model, subject.device
    memory = torch.channels_last if subject.channels_last else torch.contiguous_format
    mask = torch.zeros(image.shape[-2:], dtype=torch.uint8)

    def prepare():
        normalised, _ = subject.eval_transforms(image, mask, torch.Generator().manual_seed(0))
        return normalised[None].expand(batch, -1, -1, -1).to(device).contiguous(memory_format=memory)

    ready = prepare()

    def model_only():
        with torch.inference_mode(), autocast(device, subject.precision):
            model(ready)
        _sync(device)

    def end_to_end():
        with torch.inference_mode(), autocast(device, subject.precision):
            logits = model(prepare()).float()
            logits = logits if logits.shape[-2:] == image.shape[-2:] else \
                F.interpolate(logits, size=image.shape[-2:], mode="bilinear", align_corners=False)
            return logits.argmax(dim=1).to(torch.uint8).cpu()

    return model_only, end_to_end


def _onnx_calls(subject: _Subject, image: torch.Tensor, batch: int, threads: int, folder: Path):
    from segbench.report.export import export_onnx
    from segbench.report.onnx_runtime import INPUT_NAME, open_session

    path = folder / "model.onnx"
    export_onnx(subject.model, path, size=subject.size)
    session = open_session(path, threads=threads)
    mask = torch.zeros(image.shape[-2:], dtype=torch.uint8)

    def prepare():
        normalised, _ = subject.eval_transforms(image, mask, torch.Generator().manual_seed(0))
        return normalised[None].expand(batch, -1, -1, -1).float().contiguous().numpy()

    ready = prepare()

    def model_only():
        session.run(None, {INPUT_NAME: ready})

    def end_to_end():
        (logits,) = session.run(None, {INPUT_NAME: prepare()})
        return torch.from_numpy(logits).argmax(dim=1).to(torch.uint8)

    return model_only, end_to_end


def benchmark(target: Path, *, size: tuple[int, int] | None = None, batch: int = 1, backend: str = "torch",
              threads: int | None = None, device: str | None = None, repeats: int | None = None,
              warmup: int | None = None, registries=None) -> LatencyRecord:
    """Measure ``target`` (a run directory, a checkpoint file or a recipe) and, for a run, save the record."""
    if backend not in BACKENDS:
        raise SegbenchError(f"--backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    for option, value in (("--batch", batch), ("--threads", threads), ("--repeats", repeats)):
        if value is not None and value < 1:
            raise SegbenchError(f"{option} {value}: give a positive number")
    ort_version = None
    if backend == "onnxruntime":
        from segbench.report.onnx_runtime import require_onnx

        ort_version = require_onnx()[1].__version__
        device = "cpu"
        if batch != 1:
            raise SegbenchError("--backend onnxruntime times batch 1 only (the model is exported for one image)")
    if threads is not None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        if cores and threads > cores:
            print(f"warning: --threads {threads} is more than the {cores} CPU core(s) this process may use: the"
                  " latency measured includes the threads' contention, not what the model needs", file=sys.stderr)
        torch.set_num_threads(threads)
    threads = torch.get_num_threads()
    subject = _subject(target, size, device, registries)
    if subject.run_path is not None:
        check_writable(Path(subject.run_path), f"benchmark keeps its timings there ({result_file_name(backend)})")
    check_fits(subject.model, subject.size, batch, subject.device,
               "fp32" if backend == "onnxruntime" else subject.precision)
    precision, channels_last = subject.precision, subject.channels_last
    if backend == "onnxruntime":
        precision, channels_last = "fp32", False
    image = torch.randint(0, 256, (3, *subject.size), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    with tempfile.TemporaryDirectory(prefix="segbench-benchmark-") as folder:
        if backend == "onnxruntime":
            model_only, end_to_end = _onnx_calls(subject, image, batch, threads, Path(folder))
        else:
            model_only, end_to_end = _torch_calls(subject, image, batch)
        model_timing, warm = time_calls(model_only, batch=batch, warmup=warmup, repeats=repeats)
        e2e_timing, _ = time_calls(end_to_end, batch=batch, warmup=warmup, repeats=repeats)
    machine = describe_machine(subject.device)
    record = LatencyRecord(
        target=str(target), model=subject.name, backend=backend,
        device=str(subject.device if backend == "torch" else "cpu"), precision=precision,
        channels_last=channels_last, batch=batch, input_size=subject.size, num_classes=subject.num_classes,
        threads=threads, cpu=machine.cpu, instruction_set=machine.instruction_set,
        gpu=machine.gpu if backend == "torch" else None, warmup=warm, model_only=model_timing,
        end_to_end=e2e_timing, timed_model_only=MODEL_ONLY, timed_end_to_end=END_TO_END, not_timed=NOT_TIMED,
        torch_version=torch.__version__, onnxruntime_version=ort_version,
        measured_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    if subject.run_path is not None:
        atomic_write_text(Path(subject.run_path) / result_file_name(backend),
                          json.dumps(record.to_dict(), indent=2) + "\n")
    return record


def format_record(record: LatencyRecord) -> str:
    where = record.gpu or f"{record.cpu} ({record.instruction_set}, {record.threads} thread(s))"
    size = f"{record.batch}x3x{record.input_size[0]}x{record.input_size[1]}"
    lines = [f"{record.model} on {record.backend}, {record.device} {record.precision}"
             f"{', channels-last' if record.channels_last else ''}: input {size}; {where}"]
    for label, timing in (("model only", record.model_only), ("end to end", record.end_to_end)):
        lines.append(f"  {label:<11} p50 {timing.p50_ms:9.2f} ms  p90 {timing.p90_ms:9.2f} ms"
                     f"  {timing.images_per_s:8.2f} images/s  ({timing.repeats} runs)")
    lines.append(f"  model only: {record.timed_model_only}")
    lines.append(f"  end to end: {record.timed_end_to_end}")
    lines.append(f"  not timed: {record.not_timed}")
    return "\n".join(lines)


def benchmark_command(args, *, registries=None) -> LatencyRecord:
    record = benchmark(args.target, size=args.size, batch=args.batch, backend=args.backend, threads=args.threads,
                       device=args.device, repeats=args.repeats, warmup=args.warmup, registries=registries)
    print(format_record(record))
    target = Path(args.target)
    if target.is_dir():
        print(f"  written to {target / result_file_name(record.backend)}")
    else:
        print("  (a recipe: timed with random weights, not saved)", file=sys.stderr)
    return record
