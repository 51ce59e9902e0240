"""The lock that gives one process a run directory (the layout itself is :mod:`segbench.runs`)."""
from __future__ import annotations

import fcntl
import json
import os
import socket

from segbench.errors import RunLockedError, SegbenchError
from segbench.runs import RunDir  # noqa: F401  (RunLock locks one; tests and plugins import it from here)


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """An exclusive lock on a run directory, held by one process (host + PID in the file).

    A second process exits with a clear error; a stale lock left by a dead process on this host is
    taken over.
    """

    def __init__(self, run: RunDir):
        self.run = run
        self.held = False

    def acquire(self) -> "RunLock":
        self.run.path.mkdir(parents=True, exist_ok=True)
        me = {"host": socket.gethostname(), "pid": os.getpid()}
        for _ in range(2):
            try:
                fd = os.open(self.run.lock_file, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self._owner()
                if owner and owner.get("host") == me["host"] and not process_alive(int(owner.get("pid", -1))):
                    self._remove_if_still(owner)  # stale: its owner died
                    continue
                who = f"process {owner.get('pid')} on host {owner.get('host')}" if owner else "another process"
                raise RunLockedError(
                    f"run directory {self.run.path} is in use by {who} (lock file {self.run.lock_file}). Wait for"
                    " it to finish, or if that process is gone (e.g. on another host), delete the lock file."
                ) from None
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

    def _owner(self) -> dict | None:
        try:
            return json.loads(self.run.lock_file.read_text() or "{}")
        except (OSError, ValueError):
            return None

    def release(self) -> None:
        if self.held:
            self.run.lock_file.unlink(missing_ok=True)
            self.held = False

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
