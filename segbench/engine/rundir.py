"""The lock that gives one process a run directory, and ``--restart``'s keeping of the previous attempt (the layout
itself is :mod:`segbench.runs`)."""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
from pathlib import Path

from segbench.errors import RunHeldByJobError, RunLockedError, SegbenchError
from segbench.runs import RunDir  # noqa: F401  (RunLock locks one; tests and plugins import it from here)
from segbench.slurm_job import ask_to_wait_for, current_job, is_job_id, job_ended


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


class PreviousAttempt:
    """``--restart`` without losing the previous attempt when the new one fails before its first checkpoint.

    Call with the run lock held. :meth:`set_aside` moves the run's files (all but the lock) into
    ``<run>/.previous`` by renames, checkpoints first; :meth:`discard` deletes them once the new attempt
    has written a checkpoint; :meth:`restore` puts them back (replacing what the new attempt wrote).
    A process killed in between is settled by the next one (:meth:`settle`).
    """

    def __init__(self, run: RunDir):
        self.run = run
        self.folder = run.set_aside

    def set_aside(self) -> bool:
        keep = {self.run.lock_file.name, self.folder.name}
        entries = sorted((p for p in self.run.path.iterdir() if p.name not in keep),
                         key=lambda p: p != self.run.checkpoints)  # checkpoints first: see settle()
        if not entries:
            return False
        self.folder.mkdir()
        for entry in entries:
            os.rename(entry, self.folder / entry.name)
        return True

    def restore(self, *, drop_new: bool = False) -> None:
        """``drop_new``: also remove what the failed attempt wrote beside the set-aside files (a new TensorBoard
        event file); only for an attempt known to have set everything aside first."""
        if not self.folder.is_dir():
            return
        if drop_new:
            kept = {entry.name for entry in self.folder.iterdir()} | {self.run.lock_file.name, self.folder.name}
            for entry in self.run.path.iterdir():
                if entry.name not in kept:
                    _remove(entry)
        for entry in self.folder.iterdir():
            target = self.run.path / entry.name
            if target.exists() or target.is_symlink():
                _remove(target)  # the failed attempt's version
            os.rename(entry, target)
        self.folder.rmdir()

    def discard(self) -> None:
        if self.folder.exists():
            shutil.rmtree(self.folder)

    def settle(self, *, this_attempt: bool = False) -> str | None:
        """After a restart that was killed: a checkpoint in the run means the new attempt got far enough
        (discard the old files); none means it did not, or the kill came while setting aside (restore).
        ``this_attempt``: the failed attempt is this process's, which set everything aside, so the files beside
        the set-aside ones are its own and go too."""
        if not self.folder.is_dir():
            return None
        if self.run.last.exists() or self.run.best.exists():
            self.discard()
            return "discarded"
        self.restore(drop_new=this_attempt)
        return "restored"


def _who(owner: dict) -> str:
    job = owner.get("slurm_job")
    return f"process {owner['pid']} on host {owner['host']}" + (f" (Slurm job {job})" if job else "")


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """An exclusive lock on a run directory, held by one process (host + PID in the file, and its Slurm job).

    A second process exits with a clear error; a stale lock is taken over: one left by a dead process on this
    host, or by a Slurm job that has left the queue (or by this job's earlier attempt, requeued from a failed
    node). In a job of ``emit-slurm`` a run held by another job that is still queued is waited for
    (:mod:`segbench.slurm_job`).
    """

    def __init__(self, run: RunDir):
        self.run = run
        self.held = False

    def acquire(self) -> "RunLock":
        self.run.path.mkdir(parents=True, exist_ok=True)
        me = {"host": socket.gethostname(), "pid": os.getpid()}
        if (job := current_job()) is not None:
            me["slurm_job"] = job
        for _ in range(2):
            try:
                fd = os.open(self.run.lock_file, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self._owner()
                if owner and self._gone(owner):
                    self._remove_if_still(owner)
                    continue
                if not owner:  # empty or garbled: a crash between creating the file and writing it
                    raise RunLockedError(
                        f"run directory {self.run.path} has a lock file that names no process ({self.run.lock_file}"
                        " is empty or unreadable, e.g. left by a machine crash). If no run of this recipe is"
                        " active, delete the lock file and run again.") from None
                if owner.get("slurm_job") and ask_to_wait_for(owner["slurm_job"]):
                    raise RunHeldByJobError(
                        f"run directory {self.run.path} is being trained by {_who(owner)}: this job is requeued to"
                        f" start when job {owner['slurm_job']} has ended, and then finds the run complete (or"
                        " resumes it).") from None
                raise RunLockedError(
                    f"run directory {self.run.path} is in use by {_who(owner)} (lock file {self.run.lock_file})."
                    " Wait for it to finish, or if that process is gone (e.g. on another host), delete the lock"
                    " file.") from None
            try:
                with os.fdopen(fd, "w") as handle:
                    json.dump(me, handle)
            except OSError as exc:  # an empty lock file would refuse every later run
                self.run.lock_file.unlink(missing_ok=True)
                raise SegbenchError(f"cannot write the lock file {self.run.lock_file}: {exc.strerror or exc}."
                                    " Free disk space (or fix the folder's permissions) and run again.") from None
            self.held = True
            return self
        raise RunLockedError(f"could not lock {self.run.path}; delete {self.run.lock_file} if no run is active.")

    @staticmethod
    def _gone(owner: dict) -> bool:
        """The lock's owner no longer runs: a dead process of this host, this Slurm job's own earlier attempt on
        another node, or a Slurm job that has left the queue."""
        if owner["host"] == socket.gethostname():
            return not process_alive(owner["pid"])
        job = owner.get("slurm_job")
        return job is not None and (job == current_job() or job_ended(job))

    def _remove_if_still(self, owner: dict) -> None:
        """Delete the lock file if it still names ``owner``, holding ``flock`` on the run directory.

        Several processes may find the same stale lock: without the check under the flock, a slow one
        would delete the fresh lock of the one that took over, and both would run.
        """
        fd = os.open(self.run.path, os.O_RDONLY)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError:
                pass  # no flock on this file system: take over without the guard
            if self._owner() == owner:
                self.run.lock_file.unlink(missing_ok=True)
        finally:
            os.close(fd)  # releases the flock

    def holder(self) -> str | None:
        """Which other process trains this run now (``process P on host H``); ``None`` when no live process
        holds the lock. A lock of another host counts as held (whether its process lives cannot be seen here) unless it
        names a Slurm job that has left the queue."""
        owner = self._owner()
        if owner is None or (owner["host"] == socket.gethostname() and owner["pid"] == os.getpid()) or \
                self._gone(owner):
            return None
        return _who(owner)

    def _owner(self) -> dict | None:
        """``{"host": ..., "pid": ...}`` from the lock file; ``None`` when it is missing, empty or garbled."""
        try:
            owner = json.loads(self.run.lock_file.read_text(errors="replace") or "{}")
        except (OSError, ValueError):
            return None
        if not isinstance(owner, dict) or not isinstance(owner.get("host"), str) or \
                isinstance(owner.get("pid"), bool) or not isinstance(owner.get("pid"), int):
            return None
        if not is_job_id(owner.get("slurm_job")):  # it goes into a dependency: only a well-formed id counts
            owner.pop("slurm_job", None)
        return owner

    def release(self) -> None:
        """Remove the lock file, and the run folder :meth:`acquire` made if nothing else was written into it (a
        recipe refused while its run was being built leaves no run behind)."""
        if self.held:
            self.run.lock_file.unlink(missing_ok=True)
            self.held = False
            try:
                self.run.path.rmdir()  # only ever removes an empty folder
            except OSError:
                pass

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
