"""Stages -> Slurm jobs: the pending runs of one recipe's experiment (seeds x grid points) become one job
array, task id = the run's variant index; a single run stays a plain job.

A fine stage's array waits task by task (``--dependency=aftercorr:``) when every element's upstream run is
the element with the same task id of one upstream array: seed 2's fine-tuning starts when seed 2's coarse
stage ends. Any other shape waits for the exact upstream tasks with ``afterok`` (correct, less parallel).
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence

import attrs

from segbench_jobs.stages import Stage


@attrs.frozen
class Dependency:
    """``aftercorr`` on one array job, or ``afterok`` on jobs / single array tasks (task ``None``: all)."""

    kind: str  # "aftercorr" | "afterok"
    on: tuple[tuple[str, int | None], ...]  # (job name, array task id or None)


@attrs.frozen
class Job:
    """One ``sbatch`` submission: a plain job (one stage) or an array (task id -> stage)."""

    name: str
    stages: tuple[Stage, ...]
    array: bool
    dependency: Dependency | None = None

    @property
    def recipe(self):
        """The recipe of the (first) stage: every element shares the recipe file."""
        return self.stages[0].recipe

    @property
    def slurm(self):
        return self.stages[0].slurm

    @property
    def task_ids(self) -> tuple[int, ...]:
        return tuple(stage.variant.index for stage in self.stages)

    @property
    def array_spec(self) -> str:
        return ",".join(str(task) for task in self.task_ids)


def _group(pending: Sequence[Stage]) -> list[list[Stage]]:
    """Stages of one recipe file in one group, task ids distinct within a group."""
    groups: list[tuple[Path, bool, list[Stage]]] = []
    for stage in pending:
        for path, multi, members in groups:
            if path == stage.recipe.path and multi and stage.multi and \
                    stage.variant.index not in {m.variant.index for m in members}:
                members.append(stage)
                break
        else:
            groups.append((stage.recipe.path, stage.multi, [stage]))
    return [members for _, _, members in groups]


def _job_name(members: list[Stage], taken: set[str]) -> str:
    """A single run's job is named after the run (``<recipe>-<hash8>``); an array after its recipe and the runs it
    holds, so that arrays of another emit (other seeds, another recipe of the same file name) get their own job
    script and logs."""
    first = members[0]
    if len(members) == 1 and not first.multi:
        name = first.name
    else:
        runs = hashlib.sha256("\n".join(sorted(stage.name for stage in members)).encode()).hexdigest()[:8]
        name = f"{first.recipe.name}-array-{runs}"
    unique, n = name, 2
    while unique in taken:
        unique, n = f"{name}-{n}", n + 1
    return unique


def plan_jobs(stages: Sequence[Stage]) -> list[Job]:
    """The jobs to submit, each after the jobs it depends on (stages come upstream first)."""
    pending = [stage for stage in stages if not stage.complete]
    groups = _group(pending)
    taken: set[str] = set()
    names = []
    for members in groups:
        names.append(_job_name(members, taken))
        taken.add(names[-1])
    home: dict[str, tuple[str, int | None, bool]] = {}  # run name -> (job, task id, in an array)
    for name, members in zip(names, groups):
        is_array = len(members) > 1 or members[0].multi
        for stage in members:
            home[stage.name] = (name, stage.variant.index if is_array else None, is_array)

    jobs: dict[str, Job] = {}
    order = _submission_order(names, groups, home)
    for index in order:
        name, members = names[index], groups[index]
        is_array = len(members) > 1 or members[0].multi
        jobs[name] = Job(name, tuple(members), is_array, _dependency(members, home, is_array))
    return list(jobs.values())


def _dependency(members: list[Stage], home, is_array: bool) -> Dependency | None:
    upstream = [(stage, home[stage.upstream]) for stage in members if stage.upstream is not None]
    if not upstream:
        return None
    jobs = {job for _, (job, _, _) in upstream}
    # An element whose upstream run is complete has no task to pair with: Slurm (22.05, seen on a real
    # single-node cluster) does not block it, it starts with the others once the upstream tasks have ended.
    paired = is_array and len(jobs) == 1 and all(
        in_array and task == stage.variant.index for stage, (_, task, in_array) in upstream)
    if paired:
        return Dependency("aftercorr", ((jobs.pop(), None),))
    on = []
    for _, (job, task, _) in upstream:
        if (job, task) not in on:
            on.append((job, task))
    return Dependency("afterok", tuple(on))


def _submission_order(names, groups, home) -> list[int]:
    """Groups ordered so that every group follows the groups it depends on (stable otherwise)."""
    index_of = {name: i for i, name in enumerate(names)}
    needs = [{index_of[home[s.upstream][0]] for s in members if s.upstream is not None} - {i}
             for i, members in enumerate(groups)]
    order, done = [], set()
    while len(order) < len(groups):
        ready = [i for i in range(len(groups)) if i not in done and needs[i] <= done]
        if not ready:  # cannot happen for a stage DAG; keep the given order rather than loop forever
            ready = [i for i in range(len(groups)) if i not in done][:1]
        order.append(ready[0])
        done.add(ready[0])
    return order
