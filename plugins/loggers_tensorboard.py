"""The ``tensorboard`` logger: event files in the run directory, written by TensorBoard's own writer
(``torch.utils.tensorboard.SummaryWriter``), so ``tensorboard --logdir runs/`` shows every run.

Scalars: ``train/loss``, ``train/lr``, ``train/images_per_s``, ``select/mIoU``, ``select/best_mIoU`` and
``select_iou/<class>``; text ``recipe`` (the resolved recipe) and the recipe's values as hyper-parameters
(HPARAMS tab, against ``select/mIoU``); images ``predictions/<k>`` (image | ground truth | prediction) at
each evaluation. A resumed run purges what an interrupted attempt logged after its checkpoint, so each
curve holds every step once. Registered as a default logger when the ``tensorboard`` package is installed
(``pip install 'segbench[tensorboard]'``).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import attrs

from segbench import hookimpl
from segbench.config import in_range
from segbench.errors import SegbenchError
from segbench.engine.loggers import Logger, RunStart
from segbench.records import SelectionRecord, TrainStepRecord
from segbench.report.panel_image import panel_image

EVENT_FILE_PREFIX = "events.out.tfevents."


@attrs.frozen
class TensorBoardConfig:
    """Event files in the run directory; ``images``: prediction panels per evaluation."""

    images: int = attrs.field(default=3, validator=in_range(0, 1000))
    flush_secs: int = attrs.field(default=30, validator=in_range(1, 86_400))


def _hparam_value(value):
    return value if isinstance(value, (bool, int, float, str)) else str(value)


class TensorBoardLogger(Logger):
    def __init__(self, config: TensorBoardConfig, run_dir: Path):
        from torch.utils.tensorboard import SummaryWriter  # import here: a second or two, and optional

        self._writer_class = SummaryWriter
        self.config, self.run_dir = config, Path(run_dir)
        self.panels = config.images
        self.writer = None

    def start(self, start: RunStart) -> None:
        if not start.resumed:  # an attempt that died before its first checkpoint: its curves are void
            for stale in self.run_dir.glob(f"{EVENT_FILE_PREFIX}*"):
                stale.unlink()
        # Events logged at or after purge_step by earlier attempts are dropped by TensorBoard's readers;
        # everything up to the checkpoint's step was logged (and flushed) before the checkpoint.
        self.writer = self._writer_class(str(self.run_dir), purge_step=start.iteration + 1 if start.resumed else None,
                                         flush_secs=self.config.flush_secs)
        if not start.resumed:
            self._describe_run(start)

    def _describe_run(self, start: RunStart) -> None:
        from torch.utils.tensorboard.summary import hparams

        text = "\n".join("    " + line for line in start.recipe_yaml.splitlines())  # Markdown code block
        self.writer.add_text("recipe", f"**{start.recipe_name}**\n\n{text}", global_step=0)
        values = {key: _hparam_value(value) for key, value in start.hparams.items() if value is not None}
        experiment, session_start, session_end = hparams(values, {"select/mIoU": 0.0})
        file_writer = self.writer._get_file_writer()
        for summary in (experiment, session_start, session_end):
            file_writer.add_summary(summary)

    def train(self, record: TrainStepRecord) -> None:
        step = record.iteration
        self.writer.add_scalar("train/loss", record.loss, step)
        self.writer.add_scalar("train/lr", record.lr, step)
        self.writer.add_scalar("train/images_per_s", record.images_per_s, step)

    def evaluate(self, record: SelectionRecord, panels) -> None:
        step = record.iteration
        self.writer.add_scalar(f"{record.split}/mIoU", record.mIoU, step)
        self.writer.add_scalar(f"{record.split}/best_mIoU", record.best_mIoU, step)
        for name, iou in (record.per_class_iou or {}).items():
            if iou is not None:
                self.writer.add_scalar(f"{record.split}_iou/{name}", iou, step)
        for k, panel in enumerate(panels):
            self.writer.add_image(f"predictions/{k}", panel_image(panel), step, dataformats="HWC")

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def build_tensorboard(config: TensorBoardConfig, *, run_dir: Path) -> TensorBoardLogger:
    """TensorBoard event files in the run directory: curves, per-class IoU, recipe, prediction panels."""
    if not tensorboard_installed():
        raise SegbenchError("tensorboard is not installed (it comes with an optional extra): install it with"
                            " pip install 'segbench[tensorboard]'")
    return TensorBoardLogger(config, run_dir)


def tensorboard_installed() -> bool:
    return importlib.util.find_spec("tensorboard") is not None


@hookimpl
def segbench_register_loggers(register):
    register("tensorboard", build_tensorboard, config=TensorBoardConfig, default=tensorboard_installed())
