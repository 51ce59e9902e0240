"""torch.distributed set-up from torchrun's or Slurm's environment variables."""
from __future__ import annotations

import os
import re
import sys
from datetime import timedelta
from typing import NoReturn

import attrs
import torch
import torch.distributed as dist


@attrs.frozen
class DistEnv:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    # Started by torchrun: joins a process group even alone, so one GPU can try the DDP/nccl path.
    torchrun: bool = attrs.field(default=False, eq=False)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1 or self.torchrun


def first_host(nodelist: str) -> str:
    """The first host of a Slurm node list: ``node[01-04,07],gpu5`` -> ``node01``."""
    match = re.match(r"^([^,\[]+)(?:\[([^\]]+)\])?", nodelist.strip())
    if not match:
        return nodelist
    prefix, ranges = match.groups()
    if not ranges:
        return prefix
    first = ranges.split(",")[0].split("-")[0]
    return prefix + first


def env_from_environment(environ=None) -> DistEnv:
    environ = os.environ if environ is None else environ
    if "WORLD_SIZE" in environ and "RANK" in environ:  # torchrun
        return DistEnv(int(environ["RANK"]), int(environ["WORLD_SIZE"]), int(environ.get("LOCAL_RANK", 0)),
                       torchrun=True)
    if int(environ.get("SLURM_NTASKS", "1")) > 1 and "SLURM_PROCID" in environ:  # srun --ntasks=N
        return DistEnv(int(environ["SLURM_PROCID"]), int(environ["SLURM_NTASKS"]),
                       int(environ.get("SLURM_LOCALID", 0)))
    return DistEnv()


def local_rank() -> int:
    return env_from_environment().local_rank


def init_distributed(device_type: str, environ=None) -> DistEnv:
    """Join the process group when launched with several processes; a no-op otherwise."""
    environ = os.environ if environ is None else environ
    env = env_from_environment(environ)
    if not env.enabled or dist.is_initialized():
        return env
    if "MASTER_ADDR" not in environ:
        os.environ["MASTER_ADDR"] = first_host(environ.get("SLURM_NODELIST", "127.0.0.1"))
    if "MASTER_PORT" not in environ:
        os.environ["MASTER_PORT"] = str(15000 + int(environ.get("SLURM_JOB_ID", "0")) % 20000)
    backend = "nccl" if device_type == "cuda" else "gloo"
    dist.init_process_group(backend, rank=env.rank, world_size=env.world_size)
    return env


def all_reduce_sum(tensor: torch.Tensor, env: DistEnv) -> torch.Tensor:
    if env.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def any_rank(flag: bool, env: DistEnv, device: torch.device | None = None) -> bool:
    """``flag`` OR-ed over all ranks (a collective: every rank must call it at the same point)."""
    return bool(max_over_ranks(int(flag), env, device))


def max_over_ranks(value: int, env: DistEnv, device: torch.device | None = None) -> int:
    """The largest ``value`` of all ranks (a collective, like :func:`any_rank`)."""
    if not env.enabled:
        return value
    tensor = torch.tensor([value], device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return int(tensor.item())


def unwrap_for_evaluation(model: torch.nn.Module, env: DistEnv) -> torch.nn.Module:
    """The module inside a DistributedDataParallel wrapper, with rank 0's buffers on every rank.

    Forward passes through the wrapper can broadcast buffers, a collective that deadlocks when ranks
    evaluate different numbers of batches (or none); one explicit broadcast here keeps every rank's
    batch-norm statistics equal to the ones rank 0 checkpoints.
    """
    if not isinstance(model, torch.nn.parallel.DistributedDataParallel):
        return model
    module = model.module
    if env.enabled:
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)
    return module


def barrier(env: DistEnv) -> None:
    if env.enabled:
        dist.barrier()


_left_a_process_group = False


def left_a_process_group() -> bool:
    """Whether this process has run in a process group (and left it): see :func:`end_process`."""
    return _left_a_process_group


def end_process(status: int) -> NoReturn:
    """End this process with ``status`` after Python's exit handlers, without the interpreter's and the C++
    runtime's teardown.

    A model wrapped in DistributedDataParallel keeps its process group alive past ``destroy_process_group``
    (torch holds it from C++), so the backend's threads still run while the process tears down, and now and then
    one aborts it ("terminate called without an active exception", status -6) after the run wrote everything:
    Slurm then marks a finished job FAILED and its dependent stages never start.
    """
    import atexit
    import threading

    for thread in threading.enumerate():  # what a normal exit waits for first (a plugin logger's uploader)
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()  # then what it runs: logging's flush, multiprocessing's reaping of workers
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(status)


def shutdown(env: DistEnv, *, finished: bool = False) -> None:
    """Leave the process group. ``finished``: this process ends without an error, so the others will get here
    too: wait for them first, as a process tearing down its connections while a peer is still finishing made
    that peer abort now and then (gloo, "terminate called without an active exception")."""
    global _left_a_process_group
    if not (env.enabled and dist.is_initialized()):
        return
    _left_a_process_group = True
    store = dist.distributed_c10d._get_default_store() if finished else None
    if finished:
        dist.barrier()
    dist.destroy_process_group()
    if store is not None and env.world_size > 1:
        _leave_store_host_last(store, env)


def _leave_store_host_last(store: dist.Store, env: DistEnv) -> None:
    """Keep rank 0, which hosts the rendezvous store when Slurm starts the processes, alive until every other
    rank has left its process group: a peer whose store vanished mid-teardown could abort at exit, and Slurm
    then marks a job that wrote its results FAILED. Best effort: a peer that never reports only costs the wait."""
    try:
        if env.is_main:
            store.wait([f"segbench/left/{rank}" for rank in range(1, env.world_size)], timedelta(seconds=30))
        else:
            store.set(f"segbench/left/{env.rank}", "1")
    except (RuntimeError, dist.DistError):
        pass


# What gloo and NCCL say when a peer process has exited; the peer prints its own (real) error.
_PEER_GONE = ("Connection closed by peer", "remote worker crashing", "Connection reset by peer",
              "NCCL communicator was aborted", "Broken pipe")


def lost_peer(exc: BaseException) -> str | None:
    """A one-line message when ``exc`` only says that another process of this run has stopped, else ``None``.

    A user mistake found on one rank (a bad item in its shard of the data) stops that rank with a clear error;
    the others then fail inside a collective with a backend traceback that says nothing about the cause.
    """
    env = env_from_environment()  # the process group itself is already shut down when this is asked
    if env.world_size < 2 or not isinstance(exc, RuntimeError) or not any(part in str(exc) for part in _PEER_GONE):
        return None
    return (f"process {env.rank} of {env.world_size} stopped because another process of this"
            " distributed run exited (its own error, printed by that process, says why; fix that and run the"
            " same command again)")
