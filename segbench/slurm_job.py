"""The Slurm job a process runs in, and whether another job is still in the queue: how a run's lock held by a
job of another ``emit-slurm`` (the same run in two arrays) is waited for instead of failing the second job.

The job script written by ``emit-slurm`` names a file in ``SEGBENCH_WAIT_FILE``. When the run is held by another
job that is still queued, segbench writes that job's id there and exits with status 75; the script then
requeues its own job and makes it depend on that one (``afterany``), so it starts again once the other has ended
and finds the run complete (or resumes it). No allocation sits idle meanwhile.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from segbench.atomic import atomic_write_text

WAIT_FILE_ENV = "SEGBENCH_WAIT_FILE"
# The states of a job that will not run again (a requeued one is PENDING once more).
ENDED_STATES = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "BOOT_FAIL", "DEADLINE",
                          "OUT_OF_MEMORY", "PREEMPTED", "REVOKED", "SPECIAL_EXIT"})


def current_job(environ=None) -> str | None:
    """This process's job as a dependency names it: ``ARRAY_TASK`` for an array task, else the job id; ``None``
    outside Slurm."""
    environ = os.environ if environ is None else environ
    array, task = environ.get("SLURM_ARRAY_JOB_ID"), environ.get("SLURM_ARRAY_TASK_ID")
    if array and task:
        return f"{array}_{task}"
    return environ.get("SLURM_JOB_ID") or None


def is_job_id(text) -> bool:
    """``text`` names a job as :func:`current_job` does (``123`` or ``123_4``)."""
    return isinstance(text, str) and re.fullmatch(r"[0-9]+(_[0-9]+)?", text) is not None


def job_ended(job: str) -> bool:
    """``job`` has left the queue (finished, failed or cancelled), as ``squeue`` shows it. ``False`` when that
    cannot be told (no ``squeue`` here, or it failed): a lock is only ever taken over on clear evidence."""
    squeue = shutil.which("squeue")
    if squeue is None:
        return False
    try:
        listed = subprocess.run([squeue, "-h", "-j", job, "-o", "%T"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    if listed.returncode == 0:  # an ended job is listed until it is purged: with its final state, or not at all
        return all(state in ENDED_STATES for state in listed.stdout.split())
    return "invalid job id" in listed.stderr.lower()  # already purged from the controller's memory


def ask_to_wait_for(job: str, environ=None) -> bool:
    """Leave ``job`` for this process's job script, which requeues its job to start after ``job`` ends; ``False``
    when not run from such a script (or the file cannot be written): the caller then fails as usual."""
    environ = os.environ if environ is None else environ
    path = environ.get(WAIT_FILE_ENV)
    if not path or current_job(environ) is None:
        return False
    try:
        atomic_write_text(Path(path), job + "\n")
    except OSError:
        return False
    return True
