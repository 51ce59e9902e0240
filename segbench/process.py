"""Process tuning the ``segbench`` command applies to itself before torch loads: allocator and OpenMP waiting."""
from __future__ import annotations

import json
import os
import subprocess
import sys

# glibc malloc hands big blocks back to the kernel after every step, so each training step re-faults
# gigabytes of pages; keeping them mapped made training 1.1-1.9x faster on CPU. glibc reads these
# only at process start, hence the re-exec. Child processes (DataLoader workers, torchrun ranks) inherit them.
ALLOCATOR_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "68719476736"}

_DONE = "SEGBENCH_NO_REEXEC"
_SYS_PATH = "SEGBENCH_REEXEC_SYS_PATH"
# The re-executed interpreter gets this process's sys.path back before it imports segbench: ``python -m``
# would put the current directory first, where a folder named ``segbench`` (the parent of a clone) or a
# ``segbench.py`` would shadow the package this command was started from.
# ``-c`` puts the current directory first too: drop it before importing anything.
_ENTRY = ("import sys; del sys.path[0]; import json, os; sys.path[:] = json.loads(os.environ.pop(%r));"
          " sys.argv = sys.argv[1:]; from {module} import {function}; sys.exit({function}())" % _SYS_PATH)

# What Slurm job scripts run instead of ``python -m segbench.cli``: the job starts in the submission folder,
# which must not shadow the installed package either.
_COMMAND_CODE = ("import os, sys; sys.path[:] = [p for p in sys.path if p not in ('', os.getcwd())];"
                 " from segbench.cli import main; sys.exit(main())")


def command_invocation(python: str) -> list[str]:
    """The argv prefix that runs the ``segbench`` command with ``python`` from any working directory."""
    return [python, "-c", _COMMAND_CODE]


# How long an idle OpenMP thread spins before sleeping (libgomp, which torch's Linux wheels use).
# Its default (300,000 spins) is the fastest for a run alone, but two runs sharing 2 cores with
# data-loading workers took 2.6x as long as with passive waiting. Passive waiting costs every small
# kernel a wake-up: the quickstart alone trained 1.3x as long. A short spin runs within 6% of the
# default alone and within 1.35x of passive waiting when shared (benchmarks/bench_openmp_wait.py).
# The user's own setting wins.
OPENMP_SPIN_COUNT = "10000"


def reexec_with_allocator_settings(entry: str = "segbench.cli:main") -> None:
    """Start this command again with :data:`ALLOCATOR_ENV` set, same ``sys.path``, flags and arguments.

    Skipped off Linux, under jemalloc (``LD_PRELOAD``), when the user set the variables, and in the
    re-executed process itself. A failed ``exec`` leaves the command running with glibc's defaults.
    ``entry`` (``module:function``) is what the new process calls; its return value is the exit status.
    """
    if not sys.platform.startswith("linux") or os.environ.get(_DONE) or \
            "jemalloc" in os.environ.get("LD_PRELOAD", ""):
        return
    if all(os.environ.get(k) is not None for k in ALLOCATOR_ENV):
        return
    for key, value in ALLOCATOR_ENV.items():
        os.environ.setdefault(key, value)
    module, _, function = entry.partition(":")
    os.environ[_DONE] = "1"
    os.environ[_SYS_PATH] = json.dumps(sys.path)
    flags = subprocess._args_from_interpreter_flags()  # -X, -W, -O ... as this interpreter got them
    try:
        os.execv(sys.executable, [sys.executable, *flags, "-c", _ENTRY.format(module=module, function=function),
                                  *sys.argv])
    except OSError:
        os.environ.pop(_SYS_PATH, None)  # run on with the default settings


def limit_openmp_spinning() -> None:
    """Set before torch (and its OpenMP runtime) loads, which reads the environment once."""
    if "torch" in sys.modules or "OMP_WAIT_POLICY" in os.environ:
        return
    os.environ.setdefault("GOMP_SPINCOUNT", OPENMP_SPIN_COUNT)


def tune_process() -> None:
    """What the ``segbench`` command does first, before anything imports torch."""
    reexec_with_allocator_settings()
    limit_openmp_spinning()
