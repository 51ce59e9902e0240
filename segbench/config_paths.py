"""Paths in recipes: a relative path means the folder segbench runs from, and a run keeps what it meant.

A config field with ``converter=absolute_path`` holds an absolute path once structured, so the run hash
tells apart two datasets reached through the same relative path, and a run's tools (``evaluate``,
``export``, ...) find its data from any folder: a run records its working directory, and rebuilding its
plan inside :func:`paths_relative_to` resolves the recipe's relative paths against that folder again.
"""
from __future__ import annotations

import contextlib
import contextvars
import os
from pathlib import Path

_BASE: contextvars.ContextVar[Path | None] = contextvars.ContextVar("segbench_path_base", default=None)


def absolute_path(value):
    """``value`` made absolute (``~`` expanded, relative to the working directory or :func:`paths_relative_to`'s
    folder); anything but a non-empty string is left for the field's validator to refuse."""
    if not isinstance(value, str) or not value:
        return value
    path = os.path.expanduser(value)
    if not os.path.isabs(path):
        path = os.path.join(os.path.abspath(_BASE.get() or os.getcwd()), path)
    return os.path.normpath(path)


@contextlib.contextmanager
def paths_relative_to(folder: str | os.PathLike | None):
    """Resolve relative recipe paths against ``folder`` (``None``: the working directory) inside the block."""
    token = _BASE.set(Path(folder) if folder is not None else None)
    try:
        yield
    finally:
        _BASE.reset(token)
