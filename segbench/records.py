"""The files a run leaves behind, as typed records: ``results.json``, ``evaluation-<split>.json`` and the
lines of ``metrics.jsonl``.

The engine writes these records and ``compare``, ``plot`` and the run summary read them back through the
same classes, so a field has one name and one type everywhere. Each record has one JSON round trip
(``to_json`` / ``from_json``); attribute names are the JSON keys. Files carry ``schema_version``;
files written before it existed (no ``schema_version``) load as version 0, which has the same fields.
Reading ignores keys it does not know, so a file with more fields than this version defines still loads.

This module imports no torch: a script that only reads results can use it on its own::

    from segbench.records import read_results
    results = read_results("runs/quickstart-1a2b3c4d/results.json")
    print(results.recipe, results.mIoU, results.per_class_iou["road"])
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional, Union

import attrs
import cattrs

from segbench.atomic import atomic_write_text
from segbench.errors import SegbenchError
from segbench.provenance import Provenance

SCHEMA_VERSION = 1


class RecordError(SegbenchError):
    """A results, evaluation or metrics file cannot be read as its record."""


class NewerRecordError(RecordError):
    """The file is sound but was written by a newer segbench (a higher ``schema_version``)."""


@attrs.frozen(kw_only=True)
class EvaluationSettings:
    """How the scores were obtained: whole image or sliding window, flip averaging, test-time scales
    (``(1.0,)``: none; files written before scales existed read as that), batch size."""

    mode: str
    flip: bool
    batch_size: int
    scales: tuple[float, ...] = (1.0,)


@attrs.frozen(kw_only=True)
class ClassWeightsRecord:
    """The loss's class weights (also ``class_weights.json``) and the training pixel counts behind them."""

    method: str
    weights: dict[str, float]
    pixel_counts: dict[str, int]

    def to_json(self) -> str:
        return _dumps(self)


@attrs.frozen(kw_only=True)
class ResultsRecord:
    """``results.json``: a finished run's report-split scores and where they come from."""

    recipe: str
    recipe_hash: str
    model: str
    strategy: str
    initialisation: str
    model_init: str
    mIoU: Optional[float]
    pixel_accuracy: Optional[float]
    per_class_iou: dict[str, Optional[float]]
    confusion_matrix: list[list[int]]  # (C, C + 1): rows ground truth, last column ignored predictions
    report_split: Optional[dict[str, Any]]
    selection_split: Optional[dict[str, Any]]
    selection_overlaps_report: bool
    report_images: int
    evaluation: EvaluationSettings
    checkpoint: str
    best_selection_mIoU: float
    best_epoch: int
    epochs: int
    iterations: int
    params: int
    checkpoint_mb: float
    device: str
    precision: str
    wall_time_s: float
    resumed: bool
    class_weights: Optional[ClassWeightsRecord]
    finished_at: str
    seed: Optional[int] = None  # the runs of one experiment differ only in their seed
    experiment_hash: Optional[str] = None  # the run hash without the seed
    per_image_confusion: Optional[str] = None  # per-image confusion matrices, next to results.json
    smoke: bool = False  # a `run --smoke` check on tiny data: `compare` leaves it out unless asked
    world_size: Optional[int] = None  # training processes (the batch is per process); None in older files
    provenance: Optional[Provenance] = None  # what produced the run (None in files written before it was kept)
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> str:
        return _dumps(self)

    @classmethod
    def from_json(cls, text: str, *, source: str = "results.json") -> "ResultsRecord":
        return _loads(cls, text, source)


@attrs.frozen(kw_only=True)
class LabelIdsExport:
    """Where ``segbench evaluate --export-labelids`` wrote its PNGs, and how many."""

    folder: str
    files: int


@attrs.frozen(kw_only=True)
class EvaluationRecord:
    """``evaluation-<split>.json``: a checkpoint scored again by ``segbench evaluate``."""

    run: str
    recipe: str
    model: str
    split: str  # the label in the file name: report, select, or a dataset split name
    role: str  # the recipe's data role the dataset was built from
    dataset: Optional[dict[str, Any]]
    images: int
    checkpoint: str
    checkpoint_epoch: Optional[int]
    checkpoint_iteration: Optional[int]
    mIoU: Optional[float]
    pixel_accuracy: Optional[float]
    per_class_iou: dict[str, Optional[float]]
    confusion_matrix: list[list[int]]
    device: str
    precision: str
    evaluation: EvaluationSettings
    labelids_export: Optional[LabelIdsExport]
    seconds: float
    evaluated_at: str
    backend: str = "torch"  # or onnxruntime: an exported ONNX file was scored
    onnx: Optional[str] = None  # that file
    schema_version: int = SCHEMA_VERSION

    @property
    def file_name(self) -> str:
        return evaluation_file_name(self.split, self.backend)

    def to_json(self) -> str:
        return _dumps(self)

    @classmethod
    def from_json(cls, text: str, *, source: str = "evaluation.json") -> "EvaluationRecord":
        return _loads(cls, text, source)


@attrs.frozen(kw_only=True)
class TrainStepRecord:
    """A ``metrics.jsonl`` line: the mean training loss since the previous line."""

    type: str = attrs.field(default="train", validator=attrs.validators.in_(("train",)))
    epoch: int  # completed epochs when the step ran
    iteration: int  # optimizer steps done
    loss: float
    lr: float
    images_per_s: float
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> str:
        return _dumps(self, indent=None)

    @classmethod
    def from_json(cls, text: str, *, source: str = "metrics.jsonl") -> "TrainStepRecord":
        return _loads(cls, text, source)


@attrs.frozen(kw_only=True)
class SelectionRecord:
    """A ``metrics.jsonl`` line: one evaluation on the split that picks the best checkpoint."""

    type: str = attrs.field(default="eval", validator=attrs.validators.in_(("eval",)))
    split: str
    epoch: int
    iteration: int
    mIoU: float
    best_mIoU: float
    lr: float
    per_class_iou: Optional[dict[str, Optional[float]]] = None  # None in files written before it was kept
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> str:
        return _dumps(self, indent=None)

    @classmethod
    def from_json(cls, text: str, *, source: str = "metrics.jsonl") -> "SelectionRecord":
        return _loads(cls, text, source)


MetricsRecord = Union[TrainStepRecord, SelectionRecord]
METRICS_TYPES: dict[str, type] = {"train": TrainStepRecord, "eval": SelectionRecord}


def evaluation_file_name(split: str, backend: str = "torch") -> str:
    """``evaluation-<split>.json``; ``evaluation-<split>-<backend>.json`` for another backend than torch."""
    return f"evaluation-{split}{'' if backend == 'torch' else '-' + backend}.json"


# ---- JSON ------------------------------------------------------------------------------------------

_converter = cattrs.Converter()


def _omit_defaults(cls, *names: str) -> None:
    """Leave ``names`` out of ``cls``'s JSON while they hold their defaults: fields added later keep
    the files of runs that do not use them exactly as they were."""
    from cattrs.gen import make_dict_unstructure_fn, override

    _converter.register_unstructure_hook(cls, make_dict_unstructure_fn(
        cls, _converter, **{name: override(omit_if_default=True) for name in names}))


_omit_defaults(EvaluationSettings, "scales")
_omit_defaults(EvaluationRecord, "backend", "onnx")


def _dumps(record, *, indent: int | None = 2) -> str:
    return json.dumps(_converter.unstructure(record), indent=indent, allow_nan=True)


def _loads(cls, text: str, source: str):
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise RecordError(f"{source} is not valid JSON ({exc}); it was cut short or edited by hand.") from None
    return from_data(cls, data, source)


def from_data(cls, data, source: str):
    """``cls`` from parsed JSON; files without ``schema_version`` (version 0) have the same fields."""
    if not isinstance(data, dict):
        raise RecordError(f"{source} holds {type(data).__name__}, not a JSON object")
    version = data.get("schema_version", 0)
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise NewerRecordError(f"{source} has schema_version {version!r}; this segbench reads versions up to"
                          f" {SCHEMA_VERSION}. Upgrade segbench to read it.")
    try:
        record = _converter.structure({**data, "schema_version": SCHEMA_VERSION}, cls)
    except cattrs.BaseValidationError as exc:
        problems = "; ".join(cattrs.transform_error(exc, path=source))
        raise RecordError(f"{source} is not a {cls.__name__} record: {problems}") from None
    if cls in (ResultsRecord, EvaluationRecord):
        _check_scores(record, source)
    return record


def _check_scores(record, source: str) -> None:
    """Scores are fractions in [0, 1] (``null`` where a class never occurs) and the confusion matrix counts
    pixels: segbench never writes NaN or a negative count, so such a file was edited or damaged."""
    scores = {"mIoU": record.mIoU, "pixel_accuracy": record.pixel_accuracy,
              **{f"per_class_iou.{name}": value for name, value in record.per_class_iou.items()}}
    problems = [f"{key} is {value!r}" for key, value in scores.items()
                if value is not None and not 0.0 <= value <= 1.0]  # NaN fails both comparisons
    if any(count < 0 for row in record.confusion_matrix for count in row):
        problems.append("confusion_matrix holds a negative count")
    if problems:
        raise RecordError(f"{source} holds impossible scores ({'; '.join(problems[:5])}); scores are fractions"
                          " from 0 to 1 and segbench never writes NaN")


# ---- files -----------------------------------------------------------------------------------------

def write_record(path: Path, record) -> None:
    """Write a record as a JSON file atomically (the previous file stays intact on a crash)."""
    atomic_write_text(Path(path), record.to_json() + "\n")


def _read_bytes(path: Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise RecordError(f"cannot read {path}: {exc.strerror or exc}") from None


def _read_text(path: Path) -> str:
    data = _read_bytes(path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecordError(f"{path} is not UTF-8 text (byte {exc.start} cannot be decoded): it is damaged or"
                          " not a file segbench wrote") from None


def read_results(path) -> ResultsRecord:
    return ResultsRecord.from_json(_read_text(path), source=str(path))


def read_evaluation(path) -> EvaluationRecord:
    return EvaluationRecord.from_json(_read_text(path), source=str(path))


def metrics_line(record: MetricsRecord) -> str:
    return record.to_json() + "\n"


def read_metrics(path) -> list[MetricsRecord]:
    """The records of a ``metrics.jsonl`` file, oldest first; none when it does not exist.

    A line cut short by a crash, and lines of a type this version does not know, are skipped; so are lines
    whose fields do not fit their record (edited or damaged), with one warning naming them: one bad line
    must not hide a run's curves, or stop the tables that list every run.
    """
    path = Path(path)
    if not path.is_file():
        return []
    records, damaged = [], []
    # Damaged bytes spoil only their own lines, which are skipped like a line cut short.
    for number, line in enumerate(_read_bytes(path).decode("utf-8", errors="replace").splitlines(), start=1):
        try:
            data = json.loads(line)
        except ValueError:
            continue
        cls = METRICS_TYPES.get(data.get("type")) if isinstance(data, dict) else None
        if cls is not None:
            try:
                records.append(from_data(cls, data, f"{path}:{number}"))
            except RecordError as exc:
                damaged.append((number, exc))
    if damaged:
        lines = ", ".join(str(number) for number, _ in damaged[:10]) + (", ..." if len(damaged) > 10 else "")
        print(f"segbench: warning: skipped {len(damaged)} damaged line(s) of {path} (line {lines}; first: "
              f"{damaged[0][1]})", file=sys.stderr)
    return records
