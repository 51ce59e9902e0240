"""A throw-away single-node Slurm cluster on localhost, for tests.

Installs Debian's Slurm and munge when missing, writes a config into a private folder (clients find it
through ``SLURM_CONF``; nothing under /etc is changed), starts munged/slurmctld/slurmd, and stops the
daemons it started by the PIDs they wrote.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import attrs

from segbench.engine.rundir import process_alive
from segbench.slurm_job import ENDED_STATES

PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")
COMMANDS = ("slurmctld", "slurmd", "sbatch", "scontrol", "sinfo", "munged", "munge", "unmunge")
MUNGED = "/usr/sbin/munged"
MUNGE_PID = Path("/run/munge/munged.pid")


class SlurmUnavailable(Exception):
    """Slurm is not installed and apt-get cannot install it here; the message says why."""


def _run(args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, **kwargs)


def _missing_commands() -> list[str]:
    return [c for c in COMMANDS if shutil.which(c) is None and not Path("/usr/sbin", c).exists()]


def ensure_installed() -> None:
    """Install Slurm and munge with apt-get when a command is missing (needs root and a Debian mirror)."""
    if not _missing_commands():
        return
    if shutil.which("apt-get") is None:
        raise SlurmUnavailable(f"Slurm is not installed ({', '.join(_missing_commands())} missing) and there is"
                               " no apt-get to install it")
    if os.geteuid() != 0:
        raise SlurmUnavailable("Slurm is not installed and installing it with apt-get needs root")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    update = _run(["apt-get", "update"], env=env, timeout=600)
    install = _run(["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES], env=env, timeout=900)
    if install.returncode != 0:
        tail = (update.stderr + install.stderr).strip().splitlines()[-5:]
        raise SlurmUnavailable("apt-get could not install Slurm: " + " | ".join(tail))
    if _missing_commands():
        raise SlurmUnavailable(f"after apt-get install, still missing: {', '.join(_missing_commands())}")


def _node_resources() -> tuple[int, int]:
    """CPUs and a RealMemory (MB) a little below what slurmd detects."""
    out = _run(["slurmd", "-C"]).stdout
    cpus = int(re.search(r"CPUs=(\d+)", out).group(1)) if "CPUs=" in out else os.cpu_count() or 1
    memory = int(re.search(r"RealMemory=(\d+)", out).group(1)) if "RealMemory=" in out else 2048
    return cpus, max(512, int(memory * 0.9))


def _config(root: Path, cpus: int, memory: int, gpus: int = 0) -> str:
    # config_overrides: the node is what this file says, even with more CPUs (or GPUs) than it has, so jobs
    # can ask for the resources a real cluster gives. Jobs get a share of the memory per node, which caps
    # how many run at once (memory is not enforced without cgroups).
    gres = f" Gres=gpu:{gpus}" if gpus else ""
    return f"""\
ClusterName=segbenchtest
SlurmdParameters=config_overrides
{"GresTypes=gpu" if gpus else ""}
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=cred_expire=10
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerNode={max(512, memory // 5)}
SchedulerParameters=bf_interval=2,sched_interval=2
MinJobAge=3600
JobCompType=jobcomp/filetxt
JobCompLoc={root}/jobcomp.log
MailProg=/bin/true
ReturnToService=2
EnforcePartLimits=ALL
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory}{gres} State=UNKNOWN
PartitionName=local Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


# Slurm counts a GPU per device file and wants character devices; these stand in (jobs that get them see
# no CUDA device and train on the CPU).
_STAND_IN_DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/urandom", "/dev/random")


def _gres_config(gpus: int) -> str:
    if gpus > len(_STAND_IN_DEVICES):
        raise RuntimeError(f"the test node can advertise at most {len(_STAND_IN_DEVICES)} GPUs, not {gpus}")
    return f"NodeName=localhost Name=gpu File={','.join(_STAND_IN_DEVICES[:gpus])}\n"


def _munge_works() -> bool:
    try:
        token = _run(["munge", "-n"], timeout=10)
        return token.returncode == 0 and _run(["unmunge"], input=token.stdout, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _stop(pid: int | None, timeout: float = 15.0) -> None:
    if pid is None or not process_alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while process_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if process_alive(pid):
        os.kill(pid, signal.SIGKILL)


@attrs.define
class LocalSlurm:
    root: Path
    conf: Path
    cpus: int | None = None  # advertised CPUs: at least what the node has
    gpus: int = 0  # advertised GPUs without devices: jobs that ask for them start and see no CUDA device
    pids: dict = attrs.Factory(dict)  # daemon -> PID, only for daemons this object started
    # what ``scontrol show job`` last said of jobs whose every task ended: slurmctld forgets a job MinJobAge
    # after it ends, and a slow machine can still be waiting for another job by then
    ended: dict = attrs.Factory(dict)

    @property
    def env(self) -> dict:
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def run(self, *args, check=True, timeout=60) -> subprocess.CompletedProcess:
        result = _run([str(a) for a in args], env=self.env, timeout=timeout)
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(map(str, args))} failed ({result.returncode}): {result.stderr.strip()}")
        return result

    def _show(self, job_id: str | int) -> list[dict]:
        """``scontrol show job -o``: one dict per line (a job array shows one line per task)."""
        if str(job_id) in self.ended:
            return self.ended[str(job_id)]
        lines = []
        for line in self.run("scontrol", "show", "job", "-o", job_id).stdout.splitlines():
            fields = {}
            for key, value in re.findall(r"(\w[\w:/]*)=(\S*)", line):
                fields.setdefault(key, value)
            if fields:
                lines.append(fields)
        if lines and all(fields["JobState"] in ENDED_STATES for fields in lines):
            self.ended[str(job_id)] = lines
        return lines

    def job(self, job_id: str | int) -> dict:
        """``scontrol show job`` as a dict (JobState, ExitCode, StartTime, EndTime, Restarts, Reason ...)."""
        return self._show(job_id)[0]

    def array_tasks(self, job_id: str | int) -> dict[int, dict]:
        """``scontrol show job`` of a job array: ``{array task id: fields}`` (one line per task)."""
        return {int(fields["ArrayTaskId"]): fields for fields in self._show(job_id)
                if fields.get("ArrayTaskId", "").isdigit()}

    def wait_for(self, job_ids, *, timeout: float, done=ENDED_STATES) -> dict:
        """Poll until every job (every task of an array) reached a final state; returns ``{id: fields}``."""
        deadline = time.monotonic() + timeout
        while True:
            # one snapshot per poll: the states tested are the states returned
            shown = {job_id: self._show(job_id) for job_id in job_ids}
            if all(fields["JobState"] in done for lines in shown.values() for fields in lines):
                # an array is as good as its worst task
                return {job_id: next((f for f in lines if f["JobState"] != "COMPLETED"), lines[0])
                        for job_id, lines in shown.items()}
            if time.monotonic() > deadline:
                states = {job_id: [(f.get("JobState"), f.get("Reason")) for f in lines]
                          for job_id, lines in shown.items()}
                raise TimeoutError(f"jobs did not finish within {timeout} s: {states}")
            time.sleep(1.0)

    def start(self) -> "LocalSlurm":
        if not _munge_works():
            run_dir = Path("/run/munge")
            run_dir.mkdir(parents=True, exist_ok=True)
            shutil.chown(run_dir, "munge", "munge")
            started = _run(["runuser", "-u", "munge", "--", MUNGED], timeout=30)
            if started.returncode != 0:
                raise RuntimeError(f"munged did not start: {started.stderr.strip()}")
            self.pids["munged"] = _read_pid(MUNGE_PID)
            deadline = time.monotonic() + 10
            while not _munge_works():
                if time.monotonic() > deadline:
                    raise RuntimeError("munge -n | unmunge fails after starting munged")
                time.sleep(0.2)
        for folder in ("state", "spool"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        cpus, memory = _node_resources()
        self.conf.write_text(_config(self.root, max(cpus, self.cpus or 0), memory, self.gpus))
        if self.gpus:
            (self.conf.parent / "gres.conf").write_text(_gres_config(self.gpus))
        self.run("slurmctld", "-c", "-f", self.conf)
        self.pids["slurmctld"] = self._wait_pid("slurmctld.pid")
        self.run("slurmd", "-N", "localhost", "-f", self.conf)
        self.pids["slurmd"] = self._wait_pid("slurmd.pid")
        deadline = time.monotonic() + 60
        while True:
            state = self.run("sinfo", "-h", "-N", "-o", "%T", check=False).stdout.strip()
            if state == "idle":
                return self
            if time.monotonic() > deadline:
                log = (self.root / "slurmctld.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"the node did not become idle (state {state!r}); slurmctld log:\n{log}")
            time.sleep(0.3)

    def _wait_pid(self, name: str) -> int:
        deadline = time.monotonic() + 20
        while (pid := _read_pid(self.root / name)) is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} was not written; see the logs in {self.root}")
            time.sleep(0.1)
        return pid

    def stop(self) -> None:
        for daemon in ("slurmd", "slurmctld", "munged"):
            _stop(self.pids.pop(daemon, None))


def start_local_slurm(root: Path, *, cpus: int | None = None, gpus: int = 0) -> LocalSlurm:
    ensure_installed()
    root.mkdir(parents=True, exist_ok=True)
    cluster = LocalSlurm(root=root, conf=root / "slurm.conf", cpus=cpus, gpus=gpus)
    try:
        return cluster.start()
    except BaseException:
        cluster.stop()
        raise
