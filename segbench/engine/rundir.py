"""Run directories: ``<runs>/<recipe>-<hash8>/`` with the resolved recipe, logs, checkpoints, results."""
from __future__ import annotations

import fcntl
import json
import os
import socket
from pathlib import Path

import attrs

from segbench.atomic import atomic_write_text
from segbench.errors import RunLockedError, SegbenchError
from segbench.recipe.load import ResolvedRecipe, dump_yaml

RUNS_ENV = "SEGBENCH_RUNS"
MAX_NAME_BYTES = 255  # a file or folder name on Linux, macOS and Windows file systems


def default_runs_dir(runs_dir: Path | None = None) -> Path:
    if runs_dir is not None:
        return Path(runs_dir)
    return Path(os.environ.get(RUNS_ENV, "runs"))


@attrs.frozen
class RunDir:
    path: Path

    @classmethod
    def for_recipe(cls, recipe: ResolvedRecipe, runs_dir: Path | None = None) -> "RunDir":
        folder = default_runs_dir(runs_dir)
        if folder.exists() and not folder.is_dir():
            raise SegbenchError(f"runs directory {folder} is a file, not a folder. Give another --runs-dir (or"
                                f" ${RUNS_ENV}), or move the file away.")
        name_bytes = len(os.fsencode(recipe.run_name))
        if name_bytes > MAX_NAME_BYTES:
            raise SegbenchError(f"the run folder name {recipe.run_name[:40]}...-{recipe.hash[:8]} would be"
                                f" {name_bytes} bytes, over the {MAX_NAME_BYTES} bytes file systems allow in a name"
                                f" (it is the recipe file name {recipe.path.name!r} and a hash): give the recipe a"
                                f" shorter file name, at most {MAX_NAME_BYTES - 9 - len('.yaml')} bytes before .yaml.")
        return cls(folder / recipe.run_name)

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def last(self) -> Path:
        return self.checkpoints / "last.pt"

    @property
    def best(self) -> Path:
        return self.checkpoints / "best.pt"

    @property
    def results(self) -> Path:
        return self.path / "results.json"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def recipe_file(self) -> Path:
        return self.path / "recipe.yaml"

    @property
    def lock_file(self) -> Path:
        return self.path / "run.lock"

    def is_complete(self) -> bool:
        return self.results.is_file()

    def read_results(self) -> dict:
        return json.loads(self.results.read_text())

    def write_recipe(self, recipe: ResolvedRecipe) -> None:
        header = (f"# resolved from {' <- '.join(recipe.files)}\n# overrides: {list(recipe.overrides)}\n"
                  f"# hash: {recipe.hash}\n")
        body = dump_yaml(recipe.data)
        if self.recipe_file.is_file() and \
                self.recipe_file.read_text(encoding="utf-8").endswith(f"# hash: {recipe.hash}\n{body}"):
            return  # resuming: leave the file (and its time stamp) as the first attempt wrote it
        atomic_write_text(self.recipe_file, header + body)

    def write_json(self, name: str, data) -> None:
        atomic_write_text(self.path / name, json.dumps(data, indent=2, allow_nan=True) + "\n")


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
