"""Text of the job scripts and of the submit script. Every value placed in a script is shell-quoted.

Only two kinds of text are not quoted: option values already checked to be plain tokens (see
``slurm_config``) and the recipe's ``slurm.setup`` lines, which are shell commands by design.
"""
from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Sequence

from segbench.process import command_invocation
from segbench.slurm_job import WAIT_FILE_ENV
from segbench_jobs.arrays import Job
from segbench_jobs.slurm_config import SlurmConfig
from segbench_jobs.stages import Stage

PREEMPTED_EXIT_CODE = 75  # segbench.engine.trainer.PREEMPTED_EXIT_CODE: last.pt written, run again to resume

q = shlex.quote


def note(text: str) -> str:
    """``text`` made safe for a ``#`` comment: control characters (a newline would end it) are escaped."""
    return json.dumps(str(text), ensure_ascii=False)[1:-1]


def job_name(run_name: str) -> str:
    """A Slurm job name made of characters that need no quoting anywhere."""
    return re.sub(r"[^A-Za-z0-9._+-]", "_", run_name)[:120] or "segbench"


def output_pattern(path: Path) -> str:
    """``path`` for ``--output``: sbatch expands ``%j`` and friends unless the name holds a backslash."""
    text = str(path)
    return text if "\\" in text else text.replace("%", "%%")


def sbatch_options(config: SlurmConfig, name: str) -> list[str]:
    options = [f"--job-name={job_name(name)}"]
    for flag, value in (("partition", config.partition), ("account", config.account), ("qos", config.qos),
                        ("time", config.time)):
        if value is not None:
            options.append(f"--{flag}={value}")
    options += [f"--nodes={config.nodes}", f"--ntasks-per-node={config.tasks_per_node}"]
    if config.cpus_per_task is not None:
        options.append(f"--cpus-per-task={config.cpus_per_task}")
    if config.mem is not None:
        options.append(f"--mem={config.mem}")
    if config.gpus_per_node:
        options.append(f"--gres=gpu:{config.gpus_per_node}")
    if config.constraint is not None:
        options.append(f"--constraint={config.constraint}")
    # Before the time limit the batch shell gets USR1; it has segbench checkpoint, then requeues the job.
    options += ["--requeue", f"--signal=B:USR1@{config.signal_lead}", "--open-mode=append"]
    return options + list(config.extra)


def segbench_command(stage: Stage, *, python: str, runs_dir: Path) -> list[str]:
    """``segbench run`` of the stage alone, with the options and overrides that give the same recipe hash."""
    recipe = stage.recipe
    command = [*command_invocation(python), "run", "--runs-dir", str(runs_dir)]
    if recipe.smoke:
        command.append("--smoke")
    command += [str(recipe.path), *recipe.overrides]
    if recipe.replicate_seed is not None:
        command += ["--seeds", str(recipe.replicate_seed)]
    elif recipe.seeds is not None:
        command.append("seeds=null")  # this run only, not the recipe's whole seed list
    return command


_SIGNAL_GLUE = f"""\
# USR1 comes from --signal before the time limit, TERM on preemption or cancellation. Both go on to
# segbench, which finishes its step, writes last.pt and exits with {PREEMPTED_EXIT_CODE}; the job is then requeued and
# the same command resumes from last.pt.
step=
forward() {{
    echo "segbench job: got SIG$1, passing it to the training step" >&2
    kill -s "$1" "$step" 2>/dev/null || true
}}
trap 'forward USR1' USR1
trap 'forward TERM' TERM
"""

_WAIT_AND_REQUEUE = f"""\
step=$!
# wait returns early whenever a trapped signal arrives: wait again until the step has ended.
while kill -0 "$step" 2>/dev/null; do
    wait "$step"
done
wait "$step"
status=$?
# The run is being trained by another job (the same run in the array of another emit): segbench named that job
# in $SEGBENCH_WAIT_FILE. This job goes back to the queue until that one has ended, then finds the run complete.
holder=
if [ -s "$SEGBENCH_WAIT_FILE" ]; then
    holder=$(cat "$SEGBENCH_WAIT_FILE")
    rm -f "$SEGBENCH_WAIT_FILE"
fi
if [ -n "$holder" ] && [ -n "${{SLURM_JOB_ID:-}}" ]; then
    echo "segbench job: the run is being trained by job $holder; requeueing job $SLURM_JOB_ID to start after it" >&2
    # Requeueing ends this job: Slurm sends TERM to each of its processes, then KILL after KillWait. TERM is ignored
    # from here (scontrol inherits that), so the dependency is set in that time, once the job is pending again (a
    # running job's cannot be changed). A plain requeue, not a held one: should the dependency not be set, the job
    # starts again after Slurm's requeue delay, finds the run still held and comes back here; it never stays held.
    trap '' TERM
    if scontrol requeue "$SLURM_JOB_ID"; then
        waits=
        for attempt in 1 2 3 4 5 6 7 8 9 10; do
            if scontrol update JobId="$SLURM_JOB_ID" Dependency="afterany:$holder" 2>/dev/null; then
                waits=yes
                break
            fi
            sleep 1
        done
        if [ -n "$waits" ]; then
            echo "segbench job: job $SLURM_JOB_ID is queued to start when job $holder has ended" >&2
        else
            echo "segbench job: could not make job $SLURM_JOB_ID wait for job $holder; it starts again after" \
                "Slurm's requeue delay and checks again" >&2
        fi
    else
        echo "segbench job: job $SLURM_JOB_ID could not be requeued; submit it again once job $holder has ended" >&2
    fi
    exit "$status"
fi
if [ "$status" -eq {PREEMPTED_EXIT_CODE} ] && [ -n "${{SLURM_JOB_ID:-}}" ]; then
    echo "segbench job: checkpoint written; requeueing job $SLURM_JOB_ID to resume" >&2
    scontrol requeue "$SLURM_JOB_ID"
fi
exit "$status"
"""


def job_script(job: Job, *, python: str, runs_dir: Path, workdir: Path, cache_dir: Path, wait_file: Path) -> str:
    """The ``sbatch`` script of one job; an array job picks its run by ``$SLURM_ARRAY_TASK_ID``."""
    config = job.slurm
    recipe = job.recipe
    lines = [
        "#!/bin/bash",
        f"# segbench {'job array' if job.array else 'stage'} {note(job.name)}",
        f"# recipe: {note(recipe.path)}" + (" (--smoke)" if recipe.smoke else ""),
        "# Written by `segbench emit-slurm`; its submit script adds --output, the dependency on the",
        "# upstream stage" + (" and --array" if job.array else "") + ". Resources come from the recipe's slurm: section.",
    ]
    lines += [f"#SBATCH {option}" for option in sbatch_options(config, job.name)]
    lines += ["", f"cd {q(str(workdir))} || exit 1",
              "# The same cache as the emitting process: --smoke recipes name files in it (same recipe hash).",
              f"export SEGBENCH_CACHE={q(str(cache_dir))}",
              "# Where segbench names another job that trains this job's run (see the end of this script).",
              f'export {WAIT_FILE_ENV}={q(str(wait_file))}"-${{SLURM_JOB_ID:-0}}"',
              f'rm -f "${WAIT_FILE_ENV}"  # a name left by an attempt that was killed before reading it']
    lines += [f"export {name}={q(value)}" for name, value in config.environment().items()]
    if config.setup:
        lines += ["# slurm.setup:", *config.setup]
    srun = ["srun", "--kill-on-bad-exit=1"]
    if config.cpus_per_task is not None:
        srun.append(f"--cpus-per-task={config.cpus_per_task}")  # srun does not inherit it from sbatch
    if job.array:
        lines += ["", "# One run of the experiment per array task (task id = the run's place in it).",
                  'case "${SLURM_ARRAY_TASK_ID:-}" in']
        for stage in job.stages:
            command = segbench_command(stage, python=python, runs_dir=runs_dir)
            lines += [f"    {stage.variant.index})  # {note(stage.name)}: {note(stage.variant.label)}",
                      f"        set -- {' '.join(map(q, command))} ;;"]
        lines += ['    *) echo "segbench job: no run for array task \'${SLURM_ARRAY_TASK_ID:-}\'" >&2; exit 2 ;;',
                  "esac"]
        run_line = " ".join(srun) + ' "$@" &'
    else:
        run_line = " ".join([*srun, *map(q, segbench_command(job.stages[0], python=python, runs_dir=runs_dir))]) + " &"
    lines += ["", _SIGNAL_GLUE.rstrip("\n"), "", run_line, _WAIT_AND_REQUEUE.rstrip("\n")]
    return "\n".join(lines) + "\n"


def variable_name(index: int, run_name: str) -> str:
    return f"job{index}_" + re.sub(r"[^A-Za-z0-9_]", "_", run_name)[:60]


_SUBMIT_HELPER = """\
submit() {  # sbatch --parsable ARGS...; prints the job id
    local out
    out=$(sbatch --parsable "$@") || { echo "segbench: sbatch failed; nothing after this was submitted" >&2; exit 1; }
    out=${out%%;*}  # --parsable prints ID or ID;CLUSTER
    case "$out" in
        ''|*[!0-9]*) echo "segbench: sbatch printed '$out' instead of a job id" >&2; exit 1 ;;
    esac
    printf '%s\\n' "$out"
}
queued() {  # the id of this user's queued or running job named $1 running script $2, if squeue shows one
    command -v squeue >/dev/null 2>&1 || return 0
    local id script
    while read -r id script; do
        case "$id" in ''|*[!0-9]*) continue ;; esac
        if [ "$script" = "$2" ]; then printf '%s\\n' "$id"; return 0; fi
    done < <(squeue -h -u "$(id -un)" --name="$1" -o '%F %o' 2>/dev/null || true)
}
"""


def log_pattern(job: Job, log_file: Path) -> str:
    """``--output`` of a job; an array's tasks each write ``<log stem>_<task id>.log`` (``%a``)."""
    if not job.array:
        return output_pattern(log_file)
    prefix = output_pattern(log_file.with_suffix(""))
    return prefix + ("_%a" if "\\" not in prefix else "") + log_file.suffix


def _dependency_option(job: Job, variables: dict[str, str]) -> str:
    dep = job.dependency
    if dep.kind == "aftercorr":
        return f'--dependency=aftercorr:"${variables[dep.on[0][0]]}"'
    targets = [f'"${variables[name]}"' + ("" if task is None else f"_{task}") for name, task in dep.on]
    return "--dependency=afterok:" + ":".join(targets)


def submit_script(submissions: Sequence[tuple[Job, Path, Path]], *, out_dir: Path, skipped: int) -> str:
    """The printed script: one ``sbatch`` per ``(job, job file, log file)``, upstream jobs first."""
    runs = sum(len(job.stages) for job, _, _ in submissions)
    lines = ["#!/usr/bin/env bash",
             f"# segbench emit-slurm: {len(submissions)} job(s) ({runs} run(s)) to submit,"
             f" {skipped} complete run(s) skipped.",
             f"# Job scripts and logs: {note(out_dir)}",
             "set -euo pipefail"]
    if not submissions:
        lines.append("echo 'segbench: nothing to submit, every stage is complete' >&2")
        return "\n".join(lines) + "\n"
    lines += [_SUBMIT_HELPER.rstrip("\n"), ""]
    variables: dict[str, str] = {}
    for index, (job, job_file, log_file) in enumerate(submissions, start=1):
        variable = variable_name(index, job.name)
        args = []
        if job.array:
            args.append(f"--array={job.array_spec}")
        if job.dependency is not None:
            # afterok/aftercorr: start only when the upstream job (task) completed; a failed upstream cancels.
            args += [_dependency_option(job, variables), "--kill-on-invalid-dep=yes"]
        args += [q(f"--output={log_pattern(job, log_file)}"), q(str(job_file))]
        # Emitted again while this job waits or runs (the same runs and job script): not submitted twice, and the
        # stages after it wait for that job. Another --out (or --runs-dir) makes another job.
        lines += [f"{variable}=$(queued {q(job_name(job.name))} {q(str(job_file))})",
                  f'if [ -n "${variable}" ]; then',
                  f"    printf '%s is already queued or running as job %s: not submitted again\\n' {q(job.name)}"
                  f' "${variable}" >&2',
                  "else",
                  f"    {variable}=$(submit {' '.join(args)})"]
        tasks = f" (array tasks {job.array_spec})" if job.array else ""
        if job.dependency is None:
            lines.append(f"    printf 'submitted %s as job %s%s\\n' {q(job.name)} \"${variable}\" {q(tasks)} >&2")
        else:
            upstream = variables[job.dependency.on[0][0]]
            how = ", task by task (aftercorr)" if job.dependency.kind == "aftercorr" else ""
            lines.append(f"    printf 'submitted %s as job %s after job %s%s\\n' {q(job.name)} \"${variable}\""
                         f" \"${upstream}\" {q(tasks + how)} >&2")
        lines.append("fi")
        variables[job.name] = variable
    return "\n".join(lines) + "\n"
