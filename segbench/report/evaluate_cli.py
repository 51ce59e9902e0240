"""``segbench evaluate``: score a run's checkpoint again, on its report split or another one.

The numbers come from the same code as ``results.json`` (full-resolution logits, one global confusion
matrix, the recipe's evaluation settings), so the same checkpoint on the same split gives the same
numbers. The result goes to ``<run>/evaluation-<split>.json``; ``results.json`` is never touched.

``--export-labelids DIR`` also writes each prediction as a Cityscapes labelIds PNG (mode L, the label's
full size) to ``DIR/<city>/<sample_id>_pred_labelIds.png``, where ``<city>`` is the folder holding the
image. The official evaluation (cityscapesscripts ``evalPixelLevelSemanticLabeling``, with
``CITYSCAPES_RESULTS=DIR``) searches DIR recursively for ``<city>_<seq>_<frame>*.png``, which these
names match; the benchmark server takes the same files.
"""
from __future__ import annotations

import copy
import json
import sys
import time
from pathlib import Path

import attrs
import numpy as np
import torch
from PIL import Image

from segbench.atomic import atomic_write_bytes, check_writable, make_folder
from segbench.data.loader import data_loader
from segbench.engine.evaluate import _EvalItems, evaluate_confusion, evaluation_settings, predict
from segbench.errors import ConfigError, SegbenchError, cannot_write
from segbench.registry import SPLIT_KEY, SUBSET_KEY
from segbench.functional.metrics import confusion_matrix, summarize
from segbench.records import EvaluationRecord, LabelIdsExport, write_record
from segbench.report.loading import (LoadedRun, default_registries, load_run, load_run_recipe, plan_for_run,
                                     resolve_target)

ROLES = ("report", "select")
BACKENDS = ("torch", "onnxruntime")
EXPORT_SUFFIX = "_pred_labelIds.png"


def _role_section(data: dict, role: str):
    section = data.get("data", {}).get(role)
    return copy.deepcopy(section) if isinstance(section, dict) else None


def split_choice(run, split: str) -> tuple[str, dict | None, str]:
    """Which dataset ``--split`` means: ``(role to build, data override or None, label for file names)``.

    ``report`` and ``select`` are the recipe's roles (``select`` is the report split when the recipe
    selects on it); any other value is a dataset split name that replaces the report role's ``split``
    (its ``subset`` is dropped: the whole split is scored).
    """
    if split in ROLES:
        return split, None, split
    if not split or any(c in split for c in "/\\ "):
        raise SegbenchError(f"--split {split!r}: give report, select, or a dataset split name such as val")
    recipe = load_run_recipe(run)
    section = _role_section(recipe.data, "report")
    if section is None:
        raise SegbenchError(f"{run.recipe_file} has no data.report mapping to take the dataset from")
    section.pop(SUBSET_KEY, None)
    section[SPLIT_KEY] = split
    return "report", {"report": section}, split


def export_path(folder: Path, dataset, index: int) -> Path:
    """``folder/<city>/<sample_id>_pred_labelIds.png``; ``<city>`` is the image's folder name."""
    return Path(folder) / dataset.image_path(index).parent.name / f"{dataset.sample_id(index)}{EXPORT_SUFFIX}"


def train_to_label_lut(info) -> torch.Tensor:
    if info.train_to_label_id is None:
        raise SegbenchError(
            f"--export-labelids: the dataset (classes {', '.join(info.class_names[:4])}, ...) declares no export"
            " ids (DatasetInfo.train_to_label_id), so there are no labelIds to write. Export works for"
            " datasets whose plugin declares them (the Cityscapes-format ones).")
    lut = torch.tensor(info.train_to_label_id, dtype=torch.int64)
    if int(lut.min()) < 0 or int(lut.max()) > 255:
        raise SegbenchError(f"the dataset's export ids {list(info.train_to_label_id)} do not fit 8-bit PNGs")
    return lut.to(torch.uint8)


def _write_png(path: Path, array: np.ndarray) -> None:
    def write(handle):
        Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8)).save(handle, format="PNG")

    try:
        atomic_write_bytes(path, write)
    except OSError as exc:
        raise cannot_write(path, exc, option="--export-labelids") from None


@torch.no_grad()
def evaluate_and_export(loaded: LoadedRun, dataset, folder: Path, *, num_workers: int = 0,
                        progress: bool = True) -> tuple[torch.Tensor, list[Path]]:
    """One pass that scores ``dataset`` and writes each prediction as labelIds: ``(matrix, files)``.

    The matrix equals :func:`evaluate_confusion`'s: the same items, the same ``predict`` call.
    """
    from tqdm import tqdm

    info, plan, settings = loaded.info, loaded.plan, loaded.inference
    lut = train_to_label_lut(info)
    batch_size = plan.evaluation.batch_size
    loader = data_loader(_EvalItems(dataset, plan.eval_transforms, batch_size=batch_size), batch_size=batch_size,
                         num_workers=num_workers, shuffle=False)
    matrix = torch.zeros((info.num_classes, info.num_classes + 1), dtype=torch.int64)
    written, index = [], 0
    for images, masks in tqdm(loader, desc="evaluate+export", leave=False, disable=not progress, unit="batch"):
        preds = predict(loaded.model, images, label_size=tuple(masks.shape[-2:]), config=plan.evaluation,
                        num_classes=info.num_classes, runtime=settings).to(torch.uint8).cpu()
        matrix += confusion_matrix(preds, masks, num_classes=info.num_classes, ignore_index=info.ignore_index)
        for pred in preds:
            path = export_path(folder, dataset, index)
            _write_png(path, lut[pred.long()].numpy())
            written.append(path)
            index += 1
    return matrix, written


def format_table(record: EvaluationRecord, *, title: str) -> str:
    lines = [title, f"  {'class':<16} {'IoU %':>7}"]
    for name, iou in record.per_class_iou.items():
        lines.append(f"  {name:<16} {'n/a' if iou is None else f'{100 * iou:.2f}':>7}")
    pct = lambda v: "n/a" if v is None else f"{100 * v:.2f}%"  # noqa: E731
    lines.append(f"  {'mIoU':<16} {pct(record.mIoU):>7}")
    lines.append(f"  {'pixel accuracy':<16} {pct(record.pixel_accuracy):>7}")
    return "\n".join(lines)


def onnx_backend(loaded: LoadedRun, onnx_file: Path | None, *, asked_checkpoint: str | None = None) -> LoadedRun:
    """``loaded`` with its model replaced by an exported ONNX file run by onnxruntime (fp32, CPU).

    ``onnx_file`` defaults to the run's newest export (``<run>/export/*.onnx``); ``asked_checkpoint`` is the
    ``--checkpoint`` given, which the export must have been made from."""
    from segbench.engine.runtime import Runtime
    from segbench.report.onnx_runtime import OnnxModel

    if onnx_file is None:
        exported = sorted(loaded.run.path.glob("export/*.onnx"), key=lambda p: p.stat().st_mtime)
        if not exported:
            raise SegbenchError(f"--backend onnxruntime: {loaded.run.path}/export/ holds no .onnx file. Export the"
                                f" model first (segbench export {loaded.run.path} --format onnx --dynamic) or give"
                                " the file with --onnx.")
        onnx_file = exported[-1]
    model = OnnxModel(onnx_file).eval()
    exported_from, exported_iteration = _check_export_matches(loaded, Path(onnx_file), model)
    # the scores are the export's: filed under the checkpoint it was made from, which the export record names
    if exported_from is None:
        print(f"warning: {Path(onnx_file).with_suffix('.json')}, the export record `segbench export` writes beside"
              f" {Path(onnx_file).name}, is missing: nothing ties its weights to a checkpoint of this run, and the"
              " scores are filed under the ONNX file alone.", file=sys.stderr)
        loaded = attrs.evolve(loaded, checkpoint=Path("unknown (no export record beside the ONNX file)"),
                              checkpoint_state={})
    else:
        checkpoint = Path(exported_from)
        if checkpoint.parent.name == "checkpoints" and checkpoint.parent.parent.name == loaded.run.path.resolve().name:
            checkpoint = loaded.run.checkpoints / checkpoint.name  # this run's file, however it was reached then
        if checkpoint.resolve() != Path(loaded.checkpoint).resolve():
            if asked_checkpoint is not None:
                raise SegbenchError(f"--checkpoint {asked_checkpoint}: {onnx_file} was exported from {checkpoint}."
                                    f" Export that checkpoint (segbench export {loaded.run.path} --checkpoint"
                                    f" {asked_checkpoint} --dynamic) and score its file, or leave --checkpoint"
                                    " out to score the export as it is.")
            state = {}
            if checkpoint.is_file():
                from segbench.engine.checkpoint import load_checkpoint

                state = load_checkpoint(checkpoint)
            loaded = attrs.evolve(loaded, checkpoint=checkpoint, checkpoint_state=state)
        now = (loaded.checkpoint_state.get("train_state") or {}).get("iteration")
        if exported_iteration is not None and now is not None and now != exported_iteration:
            raise SegbenchError(f"{onnx_file} was exported from {checkpoint} at training iteration"
                                f" {exported_iteration}; that file now holds iteration {now} (the run trained on"
                                f" since), so the scores would be filed under weights the export does not have."
                                f" Export it again: segbench export {loaded.run.path} --dynamic.")
    return attrs.evolve(loaded, model=model, inference=Runtime(torch.device("cpu"), "fp32", False))


def _check_export_matches(loaded: LoadedRun, onnx_file: Path, model) -> tuple[str | None, int | None]:
    """The scores go into this run's folder: an ONNX file of another model, class count or run would put
    another model's numbers under this run's name. The export record beside the file says what it holds;
    returns the checkpoint it names and the training iteration that held (``None`` where the record does not say)."""
    problems = []
    outputs = model.session.get_outputs()[0].shape
    if len(outputs) == 4 and isinstance(outputs[1], int) and outputs[1] != loaded.info.num_classes:
        problems.append(f"it outputs {outputs[1]} classes, the run's dataset has {loaded.info.num_classes}")
    record_file = onnx_file.with_suffix(".json")
    try:
        record = json.loads(record_file.read_text(encoding="utf-8")) if record_file.is_file() else {}
    except (OSError, ValueError):
        record = {}
    record = record if isinstance(record, dict) else {}
    if record.get("model") not in (None, loaded.plan.model.name):
        problems.append(f"it holds model {record['model']} ({record_file.name}), the run trains"
                        f" {loaded.plan.model.name}")
    source_run = Path(str(record.get("checkpoint", ""))).parent.parent.name
    own_export = onnx_file.resolve().parent == (loaded.run.path / "export").resolve()
    if source_run and not own_export and source_run != loaded.run.path.resolve().name:
        problems.append(f"it was exported from run {source_run} ({record_file.name})")
    if problems:
        raise SegbenchError(f"--onnx {onnx_file} does not belong to run {loaded.run.path}: {'; '.join(problems)}."
                            f" Evaluate it with its own run, or export this run with `segbench export"
                            f" {loaded.run.path} --format onnx --dynamic`.")
    checkpoint, iteration = record.get("checkpoint"), record.get("checkpoint_iteration")
    return (checkpoint if isinstance(checkpoint, str) and checkpoint else None,
            iteration if isinstance(iteration, int) and not isinstance(iteration, bool) else None)


def evaluate_run(target: Path, *, split: str = "report", checkpoint: str | None = None,
                 export_labelids: Path | None = None, device: str | None = None, registries=None,
                 progress: bool = True, backend: str = "torch",
                 onnx_file: Path | None = None) -> EvaluationRecord:
    """Score a run (directory or checkpoint file) and write ``evaluation-<split>.json`` into the run.

    Returns the written record (see :class:`segbench.records.EvaluationRecord`).
    ``backend="onnxruntime"`` scores an exported ONNX file instead of the PyTorch model (same items,
    same rule) and writes ``evaluation-<split>-onnxruntime.json``.
    """
    if backend not in BACKENDS:
        raise SegbenchError(f"--backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    if onnx_file is not None and backend != "onnxruntime":
        raise SegbenchError(f"--onnx {onnx_file} is scored by onnxruntime: add --backend onnxruntime (without it"
                            " the PyTorch checkpoint is scored and the file would be ignored)")
    if backend == "onnxruntime":
        from segbench.report.onnx_runtime import require_onnx

        require_onnx()  # what to install first, before what to export
    run, _ = resolve_target(target)
    check_writable(run.path, "evaluate keeps its scores there (evaluation-<split>.json)")
    role, override, label = split_choice(run, split)
    registries = registries if registries is not None else default_registries()
    try:
        plan = plan_for_run(run, registries, data_overrides=override)
    except ConfigError as exc:
        # the split is the option's, not the run's recipe.yaml: that file is the run's record, not to be edited
        about_split = [message for where, message in exc.problems
                       if where == "data.report" or where.startswith("data.report.")]
        if override is None or not about_split:
            raise
        raise SegbenchError(f"--split {split!r}: {about_split[0]}; or give report or select (the run's own"
                            " roles)") from None
    if role == "select" and (plan.trainer.select_on == "report" or "select" not in plan.datasets):
        role = "report"  # this recipe picked its checkpoint on the report split
    dataset = plan.datasets[role].build()
    if export_labelids is not None:
        train_to_label_lut(dataset.info)  # fail before the model is built, and before any scoring
        make_folder(Path(export_labelids), "--export-labelids")
    loaded, _ = load_run(target, registries, checkpoint=checkpoint, device=device, plan=plan,
                         report_dataset=dataset)
    if backend == "onnxruntime":
        loaded = onnx_backend(loaded, onnx_file, asked_checkpoint=checkpoint)
    info, settings = loaded.info, loaded.inference
    started = time.perf_counter()
    files: list[Path] = []
    if export_labelids is not None:
        matrix, files = evaluate_and_export(loaded, dataset, Path(export_labelids),
                                            num_workers=plan.trainer.num_workers, progress=progress)
    else:
        matrix = evaluate_confusion(loaded.model, dataset, plan.eval_transforms, config=plan.evaluation,
                                    num_classes=info.num_classes, ignore_index=info.ignore_index,
                                    runtime=settings, num_workers=plan.trainer.num_workers,
                                    progress=progress, desc=f"evaluate {label}")
    train_state = loaded.checkpoint_state.get("train_state") or {}
    record = EvaluationRecord(
        run=str(run.path),
        recipe=loaded.name,
        model=plan.model.name,
        split=label,
        role=role,
        dataset=plan.recipe.data["data"].get(role),
        images=len(dataset),
        checkpoint=str(loaded.checkpoint),
        checkpoint_epoch=train_state.get("epoch"),
        checkpoint_iteration=train_state.get("iteration"),
        **summarize(matrix, info.class_names),
        confusion_matrix=matrix.tolist(),
        device=str(settings.device),
        precision=settings.precision,
        backend=backend,
        onnx=str(loaded.model.path) if backend == "onnxruntime" else None,
        evaluation=evaluation_settings(plan.evaluation),
        labelids_export=None if export_labelids is None else LabelIdsExport(folder=str(export_labelids),
                                                                            files=len(files)),
        seconds=round(time.perf_counter() - started, 3),
        evaluated_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )
    write_record(run.path / record.file_name, record)
    return record


def evaluate_command(args, *, registries=None) -> EvaluationRecord:
    record = evaluate_run(args.target, split=args.split, checkpoint=args.checkpoint,
                          export_labelids=args.export_labelids, device=args.device, registries=registries,
                          progress=sys.stderr.isatty(), backend=args.backend, onnx_file=args.onnx)
    title = (f"{record.recipe} ({record.model}) on {record.split}: {record.images} images,"
             f" checkpoint {Path(record.checkpoint).name}"
             + (f", onnxruntime on {Path(record.onnx).name}" if record.onnx else ""))
    print(format_table(record, title=title))
    print(f"  written to {Path(record.run) / record.file_name}")
    export = record.labelids_export
    if export:
        print(f"  {export.files} labelIds PNG(s) in {export.folder}"
              f" (CITYSCAPES_RESULTS={export.folder} for cityscapesscripts)")
    return record
