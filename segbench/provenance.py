"""What produced a run: software versions, the project's git commit, the machine, the command, the times.

Recorded under ``provenance`` in every run's ``results.json``; ``segbench compare --columns`` shows any field.
"""
from __future__ import annotations

import datetime
import platform
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import attrs

from segbench.cpuinfo import read_cpuinfo

# CPU features that decide which kernels run (and whether bf16 is fast): recorded when present.
CPU_FLAGS_OF_INTEREST = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile", "neon", "asimd")


@attrs.frozen
class PluginVersion:
    name: str
    distribution: str
    version: str


@attrs.frozen
class Provenance:
    segbench_version: str
    git_commit: str | None  # None when segbench does not run from a git checkout
    git_dirty: bool | None  # tracked files differ from the commit
    plugins: tuple[PluginVersion, ...]
    python: str
    torch: str
    torchvision: str
    cuda: str | None  # the CUDA torch was built with
    cudnn: int | None
    cpu_model: str
    cpu_capability: str  # the instruction set torch's CPU kernels use (AVX2, AVX512, ...)
    cpu_flags: tuple[str, ...]
    gpu: str | None
    host: str
    command: str
    started_at: str
    finished_at: str | None = None
    cpu_family_model: str = ""  # "family 25 model 17": tells apart CPUs sharing a model name ("" in older files)

    def finished(self) -> "Provenance":
        return attrs.evolve(self, finished_at=now())

    def to_json(self) -> dict:
        return attrs.asdict(self, value_serializer=lambda _i, _f, v: list(v) if isinstance(v, tuple) else v)


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def git_state(package_dir: Path | None = None) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the checkout segbench runs from; (None, None) for an installed copy."""
    package_dir = Path(package_dir or Path(__file__).resolve().parent)
    try:
        top = _git(package_dir, "rev-parse", "--show-toplevel")
        if Path(top).resolve() != package_dir.parent.resolve():  # segbench inside someone else's repository
            return None, None
        commit = _git(package_dir, "rev-parse", "HEAD")
        dirty = bool(_git(package_dir, "status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None, None
    return commit, dirty


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True,
                          timeout=10).stdout.strip()


def command_line(argv=None) -> str:
    argv = list(sys.argv if argv is None else argv)
    if argv and Path(argv[0]).name in ("segbench", "cli.py"):  # the console script, or its re-exec as -m
        argv[0] = "segbench"
    return shlex.join(argv)


def collect(plugins=(), *, device=None) -> Provenance:
    """The provenance of a run starting now on ``device`` (a ``torch.device``)."""
    import torch
    import torchvision

    from segbench import __version__

    commit, dirty = git_state()
    cpu = read_cpuinfo()
    gpu = None
    if device is not None and device.type == "cuda" and torch.cuda.is_available():
        gpu = torch.cuda.get_device_name(device)
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return Provenance(
        segbench_version=__version__, git_commit=commit, git_dirty=dirty,
        plugins=tuple(PluginVersion(p.name, p.distribution, p.version) for p in plugins),
        python=platform.python_version(), torch=torch.__version__, torchvision=torchvision.__version__,
        cuda=torch.version.cuda, cudnn=cudnn, cpu_model=cpu.model,
        cpu_capability=torch.backends.cpu.get_cpu_capability(),
        cpu_flags=tuple(flag for flag in CPU_FLAGS_OF_INTEREST if flag in cpu.flags), gpu=gpu,
        host=socket.gethostname(), command=command_line(), started_at=now(), cpu_family_model=cpu.family_model)

