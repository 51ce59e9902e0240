"""``segbench emit-slurm``: recipes -> one job script per stage + a printed script that submits them all.

``segbench emit-slurm recipes/ | bash`` is the only step: stages are submitted upstream first, dependents
wait with ``--dependency=afterok`` (and are cancelled if the upstream fails), complete stages are skipped.
The runs of a multi-seed experiment (times ``--grid`` points) form one job array; a fine stage's array
waits for its upstream array task by task (``aftercorr``), see ``segbench_jobs.arrays``.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Sequence

import attrs

from segbench.atomic import atomic_write_text
from segbench.cache import cache_dir
from segbench.config_paths import paths_relative_to
from segbench.runs import default_runs_dir
from segbench.errors import SegbenchError
from segbench_jobs.arrays import Job, plan_jobs
from segbench_jobs.script import job_script, submit_script
from segbench_jobs.slurm_config import split_overrides
from segbench_jobs.stages import Stage, build_stages, find_recipes

DEFAULT_OUT = Path("jobs") / "out"


@attrs.frozen
class Emitted:
    stages: list[Stage]  # every stage (run) considered, upstream first (complete ones included)
    submissions: list[tuple[Job, Path, Path]]  # (job, job script, log file) to submit; an array's tasks
    # write <log stem>_<task id>.log
    script: str  # the submit script


def split_paths_and_overrides(items: Sequence[str]) -> tuple[list[Path], list[str]]:
    """Command-line items: an existing file or folder is a recipe path, ``key=value`` is an override."""
    paths, overrides = [], []
    for item in items:
        if os.path.exists(item):
            paths.append(Path(item))
        elif "=" in item:
            overrides.append(item)
        else:
            raise SegbenchError(f"{item!r} is neither a recipe file or folder (no such path) nor a key=value"
                                " override.")
    if not paths:
        raise SegbenchError("give at least one recipe file or folder, e.g. `segbench emit-slurm recipes/`.")
    return paths, overrides


def emit(paths: Sequence[Path], overrides: Sequence[str] = (), *, registries, out_dir: Path | None = None,
         runs_dir: Path | None = None, smoke: bool = False, python: str | None = None,
         workdir: Path | None = None, seeds: Sequence[int] | None = None, grid=(), check_stage=None) -> Emitted:
    """Write the job scripts of every stage to run into ``out_dir`` and return the submit script.

    ``check_stage(plan, world_size=N)`` (``segbench run``'s checks against the data; see
    :func:`segbench.engine.preflight.preflight`) is asked of every stage to submit before anything is written.

    Jobs run the ``segbench`` command with ``python`` (default: this interpreter; see
    :func:`segbench.process.command_invocation`) in ``workdir`` (default: the current folder), with absolute
    paths, so they need no activated environment and no folder there shadows the installed package.
    """
    slurm_overrides, recipe_overrides = split_overrides(overrides)
    runs_dir = default_runs_dir(runs_dir).resolve()
    out_dir = (out_dir or DEFAULT_OUT).resolve()
    if out_dir.exists() and not out_dir.is_dir():
        raise SegbenchError(f"--out {out_dir} is a file; give a folder for the job scripts (it is created if"
                            " missing), or move the file away.")
    recipe_paths: list[Path] = []
    for path in paths:
        recipe_paths += [p for p in find_recipes(Path(path)) if p not in recipe_paths]
    with paths_relative_to(workdir):  # a recipe's relative paths mean the folder its job runs in
        stages = build_stages(recipe_paths, registries, overrides=recipe_overrides, slurm_overrides=slurm_overrides,
                              smoke=smoke, runs_dir=runs_dir, seeds=seeds, grid=grid, check_stage=check_stage)
    jobs = plan_jobs(stages)
    if jobs:
        out_dir.mkdir(parents=True, exist_ok=True)  # Slurm does not create the folder of --output
    submissions = []
    for job in jobs:
        job_file, log_file = out_dir / f"{job.name}.sbatch", out_dir / f"{job.name}.log"
        # whole or not at all: sbatch must never read half a script
        script = job_script(job, python=python or sys.executable, runs_dir=runs_dir,
                            workdir=(workdir or Path.cwd()).resolve(), cache_dir=cache_dir().resolve(),
                            wait_file=out_dir / f".{job.name}.wait")
        atomic_write_text(job_file, script)
        submissions.append((job, job_file, log_file))
    pending = sum(len(job.stages) for job in jobs)
    script = submit_script(submissions, out_dir=out_dir, skipped=len(stages) - pending)
    return Emitted(stages, submissions, script)


def summary(emitted: Emitted) -> str:
    pending = sum(len(job.stages) for job, _, _ in emitted.submissions)
    lines = [f"segbench emit-slurm: {len(emitted.stages)} stage(s): {pending} to submit"
             f" in {len(emitted.submissions)} job(s), {len(emitted.stages) - pending} already complete"]
    for stage in emitted.stages:
        if stage.complete:
            state = f"skip: complete in {stage.run.path}"
        else:
            state = "submit" + (f", after {stage.upstream}" if stage.upstream else "")
            if stage.run.last.exists():
                state += ", resumes from last.pt"
            if stage.slurm.world_size > 1:
                state += f", {stage.slurm.world_size} processes"
            if stage.multi:
                state += f", array task {stage.variant.index} ({stage.variant.label})"
            if stage.unchecked:
                state += "; its data is not checked here (below)"
        origin = "" if stage.requested else " (upstream stage)"
        lines.append(f"  {stage.name}{origin}: {state}")
    for reason in dict.fromkeys(stage.unchecked for stage in emitted.stages if stage.unchecked):
        lines.append(f"  not checked against the data, which cannot be read on this machine ({reason}); the job"
                     " checks it when it starts")
    if emitted.submissions:
        lines.append(f"job scripts and logs: {emitted.submissions[0][1].parent}; pipe the printed script to bash"
                     " to submit")
    return "\n".join(lines)


def emit_command(args, *, check_stage=None) -> None:
    from segbench.plugins import make_plugin_manager
    from segbench.registry import build_registries

    from segbench.recipe.variants import parse_grid, seeds_option

    paths, overrides = split_paths_and_overrides(args.paths)
    emitted = emit(paths, overrides, registries=build_registries(make_plugin_manager()), out_dir=args.out,
                   runs_dir=args.runs_dir, smoke=args.smoke, seeds=seeds_option(args.seeds),
                   grid=parse_grid(args.grid), check_stage=check_stage)
    print(summary(emitted), file=sys.stderr)
    sys.stdout.write(emitted.script)
    sys.stdout.flush()
