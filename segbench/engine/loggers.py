"""The one logging interface the trainer calls, in front of the loggers a recipe chose.

Loggers are plugins (``segbench_register_loggers``). The trainer hands them the typed records of
``metrics.jsonl`` (``segbench.records``: ``TrainStepRecord``, ``SelectionRecord``); a logger
that raises is switched off with one warning and training goes on: watching a run must never stop it.
Only the main process (rank 0) logs.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, Sequence

import attrs
import numpy as np

from segbench.records import SelectionRecord, TrainStepRecord


@attrs.frozen
class RunStart:
    """What a logger learns when training (re)starts.

    ``iteration`` is the optimizer step of the checkpoint training continues from (0 for a fresh
    start): whatever a logger wrote for later steps belongs to an attempt that died after it, and
    must go, so that a resumed run continues the same curves with no step twice or missing.
    """

    run_dir: Path
    recipe_name: str
    recipe_yaml: str  # the resolved recipe, as saved in recipe.yaml
    hparams: dict  # flattened resolved recipe: "optimizer.lr" -> scalar or text
    class_names: tuple[str, ...]
    iteration: int
    resumed: bool


@attrs.frozen
class PredictionPanel:
    """One evaluation image with its ground truth and the model's prediction, all at label resolution.

    ``segbench.report.panel_image.panel_image(panel)`` draws it as image | ground truth | prediction.
    """

    sample_id: str
    image: np.ndarray = attrs.field(eq=False)  # (H, W, 3) uint8
    truth: np.ndarray = attrs.field(eq=False)  # (H, W) train ids, ``ignore_index`` where not scored
    prediction: np.ndarray = attrs.field(eq=False)  # (H, W) train ids
    class_names: tuple[str, ...] = ()
    palette: tuple = ()  # one (R, G, B) per class
    ignore_index: int = 255


class Logger:
    """Base class of a logger plugin's object; override what the logger records.

    ``panels``: how many prediction panels this logger wants at each evaluation (0: none, and no
    inference is spent on them).
    """

    panels: int = 0

    def start(self, start: RunStart) -> None:
        pass

    def train(self, record: TrainStepRecord) -> None:
        pass

    def evaluate(self, record: SelectionRecord, panels: Sequence[PredictionPanel]) -> None:
        pass

    def flush(self) -> None:
        """Make what was logged durable: called before every checkpoint is written."""

    def close(self) -> None:
        pass


class RunLoggers:
    """The loggers of one run; each call reaches every logger still working."""

    def __init__(self, loggers: Sequence[tuple[str, Logger]] = (), *, warn: Callable[[str], None] | None = None,
                 origins: dict[str, str] | None = None):
        self._loggers = list(loggers)
        self._origins = origins or {}  # name -> its plugin, for warnings: the author to tell
        self._warn = warn or (lambda message: print(message, file=sys.stderr, flush=True))

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self._loggers]

    @property
    def panel_count(self) -> int:
        return max((getattr(logger, "panels", 0) for _, logger in self._loggers), default=0)

    def _call(self, method: str, *args) -> None:
        for name, logger in list(self._loggers):
            try:
                getattr(logger, method)(*args)
            except Exception as exc:  # a logger's failure must never stop training
                self._loggers.remove((name, logger))
                origin = f" ({self._origins[name]})" if name in self._origins else ""
                self._warn(f"warning: logger {name!r}{origin} failed in {method}(): {type(exc).__name__}: {exc}."
                           " It is switched off for the rest of this run; training goes on.")

    def start(self, start: RunStart) -> None:
        self._call("start", start)

    def train(self, record: TrainStepRecord) -> None:
        self._call("train", record)

    def evaluate(self, record: SelectionRecord, make_panels: Callable[[int], Sequence[PredictionPanel]]) -> None:
        """``make_panels(count)`` runs only when some logger wants panels."""
        count = self.panel_count
        panels: Sequence[PredictionPanel] = ()
        if count:
            try:
                panels = make_panels(count)
            except Exception as exc:
                self._warn(f"warning: prediction panels failed: {type(exc).__name__}: {exc}; logging without them")
        self._call("evaluate", record, panels)

    def flush(self) -> None:
        self._call("flush")

    def close(self) -> None:
        self._call("close")


def build_run_loggers(components, run_dir: Path, *, is_main: bool, warn=None) -> RunLoggers:
    """Build the recipe's loggers (``plan.loggers``) on the main process; none elsewhere.

    A logger that fails to build is left out with a warning, like one that fails later.
    """
    warn = warn or (lambda message: print(message, file=sys.stderr, flush=True))
    built = []
    if is_main:
        for component in components:
            try:
                built.append((component.name, component.build(run_dir=Path(run_dir))))
            except Exception as exc:
                # the message names the plugin (a component's build failure does)
                warn(f"warning: logger {component.name!r} could not start: {str(exc).rstrip('.')}. Training goes on"
                     " without it.")
    return RunLoggers(built, warn=warn, origins={component.name: component.entry.origin for component in components})


def flatten(data, prefix: str = "") -> dict:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists become their text (hyper-parameter values are scalars)."""
    flat = {}
    if isinstance(data, dict):
        for key, value in data.items():
            flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(data, (bool, int, float, str)) or data is None:
        flat[prefix] = data
    else:
        flat[prefix] = str(data)
    return flat
