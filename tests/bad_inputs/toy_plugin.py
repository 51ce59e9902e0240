"""A test-only plugin that CLI subprocesses load through a real ``segbench`` entry point.

It registers the engine tests' toy components (model ``nobn``, dataset ``blobs``, loss ``nan_after``)
and, when asked through environment variables, injects faults from inside the training process:

``SEGBENCH_FAULT_READ_DELAY=0.02``
    sleep this many seconds in every ``blobs`` item read (stretches a run for signal tests).
``SEGBENCH_FAULT_AT_READ=17:SIGKILL``
    send the signal to this process at the 17th ``blobs`` item read of the process (count starts at 1;
    with ``num_workers: 0`` every read happens in the training process).
``SEGBENCH_FAULT_PAUSE_AT_READ=5:/path/to/file``
    at the 5th ``blobs`` item read, write ``/path/to/file.paused`` and wait until ``/path/to/file`` exists.
``SEGBENCH_FAULT_IN_SAVE=3:kill`` or ``3:enospc``
    during the 3rd checkpoint save of the process, after part of the file is written into its
    temporary file: SIGKILL the process, or fail the write with ``ENOSPC`` (a full disk).
"""
from __future__ import annotations

import errno
import os
import signal
import time
from pathlib import Path

from segbench import hookimpl
from tests.engine_plugin import Blobs, BlobsConfig, NanAfter, NanAfterConfig, NoBNConfig, build_nobn

READ_DELAY_ENV = "SEGBENCH_FAULT_READ_DELAY"
AT_READ_ENV = "SEGBENCH_FAULT_AT_READ"
PAUSE_AT_READ_ENV = "SEGBENCH_FAULT_PAUSE_AT_READ"
IN_SAVE_ENV = "SEGBENCH_FAULT_IN_SAVE"
SAVE_FAULT_AFTER_BYTES = 4096  # how much of the checkpoint reaches its temporary file before the fault

_reads = 0


def _parse_count_and_action(variable: str) -> tuple[int, str] | None:
    value = os.environ.get(variable)
    if not value:
        return None
    count, _, action = value.partition(":")
    return int(count), action


class FaultyBlobs(Blobs):
    """``blobs`` whose reads can be slowed down, paused or interrupted (see the module docstring)."""

    keep_decoded = False  # every epoch reads the dataset, so every read can be a fault's point

    def __getitem__(self, index):
        global _reads
        _reads += 1
        fault = _parse_count_and_action(AT_READ_ENV)
        if fault is not None and fault[0] == _reads:
            os.kill(os.getpid(), getattr(signal, fault[1]))
        pause = _parse_count_and_action(PAUSE_AT_READ_ENV)
        if pause is not None and pause[0] == _reads:
            _wait_for(Path(pause[1]))
        delay = float(os.environ.get(READ_DELAY_ENV) or 0)
        if delay:
            time.sleep(delay)
        return super().__getitem__(index)


def _wait_for(release: Path, timeout: float = 300.0) -> None:
    Path(f"{release}.paused").touch()
    deadline = time.monotonic() + timeout
    while not release.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{release} did not appear within {timeout} s")
        time.sleep(0.02)


class _FailingFile:
    """A file object that passes writes through until ``limit`` bytes, then triggers ``action``."""

    def __init__(self, handle, *, limit: int, action: str):
        self.handle, self.limit, self.action, self.written = handle, limit, action, 0

    def write(self, data) -> int:
        room = self.limit - self.written
        if len(data) <= room:
            self.written += len(data)
            return self.handle.write(data)
        self.handle.write(bytes(memoryview(data)[:room]))
        self.handle.flush()
        os.fsync(self.handle.fileno())
        if self.action == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def flush(self):
        self.handle.flush()


def _install_save_fault() -> None:
    fault = _parse_count_and_action(IN_SAVE_ENV)
    if fault is None:
        return
    from segbench.engine import checkpoint

    target, action = fault
    original = checkpoint.atomic_write_bytes
    saves = {"n": 0}

    def atomic_write_bytes(path, write):
        if path.suffix == ".pt":
            saves["n"] += 1
            if saves["n"] == target:
                return original(path, lambda handle: write(
                    _FailingFile(handle, limit=SAVE_FAULT_AFTER_BYTES, action=action)))
        return original(path, write)

    checkpoint.atomic_write_bytes = atomic_write_bytes


_install_save_fault()


@hookimpl
def segbench_register_models(register):
    register("nobn", build_nobn, config=NoBNConfig)


@hookimpl
def segbench_register_datasets(register):
    register("blobs", FaultyBlobs, config=BlobsConfig)


@hookimpl
def segbench_register_losses(register):
    register("nan_after", NanAfter, config=NanAfterConfig)
