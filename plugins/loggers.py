"""Built-in file loggers: ``jsonl`` (``metrics.jsonl``, what ``plot``, ``compare`` and ``report`` read) and
``csv`` (``metrics.csv`` for spreadsheets). Both are rewritten on (re)start to hold only the steps up to
the checkpoint training continues from, then appended to record by record."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import attrs

from segbench import hookimpl
from segbench.atomic import atomic_write_text
from segbench.engine.loggers import Logger, RunStart
from segbench.records import SelectionRecord, TrainStepRecord, metrics_line

METRICS_JSONL = "metrics.jsonl"
METRICS_CSV = "metrics.csv"


@attrs.frozen
class JsonlConfig:
    """No settings: one JSON object per line in ``metrics.jsonl``."""


@attrs.frozen
class CsvConfig:
    """No settings: one row per record in ``metrics.csv``, one ``iou_<class>`` column per class."""


class _AppendingFile(Logger):
    """A text file of records: kept up to the restart step, then appended to line by line."""

    def __init__(self, path: Path):
        self.path = path

    def _kept_text(self, start: RunStart) -> str:
        raise NotImplementedError

    def start(self, start: RunStart) -> None:
        atomic_write_text(self.path, self._kept_text(start) if start.resumed and self.path.is_file() else "")

    def _append(self, text: str) -> None:
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(text)


class JsonlLogger(_AppendingFile):
    def _kept_text(self, start: RunStart) -> str:
        kept = []
        for line in self.path.read_text(encoding="utf-8").splitlines(keepends=True):
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a line cut short by a crash
            if line.endswith("\n") and isinstance(record, dict) and record.get("iteration", 0) <= start.iteration:
                kept.append(line)
        return "".join(kept)

    def train(self, record: TrainStepRecord) -> None:
        self._append(metrics_line(record))

    def evaluate(self, record: SelectionRecord, panels) -> None:
        self._append(metrics_line(record))


class CsvLogger(_AppendingFile):
    COLUMNS = ("type", "split", "epoch", "iteration", "loss", "lr", "images_per_s", "mIoU", "best_mIoU")

    def __init__(self, path: Path):
        super().__init__(path)
        self.class_names: tuple[str, ...] = ()

    def _row(self, values: list) -> str:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerow(["" if v is None else v for v in values])
        return buffer.getvalue()

    def _header(self) -> str:
        return self._row([*self.COLUMNS, *(f"iou_{name}" for name in self.class_names)])

    def _kept_text(self, start: RunStart) -> str:
        rows = list(csv.reader(io.StringIO(self.path.read_text(encoding="utf-8"))))
        kept = [row for row in rows[1:] if len(row) == len(self.COLUMNS) + len(self.class_names)
                and row[3].isdigit() and int(row[3]) <= start.iteration]
        return self._header() + "".join(self._row(row) for row in kept)

    def start(self, start: RunStart) -> None:
        self.class_names = tuple(start.class_names)
        super().start(start)
        if self.path.stat().st_size == 0:
            self._append(self._header())

    def train(self, record: TrainStepRecord) -> None:
        self._append(self._row(["train", "", record.epoch, record.iteration, record.loss, record.lr,
                                record.images_per_s, "", "", *([""] * len(self.class_names))]))

    def evaluate(self, record: SelectionRecord, panels) -> None:
        ious = [(record.per_class_iou or {}).get(name) for name in self.class_names]
        self._append(self._row(["eval", record.split, record.epoch, record.iteration, "", record.lr, "",
                                record.mIoU, record.best_mIoU, *ious]))


def build_jsonl(config: JsonlConfig, *, run_dir: Path) -> JsonlLogger:
    """Every record as one JSON line in ``metrics.jsonl`` (read by plot, compare and report)."""
    return JsonlLogger(Path(run_dir) / METRICS_JSONL)


def build_csv(config: CsvConfig, *, run_dir: Path) -> CsvLogger:
    """Every record as one row of ``metrics.csv``, for spreadsheets."""
    return CsvLogger(Path(run_dir) / METRICS_CSV)


@hookimpl
def segbench_register_loggers(register):
    register("jsonl", build_jsonl, config=JsonlConfig, default=True)
    register("csv", build_csv, config=CsvConfig)
