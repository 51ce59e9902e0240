"""What each ``segbench`` subcommand does; :mod:`segbench.cli` parses the command line and calls these."""
from __future__ import annotations

import sys
from pathlib import Path

from segbench.errors import SegbenchError


def _registries():
    from segbench.plugins import make_plugin_manager
    from segbench.registry import build_registries

    return build_registries(make_plugin_manager())


def cmd_run(args) -> int:
    from segbench.engine.runner import run_recipe_file
    from segbench.recipe.variants import parse_grid, seeds_option

    run_recipe_file(args.recipe, args.overrides, runs_dir=args.runs_dir, restart=args.restart,
                    smoke=args.smoke, device=args.device, seeds=seeds_option(args.seeds),
                    grid=parse_grid(args.grid))
    return 0


def cmd_show(args) -> int:
    from segbench.recipe.load import dump_yaml, load_recipe
    from segbench.recipe.stages import resolve_stages
    from segbench.recipe.variants import check_seed_override

    registries = _registries()
    recipe = load_recipe(args.recipe, args.overrides, smoke=args.smoke, registries=registries)
    check_seed_override(args.recipe, args.overrides, recipe.seeds, option="--seed 5")
    seed = args.seed if args.seed is not None else \
        recipe.seeds[0] if recipe.seeds and recipe.data.get("seed") not in recipe.seeds else None
    if seed is not None:  # the recipe of a run that will exist
        recipe = load_recipe(args.recipe, args.overrides, smoke=args.smoke, seed=seed, registries=registries)
    # validate before printing: this stage and those it starts from (a fine-tuning stage's source)
    stages = resolve_stages(recipe, registries)
    plan = stages[-1].plan
    slurm = _slurm_section(args.recipe, args.overrides)
    print(f"# {recipe.name}: resolved from {' <- '.join(recipe.files)}")
    print(f"# hash {plan.hash}")
    if recipe.seeds:
        print(f"# seeds {list(recipe.seeds)}: one run each (this is the recipe of seed: {plan.seed};"
              " show --seed N shows another)")
    if len(stages) > 1:
        print(f"# stages, trained in this order: {' -> '.join(_stage_line(stage) for stage in stages)}")
    if args.defaults:
        from segbench.recipe.resolved import resolved_data
        from segbench.recipe.schema import UPSTREAM_KEY

        print("# every component's settings with their defaults filled in")
        data = resolved_data(plan)
        upstream = data.pop(UPSTREAM_KEY, None)  # segbench's to write: the output reads back as a recipe
        if upstream is not None:
            print(f"# starts from run {upstream['run'][:8]} (its hash; `{UPSTREAM_KEY}:` in the run's recipe.yaml)")
        print(dump_yaml(data), end="")
    else:
        data = recipe.data if slurm is None else {**recipe.data, "slurm": slurm}
        print(dump_yaml(data), end="")
    return 0


def _stage_line(stage) -> str:
    """``coarse (coarse.yaml, run coarse-1a2b3c4d: complete in ./runs)``: where each stage's run is, by default."""
    from segbench.runs import RunDir, default_runs_dir

    try:
        state = "complete" if RunDir.for_plan(stage.plan).is_finished() else "to train"
    except SegbenchError as exc:  # e.g. a damaged results.json: `run` says what to do with it
        state = f"unreadable ({str(exc).split(';')[0]})"
    return f"{stage.recipe.name} ({stage.recipe.path.name}, run {stage.name}: {state} in {default_runs_dir(None)})"


def _slurm_section(path, overrides):
    """The ``slurm:`` section as ``emit-slurm`` reads it (``slurm.*`` overrides as typed text), checked, so that
    ``show`` reports a bad time limit or a misspelled key before anything is submitted; ``None`` when there is
    none or job emission is not installed."""
    try:
        from segbench_jobs.slurm_config import slurm_config, slurm_section, split_overrides
    except ImportError:
        return None
    from segbench.recipe.load import load_recipe

    slurm_overrides, others = split_overrides(overrides)
    recipe = load_recipe(path, others)
    slurm_config(recipe.data, slurm_overrides, files=recipe.files)
    return slurm_section(recipe.data, slurm_overrides) if "slurm" in recipe.data or slurm_overrides else None


def cmd_list(args) -> int:
    from segbench.registry import KINDS

    registries = _registries()
    kinds = [args.kind] if args.kind else list(KINDS)
    for kind in kinds:
        if kind not in KINDS:
            import difflib

            close = difflib.get_close_matches(kind, KINDS, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise SegbenchError(f"unknown kind {kind!r}{hint}; choose one of: {', '.join(KINDS)}")
        print(f"{kind}:")
        for entry in registries[kind]:
            aliases = f" (aliases: {', '.join(entry.aliases)})" if entry.aliases else ""
            print(f"  {entry.name:<24} {entry.plugin}{aliases}")
            if args.verbose:
                from segbench.describe import describe_settings

                if kind == "models":
                    _print_model_info(entry)
                print("\n".join(describe_settings(entry)))
    return 0


def _needs_text(keys: tuple[str, ...]) -> str:
    return f"sized once a recipe sets {', '.join(keys)} (no default)"


def _print_model_info(entry, input_size=(512, 1024)) -> bool:
    from segbench.model_info import describe_entry

    described = describe_entry(entry, input_size=input_size)
    if described.needs:
        print(f"      {_needs_text(described.needs)}")
        return True
    if described.error is not None:
        print(f"      error: {described.error}")
        return False
    info = described.info
    print(f"      params {info.params:,}  size {info.size_mb:.1f} MB  {info.gflops:.1f} GFLOPs"
          f" at {input_size[0]}x{input_size[1]}")
    return True


def cmd_models(args) -> int:
    from segbench.model_info import describe_entry

    registries = _registries()
    size = args.size
    print(f"| model | plugin | params | size MB | GFLOPs @ {size[0]}x{size[1]} |")
    print("|---|---|---:|---:|---:|")
    broken = 0
    for entry in registries.models:
        described = describe_entry(entry, input_size=size)
        if described.needs:
            print(f"| {entry.name} | {entry.plugin} | {_needs_text(described.needs)} | | |")
            continue
        if described.error is not None:
            broken += 1
            print(f"| {entry.name} | {entry.plugin} | error: {described.error.replace('|', '/')} | | |")
            continue
        info = described.info
        print(f"| {entry.name} | {entry.plugin} | {info.params:,} | {info.size_mb:.1f} | {info.gflops:.1f} |")
    if broken:
        print(f"segbench: {broken} model(s) could not be built with their default settings; see their rows",
              file=sys.stderr)
    return 0


def cmd_plugins(args) -> int:
    from segbench.errors import PluginError
    from segbench.plugins import make_plugin_manager, plugin_infos
    from segbench.registry import build_registries

    manager = make_plugin_manager()
    for info in plugin_infos(manager):  # every plugin that loads; the broken ones are named after the list
        print(f"{info.name:<36} {info.distribution} {info.version}")
    try:
        build_registries(manager)
    except PluginError as exc:
        print(f"segbench: error: {exc}", file=sys.stderr)
        return SegbenchError.exit_code
    return 0


def cmd_synth(args) -> int:
    from segbench.synth import generate_city

    height, width = args.size
    kwargs = {k: v for k, v in (("train", args.train), ("val", args.val), ("train_extra", args.train_extra))
              if v is not None}
    report = generate_city(Path(args.dir), size=(height, width), seed=args.seed, progress=True, **kwargs)
    print(f"wrote a Cityscapes tree to {args.dir}: {report}")
    return 0


def cmd_evaluate(args) -> int:
    from segbench.report.evaluate_cli import evaluate_command

    evaluate_command(args)
    return 0


def cmd_export(args) -> int:
    from segbench.report.export import export_command

    export_command(args)
    return 0


def cmd_benchmark(args) -> int:
    from segbench.report.latency import benchmark_command

    benchmark_command(args)
    return 0


def cmd_compare(args) -> int:
    from segbench.report.compare import compare_command

    compare_command(args)
    return 0


def cmd_report(args) -> int:
    from segbench.report.html import report_command

    report_command(args)
    return 0


def cmd_predict(args) -> int:
    from segbench.report.predict import predict_command

    predict_command(args)
    return 0


def cmd_plot(args) -> int:
    from segbench.report.plot import plot_command

    plot_command(args)
    return 0


def cmd_emit_slurm(args) -> int:
    from segbench.engine.preflight import preflight
    from segbench_jobs.emit import emit_command

    emit_command(args, check_stage=preflight)
    return 0
