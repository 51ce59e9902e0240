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
from segbench.atomic import atomic_write_bytes, atomic_write_text
from segbench.engine.loggers import Logger, RunStart
from segbench.records import SelectionRecord, TrainStepRecord, metrics_line
from segbench.stderr import say

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

    def _kept_text(self, lines: list[str], start: RunStart) -> tuple[str, int]:
        """The text to keep of ``lines`` (the file's, each with its line end) and how many were damaged."""
        raise NotImplementedError

    def _lines(self) -> list[str]:
        # decoded line by line: one damaged byte costs its line, not the file
        return self.path.read_bytes().decode("utf-8", errors="replace").splitlines(keepends=True)

    def start(self, start: RunStart) -> None:
        if not (start.resumed and self.path.is_file()):
            if start.resumed and start.iteration > 0:
                say(f"warning: {self.path} was missing when the run resumed at iteration {start.iteration}: it"
                    " starts again there, so its curves begin at that step")
            atomic_write_text(self.path, "")
            return
        original = self.path.read_bytes()
        kept, damaged = self._kept_text(self._lines(), start)
        if damaged:  # the file as it was stays beside it: nothing written is lost
            aside = _unused(self.path.with_name(f"{self.path.name}.damaged"))
            atomic_write_bytes(aside, lambda handle: handle.write(original))
            say(f"warning: {self.path}: {damaged} damaged line(s) left out when the run resumed; the file as it"
                f" was is kept in {aside}")
        atomic_write_text(self.path, kept)

    def _append(self, text: str) -> None:
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(text)


def _unused(path: Path) -> Path:
    """``path``, or ``path.2``, ``path.3`` ... whichever is not there yet: a copy an earlier resume kept stays."""
    number = 1
    candidate = path
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.name}.{number}")
    return candidate


def _cut_short(lines: list[str], index: int) -> bool:
    """The last line without its line end: a write that a crash interrupted, not damage."""
    return index == len(lines) - 1 and not lines[index].endswith("\n")


class JsonlLogger(_AppendingFile):
    def _kept_text(self, lines: list[str], start: RunStart) -> tuple[str, int]:
        kept, damaged = [], 0
        for index, line in enumerate(lines):
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if not isinstance(record, dict) or _cut_short(lines, index):
                damaged += not _cut_short(lines, index)
                continue
            if record.get("iteration", 0) <= start.iteration:
                kept.append(line)
        return "".join(kept), damaged

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

    def _kept_text(self, lines: list[str], start: RunStart) -> tuple[str, int]:
        kept, damaged = [], 0
        for index, line in enumerate(lines[1:], 1):  # after the header
            row = next(csv.reader([line]), [])
            if len(row) != len(self.COLUMNS) + len(self.class_names) or not row[3].isdigit() \
                    or _cut_short(lines, index):
                damaged += not _cut_short(lines, index)
                continue
            if int(row[3]) <= start.iteration:
                kept.append(self._row(row))
        return self._header() + "".join(kept), damaged

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
