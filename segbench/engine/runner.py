"""``segbench run``: resolve a recipe, run upstream stages first, train, report, write results."""
from __future__ import annotations

import shlex
import signal
import time
from pathlib import Path

import attrs
import torch

from segbench import provenance
from segbench.engine.build import RunComponents, build_components
from segbench.engine.checkpoint import load_model_weights
from segbench.engine.distributed import any_rank, barrier, env_from_environment, init_distributed, shutdown
from segbench.engine.evaluate import EvaluationStopped, evaluate_per_image, evaluation_settings
from segbench.engine.image_scores import FILE_NAME as IMAGE_SCORES
from segbench.engine.image_scores import sample_ids, save_image_scores
from segbench.engine.loggers import build_run_loggers
from segbench.engine.rundir import PreviousAttempt, RunDir, RunLock
from segbench.engine.runtime import Runtime
from segbench.engine.seeding import seed_global_generators
from segbench.engine.trainer import INTERRUPTED_EXIT_CODE, PREEMPTED_EXIT_CODE, Preempted, SignalFlag, Trainer
from segbench.functional.metrics import summarize
from segbench.recipe.load import ResolvedRecipe
from segbench.recipe.stages import resolve_stages
from segbench.runs import check_upstream_files
from segbench.recipe.variants import load_variants
from segbench.errors import SegbenchError, naming_recipe_files
from segbench.records import ResultsRecord, write_record
from segbench.stderr import say


def run_recipe_file(path, overrides=(), *, runs_dir=None, restart=False, smoke=False, device=None,
                    progress=True, seeds=None, grid=()) -> list[RunDir]:
    """Run every seed (times every ``grid`` point) of the recipe's experiment in turn; complete runs are
    reused and incomplete ones resume. Returns the run directories in that order."""
    from segbench.plugins import make_plugin_manager
    from segbench.registry import build_registries

    overrides = [*overrides, *([f"trainer.device={device}"] if device is not None else [])]
    registries = build_registries(make_plugin_manager())
    variants = load_variants(path, overrides, seeds=seeds, grid=grid, smoke=smoke, registries=registries)
    _check_all_runs(variants, registries, runs_dir=runs_dir, restart=restart)
    runs = []
    finished = False
    try:
        for variant, recipe in variants:
            if len(variants) > 1:
                say(f"experiment {recipe.name}: run {variant.index + 1} of {len(variants)} ({variant.label})")
            runs.append(run_stage(recipe, registries, runs_dir=runs_dir, restart=restart, progress=progress))
        finished = True
    except Preempted as exc:
        finished = True  # every rank agreed to stop here: leave the process group in order, as after success
        again = "the same command without --restart" if restart else "the same command"
        interrupted = exc.args[0] == signal.SIGINT
        say(f"segbench: {'interrupted' if interrupted else f'received signal {exc.args[0]}'}; checkpoint written."
            f" Run {again} to resume.")
        raise SystemExit(INTERRUPTED_EXIT_CODE if interrupted else PREEMPTED_EXIT_CODE)
    finally:
        # One process group for all the stages and seeds this process runs: a second one would not join.
        shutdown(env_from_environment(), finished=finished)
    if len(runs) > 1:
        say(f"experiment {variants[0][1].name}: {len(runs)} runs complete; statistics across seeds:"
            f" segbench compare {shlex.quote(str(runs[0].path.parent))}{' --include-smoke' if smoke else ''}")
    return runs


def _check_all_runs(variants, registries, *, runs_dir, restart) -> None:
    """Validate every run of an experiment and the stages it starts from, where each would compute and, when more
    than one will train, what each can only check against its data (its batch size and warm-up against its
    training split), before the first one trains: a bad grid value, seed or fine-tuning setting is an error now,
    not after hours of training the others."""
    from segbench.engine.preflight import preflight

    to_train = []
    for _variant, recipe in variants:
        for stage in resolve_stages(recipe, registries, is_complete=_completeness(recipe, runs_dir, restart)):
            Runtime.resolve(stage.plan.trainer)
            if not stage.complete:
                to_train.append(stage)
    if len(to_train) > 1:  # alone, a run makes these checks as it starts
        world_size = env_from_environment().world_size
        for stage in to_train:
            preflight(stage.plan, world_size=world_size)


def _completeness(recipe: ResolvedRecipe, runs_dir, restart: bool):
    """Whether a stage of ``recipe``'s chain is complete (``--restart`` trains ``recipe``'s own stage again)."""
    def complete(plan) -> bool:
        # A damaged results.json is an error now, before any stage trains, not when the next command reads it.
        return not (restart and plan.recipe.path == recipe.path) and RunDir.for_plan(plan, runs_dir).is_finished()

    return complete


def run_stage(recipe: ResolvedRecipe, registries, *, runs_dir=None, restart=False, progress=True) -> RunDir:
    """Run ``recipe``, first running the stages its strategy starts from that are not complete."""
    stages = resolve_stages(recipe, registries, is_complete=_completeness(recipe, runs_dir, restart))
    check_upstream_files(stages, runs_dir)
    for stage in stages:
        run = RunDir.for_plan(stage.plan, runs_dir)
        requested = stage is stages[-1]
        if stage.complete:
            if requested:
                say(f"stage {stage.recipe.name}: already complete in {run.path} (use --restart to train again)")
                _warn_if_other_layout(run, env_from_environment().world_size)
                _print_summary(run)
            else:
                say(f"stage {stage.recipe.name}: complete in {run.path}, reusing it")
            continue
        if not requested:
            say(f"stage {stage.recipe.name}: not complete yet, running it first")
        upstream_run = RunDir.for_plan(stage.upstream, runs_dir) if stage.upstream is not None else None
        train_stage(stage.plan, run, strategy=stage.strategy, upstream_run=upstream_run,
                    restart=restart and requested, progress=progress, plugins=registries.plugins)
    return run


def train_stage(plan, run: RunDir, *, strategy, upstream_run, restart=False, progress=True, plugins=()) -> None:
    runtime = Runtime.resolve(plan.trainer)
    runtime = attrs.evolve(runtime, dist=init_distributed(runtime.device.type)).following_rank_0()
    env = runtime.dist
    lock = RunLock(run).acquire() if env.is_main else None
    if lock is not None and not restart:  # --restart sets the damaged files aside
        try:
            run.check_layout()
        except SegbenchError:
            lock.release()
            raise
    # SIGTERM/SIGUSR1: during set-up the stage exits 75 at once (nothing to save); during training or an
    # evaluation, at the next step, window or batch (last.pt, exit 75).
    signals = SignalFlag(before_exit=lock.release if lock is not None else None).__enter__()
    previous = PreviousAttempt(run)
    set_aside = False
    try:
        if env.is_main:
            if previous.settle() == "restored":
                say(f"run {run.path}: an earlier --restart stopped before its first checkpoint; the run it"
                    " replaced is back in place")
            # --restart deletes nothing yet: the old files wait in .previous until the new run's first checkpoint.
            set_aside = restart and previous.set_aside()
        if any_rank(env.is_main and not restart and run.is_complete(), env, runtime.device):
            if env.is_main:
                say(f"stage {plan.recipe.name}: already complete in {run.path} (use --restart to train again)")
                _warn_if_other_layout(run, env.world_size)
                _print_summary(run)
            return
        barrier(env)  # no rank looks for last.pt before rank 0 has set the old one aside
        _train_and_report(plan, run, runtime, strategy=strategy, upstream_run=upstream_run, signals=signals,
                          after_first_checkpoint=previous.discard if set_aside else None, progress=progress,
                          plugins=plugins)
    except BaseException:
        if set_aside and previous.settle(this_attempt=True) == "restored":
            say(f"segbench: --restart failed before the new run's first checkpoint; the previous run in {run.path}"
                " is back as it was")
        raise
    finally:
        signals.__exit__(None, None, None)
        if lock is not None:
            lock.release()


def _train_and_report(plan, run, runtime: Runtime, *, strategy, upstream_run, signals, after_first_checkpoint,
                      progress, plugins=()):
    origin = provenance.collect(plugins, device=runtime.device)
    _configure_determinism(plan)
    with naming_recipe_files(plan.recipe.files):
        parts = build_components(plan, run, runtime, progress=progress)
        init_note = strategy.prepare(parts.raw_model, upstream_run=upstream_run.path if upstream_run else None)
    if runtime.dist.is_main:  # once the recipe has built: one refused on the way leaves no run behind
        run.write_recipe(plan)
    seed_global_generators(plan.seed, "training")  # a resumed run restores its state from last.pt instead
    loggers = build_run_loggers(plan.loggers, run.path, is_main=runtime.dist.is_main, warn=say)
    try:
        trainer = Trainer(plan, run, parts, runtime, progress=progress, log=say if runtime.dist.is_main else _quiet,
                          after_first_checkpoint=after_first_checkpoint, loggers=loggers)
        resumed = trainer.resume()
        if runtime.dist.is_main:
            say(f"run {run.path}: {plan.model.name} on {runtime.describe()},"
                f" {_schedule(trainer)}, {init_note}")
        trainer.fit(signals)
    finally:
        loggers.close()
    _report(plan, run, parts, trainer, runtime, init_note=init_note, resumed=resumed, progress=progress,
            signals=signals, origin=origin)
    # A signal while the results were written: this run is complete, and the next seed or stage is not started.
    signals.stop_if_any_rank_received(runtime.dist, runtime.device)


def _quiet(message):
    pass


def _configure_determinism(plan) -> None:
    if plan.trainer.deterministic:
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    else:
        torch.backends.cudnn.benchmark = True


def _report(plan, run, parts: RunComponents, trainer, runtime: Runtime, *, init_note, resumed, progress, signals,
            origin):
    """Score the chosen checkpoint on the report split and write ``results.json`` (last).

    A signal stops the evaluation at the next window or batch: ``last.pt`` already holds the finished
    training, so the resumed run goes straight to this evaluation.
    """
    checkpoint = run.best if plan.trainer.report_checkpoint == "best" and run.best.exists() else run.last
    load_model_weights(parts.raw_model, checkpoint, expected_model=plan.model.name)
    try:
        per_image = evaluate_per_image(parts.model, parts.report_data, plan.eval_transforms,
                                       config=plan.evaluation, num_classes=parts.num_classes,
                                       ignore_index=parts.ignore_index, runtime=runtime,
                                       num_workers=plan.trainer.num_workers, progress=progress, desc="report",
                                       stop=lambda: signals.received is not None)
    except EvaluationStopped:
        raise signals.stopped(runtime.dist, runtime.device) from None
    if not runtime.dist.is_main:
        return
    matrix = per_image.sum(dim=0)  # the global matrix of the official rule
    save_image_scores(run.path / IMAGE_SCORES, per_image, sample_ids(parts.report_data), parts.class_names)
    summary = summarize(matrix, parts.class_names)
    overlap = parts.splits_overlap
    if overlap:
        say("warning: the selection split overlaps the report split; the reported numbers are optimistic"
            " (declare data.select as a subset carved out of train)")
    data = plan.recipe.data["data"]
    results = ResultsRecord(
        recipe=plan.recipe.name,
        recipe_hash=plan.hash,
        experiment_hash=plan.experiment_hash,
        seed=plan.seed,
        per_image_confusion=IMAGE_SCORES,
        model=plan.model.name,
        strategy=plan.strategy.name,
        initialisation=init_note,
        model_init=getattr(parts.raw_model, "segbench_init", "random"),
        **summary,
        confusion_matrix=matrix.tolist(),
        report_split=data.get("report"),
        selection_split=data.get("select") if plan.trainer.select_on == "select" else data.get("report"),
        selection_overlaps_report=overlap,
        report_images=len(parts.report_data),
        evaluation=evaluation_settings(plan.evaluation),
        checkpoint=str(checkpoint),
        best_selection_mIoU=trainer.state.best_metric,
        best_epoch=trainer.state.best_epoch,
        epochs=trainer.state.epoch,
        iterations=trainer.state.iteration,
        params=sum(p.numel() for p in parts.raw_model.parameters()),
        checkpoint_mb=checkpoint.stat().st_size / 1e6,
        device=str(runtime.device),
        precision=runtime.precision,
        wall_time_s=trainer.state.elapsed,
        resumed=resumed,
        smoke=plan.recipe.smoke,  # `compare` leaves smoke runs out unless asked
        world_size=runtime.dist.world_size,
        class_weights=parts.class_weights,
        finished_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        provenance=origin.finished(),
    )
    write_record(run.results, results)
    _print_summary(run)


def _warn_if_other_layout(run: RunDir, world_size: int) -> None:
    """A finished run is the recipe's run whatever the process count; say when it was trained with another one
    (the batch is per process, so its schedule differed from what this command would have run)."""
    trained_with = run.read_results().world_size
    if trained_with is not None and trained_with != world_size:
        say(f"note: {run.path} was trained with {trained_with} process(es), each taking trainer.batch_size images"
            f" per step, and this command has {world_size}: its scores are those of {trained_with}. `--restart`"
            " trains it again with this command's processes, replacing it.")


def _fraction(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"  # None: no class occurs in the report split


def _schedule(trainer) -> str:
    """``E epoch(s) x I iteration(s)``, or where trainer.max_iterations stops it first."""
    if trainer.total_iterations < trainer.epochs * trainer.iterations_per_epoch:
        return (f"{trainer.total_iterations} iteration(s) (trainer.max_iterations; {trainer.iterations_per_epoch}"
                " per epoch)")
    return f"{trainer.epochs} epoch(s) x {trainer.iterations_per_epoch} iteration(s)"


def _print_summary(run: RunDir) -> None:
    results = run.read_results()
    lines = [f"results for {results.recipe} ({results.model}, {results.strategy}):",
             f"  mIoU {_fraction(results.mIoU)}   pixel accuracy {_fraction(results.pixel_accuracy)}"
             f"   ({results.report_images} report images, checkpoint {Path(results.checkpoint).name})"]
    for name, iou in results.per_class_iou.items():
        lines.append(f"    {name:<14} {'n/a' if iou is None else f'{iou:.4f}'}")
    lines.append(f"  run directory {run.path}")
    lines.append(f"  results {run.results}   curves: segbench plot {shlex.quote(str(run.path))}")
    print("\n".join(lines), flush=True)
