"""Reopening a finished (or interrupted) run: its recipe, its plan, its model with a checkpoint's weights."""
from __future__ import annotations

import contextlib
import copy
import sys
from pathlib import Path

import attrs
import torch

from segbench.engine.checkpoint import load_model_weights
from segbench.engine.device import choose_numerics, describe_cpu, pick_device
from segbench.engine.runtime import Runtime
from segbench.runs import RunDir
from segbench.errors import CheckpointError, ConfigError, SegbenchError
from segbench.config_paths import paths_relative_to
from segbench.recipe.load import ResolvedRecipe, load_recipe
from segbench.records import RecordError, ResultsRecord, read_results


def default_registries():
    from segbench.plugins import make_plugin_manager
    from segbench.registry import build_registries

    return build_registries(make_plugin_manager())


def run_name(run: RunDir) -> str:
    """The recipe name of a run directory ``<recipe>-<hash8>`` (the directory name when it has no hash)."""
    name, sep, suffix = run.path.name.rpartition("-")
    return name if sep and len(suffix) == 8 else run.path.name


def resolve_target(target: Path) -> tuple[RunDir, Path | None]:
    """``target`` is a run directory, or a checkpoint file inside ``<run>/checkpoints/``.

    Returns the run and the checkpoint file (``None`` for a directory).
    """
    target = Path(target)
    if target.is_dir():
        run = RunDir(target)
        if run.set_aside_message():
            raise SegbenchError(run.set_aside_message())
        if not run.recipe_file.is_file():
            raise SegbenchError(f"{target} is not a run directory: it has no recipe.yaml. Give a directory that"
                                " `segbench run` created (runs/<recipe>-<hash>/) or a checkpoint file in it.")
        return run, None
    if target.is_file():
        if target.suffix in (".yaml", ".yml"):
            raise SegbenchError(f"{target} is a recipe; this command reads a trained run. Train it first (`segbench"
                                f" run {target}`, or `--smoke` for a quick one) and give its run directory.")
        run = RunDir(target.resolve().parent.parent)
        if not run.recipe_file.is_file():
            raise SegbenchError(f"checkpoint {target} is not inside a run directory (expected"
                                f" <run>/checkpoints/{target.name} beside <run>/recipe.yaml, which is not there):"
                                " give the run directory that `segbench run` created, or a checkpoint in it.")
        return run, target
    raise SegbenchError(f"{target} does not exist; give a run directory (runs/<recipe>-<hash>/) or a checkpoint"
                        " file (runs/<recipe>-<hash>/checkpoints/best.pt).")


def load_run_recipe(run: RunDir) -> ResolvedRecipe:
    """The run's fully resolved recipe, read back from ``recipe.yaml``."""
    if not run.recipe_file.is_file():
        raise SegbenchError(f"{run.path} has no recipe.yaml, so it is not a run directory written by `segbench run`.")
    return load_recipe(run.recipe_file)


def _name_hash(run: RunDir) -> str | None:
    """The 8 characters of the run's hash that end its directory's name (``<recipe>-<hash8>``), if they do."""
    tail = run.path.name.rpartition("-")[2]
    return tail if len(tail) == 8 else None


def _warn_if_edited(run: RunDir, recipe: ResolvedRecipe, plan, workdir: str | None) -> None:
    """The directory name holds the hash of the resolved recipe (of the recipe as written, before it did)."""
    if workdir is None or not plan.complete:
        # A run written before runs recorded their folder hashed relative paths as written; with a training
        # plugin missing here, that component's defaults, part of the hash, are unknown.
        return
    expected = _name_hash(run)
    if expected and not (plan.hash.startswith(expected) or recipe.hash.startswith(expected)):
        print(f"warning: {run.recipe_file} hashes to {plan.hash[:8]}, not {expected} as the directory name says;"
              " it was edited after the run, or a plugin changed its defaults since. Using it as it is now.",
              file=sys.stderr)


def _results(run: RunDir) -> ResultsRecord | None:
    """The run's results.json; ``None`` before it is written, or when damaged."""
    try:
        return read_results(run.results)
    except (RecordError, OSError):
        return None


def _warn_if_foreign(run: RunDir, results: ResultsRecord | None, checkpoint: Path, recipe_hash) -> None:
    """A checkpoint records the hash of the run that wrote it, as do the run's results.json and directory name."""
    # no results yet, or damaged: the directory's name still says
    expected = results.recipe_hash if results is not None else _name_hash(run)
    if isinstance(recipe_hash, str) and expected and not recipe_hash.startswith(expected):
        print(f"warning: {checkpoint} was written by run {recipe_hash[:8]}, not by this one ({expected[:8]}): a"
              " checkpoint copied from another run, whose weights are used as they are.", file=sys.stderr)


def _warn_if_training(run: RunDir, checkpoint: Path, train_state) -> None:
    """Weights of a run still training are a snapshot: what is computed from them goes stale as it goes on."""
    from segbench.engine.rundir import RunLock

    holder = RunLock(run).holder()
    if holder is None:
        return
    iteration = train_state.get("iteration") if isinstance(train_state, dict) else None
    at = f" (written at iteration {iteration})" if isinstance(iteration, int) else ""
    print(f"warning: {run.path} is still training ({holder}); {checkpoint.name}{at} is a snapshot that the run"
          " will replace. Run this again once the run has finished for its final weights.", file=sys.stderr)


@contextlib.contextmanager
def _naming_missing_plugins(run: RunDir, registries):
    """A recipe problem of a run trained with plugins this machine lacks (an unknown model) also names them."""
    try:
        yield
    except ConfigError as exc:
        if not any(key.endswith(".name") and message.startswith("unknown ") for key, message in exc.problems):
            raise
        results = _results(run)
        loaded = {plugin.name for plugin in registries.plugins}
        missing = [plugin for plugin in (results.provenance.plugins if results and results.provenance else ())
                   if plugin.name not in loaded]
        if not missing:
            raise
        names = ", ".join(f"{plugin.name!r} (distribution {plugin.distribution} {plugin.version})"
                          for plugin in missing)
        raise ConfigError([*exc.problems, (str(run.results), f"the run was trained with plugin(s) {names}, which"
                                                             " this environment does not load: install them (or"
                                                             " unblock them) to use this run")],
                          files=exc.files) from exc


def plan_for_run(run: RunDir, registries, *, data_overrides: dict | None = None):
    """The run's validated plan, with ``data_overrides`` (``{role: section}``) replacing data roles."""
    from segbench.recipe.plan import build_plan

    recipe = load_run_recipe(run)
    workdir = run.working_directory()
    with paths_relative_to(workdir), _naming_missing_plugins(run, registries):  # its data where the run found it
        _warn_if_edited(run, recipe, build_plan(recipe, registries, training=False), workdir)
        data = recipe.data
        if data_overrides:
            data = copy.deepcopy(data)
            data.setdefault("data", {}).update(data_overrides)
        plan = build_plan(attrs.evolve(recipe, data=data), registries, training=False)
    # The checkpoint supplies every weight: the model's registration says what it then needs not read.
    model = attrs.evolve(plan.model, config=plan.model.entry.checkpoint_config(plan.model.config))
    return attrs.evolve(plan, model=model)


def choose_checkpoint(run: RunDir, which: str | None, *, default: str = "best") -> Path:
    """``best`` falls back to ``last`` (a run that never evaluated has no best); ``last`` must exist."""
    which = which or default
    if which not in ("best", "last"):
        raise SegbenchError(f"--checkpoint {which!r}: choose best or last, or give a checkpoint file instead"
                            " of the run directory.")
    if which == "best" and run.best.is_file():
        return run.best
    if run.last.is_file():
        return run.last
    raise CheckpointError(f"{run.path} has no checkpoint yet ({run.checkpoints} holds no best.pt or last.pt);"
                          " train it first with `segbench run`.")


def trained_numerics(results: ResultsRecord | None) -> tuple[str, str] | None:
    """The device type and precision a finished run trained and scored with (its ``results.json``)."""
    try:
        return (torch.device(results.device).type, results.precision) if results is not None else None
    except RuntimeError:  # a device string this torch does not know
        return None


def _runs_well_here(precision: str, device: torch.device) -> bool:
    """fp16 needs a GPU; bf16 on a CPU without native bf16 is emulated, many times slower."""
    if precision == "fp16":
        return device.type == "cuda"
    return precision != "bf16" or device.type != "cpu" or describe_cpu().native_bf16


def inference_settings(plan, device: str | None = None, *, trained: tuple[str, str] | None = None) -> Runtime:
    """``device`` (``--device``), else the recipe's ``trainer.device``; a run trained on a GPU can be
    inspected on a machine without one (with a warning: reduced precision may shift the last digits).

    ``trained`` (:func:`trained_numerics`): with ``precision: auto``, the precision the run chose when it trained
    on this kind of device is kept, so that its scores are reproduced (``auto`` may choose otherwise today: another
    thread count is timed on its own).
    """
    if device is not None:
        chosen = pick_device(device, option="--device")
    else:
        try:
            chosen = pick_device(plan.trainer.device)
        except SegbenchError as exc:
            chosen = pick_device("auto")
            print(f"warning: {exc}; using {chosen} instead (choose with --device)", file=sys.stderr)
    precision = plan.trainer.precision
    if precision == "auto" and trained is not None and trained[0] == chosen.type \
            and _runs_well_here(trained[1], chosen):
        precision = trained[1]
    try:
        numerics = choose_numerics(precision, plan.trainer.channels_last, chosen)
    except SegbenchError as exc:  # fp16 was for a GPU
        numerics = choose_numerics("auto", plan.trainer.channels_last, chosen)
        print(f"warning: {exc}; evaluating in {numerics.precision} instead", file=sys.stderr)
    return Runtime(chosen, numerics.precision, numerics.channels_last)


@attrs.frozen
class LoadedRun:
    """A run's plan, its report dataset's class table, and its model in eval mode with checkpoint weights."""

    run: RunDir
    plan: object
    info: object  # DatasetInfo
    model: torch.nn.Module
    checkpoint: Path
    checkpoint_state: dict
    inference: Runtime  # where and how the model runs here

    @property
    def name(self) -> str:
        return run_name(self.run)


def load_run(target: Path, registries=None, *, checkpoint: str | None = None, device: str | None = None,
             data_overrides: dict | None = None, plan=None, report_dataset=None) -> tuple[LoadedRun, object]:
    """Open ``target`` (run directory or checkpoint file) and build its model with the chosen weights.

    Returns the loaded run and its report dataset (built here unless ``report_dataset`` is given): the
    dataset carries the class names, palette and export ids the model was trained with. ``plan``
    (from :func:`plan_for_run`) saves rebuilding it when the caller has it already.
    """
    run, checkpoint_file = resolve_target(target)
    if checkpoint_file is not None and checkpoint is not None:
        raise SegbenchError(f"--checkpoint {checkpoint} and the checkpoint file {checkpoint_file} both choose the"
                            " weights; give one of them.")
    if plan is None:
        registries = registries if registries is not None else default_registries()
        plan = plan_for_run(run, registries, data_overrides=data_overrides)
    if checkpoint_file is None:
        checkpoint_file = choose_checkpoint(run, checkpoint, default=plan.trainer.report_checkpoint)
    dataset = report_dataset if report_dataset is not None else plan.datasets["report"].build()
    info = dataset.info
    results = _results(run)
    settings = inference_settings(plan, device, trained=trained_numerics(results))
    model = plan.model.build(num_classes=len(info.class_names))
    state = load_model_weights(model, checkpoint_file, expected_model=plan.model.name)
    _warn_if_foreign(run, results, Path(checkpoint_file), state.get("recipe_hash"))
    _warn_if_training(run, Path(checkpoint_file), state.get("train_state"))
    model = settings.model(model)
    model.eval()
    checkpoint_state = {k: v for k, v in state.items() if k in ("train_state", "recipe_hash", "model_name")}
    return LoadedRun(run, plan, info, model, Path(checkpoint_file), checkpoint_state, settings), dataset
