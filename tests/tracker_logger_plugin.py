"""How a third party sends segbench runs to an experiment tracker (Weights & Biases, MLflow, ...).

A package ships a module like this one and names it in its ``segbench`` entry-point group::

    [options.entry_points]
    segbench =
        tracker = my_package.segbench_tracker

and a recipe chooses it: ``logging: [{name: jsonl}, {name: tracker, project: cityscapes}]``. The
tracker's client is the only part that differs between services; this example's ``FileClient`` records
the calls in a JSON-lines file so that the tests can read them back. With W&B it would be
``wandb.init(project=..., config=start.hparams, id=..., resume="allow")`` and ``run.log(values, step=...)``;
with MLflow ``mlflow.start_run(...)``, ``mlflow.log_params(...)`` and ``mlflow.log_metrics(values, step=...)``.
Also registered: ``broken``, a logger that fails, to show that training goes on without it.
"""
from __future__ import annotations

import json
from pathlib import Path

import attrs

from segbench import hookimpl
from segbench.engine.loggers import Logger


class FileClient:
    """Stands in for a tracker's client: one JSON line per call."""

    def __init__(self, path: Path):
        self.path = path

    def call(self, method: str, **arguments) -> None:
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"call": method, **arguments}) + "\n")


@attrs.frozen
class TrackerConfig:
    """An experiment tracker: ``project`` groups the runs."""

    project: str = "segbench"


class TrackerLogger(Logger):
    panels = 1  # one prediction panel per evaluation, sent as an image

    def __init__(self, config: TrackerConfig, run_dir: Path):
        self.config, self.client = config, FileClient(Path(run_dir) / "tracker_calls.jsonl")

    def start(self, start):
        # A tracker keeps a resumed run's earlier values; `resume_from` tells it where this attempt continues.
        self.client.call("init", project=self.config.project, run=start.run_dir.name, config=start.hparams,
                         resume_from=start.iteration if start.resumed else None)

    def train(self, record):
        self.client.call("log", step=record.iteration, values={"train/loss": record.loss, "train/lr": record.lr})

    def evaluate(self, record, panels):
        values = {f"{record.split}/mIoU": record.mIoU,
                  **{f"{record.split}_iou/{name}": iou for name, iou in (record.per_class_iou or {}).items()}}
        images = [{"caption": panel.sample_id, "shape": list(panel.image.shape)} for panel in panels]
        self.client.call("log", step=record.iteration, values=values, images=images)

    def close(self):
        self.client.call("finish")


@attrs.frozen
class BrokenConfig:
    """A logger whose service is down: every record fails."""


class BrokenLogger(Logger):
    def train(self, record):
        raise ConnectionError("tracker service unreachable")


@hookimpl
def segbench_register_loggers(register):
    register("tracker", lambda config, *, run_dir: TrackerLogger(config, run_dir), config=TrackerConfig)
    register("broken", lambda config, *, run_dir: BrokenLogger(), config=BrokenConfig)
