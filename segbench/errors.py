"""Errors that reach the user: each says what went wrong, where, and how to fix it."""
from __future__ import annotations

import contextlib
import difflib
import errno
from typing import Iterable

# File-system trouble with a path the user chose (recipe, runs directory, --out, cache, dataset): what to do.
PATH_TROUBLE = {
    errno.EACCES: "you may not read or write there: fix its permissions, or choose another place (--runs-dir,"
                  " --out, SEGBENCH_CACHE)",
    errno.EPERM: "the operation is not permitted there: fix its permissions, or choose another place",
    errno.EROFS: "that file system is read-only: choose a writable place (--runs-dir, --out, SEGBENCH_CACHE)",
    errno.ENOTDIR: "a part of that path is a file where a folder is needed: choose another path, or move the file",
    errno.EISDIR: "it is a folder where a file is needed: give a file path",
    errno.EEXIST: "something already exists there: choose another path, or move it away",
    errno.ENAMETOOLONG: "a name in that path is longer than the file system allows (255 bytes): shorten it",
    errno.ELOOP: "it is a symbolic link that loops: fix or remove the link",
    errno.ENOENT: "it does not exist: check the path",
}


def cannot_write(path, exc: OSError, *, option: str = "--out") -> SegbenchError:
    """The error for an output file that could not be written: why, and how to write it elsewhere."""
    advice = PATH_TROUBLE.get(exc.errno, "check that the folder exists and is writable and that the disk has room")
    where = "" if option in advice else f" ({option} chooses where it goes)"
    return SegbenchError(f"cannot write {path}: {exc.strerror or exc}; {advice}{where}.")


def shown(value, limit: int = 100) -> str:
    """``repr(value)`` cut to about ``limit`` characters: a message quotes what the user gave, not all of it."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


class SegbenchError(Exception):
    """A mistake in user input (recipe, data, command line, checkpoint, plugin).

    The CLI prints the message and exits with status 2, without a traceback unless ``--debug``.
    """

    exit_code = 2


class RecipeError(SegbenchError):
    """A recipe cannot be read, merged or validated."""


class ConfigError(RecipeError):
    """One or more recipe values are invalid; ``problems`` holds ``(key_path, message)`` pairs."""

    def __init__(self, problems: list[tuple[str, str]], *, files: Iterable[str] = ()):
        self.problems = list(problems)
        self.files = list(files)
        lines = [f"{len(self.problems)} problem(s) in the recipe"]
        if self.files:
            lines[0] += " " + " <- ".join(self.files)
        lines[0] += ":"
        lines += [f"  {path}: {message}" for path, message in self.problems]
        super().__init__("\n".join(lines))


@contextlib.contextmanager
def naming_recipe_files(files: Iterable[str]):
    """A ``ConfigError`` raised inside without its recipe files (a component found the value wrong once the run's
    data was known, e.g. a scheduler's warm-up against the run's length) raised again naming ``files``."""
    try:
        yield
    except ConfigError as exc:
        if exc.files:
            raise
        raise ConfigError(exc.problems, files=files) from exc


class PluginError(SegbenchError):
    """A plugin failed to load or registered something invalid."""

    @classmethod
    def of_all(cls, errors: list[PluginError]) -> PluginError:
        """One error for every broken plugin found, so that a user fixes or blocks them all in one go rather than
        learning of the next one at each try."""
        if len(errors) == 1:
            return errors[0]
        return cls(f"{len(errors)} plugin problems:\n" + "\n".join(f"  - {error}" for error in errors))


# How a message about a plugin component's own bug ends: the user cannot fix it in the recipe.
FIX_PLUGIN = "Fix the plugin, or report this to its authors"


class UnknownNameError(SegbenchError):
    """A recipe names a component that no plugin registered."""

    def __init__(self, kind: str, name: str, available: Iterable[str]):
        available = sorted(available)
        close = difflib.get_close_matches(name, available, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        super().__init__(
            f"unknown {kind} {name!r}.{hint} Available {kind}: {', '.join(available) or '(none)'}."
            f" Run `segbench list {kind}` to see them with their plugins."
        )
        self.kind, self.name, self.close_matches = kind, name, close


class BlockedNameError(SegbenchError):
    """A recipe names a component whose plugin SEGBENCH_BLOCK_PLUGINS blocks."""


class DataError(SegbenchError):
    """A dataset file or folder is missing, unreadable or inconsistent."""


class LabelValueError(DataError):
    """A label holds a value that is neither a class nor the ignore index."""

    @classmethod
    def of(cls, values: list[int], *, num_classes: int, ignore_index: int) -> LabelValueError:
        return cls(f"the label holds train id(s) {', '.join(map(str, values[:10]))}, neither a class"
                   f" (0..{num_classes - 1}) nor the dataset's ignore index {ignore_index} (its info.ignore_index);"
                   " map unlabelled pixels to the ignore index and every other value to a class, or declare the"
                   " ignore value the dataset uses in its DatasetInfo")


class DataUnavailableError(DataError):
    """A dataset's data is not on this machine at all (its root folder is missing): a dataset plugin raises it so
    that a job submitted from here, whose compute nodes may have the data, is not refused for it."""


class DataWorkerError(SegbenchError):
    """A user mistake found while a DataLoader worker process read or transformed an item."""

    def __init__(self, message: str, *, worker: int, exit_code: int = SegbenchError.exit_code):
        super().__init__(f"{message}\n(raised in DataLoader worker process {worker})")
        self.worker, self.exit_code = worker, exit_code


class CheckpointError(SegbenchError):
    """A checkpoint is missing, truncated, or does not fit the model."""


class RunLockedError(SegbenchError):
    """Another live process owns the run directory."""


class RunHeldByJobError(RunLockedError):
    """Another Slurm job trains the run; this job's script requeues it to start after that one."""

    exit_code = 75  # EX_TEMPFAIL, as for a preempted run: the same command succeeds later


class TrainingDivergedError(SegbenchError):
    """The loss became NaN or infinite."""
