"""``segbench export``: a trained run's model as an ONNX file that onnxruntime loads.

The graph is the model alone, in fp32: input ``image``, a float32 ``(N, 3, H, W)`` image already
through the recipe's eval transforms (e.g. ``normalize``); output ``logits``, float32
``(N, C, H, W)``. Up-sampling to the label size and the argmax stay outside, as in ``segbench
evaluate``. ``--size HxW`` fixes the input size (default: the report split's image size after the
eval transforms, the full resolution the model was scored at); ``--dynamic`` leaves batch, height
and width free. The file goes to ``<run>/export/<model>-<HxW|dynamic>.onnx`` with a record of how
it was made (``.json`` beside it: opset, size, checkpoint, versions), both written atomically.
"""
from __future__ import annotations

import io
import time
import warnings
from pathlib import Path

import attrs
import torch

from segbench.atomic import atomic_write_bytes, atomic_write_text, check_output_file
from segbench.data.reading import read_item
from segbench.runs import refuse_run_file
from segbench.errors import SegbenchError, cannot_write
from segbench.report.loading import load_run
from segbench.report.onnx_runtime import INPUT_NAME, OUTPUT_NAME, open_session, require_onnx

DEFAULT_OPSET = 17
FORMATS = ("onnx",)


@attrs.frozen
class ExportRecord:
    """What ``segbench export`` wrote and how; saved as JSON beside the ONNX file."""

    file: str
    format: str
    opset: int
    dynamic: bool
    input_size: tuple[int, int] | None  # (H, W); None when dynamic
    model: str
    num_classes: int
    checkpoint: str
    input: str
    output: str
    torch_version: str
    onnx_version: str
    exported_at: str
    # the training iteration the checkpoint held then: a later last.pt (the run trained on) is another model
    checkpoint_iteration: int | None = None

    def to_json(self) -> str:
        import json

        return json.dumps(attrs.asdict(self), indent=2) + "\n"


def check_opset(opset: int) -> None:
    """Refuse an opset this torch cannot write before any work (its exporter prints the whole graph first)."""
    try:
        from torch.onnx import _constants
    except ImportError:  # a torch without the constants: the export's own error is caught instead
        return
    # the TorchScript-based exporter used here stops below the dynamo-based one's ONNX_MAX_OPSET, writing a
    # higher opset only with a warning
    highest = getattr(_constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", getattr(_constants, "ONNX_MAX_OPSET", None))
    if highest is not None and opset > highest:
        raise _unsupported(opset, highest)


def _unsupported(opset: int, highest: int | None = None) -> SegbenchError:
    most = f" (at most {highest})" if highest else ""
    return SegbenchError(f"--opset {opset}: torch {torch.__version__} cannot write that ONNX opset{most}; choose a"
                         f" lower one (the default is {DEFAULT_OPSET})")


def export_onnx(model: torch.nn.Module, path: Path, *, size: tuple[int, int], dynamic: bool = False,
                opset: int = DEFAULT_OPSET) -> None:
    """Write ``model`` (fp32, eval mode, CPU) to ``path`` as ONNX, traced on a ``size`` image, atomically."""
    check_opset(opset)
    model = model.float().eval().to("cpu", memory_format=torch.contiguous_format)
    example = torch.zeros(1, 3, *size)
    axes = {0: "batch", 2: "height", 3: "width"}
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        # the TorchScript-based exporter: fast and exact for these convolutional graphs (the dynamo-based one
        # takes ~4x as long and cannot write opsets below 18)
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(model, (example,), buffer, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              opset_version=opset, dynamo=False,
                              dynamic_axes={INPUT_NAME: axes, OUTPUT_NAME: axes} if dynamic else None)
        except RuntimeError as exc:
            if "Unsupported onnx_opset_version" not in str(exc):
                raise
            raise _unsupported(opset) from None
    if dynamic:
        _check_other_sizes(model, buffer.getvalue(), size)
    atomic_write_bytes(Path(path), lambda handle: handle.write(buffer.getvalue()))


CHECK_SIZES = ((37, 69), (7, 9))  # odd sizes, one below what most models take without padding


def _check_other_sizes(model: torch.nn.Module, graph: bytes, traced: tuple[int, int]) -> None:
    """A dynamic export must compute what the model computes at sizes it was not traced at: a ``forward`` that
    branches on the input size in Python has the branch fixed at tracing, silently."""
    _, ort = require_onnx()
    session = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(0)
    for size in CHECK_SIZES:
        image = torch.randn(1, 3, *size, generator=generator)
        with torch.no_grad():
            expected = model(image).float()
        try:
            (got,) = session.run(None, {INPUT_NAME: image.numpy()})
        except Exception as exc:  # onnxruntime's own exception types
            got, reason = None, str(exc).splitlines()[0][:200]
        else:
            got = torch.from_numpy(got)
            reason = (f"its output is {tuple(got.shape)}" if got.shape != expected.shape else
                      f"its logits differ by up to {(got - expected).abs().max().item():.3g}")
        if got is None or got.shape != expected.shape or \
                (got - expected).abs().max().item() > 1e-3 * (1 + expected.abs().max().item()):
            raise SegbenchError(
                f"the dynamic-size ONNX graph traced at {traced[0]}x{traced[1]} does not compute the model at"
                f" {size[0]}x{size[1]} ({reason}): the model's forward decides something from the input size in"
                " Python, which tracing fixes at the traced size. Export a fixed size (--size HxW, the size the"
                " model will see), or make the decision with tensor operations. Nothing was written.")


def default_export_path(run_path: Path, model_name: str, size, dynamic: bool) -> Path:
    tag = "dynamic" if dynamic else f"{size[0]}x{size[1]}"
    return Path(run_path) / "export" / f"{model_name}-{tag}.onnx"


def report_input_size(loaded, dataset) -> tuple[int, int]:
    """The (H, W) the model sees for the report split's first image (after the eval transforms)."""
    image, mask = read_item(dataset, 0)
    image_t, _ = loaded.plan.eval_transforms(image, mask, torch.Generator().manual_seed(0))
    return tuple(image_t.shape[-2:])


def export_run(target: Path, *, fmt: str = "onnx", size: tuple[int, int] | None = None, dynamic: bool = False,
               out: Path | None = None, opset: int = DEFAULT_OPSET, checkpoint: str | None = None,
               registries=None) -> ExportRecord:
    check_opset(opset)  # before the model loads
    if fmt not in FORMATS:
        raise SegbenchError(f"--format {fmt!r}: the formats are {', '.join(FORMATS)}")
    if size is not None and dynamic:
        raise SegbenchError("--size and --dynamic both set the input size; give one of them")
    onnx, _ = require_onnx()
    if out is not None:
        check_output_file(Path(out), "--out")  # before the model loads and traces
    loaded, dataset = load_run(target, registries, checkpoint=checkpoint, device="cpu")
    trace_size = size or report_input_size(loaded, dataset)
    path = Path(out) if out is not None else default_export_path(loaded.run.path, loaded.plan.model.name,
                                                                 trace_size, dynamic)
    for written in (path, path.with_suffix(".json")):  # the ONNX file and its record beside it
        refuse_run_file(written)
    try:
        export_onnx(loaded.model, path, size=trace_size, dynamic=dynamic, opset=opset)
    except OSError as exc:
        raise cannot_write(path, exc) from None
    onnx.checker.check_model(str(path))
    open_session(path)  # onnxruntime loads it, or the user hears why now
    record = ExportRecord(
        file=str(path), format=fmt, opset=opset, dynamic=dynamic, input_size=None if dynamic else tuple(trace_size),
        model=loaded.plan.model.name, num_classes=loaded.info.num_classes, checkpoint=str(loaded.checkpoint),
        input=f"{INPUT_NAME}: float32 (N, 3, H, W) after the recipe's eval transforms",
        output=f"{OUTPUT_NAME}: float32 (N, {loaded.info.num_classes}, H, W) logits at the input size",
        torch_version=torch.__version__, onnx_version=onnx.__version__,
        exported_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        checkpoint_iteration=(loaded.checkpoint_state.get("train_state") or {}).get("iteration"))
    atomic_write_text(path.with_suffix(".json"), record.to_json())
    return record


def export_command(args, *, registries=None) -> ExportRecord:
    record = export_run(args.run_dir, fmt=args.format, size=args.size, dynamic=args.dynamic, out=args.out,
                        opset=args.opset, checkpoint=args.checkpoint, registries=registries)
    shape = "dynamic batch, height and width" if record.dynamic else \
        f"input 1x3x{record.input_size[0]}x{record.input_size[1]}"
    print(f"wrote {record.file} (ONNX opset {record.opset}, {shape}, fp32; record in"
          f" {Path(record.file).with_suffix('.json').name})")
    return record
