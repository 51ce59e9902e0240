"""Run directories: ``<runs>/<recipe>-<hash8>/`` with the resolved recipe, metrics, checkpoints and results.

No torch: job emission and result readers use it without the training engine."""
from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

import attrs

from segbench.atomic import atomic_write_text
from segbench.errors import RecipeError, SegbenchError
from segbench.recipe.load import dump_yaml
from segbench.records import (MetricsRecord, NewerRecordError, RecordError, ResultsRecord, read_metrics,
                              read_results)

RUNS_ENV = "SEGBENCH_RUNS"
MAX_NAME_BYTES = 255  # a file or folder name on Linux, macOS and Windows file systems


def default_runs_dir(runs_dir: Path | None = None) -> Path:
    if runs_dir is not None:
        return Path(runs_dir)
    return Path(os.environ.get(RUNS_ENV) or "runs")  # set but empty: the default, not the current folder


# What `segbench run` and the inspection commands keep in a run directory: an --out must not replace them.
WORKDIR_LINE = "# working directory: "  # recipe.yaml's header line (a JSON string: any folder name fits one line)
RUN_FILE_PATTERNS = ("recipe.yaml", "results.json", "metrics.jsonl", "metrics.csv", "confusion_per_image.npz",
                     "class_weights.json", "run.lock", "evaluation-*.json", "benchmark-*.json", "events.out.tfevents.*",
                     "metrics.*.damaged*")


def refuse_run_file(path: Path, option: str = "--out") -> None:
    """An output path that would overwrite a file a run directory keeps (its results, recipe, metrics, a
    checkpoint ...) is an error: such a file is not re-created by writing a figure or an export over it."""
    from fnmatch import fnmatch

    path = Path(path).resolve()
    in_run = (path.parent / "recipe.yaml").is_file() and any(fnmatch(path.name, p) for p in RUN_FILE_PATTERNS)
    in_checkpoints = path.parent.name == "checkpoints" and (path.parent.parent / "recipe.yaml").is_file()
    if in_checkpoints and not path.exists():
        raise SegbenchError(f"{option} {path} would write into the run's checkpoints folder, which holds its"
                            " checkpoints alone (a resume or --restart manages it); choose another folder.")
    if in_run or in_checkpoints:
        raise SegbenchError(f"{option} {path} would overwrite the run's own {path.name} in {path.parent}; choose"
                            " another file name or folder.")


@attrs.frozen
class RunDir:
    path: Path

    @classmethod
    def for_plan(cls, plan, runs_dir: Path | None = None) -> "RunDir":
        """The directory of the run ``plan`` (a validated :class:`segbench.recipe.plan.Plan`) describes."""
        folder = default_runs_dir(runs_dir)
        if folder.exists() and not folder.is_dir():
            raise SegbenchError(f"runs directory {folder} is a file, not a folder. Give another --runs-dir (or"
                                f" ${RUNS_ENV}), or move the file away.")
        name_bytes = len(os.fsencode(plan.run_name))
        if name_bytes > MAX_NAME_BYTES:
            raise SegbenchError(f"the run folder name {plan.run_name[:40]}... would be {name_bytes} bytes, over the"
                                f" {MAX_NAME_BYTES} bytes file systems allow in a name (it is the recipe file name"
                                f" {plan.recipe.path.name!r} and a hash): give the recipe a shorter file name, at"
                                f" most {MAX_NAME_BYTES - 9 - len('.yaml')} bytes before .yaml.")
        return cls(folder / plan.run_name)

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def last(self) -> Path:
        return self.checkpoints / "last.pt"

    @property
    def best(self) -> Path:
        return self.checkpoints / "best.pt"

    @property
    def results(self) -> Path:
        return self.path / "results.json"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def recipe_file(self) -> Path:
        return self.path / "recipe.yaml"

    @property
    def lock_file(self) -> Path:
        return self.path / "run.lock"

    @property
    def set_aside(self) -> Path:
        """Where ``run --restart`` keeps the previous attempt's files until the new one's first checkpoint."""
        return self.path / ".previous"

    def set_aside_message(self) -> str | None:
        """Why the run's files are missing, when an interrupted ``--restart`` left them in :attr:`set_aside`."""
        if not self.set_aside.is_dir() or self.recipe_file.is_file():
            return None
        return (f"{self.path} was set aside by a `segbench run --restart` that stopped before its first checkpoint:"
                f" its files wait in {self.set_aside}. The next `segbench run` of its recipe puts them back"
                " first (or move them back by hand).")

    def last_world_size(self) -> int | None:
        """The number of processes that wrote ``last.pt``, read without loading its tensors; ``None`` when there is
        none, or it does not say or cannot be read (the run resuming from it reports that)."""
        import torch  # here: emitting jobs and reading records need no torch otherwise

        if not self.last.is_file():
            return None
        try:
            state = torch.load(self.last, map_location="cpu", weights_only=True, mmap=True)
        except Exception:
            return None
        value = state.get("world_size") if isinstance(state, dict) else None
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def is_complete(self) -> bool:
        return self.results.is_file()

    def is_finished(self) -> bool:
        """Complete with a readable results file. A damaged one is an error saying how to write it again: it
        would pass for a finished run, and whatever reads it (a stage started from it, compare) would fail later."""
        if not self.is_complete():
            return False
        try:
            self.read_results()
        except NewerRecordError:
            pass  # written by a newer segbench: finished all the same
        return True

    def check_layout(self) -> None:
        """Refuse a run directory whose folders are files or whose files are folders, before any training
        (a folder named results.json would fail the run only after it trained, one named metrics.jsonl would
        silence the metrics)."""
        wrong = [f"{path} is a file where a folder belongs" for path in (self.checkpoints,)
                 if path.exists() and not path.is_dir()]
        wrong += [f"{path} is a folder where a file belongs"
                  for path in (self.last, self.best, self.results, self.metrics, self.recipe_file) if path.is_dir()]
        if wrong:
            raise SegbenchError(f"run directory {self.path} is damaged: {'; '.join(wrong)}. Move it out of the way"
                                " (or remove it) and run again; `segbench run --restart` starts the run over.")

    def read_results(self) -> ResultsRecord:
        """The run's results; a damaged file's error says how to write it again."""
        try:
            return read_results(self.results)
        except NewerRecordError:
            raise
        except RecordError as exc:
            then = ("the training is complete, so only the report evaluation runs again" if self.last.is_file()
                    else f"it trains again, as {self.last} is not there")
            raise RecordError(f"{str(exc).rstrip('.')}. To write it again, move it away and run the same `segbench"
                              f" run` command: {then}.") from None

    def read_metrics(self) -> list[MetricsRecord]:
        return read_metrics(self.metrics)

    def working_directory(self) -> str | None:
        """The folder the run ran from, against which its recipe's relative paths were resolved (see
        ``segbench.config_paths``); ``None`` for runs that did not record it."""
        try:
            with open(self.recipe_file, encoding="utf-8") as handle:
                for line in handle:
                    if not line.startswith("#"):
                        return None
                    if line.startswith(WORKDIR_LINE):
                        return json.loads(line[len(WORKDIR_LINE):])
        except (OSError, UnicodeDecodeError, ValueError):
            return None
        return None

    def write_recipe(self, plan) -> None:
        recipe = plan.recipe
        header = (f"# resolved from {' <- '.join(recipe.files)}\n# overrides: {list(recipe.overrides)}\n"
                  f"{WORKDIR_LINE}{json.dumps(os.getcwd())}\n# hash: {plan.hash}\n")
        body = dump_yaml(recipe.data)
        if self.recipe_file.is_file() and \
                self.recipe_file.read_text(encoding="utf-8").endswith(f"# hash: {plan.hash}\n{body}"):
            return  # resuming: leave the file (and its time stamp) as the first attempt wrote it
        atomic_write_text(self.recipe_file, header + body)


def check_upstream_files(stages, runs_dir) -> None:
    """Refuse a chain whose complete stage lacks a file the stage after it starts from: ``results.json`` alone
    counts a stage complete, and a deleted checkpoint would otherwise fail the next stage only when it starts
    (after its wait in a queue)."""
    for before, stage in zip(stages, stages[1:]):
        needs = getattr(stage.strategy, "upstream_files", None)
        if not before.complete or needs is None:
            continue
        upstream = RunDir.for_plan(before.plan, runs_dir)
        missing = [path for path in needs(upstream.path) if not Path(path).is_file()]
        if missing:
            again = ["segbench", "run", str(before.recipe.path), *before.recipe.overrides]
            if before.recipe.replicate_seed is not None:
                again += ["--seeds", str(before.recipe.replicate_seed)]
            if before.recipe.smoke:
                again.append("--smoke")
            if runs_dir is not None:
                again += ["--runs-dir", str(runs_dir)]
            raise RecipeError(
                f"stage {stage.recipe.name} starts from {missing[0]}, which does not exist, although"
                f" {upstream.path} is complete (its results.json). Train that stage again with"
                f" `{shlex.join([*again, '--restart'])}`, then run this command again.")
