"""``segbench run``: resolve a recipe, run upstream stages first, train, report, write results."""
from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import torch

from segbench.engine.build import RunComponents, build_components
from segbench.engine.checkpoint import load_model_weights
from segbench.engine.device import pick_device, resolve_precision
from segbench.engine.distributed import init_distributed, shutdown
from segbench.engine.evaluate import evaluate_confusion, evaluation_settings
from segbench.engine.loggers import build_run_loggers
from segbench.engine.rundir import RunDir, RunLock
from segbench.engine.trainer import PREEMPTED_EXIT_CODE, Preempted, SignalFlag, Trainer
from segbench.errors import SegbenchError
from segbench.functional.metrics import summarize
from segbench.recipe.load import ResolvedRecipe, load_recipe
from segbench.recipe.plan import build_plan


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_recipe_file(path, overrides=(), *, runs_dir=None, restart=False, smoke=False, device=None,
                    progress=True) -> RunDir:
    from segbench.plugins import make_plugin_manager
    from segbench.registry import build_registries

    overrides = [*overrides, *([f"trainer.device={device}"] if device is not None else [])]
    recipe = load_recipe(path, overrides, smoke=smoke)
    registries = build_registries(make_plugin_manager())
    try:
        return run_stage(recipe, registries, runs_dir=runs_dir, restart=restart, progress=progress)
    except Preempted as exc:
        _say(f"segbench: received signal {exc.args[0]}; checkpoint written. Run the same command to resume.")
        raise SystemExit(PREEMPTED_EXIT_CODE)


def run_stage(recipe: ResolvedRecipe, registries, *, runs_dir=None, restart=False, progress=True,
              _chain=()) -> RunDir:
    """Run ``recipe``, first running the stage its strategy starts from when that is not complete."""
    plan = build_plan(recipe, registries)
    strategy = plan.strategy.build()
    upstream = strategy.upstream(recipe)
    upstream_run = None
    if upstream is not None:
        if upstream.path in _chain:
            raise SegbenchError(f"stage cycle: {' -> '.join(str(p) for p in (*_chain, upstream.path))}")
        upstream_run = RunDir.for_recipe(upstream, runs_dir)
        if upstream_run.is_complete():
            _say(f"stage {upstream.name}: complete in {upstream_run.path}, reusing it")
        else:
            _say(f"stage {upstream.name}: not complete yet, running it first")
            run_stage(upstream, registries, runs_dir=runs_dir, progress=progress, _chain=(*_chain, recipe.path))
    run = RunDir.for_recipe(recipe, runs_dir)
    if run.is_complete() and not restart:
        _say(f"stage {recipe.name}: already complete in {run.path} (use --restart to train again)")
        _print_summary(run)
        return run
    train_stage(plan, run, strategy=strategy, upstream_run=upstream_run, restart=restart, progress=progress,
                plugins=registries.plugins)
    return run


def _device_and_precision(plan):
    device = pick_device(plan.trainer.device)
    precision = resolve_precision(plan.trainer.precision, device)
    channels_last = plan.trainer.channels_last
    if channels_last is None:
        channels_last = precision != "fp32"  # channels-last pays off only with reduced precision
    return device, precision, channels_last


def train_stage(plan, run: RunDir, *, strategy, upstream_run, restart=False, progress=True, plugins=()) -> None:
    from segbench import provenance

    device, precision, channels_last = _device_and_precision(plan)
    env = init_distributed(device.type)
    origin = provenance.collect(plugins, device=device)
    loggers = None
    lock = RunLock(run).acquire() if env.is_main else None
    # SIGTERM/SIGUSR1 are recorded, never fatal, for the whole stage: one during set-up stops training
    # after its first step (last.pt, exit 75); one during the report lets the finished run complete.
    signals = SignalFlag().__enter__()
    try:
        if restart and env.is_main:
            for stale in (run.checkpoints, run.metrics, run.results):
                if stale.is_dir():
                    shutil.rmtree(stale)
                elif stale.exists():
                    stale.unlink()
        if env.is_main:
            run.write_recipe(plan.recipe)
        _configure_determinism(plan)
        torch.manual_seed(plan.seed)
        parts = build_components(plan, run, device=device, channels_last=channels_last, env=env,
                                 progress=progress)
        init_note = strategy.prepare(parts.raw_model, upstream_run=upstream_run.path if upstream_run else None)
        loggers = build_run_loggers(plan.loggers, run.path, is_main=env.is_main, warn=_say)
        trainer = Trainer(plan=plan, run=run, model=parts.model, train_data=parts.train_data,
                          select_data=parts.select_data, criterion=parts.criterion, optimizer=parts.optimizer,
                          scheduler=parts.scheduler, device=device, precision=precision,
                          channels_last=channels_last, env=env, num_classes=parts.num_classes,
                          ignore_index=parts.ignore_index, progress=progress, log=_say if env.is_main else _quiet,
                          loggers=loggers, class_names=parts.class_names)
        resumed = trainer.resume()
        if env.is_main:
            _say(f"run {run.path}: {plan.model.name} on {device} ({precision}{', channels-last' if channels_last else ''}),"
                 f" {trainer.epochs} epoch(s) x {trainer.iterations_per_epoch} iteration(s), {init_note}")
        trainer.fit(signals)
        _report(plan, run, parts, trainer, device=device, precision=precision, channels_last=channels_last,
                env=env, init_note=init_note, resumed=resumed, progress=progress, origin=origin)
    finally:
        if loggers is not None:
            loggers.close()
        signals.__exit__(None, None, None)
        if lock is not None:
            lock.release()
        shutdown(env)


def _quiet(message):
    pass


def _configure_determinism(plan) -> None:
    if plan.trainer.deterministic:
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    else:
        torch.backends.cudnn.benchmark = True


def _report(plan, run, parts: RunComponents, trainer, *, device, precision, channels_last, env, init_note,
            resumed, progress, origin):
    """Score the chosen checkpoint on the report split and write ``results.json`` (last)."""
    checkpoint = run.best if plan.trainer.report_checkpoint == "best" and run.best.exists() else run.last
    load_model_weights(parts.raw_model, checkpoint, expected_model=plan.model.name)
    matrix = evaluate_confusion(parts.model, parts.report_data, plan.eval_transforms, config=plan.evaluation,
                                num_classes=parts.num_classes, ignore_index=parts.ignore_index, device=device,
                                precision=precision, env=env, num_workers=plan.trainer.num_workers,
                                channels_last=channels_last, progress=progress, desc="report")
    if not env.is_main:
        return
    summary = summarize(matrix, parts.class_names)
    overlap = parts.splits_overlap
    if overlap:
        _say("warning: the selection split overlaps the report split; the reported numbers are optimistic"
             " (declare data.select as a subset carved out of train)")
    results = {
        "recipe": plan.recipe.name,
        "recipe_hash": plan.recipe.hash,
        "model": plan.model.name,
        "strategy": plan.strategy.name,
        "initialisation": init_note,
        "model_init": getattr(parts.raw_model, "segbench_init", "random"),
        **summary,
        "confusion_matrix": matrix.tolist(),
        "report_split": plan.recipe.data["data"].get("report"),
        "selection_split": plan.recipe.data["data"].get("select") if plan.trainer.select_on == "select"
        else plan.recipe.data["data"].get("report"),
        "selection_overlaps_report": overlap,
        "report_images": len(parts.report_data),
        "evaluation": evaluation_settings(plan.evaluation),
        "checkpoint": str(checkpoint),
        "best_selection_mIoU": trainer.state.best_metric,
        "best_epoch": trainer.state.best_epoch,
        "epochs": trainer.state.epoch,
        "iterations": trainer.state.iteration,
        "params": sum(p.numel() for p in parts.raw_model.parameters()),
        "checkpoint_mb": checkpoint.stat().st_size / 1e6,
        "device": str(device),
        "precision": precision,
        "wall_time_s": trainer.state.elapsed,
        "resumed": resumed,
        "class_weights": parts.class_weights,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "provenance": origin.finished().to_json(),
    }
    run.write_json("results.json", results)
    _print_summary(run)


def _print_summary(run: RunDir) -> None:
    results = run.read_results()
    lines = [f"results for {results['recipe']} ({results['model']}, {results['strategy']}):",
             f"  mIoU {results['mIoU']:.4f}   pixel accuracy {results['pixel_accuracy']:.4f}"
             f"   ({results['report_images']} report images, checkpoint {Path(results['checkpoint']).name})"]
    for name, iou in results["per_class_iou"].items():
        lines.append(f"    {name:<14} {'n/a' if iou is None else f'{iou:.4f}'}")
    lines.append(f"  run directory {run.path}")
    lines.append(f"  results {run.results}   curves: segbench plot {run.path}")
    print("\n".join(lines), flush=True)
